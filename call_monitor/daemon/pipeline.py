"""The pure path from stream items to judged calls: correlator, then the charter rules.

Used alike by ``replay`` (files), ``demo`` and ``run`` (a live AMI link), so a recording and
the live link give the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from call_monitor.ami.framing import AmiFramer, FramingError
from call_monitor.ami.recording import read_recording_bytes
from call_monitor.ami.stream import StreamItem, transcript_items
from call_monitor.calls.correlator import (
    EVENT_FILTER,
    Correlator,
    EventRejected,
    Output,
    Topology,
)
from call_monitor.calls.model import CallEnded, CallRecord
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.rules import judge
from call_monitor.config import Settings
from call_monitor.directory import Directory


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = Directory(settings.directory)
        self.correlator = Correlator(
            Topology(
                public_endpoints=frozenset(settings.directory.public_endpoints),
                public_contexts=frozenset(settings.directory.public_contexts),
            )
        )

    def judge(self, record: CallRecord) -> JudgedCall:
        return JudgedCall(record, judge(record, self.settings.charter, self.directory))

    def feed(self, item: StreamItem) -> list[Output]:
        return self.correlator.step(item)

    def finished(self, outputs: Iterable[Output]) -> Iterator[JudgedCall]:
        for output in outputs:
            if isinstance(output, CallEnded):
                yield self.judge(output.record)


def read_recording(path: Path, settings: Settings) -> Iterator[StreamItem | FramingError]:
    """The stream items of a recorded AMI session, as the live client would yield them.

    Raises :class:`~call_monitor.ami.recording.NotARecording` for a file that is not one."""
    framer = AmiFramer(ignore_events=settings.ami.ignore_events, event_filter=EVENT_FILTER)
    return transcript_items(framer.feed(read_recording_bytes(path)))


def replay(paths: Iterable[Path], settings: Settings) -> Iterator[JudgedCall | EventRejected]:
    """Replay recordings in order through one pipeline; calls still open at the end are
    closed as incomplete."""
    pipeline = Pipeline(settings)
    for path in paths:
        for item in read_recording(path, settings):
            if isinstance(item, FramingError):
                continue
            outputs = pipeline.feed(item)
            yield from (o for o in outputs if isinstance(o, EventRejected))
            yield from pipeline.finished(outputs)
    yield from pipeline.finished(pipeline.correlator.close_all())
