#!/usr/bin/env python
"""What turning a record into its row or its JSON object costs, per record.

    .venv/bin/python benchmarks/mapping.py [--runs 7] [--repeat 50]

A benchmark, not a test: it prints a report (machine, load, a markdown table).

The records: every call of the shipped ``*.full.ami`` recordings, replayed through the
pipeline and judged, and the callback obligations' changes they make (the tracker's, then
its reminders and overdue transitions at the first reminder time and a week later). Each
function runs over all of them ``--repeat`` times per run, ``--runs`` runs; the table shows
the best run (the least disturbed by other work on the host) and the median, in µs per call
(or per change). ``call_rows`` is what ``StoreWriter.submit`` does on the event loop for
every finished call; ``judged_values`` (the call's whole mapping, times as datetimes) is
shown beside it as the generic path's first step, which ``call_rows`` no longer takes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from _machine import cpu_model, load_average

from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import JudgedCall, call_report, judged_values
from call_monitor.charter.obligations import OBLIGATION, ObligationChange
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import replay
from call_monitor.directory import Directory
from call_monitor.store.models import from_epoch
from call_monitor.store.obligations import OBLIGATIONS, change_row, obligation_row
from call_monitor.store.writer import call_rows

RECORDINGS = Path(__file__).resolve().parent.parent / "call_monitor" / "demo" / "recordings"


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    unit: str  # what one application maps: a call, an obligation change
    items: Sequence[Any]
    apply: Callable[[Any], object]


@dataclass(frozen=True, slots=True)
class Figure:
    best_us: float
    median_us: float


def recorded_calls(settings: Settings) -> list[JudgedCall]:
    return [
        item
        for path in sorted(RECORDINGS.glob("*.full.ami"))
        for item in replay([path], settings)
        if isinstance(item, JudgedCall)
    ]


def obligation_changes(settings: Settings, calls: Sequence[JudgedCall]) -> list[ObligationChange]:
    tracker = CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )
    changes = [change for call in calls for change in tracker.on_call(call.record)]
    open_reminders = [c.obligation.reminder_at for c in changes if c.obligation.is_open]
    if open_reminders:
        changes += tracker.due_events(min(open_reminders))
        changes += tracker.due_events(min(open_reminders) + timedelta(days=7))
    return changes


def cases(calls: Sequence[JudgedCall], changes: Sequence[ObligationChange]) -> list[Case]:
    def snapshot(change: ObligationChange) -> object:
        return obligation_row(change.obligation, change.change.cause)

    def generic_snapshot(change: ObligationChange) -> object:
        obligation = change.obligation
        closed_cause = None if obligation.closed_at is None else change.change.cause
        return OBLIGATIONS.row(OBLIGATION.values(obligation), closed_cause=closed_cause)

    return [
        Case("call_rows", "call", calls, lambda c: call_rows(c.record, c.verdict)),
        Case(
            "judged_values(…, from_epoch): the whole mapping, generic",
            "call",
            calls,
            lambda c: judged_values(c.record, c.verdict, from_epoch),
        ),
        Case(
            "call_report (replay --json)", "call", calls, lambda c: call_report(c.record, c.verdict)
        ),
        Case("obligation_row", "change", changes, snapshot),
        Case("OBLIGATION.values + OBLIGATIONS.row, generic", "change", changes, generic_snapshot),
        Case("change_row", "change", changes, change_row),
    ]


def measure(case: Case, runs: int, repeat: int) -> Figure:
    apply, items = case.apply, case.items
    per_item: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(repeat):
            for item in items:
                apply(item)
        per_item.append((time.perf_counter() - start) / (repeat * len(items)) * 1e6)
    return Figure(min(per_item), statistics.median(per_item))


def report(args: argparse.Namespace, rows: list[tuple[Case, Figure]]) -> list[str]:
    lines = [
        f"# mapping benchmark, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "",
        f"- machine: {cpu_model()}, {platform.machine()}, Python {platform.python_version()}, "
        f"load {load_average()}",
        f"- best and median of {args.runs} runs, each {args.repeat} passes over the records",
        "",
        "| function | records | µs per record, best | median |",
        "| --- | ---: | ---: | ---: |",
    ]
    for case, figure in rows:
        lines.append(
            f"| {case.name} | {len(case.items)} {case.unit}s | {figure.best_us:.2f} | "
            f"{figure.median_us:.2f} |"
        )
    return lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="call-monitor: rows and JSON per record")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per function")
    parser.add_argument("--repeat", type=int, default=50, help="passes over the records a run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        parser.error("--runs and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    settings = Settings()
    calls = recorded_calls(settings)
    changes = obligation_changes(settings, calls)
    rows = [(case, measure(case, args.runs, args.repeat)) for case in cases(calls, changes)]
    print("\n".join(report(args, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
