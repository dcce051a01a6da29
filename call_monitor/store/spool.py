"""What could not be written at shutdown, kept on local disk and written at the next start.

A stop (SIGTERM) while the database is down used to end with "56 calls NOT written": the
calls and callback changes still queued were lost. They go to one spool file instead, and
the next start writes them before anything else (before the open obligations are read
back, so those include them), then removes the file. The file is pickled: the monitor
writes and reads it itself, in its own data directory, with mode 0600 like the SQLite file;
it is written under a temporary name and renamed, so a crash while writing leaves the
previous one whole.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_VERSION = 1


@dataclass(slots=True)
class Spooled:
    """The writers' queues as they were: the store writer's call rows, and the callback
    service's batches of changes and alerts (their own types, kept as they are)."""

    calls: list[Any] = field(default_factory=list)
    changes: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.calls or self.changes)

    def extend(self, other: Spooled) -> None:
        self.calls += other.calls
        self.changes += other.changes


def save(path: Path, spooled: Spooled) -> None:
    """Write ``spooled`` to ``path`` (added to what is there already), atomically."""
    earlier = load(path)
    if earlier is not None:
        earlier.extend(spooled)
        spooled = earlier
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump((_VERSION, spooled), file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load(path: Path) -> Spooled | None:
    """What ``path`` keeps, or None when there is no spool file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    version, spooled = pickle.loads(data)
    if version != _VERSION or not isinstance(spooled, Spooled):
        raise ValueError(f"{path}: not a call-monitor spool file of version {_VERSION}")
    return spooled


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
