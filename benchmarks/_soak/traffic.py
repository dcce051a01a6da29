"""Generated traffic: the real recordings, chained and repeated round after round, each round
with new ids and times and its staff phones moved onto a large directory.

The recordings ring four staff phones, 201-204. A benchmark of the metrics or a soak of the
daemon needs a whole office: :func:`bench_directory` makes one (1,300 staff in 60
departments by default, extensions 2000-3299) and every recording of every round rings four
of its phones, drawn in turn from a shuffled cycle over all of them, so every staff member
and every department gets calls.

Building a round with :meth:`Recording.rewritten <call_monitor.demo.recording.Recording.rewritten>`
costs about as much as handling it, too slow to feed the daemon a million calls. So the chain
is rewritten once into *templates* (one per recording) whose round-dependent parts are
markers, and a round is a few ``bytes.replace`` calls (~8 ms for the 13 ``.ami`` recordings):

- unique ids ``epoch.seq`` become ``epoch.<round><seq:06d>``, other ids (bridge UUIDs) get
  ``-r<round>``, channel name counters become ``<round><counter>``: one to one, so what was
  equal stays equal and nothing collides with another round (the ids stay opaque strings to
  the correlator, as Asterisk's are);
- timestamps become ``<clock + round><seconds since the chain's start, fixed width>.<µs>``:
  each round starts a fixed period (``10 ** width`` seconds, more than the chain's span)
  after the previous one, and the times within a round keep their recorded differences.

Staff extensions are markers too, one template per recording: round ``r`` gives each
recording four extensions in turn from a sequence of shuffled passes over the directory
(every extension once per pass), deterministic in ``r``, so any process can build any round.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from call_monitor.ami.framing import AmiFramer, FramingError
from call_monitor.ami.stream import transcript_items
from call_monitor.calls.correlator import EVENT_FILTER
from call_monitor.charter.judged import JudgedCall
from call_monitor.config import (
    AmiSettings,
    DepartmentEntry,
    DirectorySettings,
    StaffEntry,
)
from call_monitor.daemon.pipeline import Pipeline
from call_monitor.demo.recording import (
    RECORDINGS_DIR,
    TERMINATOR,
    RecordedMessage,
    Recording,
    Renaming,
    chain,
    rewrite_values,
)

Kind = Literal["ami", "full"]
ROUND = b"\x00R\x00"  # NUL never occurs in AMI text
CLOCK = b"\x00T\x00"
RECORDED_STAFF = (b"201", b"202", b"203", b"204")
STAFF_MARKS = tuple(b"\x00S%d\x00" % i for i in range(len(RECORDED_STAFF)))
# A recorded staff extension standing alone: in a channel name (PJSIP/201-..., Local/201@...),
# a caller id, an Exten, a DialString, AppData (PJSIP/201,20,tT) ... never inside a longer
# number, an id (after ".") or a marked timestamp (after NUL).
_STAFF_RE = re.compile(rb"(?<![0-9A-Za-z.\x00])(20[1-4])(?![0-9A-Za-z])")
_SEQ_WIDTH = 6

DEPARTMENT_FORMAT = "부서{:02d}"
GROUP_NUMBERS = ("600", "700", "710")  # the recordings' ring group and queues


def bench_directory(
    staff: int = 1300, departments: int = 60, first_extension: int = 2000
) -> DirectorySettings:
    """A deterministic office: ``staff`` extensions from ``first_extension`` in contiguous
    blocks over ``departments`` departments named 부서01, 부서02, ..."""
    if staff < len(RECORDED_STAFF) or departments < 1:
        raise ValueError(f"need at least {len(RECORDED_STAFF)} staff and one department")
    names = [DEPARTMENT_FORMAT.format(i + 1) for i in range(departments)]
    entries = {
        str(first_extension + i): StaffEntry(
            name=f"직원{i + 1:04d}", department=names[i * departments // staff]
        )
        for i in range(staff)
    }
    return DirectorySettings(
        staff=entries,
        departments={
            name: DepartmentEntry(direct_number=f"02-450-{1000 + i:04d}")
            for i, name in enumerate(names)
        },
        public_endpoints=["pstn"],
        public_contexts=["from-pstn"],
        groups={number: names[i % departments] for i, number in enumerate(GROUP_NUMBERS)},
    )


def recording_paths(kind: Kind) -> list[Path]:
    """``ami``: the monitor user's view (``<s>.ami``, ~37 events a call); ``full``: the
    ``read=all`` view (``<s>.full.ami``, ~86 events a call). The reconnect scenario's two
    ``.part`` connections are left out: a round is one unbroken connection."""
    if kind == "full":
        return sorted(RECORDINGS_DIR.glob("*.full.ami"))
    return sorted(
        p
        for p in RECORDINGS_DIR.glob("*.ami")
        if not p.name.endswith(".full.ami") and ".part" not in p.name
    )


@dataclass
class Traffic:
    kind: Kind
    recordings: tuple[str, ...]
    banner: bytes  # the AMI banner line with its CRLF
    templates: tuple[bytes, ...]  # one per recording, markers in place
    events_per_round: int
    clock_base: int
    extensions: tuple[bytes, ...]
    seed: int
    _passes: dict[int, list[bytes]] = field(default_factory=dict, repr=False)

    @property
    def bytes_per_round(self) -> int:
        """About (the staff extensions drawn change the length a little)."""
        return len(self.round_bytes(1))

    def round_bytes(self, round_no: int) -> bytes:
        """Round ``round_no`` (from 1): every message of the chain, each closed by its
        empty line, with this round's ids, channels, times and staff."""
        if round_no < 1:
            raise ValueError("rounds are numbered from 1")
        parts = []
        for index, template in enumerate(self.templates):
            data = template
            for mark, extension in zip(STAFF_MARKS, self.staff(round_no, index), strict=True):
                data = data.replace(mark, extension)
            parts.append(data)
        return (
            b"".join(parts)
            .replace(ROUND, b"%d" % round_no)
            .replace(CLOCK, b"%d" % (self.clock_base + round_no))
        )

    def staff(self, round_no: int, recording: int) -> list[bytes]:
        """The four distinct extensions that stand for 201-204 in this recording of this
        round: the next ones of the sequence of passes."""
        width = len(RECORDED_STAFF)
        position = ((round_no - 1) * len(self.templates) + recording) * width
        chosen: list[bytes] = []
        while len(chosen) < width:
            extension = self._at(position)
            position += 1
            if extension not in chosen:  # a pass's end may meet the next one's start
                chosen.append(extension)
        return chosen

    def _at(self, position: int) -> bytes:
        number, offset = divmod(position, len(self.extensions))
        order = self._passes.get(number)
        if order is None:
            if len(self._passes) > 4:
                self._passes.clear()
            order = list(self.extensions)
            random.Random(self.seed * 1_000_003 + number).shuffle(order)
            self._passes[number] = order
        return order[offset]


