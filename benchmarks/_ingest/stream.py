"""The benchmark's event stream, built once from the real recordings and written to a file.

Every ``*.full.ami`` recording (the ``read=all`` view: ``VarSet``, ``Newexten``, ``CEL`` ...
as a real PBX is often configured) is chained into one connection in recorded order
(:func:`call_monitor.demo.recording.chain`). That chain is then repeated: round ``r`` is
:meth:`Recording.rewritten` ``(r, r * period)``, so its unique ids, linked ids and channel
names are new and its timestamps follow the previous round's. Every call is distinct.

The file holds the messages that follow the login, each closed by its empty line; the
server sends the banner and answers the login itself. ``offsets[k]`` is the byte length of
the first ``k`` events, so a run can take a prefix that ends on a message boundary.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from _ingest.common import TERMINATOR
from call_monitor.demo.recording import (
    RECORDINGS_DIR,
    RecordedMessage,
    Recording,
    chain,
    loop_period,
)


@dataclass(frozen=True)
class Stream:
    path: Path
    banner: str  # without its CRLF
    events: int
    offsets: array[int]
    recordings: tuple[str, ...]
    rounds: int
    build_seconds: float

    @property
    def size(self) -> int:
        return self.offsets[self.events]

    def prefix(self, events: int) -> tuple[int, int]:
        """``(events, bytes)`` of the first ``events`` events (at most all of them)."""
        count = max(0, min(events, self.events))
        return count, self.offsets[count]


def recording_paths() -> list[Path]:
    return sorted(RECORDINGS_DIR.glob("*.full.ami"))


def build_stream(events: int, path: Path) -> Stream:
    """Write exactly ``events`` events to ``path``: whole rounds, the last one cut short."""
    if events < 1:
        raise ValueError("the stream needs at least one event")
    started = time.perf_counter()
    recordings = [Recording.load(p) for p in recording_paths()]
    if not recordings:
        raise FileNotFoundError(f"no *.full.ami recordings in {RECORDINGS_DIR}")
    recordings.sort(key=lambda r: min(r.timestamps(), default=0.0))
    base = chain(recordings)
    period = loop_period([base])
    offsets = array("q", [0])
    position = 0
    rounds = 0
    with path.open("wb") as fh:
        while len(offsets) <= events:
            current = base.rewritten(rounds, rounds * period)
            parts: list[bytes] = []
            for step in current.steps:
                if len(offsets) > events:
                    break
                if not isinstance(step, RecordedMessage):
                    continue  # a recorded resync reply: the full recordings have none
                data = step.raw + TERMINATOR
                parts.append(data)
                position += len(data)
                offsets.append(position)
            if not parts:
                raise ValueError("the recordings hold no events")
            fh.write(b"".join(parts))
            rounds += 1
    banner = base.banner.decode("utf-8").rstrip("\r\n")
    return Stream(
        path=path,
        banner=banner,
        events=events,
        offsets=offsets,
        recordings=tuple(r.name for r in recordings),
        rounds=rounds,
        build_seconds=time.perf_counter() - started,
    )
