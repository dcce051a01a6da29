"""A long query's rows from a SQLite file, read by a child process beside this one.

Why a process: SQLite runs inside the process that asks. Read in a thread (aiosqlite's), the
month's rows wait for the interpreter while the export's writer holds it (the thread gives
it up for every row's step and waits up to the switch interval to get it back), so reading
and writing took turns: 300,000 calls cost their read time plus their write time. A child
reads on the machine's other core while the writer writes, and the store's own connection
(one, for all SQLite work: ``engine.py``) stays free for the figures meanwhile. Measured in
``benchmarks/export.py`` (``benchmarks/README.md``).

The child (``sqlite_child.py``, standard library only) opens the file read-only and sends
its rows in marshalled batches; here a thread drains its pipe into a queue of at most
:data:`BATCHES_AHEAD` batches (so memory does not grow when the writer is slower) and the
async side takes them from it. Closing the generator early stops the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from call_monitor.store.engine import SQLITE_BUSY_TIMEOUT_MS

CHILD = Path(__file__).with_name("sqlite_child.py")
BATCHES_AHEAD = 4  # batches read but not yet taken, at most
PUMP_NAME = "sqlite-rows-pump"


class ReadFailed(OSError):
    """The child could not read the store (its message says why). An ``OSError``, as any
    other failure to read the file: ``call-monitor export`` reports it in one line."""


async def sqlite_rows(path: str, sql: str, batch_rows: int) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The rows of ``sql`` (no parameters: literals in the text) on the SQLite file
    ``path``, ``batch_rows`` at a time."""
    child = await asyncio.to_thread(_start, path, sql, batch_rows)
    frames: queue.Queue[bytes | None] = queue.Queue(maxsize=BATCHES_AHEAD)
    stop = threading.Event()
    pump = threading.Thread(
        target=_pump, args=(child.stdout, frames, stop), name=PUMP_NAME, daemon=True
    )
    try:
        pump.start()
        while (frame := await asyncio.to_thread(frames.get)) is not None:
            yield marshal.loads(frame)
        await asyncio.to_thread(child.wait)
        if child.returncode != 0:
            raise ReadFailed(_failure(child))
    finally:
        stop.set()
        if child.poll() is None:
            child.kill()
        with contextlib.suppress(queue.Empty):
            while True:  # room for the pump if it waits to put a batch: then it sees stop
                frames.get_nowait()
        await asyncio.to_thread(_reap, child, pump)


def _start(path: str, sql: str, batch_rows: int) -> subprocess.Popen[bytes]:
    """The child, told what to read."""
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if child.stdin is None:  # not with PIPE: for the type checker
        raise RuntimeError("no pipe to the SQLite reader")
    try:
        child.stdin.write(marshal.dumps((path, sql, batch_rows, SQLITE_BUSY_TIMEOUT_MS)))
        child.stdin.close()
    except BrokenPipeError:
        pass  # the child died at once: its exit status and stderr say why
    return child


def _pump(stdout: IO[bytes], frames: queue.Queue[bytes | None], stop: threading.Event) -> None:
    """Frames from the child's pipe into ``frames``, then ``None`` (at the end, or when the
    child ended mid-batch); nothing more once ``stop`` is set (the reader left)."""
    try:
        while (header := stdout.read(8)) and (size := int.from_bytes(header, "little")):
            frame = stdout.read(size)
            if len(frame) != size or stop.is_set():
                break  # the child ended mid-batch (its exit status says why), or stopped
            frames.put(frame)
            if stop.is_set():
                return
    finally:
        if not stop.is_set():
            frames.put(None)


def _reap(child: subprocess.Popen[bytes], pump: threading.Thread) -> None:
    child.wait()
    pump.join(timeout=5)
    for pipe in (child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()


def _failure(child: subprocess.Popen[bytes]) -> str:
    message = child.stderr.read().decode("utf-8", "replace").strip() if child.stderr else ""
    lines = message.splitlines()
    return f"reading the SQLite store failed: {lines[-1] if lines else f'exit {child.returncode}'}"
