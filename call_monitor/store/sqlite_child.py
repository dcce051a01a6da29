"""The child process of :mod:`call_monitor.store.sqlite_rows`: runs one query on a SQLite
file, read-only, and writes its rows to stdout in batches.

Run as a script (``python -I -S sqlite_child.py``), never imported by the program: the
standard library only, so it starts in a few milliseconds. Its input on stdin, marshalled:
``(path, sql, batch_rows, busy_timeout_ms)``. Its output: frames of an 8-byte little-endian
length and a marshalled list of row tuples; a frame of length 0 ends the rows. A failure is
one line on stderr and exit status 1.
"""

import marshal
import sqlite3
import sys
import urllib.parse


def main() -> int:
    path, sql, batch_rows, busy_timeout_ms = marshal.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    try:
        uri = f"file:{urllib.parse.quote(path)}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000)
        db.execute("PRAGMA query_only=ON")
        cursor = db.execute(sql)
        while rows := cursor.fetchmany(batch_rows):
            frame = marshal.dumps(rows)
            out.write(len(frame).to_bytes(8, "little"))
            out.write(frame)
        out.write((0).to_bytes(8, "little"))
        out.flush()
    except BrokenPipeError:
        return 0  # the reader stopped reading (the export ended early): nothing to report
    except (sqlite3.Error, OSError, ValueError) as error:
        sys.stderr.write(f"{type(error).__name__}: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
