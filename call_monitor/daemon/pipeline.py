"""The pure path from stream items to judged calls: correlator, then the charter rules.

Used alike by ``replay`` (files), ``demo`` and ``run`` (a live AMI link), so a recording and
the live link give the same answers.

One bad call never ends a run (wazo-call-logd's "bad apple"): a bug that one call triggers,
in the correlator, the rules or any consumer of the judged call (:func:`deliver`), costs that
call at that stage, as a :class:`StageFailed` that the shell logs with the linkedid and the
traceback (:func:`log_failure`) and counts; the next calls are measured as if it had never
come. Which stage decides what is left of the call:

- ``correlate``: a handler bug closes the call as incomplete (see the correlator's
  docstring); it is judged, stored and counted as an incomplete call;
- ``judge``: the call goes on with an :func:`~call_monitor.charter.rules.unjudged` verdict:
  stored and counted, measured against no clause;
- a consumer (``metrics``, ``store``, ``callbacks``, ``report``): that consumer misses the
  call, the others still get it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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
from call_monitor.charter.judged import JudgedCall, PipelineStage
from call_monitor.charter.rules import judge, unjudged
from call_monitor.config import Settings
from call_monitor.directory import Directory

log = logging.getLogger(__name__)

# The label values of ``callmon_pipeline_errors_total`` (metrics.families.PIPELINE_STAGES).
Stage = PipelineStage


@dataclass(frozen=True, slots=True)
class StageFailed:
    """A bug at ``stage``, triggered by the call ``linkedid`` (``None``: not known)."""

    stage: Stage
    linkedid: str | None
    error: Exception


Result = JudgedCall | EventRejected | StageFailed
# Something that takes each judged call: the metrics, the store, the callbacks, a printer.
Consumer = tuple[Stage, Callable[[JudgedCall], object]]


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = Directory(settings.directory)
        self.correlator = Correlator(
            Topology(
                public_endpoints=frozenset(settings.directory.public_endpoints),
                public_contexts=frozenset(settings.directory.public_contexts),
            ),
            max_calls=settings.ami.max_calls_in_progress,
        )

    def judge(self, record: CallRecord) -> JudgedCall:
        return JudgedCall(record, judge(record, self.settings.charter, self.directory))

    def process(self, item: StreamItem) -> list[Result]:
        """What ``item`` concludes: the events rejected, then the calls it ended, judged;
        a bug costs the call it belongs to, never the caller (see the module docstring)."""
        try:
            outputs = self.correlator.step(item)
        except Exception as exc:  # outside any handler (a resync, a sweep): no call known
            return [StageFailed("correlate", None, exc)]
        return self._results(outputs)

    def close(self) -> list[Result]:
        """End of input (a replay's last byte): the calls still open, closed as incomplete."""
        try:
            outputs = self.correlator.close_all()
        except Exception as exc:
            return [StageFailed("correlate", None, exc)]
        return self._results(outputs)

    def _results(self, outputs: list[Output]) -> list[Result]:
        results: list[Result] = []
        for output in outputs:
            if isinstance(output, EventRejected):
                results.append(output)
                if output.error is not None:
                    results.append(StageFailed("correlate", output.linkedid, output.error))
        for output in outputs:
            if isinstance(output, CallEnded):
                results.extend(self._judged(output.record))
        return results

    def _judged(self, record: CallRecord) -> list[Result]:
        try:
            return [self.judge(record)]
        except Exception as exc:
            failed = StageFailed("judge", record.linkedid, exc)
            return [failed, JudgedCall(record, unjudged(record, self.settings.charter))]


def deliver(judged: JudgedCall, consumers: Iterable[Consumer]) -> list[StageFailed]:
    """Hand ``judged`` to each consumer in turn; one that raises misses this call only."""
    failures: list[StageFailed] = []
    for stage, consume in consumers:
        try:
            consume(judged)
        except Exception as exc:
            failures.append(StageFailed(stage, judged.record.linkedid, exc))
    return failures


def log_failure(failure: StageFailed) -> None:
    """Log a bug a call triggered, with its linkedid and traceback."""
    log.error(
        "pipeline: %s failed on call %s; that call skipped there, the others go on",
        failure.stage,
        failure.linkedid or "(unknown)",
        exc_info=failure.error,
    )


def read_recording(path: Path, settings: Settings) -> Iterator[StreamItem | FramingError]:
    """The stream items of a recorded AMI session, as the live client would yield them.

    Raises :class:`~call_monitor.ami.recording.NotARecording` for a file that is not one."""
    framer = AmiFramer(ignore_events=settings.ami.ignore_events, event_filter=EVENT_FILTER)
    return transcript_items(framer.feed(read_recording_bytes(path)))


def replay(paths: Iterable[Path], settings: Settings) -> Iterator[Result]:
    """Replay recordings in order through one pipeline; calls still open at the end are
    closed as incomplete."""
    pipeline = Pipeline(settings)
    for path in paths:
        for item in read_recording(path, settings):
            if isinstance(item, FramingError):
                continue
            yield from pipeline.process(item)
    yield from pipeline.close()