def build_traffic(
    extensions: Sequence[str], *, kind: Kind = "ami", seed: int = 20261128
) -> Traffic:
    """The templates of a round: the chain's recordings with their markers in place."""
    recordings = [Recording.load(p) for p in recording_paths(kind)]
    if not recordings:
        raise FileNotFoundError(f"no {kind} recordings in {RECORDINGS_DIR}")
    distinct = tuple(sorted(set(extensions)))
    if len(distinct) < len(RECORDED_STAFF):
        raise ValueError(f"need at least {len(RECORDED_STAFF)} distinct extensions")
    recordings.sort(key=lambda r: min(r.timestamps(), default=0.0))
    chained = chain(recordings)
    stamps = chained.timestamps()
    start = math.floor(min(stamps))
    width = max(3, len(str(math.ceil(max(stamps)) - start + 1)))
    marks = dict(zip(RECORDED_STAFF, STAFF_MARKS, strict=True))
    markers = Renaming(
        timestamp=partial(_mark_timestamp, start=start, width=width),
        unique_id=_mark_unique_id,
        other_id_suffix=b"-r" + ROUND,
        channel_counter=lambda counter: ROUND + counter,
    )
    templates: list[bytes] = []
    steps = iter(chained.steps)
    events = 0
    for recording in recordings:
        parts = []
        for _ in recording.steps:
            step = next(steps)
            if isinstance(step, RecordedMessage):  # the .ami files hold no resync replies
                parts.append(rewrite_values(step.raw, markers) + TERMINATOR)
                events += 1
        templates.append(_STAFF_RE.sub(lambda m: marks[m[1]], b"".join(parts)))
    return Traffic(
        kind=kind,
        recordings=tuple(r.name for r in recordings),
        banner=chained.banner,
        templates=tuple(templates),
        events_per_round=events,
        clock_base=start // 10**width,
        extensions=tuple(e.encode() for e in distinct),
        seed=seed,
    )


def _mark_timestamp(value: bytes, start: int, width: int) -> bytes:
    whole, dot, fraction = value.partition(b".")
    if not whole.isdigit():
        return value
    offset = int(whole) - start
    if not 0 <= offset < 10**width:
        raise ValueError(f"timestamp {value!r} outside the chain's span")
    return CLOCK + b"%0*d" % (width, offset) + dot + fraction


def _mark_unique_id(epoch: bytes, seq: bytes) -> bytes:
    if len(seq) > _SEQ_WIDTH:
        raise ValueError(f"unique id {epoch!r}.{seq!r}: sequence wider than {_SEQ_WIDTH} digits")
    return epoch + b"." + ROUND + seq.rjust(_SEQ_WIDTH, b"0")


# -- the pipeline in process (benchmarks/metrics.py, checks) --------------------------------


def new_framer() -> AmiFramer:
    """The framer as the daemon's client sets it up (default ``ignore_events``)."""
    return AmiFramer(ignore_events=AmiSettings().ignore_events, event_filter=EVENT_FILTER)


def judge_rounds(
    traffic: Traffic, pipeline: Pipeline, rounds: Iterable[int]
) -> Iterator[tuple[int, JudgedCall]]:
    """Rounds through the real framing, correlator and charter rules, in this process:
    ``(round, judged call)`` as each call ends."""
    framer = new_framer()
    framer.feed(traffic.banner)  # the banner: a LinkUp, which changes nothing
    for round_no in rounds:
        for item in transcript_items(framer.feed(traffic.round_bytes(round_no))):
            if isinstance(item, FramingError):
                raise ValueError(f"round {round_no}: {item}")
            for result in pipeline.process(item):
                if isinstance(result, JudgedCall):
                    yield round_no, result
