"""``call-monitor replay``: what the monitor concludes from recorded AMI sessions, offline.

The calls go through the same pipeline as the daemon's and to the same consumers: the
callback tracker, then the output (one JSON object per call, or the call lines in start
order and a summary). A bug one call triggers costs that call: logged with its traceback,
exit status 1 once everything else is printed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from call_monitor.ami.recording import NotARecording, read_recording_bytes
from call_monitor.calls.correlator import EventRejected
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import JudgedCall, call_report
from call_monitor.charter.lines import Summary, describe
from call_monitor.charter.obligations import Obligation, ObligationChange, callback_report
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.cli.replay_store import ReplayStore
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import (
    Consumer,
    Result,
    StageFailed,
    deliver,
    log_failure,
    replay,
)
from call_monitor.directory import Directory
from call_monitor.timefmt import SEOUL

log = logging.getLogger(__name__)


def run_replay(
    files: list[Path], settings: Settings, as_json: bool, lang: str, store: bool = False
) -> int:
    """Print what the monitor concludes from ``files`` (and with ``store``, write it into
    the configured store, see :mod:`.replay_store`); the exit status."""
    problem = not_replayable(files)
    if problem:
        print(f"call-monitor: {problem}", file=sys.stderr)
        return 2
    output = _Output(settings, as_json, lang)
    if store:
        return asyncio.run(_replay_into_store(files, settings, output))
    tally = _Tally()
    for result in replay(files, settings):
        tally.count(result, output.deliver)
    output.finish()
    return _status(tally.rejected, tally.failed)


async def _replay_into_store(files: list[Path], settings: Settings, output: _Output) -> int:
    sink = await ReplayStore.open(settings, output.directory)
    output.consumers.insert(0, ("store", sink.take))  # first, as in the daemon
    tally = _Tally()
    try:
        for result in replay(files, settings):
            tally.count(result, output.deliver)
            await sink.write_due()
    finally:
        await sink.close()
    output.finish()
    print(
        f"call-monitor: {sink.calls} calls and {sink.changes_written} callback changes "
        f"written to {make_url(settings.store.url).render_as_string(hide_password=True)}",
        file=sys.stderr,
    )
    return _status(tally.rejected, tally.failed)


@dataclass
class _Tally:
    """What went wrong in a replay: events not used, bugs calls triggered (logged here)."""

    rejected: int = 0
    failed: int = 0

    def count(self, result: Result, deliver: Callable[[JudgedCall], list[StageFailed]]) -> None:
        failures: list[StageFailed] = []
        if isinstance(result, EventRejected):
            self.rejected += 1
            log.debug("event %s rejected: %s", result.event, result.reason)
        elif isinstance(result, StageFailed):
            failures.append(result)
        else:
            failures += deliver(result)
        for failure in failures:
            log_failure(failure)
        self.failed += len(failures)


def not_replayable(files: list[Path]) -> str | None:
    """What is wrong with the first file that is not a recording, if one is not: every file
    is checked before the first line is printed, so a wrong file among several leaves no
    half replay behind it (the pipeline reads each again, lazily)."""
    for path in files:
        try:
            read_recording_bytes(path)
        except FileNotFoundError:
            return f"no such file: {path}"
        except NotARecording as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
    return None


def _status(rejected: int, failed: int) -> int:
    if rejected:
        print(f"call-monitor: {rejected} events could not be used", file=sys.stderr)
    if not failed:
        return 0
    print(
        f"call-monitor: {failed} internal errors (logged above); the calls they hit are "
        "shown incomplete or unjudged, or left out",
        file=sys.stderr,
    )
    return 1


@dataclass
class _Output:
    """The replay's consumers (the callback tracker, then the report) and what they print."""

    settings: Settings
    as_json: bool
    lang: str
    obligations: dict[str, Obligation] = field(default_factory=dict)  # first created first
    lines: list[tuple[float, int, str]] = field(default_factory=list)  # (start, order, line)
    summary: Summary = field(default_factory=Summary)
    caused: list[ObligationChange] = field(default_factory=list)  # by the call delivered
    json_lines: list[str] = field(default_factory=list)
    last_end: float | None = None

    def __post_init__(self) -> None:
        self.directory = Directory(self.settings.directory)
        hours = WorkingHours(self.settings.working_hours)
        self.callbacks = CallbackTracker(self.settings.callbacks, hours, self.directory)
        # Applied in the order the calls end, as the daemon does; lines printed by start.
        self.consumers: list[Consumer] = [("callbacks", self._owe), ("report", self._show)]

    def deliver(self, judged: JudgedCall) -> list[StageFailed]:
        self.caused.clear()
        failures = deliver(judged, self.consumers)
        # Printed after the delivery: a closed stdout is not a bug of this call.
        for line in self.json_lines:
            print(line)
        self.json_lines.clear()
        record = judged.record
        end = record.ended_at if record.ended_at is not None else record.started_at
        self.last_end = end if self.last_end is None else max(self.last_end, end)
        return failures

    def finish(self) -> None:
        if self.last_end is not None:
            # States as of the end of the recording (the PBX's clock, not ours).
            for change in self.callbacks.due_events(datetime.fromtimestamp(self.last_end, SEOUL)):
                self.obligations[change.obligation.id] = change.obligation
                self.summary.note(change)
        if self.as_json:
            for obligation in self.obligations.values():
                print(json.dumps(callback_report(obligation), ensure_ascii=False))
            return
        for _, _, line in sorted(self.lines):
            print(line)
        print(self.summary.text(self.lang))

    def _owe(self, judged: JudgedCall) -> None:
        self.caused[:] = self.callbacks.on_call(judged.record)
        for change in self.caused:
            self.obligations[change.obligation.id] = change.obligation

    def _show(self, judged: JudgedCall) -> None:
        if self.as_json:
            report = call_report(judged.record, judged.verdict)
            self.json_lines.append(json.dumps(report, ensure_ascii=False))
            return
        line = describe(judged, self.lang, directory=self.directory, changes=self.caused)
        self.lines.append((judged.record.started_at, len(self.lines), line))
        self.summary.add(judged, self.caused)
