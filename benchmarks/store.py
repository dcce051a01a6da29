#!/usr/bin/env python
"""Store write speed: ``StoreWriter`` on a SQLite file, alone and with the other writers.

    .venv/bin/python benchmarks/store.py [--calls 20000] [--runs 3] [--batch-size 200]
                                         [--pool engine|old] [--memos 2000] [--busy-ms 0]

A benchmark, not a test: it prints a report (machine, versions, a markdown table of medians).

The calls: the 50 calls of ``j_burst_50.full.ami`` replayed through the pipeline and judged,
then cloned with new linkedids until there are ``--calls`` (about 12 rows a call over the
four tables). Every run gets a fresh database file, migrated by Alembic first (not timed).

Rows (calls/s: calls written over the wall time of the writes; hops/batch: jobs handed to
the aiosqlite thread per transaction, each a round trip between the event loop's thread
and the SQLite thread):

- new: ``StoreWriter.flush()`` of every call, ``--batch-size`` calls a transaction;
- rewrite: the same calls again (the upsert and the child rows replaced);
- contended: the daemon's writers at once, as ``service.py`` wires them on one engine:
  ``StoreWriter.run()`` and ``CallbackService.run_writer()`` (``--memos`` memos, each an
  obligation, its history row and its outbox rows), while a reader polls the calls, the
  obligations and the outbox and marks outbox rows delivered as the MQTT publisher does.
  Failures ("database is locked") are counted; the first is quoted.

``--busy-ms N`` also runs "new" and "contended" with a coroutine keeping the event loop's
thread busy in Python, yielding every N ms (as the daemon's pipeline does under load). Then
the SQLite thread needs the GIL for every job and every row and can be starved of it for
seconds: CPython hands the GIL over on request only after a switch interval (5 ms) with no
switch, and the loop thread releasing and retaking it in each ``select`` counts as one. The
figures of those rows vary wildly from run to run; a row that takes longer than
``--stall-seconds`` is reported as stalled.

``--pool old`` builds the engine with SQLAlchemy's default pool for a SQLite file (a queue
of five connections plus ten overflow: one sqlite3 connection and thread per concurrent
user), the setting before the engine was made one connection; ``engine`` (default) takes
``create_engine`` as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import importlib.metadata
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from call_monitor.charter.judged import JudgedCall
from call_monitor.config import Settings, StoreSettings
from call_monitor.daemon.callbacks import CallbackService
from call_monitor.daemon.pipeline import replay
from call_monitor.directory import Directory
from call_monitor.store import StoreWriter, count_calls, create_engine, upgrade
from call_monitor.store.obligations import list_obligations
from call_monitor.store.outbox import mark_delivered, pending
from call_monitor.timefmt import SEOUL

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "call_monitor" / "demo" / "recordings" / "j_burst_50.full.ami"
MEMO_CLOCK = dt.datetime(2026, 11, 30, 10, 0, tzinfo=SEOUL)  # a Monday, working hours


class Stalled(Exception):
    pass


def build_calls(count: int, settings: Settings) -> list[JudgedCall]:
    """``count`` distinct judged calls: the recording's, cloned with new linkedids."""
    base = [item for item in replay([RECORDING], settings) if isinstance(item, JudgedCall)]
    if not base:
        raise SystemExit(f"no calls in {RECORDING}")
    calls: list[JudgedCall] = []
    for n in range(count):
        judged = base[n % len(base)]
        linkedid = f"{judged.record.linkedid}.{n}"
        calls.append(
            JudgedCall(
                dataclasses.replace(judged.record, linkedid=linkedid),
                dataclasses.replace(judged.verdict, linkedid=linkedid),
            )
        )
    return calls


def engine_for(url: str, pool: str) -> AsyncEngine:
    if pool == "old":
        return create_engine(url, poolclass=AsyncAdaptedQueuePool)
    return create_engine(url)


@contextmanager
def counting_hops() -> Iterator[list[int]]:
    """Count the jobs handed to aiosqlite threads (its private ``Connection._execute``)."""
    counter = [0]
    original: Any = getattr(aiosqlite.Connection, "_execute", None)
    if original is None:  # another aiosqlite: no counts
        counter[0] = -1
        yield counter
        return

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]


async def busy(stop: asyncio.Event, slice_seconds: float) -> None:
    """Keep the event loop's thread in Python, yielding every ``slice_seconds``."""
    while not stop.is_set():
        until = time.perf_counter() + slice_seconds
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


@dataclasses.dataclass
class Figure:
    calls: int
    seconds: float
    failures: int = 0
    hops_per_batch: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else float("inf")


async def _timed(
    run: Callable[[], Awaitable[None]], args: argparse.Namespace, *, loop_busy: bool
) -> float:
    stop = asyncio.Event()
    spinner = asyncio.create_task(busy(stop, args.busy_ms / 1000)) if loop_busy else None
    try:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(args.stall_seconds):
                await run()
        except TimeoutError:
            raise Stalled from None
        return time.perf_counter() - started
    finally:
        stop.set()
        if spinner is not None:
            await spinner


async def writes(
    url: str, calls: list[JudgedCall], args: argparse.Namespace, *, loop_busy: bool
) -> tuple[Figure, Figure]:
    """(new, rewrite) of ``calls`` on a fresh database."""
    await upgrade(url)
    engine = engine_for(url, args.pool)
    batches = -(-len(calls) // args.batch_size)
    try:
        writer = StoreWriter(
            engine,
            StoreSettings(
                batch_size=args.batch_size,
                max_batch_size=args.batch_size,  # each transaction exactly one batch
                flush_interval_seconds=3600,
            ),
        )
        figures = []
        for _ in ("new", "rewrite"):
            for judged in calls:
                writer.submit(judged.record, judged.verdict)
            with counting_hops() as hops:
                seconds = await _timed(writer.flush, args, loop_busy=loop_busy)
            per_batch = hops[0] / batches if hops[0] >= 0 else None
            figures.append(Figure(len(calls), seconds, writer.stats.failures, per_batch))
            if loop_busy:
                break
        stored = await count_calls(engine)
        if stored != len(calls):
            raise SystemExit(f"{stored} calls stored, {len(calls)} expected")
        return figures[0], figures[-1]
    finally:
        await engine.dispose()


async def contended(
    url: str, calls: list[JudgedCall], args: argparse.Namespace, *, loop_busy: bool
) -> Figure:
    """The daemon's writers and a reader at once on one engine."""
    await upgrade(url)
    engine = engine_for(url, args.pool)
    settings = Settings()
    writer = StoreWriter(
        engine,
        StoreSettings(
            batch_size=args.batch_size, max_batch_size=args.batch_size, flush_interval_seconds=0.05
        ),
    )
    service = CallbackService(
        settings, engine, Directory(settings.directory), clock=lambda: MEMO_CLOCK
    )
    stop = asyncio.Event()
    read_errors = 0
    first_error: list[str] = []

    async def feed() -> None:
        per_memo = max(1, len(calls) // max(1, args.memos))
        memos = 0
        for n, judged in enumerate(calls):
            writer.submit(judged.record, judged.verdict)
            if n % per_memo == 0 and memos < args.memos:
                number = f"010-{5000 + memos // 10000:04d}-{memos % 10000:04d}"
                await service.memo(number=number, owner="201", taken_by="202", wait_seconds=0)
                memos += 1
            if n % 50 == 0:
                await asyncio.sleep(0)

    async def read() -> None:
        nonlocal read_errors
        while not stop.is_set():
            try:
                await count_calls(engine)
                await list_obligations(engine, limit=100)
                rows = await pending(engine, 100)
                if rows:
                    await mark_delivered(engine, [row.id for row in rows])
            except Exception as exc:
                read_errors += 1
                first_error[:] = first_error or [f"{type(exc).__name__}: {exc}"]
            await asyncio.sleep(0.01)

    async def everything() -> None:
        tasks = [
            asyncio.create_task(writer.run()),
            asyncio.create_task(service.run_writer()),
            asyncio.create_task(read()),
        ]
        try:
            await feed()
            await writer.close()
            await service.close()
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    try:
        seconds = await _timed(everything, args, loop_busy=loop_busy)
        stored = await count_calls(engine)
        failures = writer.stats.failures + service.stats.failures + read_errors
        errors = [
            error
            for error in (writer.stats.last_error, service.stats.last_error, *first_error)
            if error
        ]
        note = (
            f"{stored} calls, {service.stats.written} changes stored; failures: store "
            f"{writer.stats.failures}, callbacks {service.stats.failures}, reads {read_errors}"
        ) + (f"; {errors[0].splitlines()[0][:100]}" if errors else "")
        return Figure(len(calls), seconds, failures, None, note)
    finally:
        await engine.dispose()


def _median(figures: list[Figure]) -> Figure:
    hops = [f.hops_per_batch for f in figures if f.hops_per_batch is not None]
    return Figure(
        figures[0].calls,
        statistics.median(f.seconds for f in figures),
        max(f.failures for f in figures),
        statistics.median(hops) if hops else None,
        max((f.note for f in figures), key=len),
    )


async def measure(args: argparse.Namespace) -> dict[str, Figure | str]:
    settings = Settings()
    calls = build_calls(args.calls, settings)
    results: dict[str, list[Figure]] = {}
    stalled: set[str] = set()
    modes = [False, True] if args.busy_ms > 0 else [False]
    with tempfile.TemporaryDirectory(prefix="callmon-store-bench-") as tmp:
        for run in range(args.runs):
            for loop_busy in modes:
                suffix = ", loop busy" if loop_busy else ""
                url = f"sqlite+aiosqlite:///{Path(tmp) / f'w{run}{int(loop_busy)}.sqlite3'}"
                try:
                    new, rewrite = await writes(url, calls, args, loop_busy=loop_busy)
                except Stalled:
                    stalled.add(f"new{suffix}")
                else:
                    results.setdefault(f"new{suffix}", []).append(new)
                    if not loop_busy:
                        results.setdefault("rewrite", []).append(rewrite)
                if args.memos:
                    url = f"sqlite+aiosqlite:///{Path(tmp) / f'c{run}{int(loop_busy)}.sqlite3'}"
                    try:
                        figure = await contended(url, calls, args, loop_busy=loop_busy)
                    except Stalled:
                        stalled.add(f"contended{suffix}")
                    else:
                        results.setdefault(f"contended{suffix}", []).append(figure)
    order = ["new", "rewrite", "contended", "new, loop busy", "contended, loop busy"]
    figures: dict[str, Figure | str] = {}
    for key in order:
        if key in results:
            figures[key] = _median(results[key])
            if key in stalled:
                figures[key].note += "; some runs stalled (left out)"
        elif key in stalled:
            figures[key] = f"stalled: no write for {args.stall_seconds:g} s"
    return figures


def report(args: argparse.Namespace, figures: dict[str, Figure | str]) -> list[str]:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("SQLAlchemy", "aiosqlite")
    )
    busy = f", loop busy in {args.busy_ms:g} ms slices" if args.busy_ms > 0 else ""
    lines = [
        f"# store benchmark, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "",
        f"- machine: {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {versions}",
        f"- {args.calls} calls, batches of {args.batch_size}, pool {args.pool}, "
        f"median of {args.runs} runs{busy}",
        "",
        "| scenario | calls | seconds | calls/s | hops/batch | failures | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, figure in figures.items():
        if isinstance(figure, str):
            lines.append(f"| {name} | | | | | | {figure} |")
            continue
        hops = "" if figure.hops_per_batch is None else f"{figure.hops_per_batch:.1f}"
        lines.append(
            f"| {name} | {figure.calls} | {figure.seconds:.2f} | {figure.rate:,.0f} | {hops} | "
            f"{figure.failures} | {figure.note} |"
        )
    return lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="call-monitor store write speed on SQLite")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=StoreSettings().batch_size)
    parser.add_argument("--pool", choices=["engine", "old"], default="engine")
    parser.add_argument(
        "--memos", type=int, default=2000, help="memos in the contended row (0: no such row)"
    )
    parser.add_argument(
        "--busy-ms", type=float, default=0.0, help="also run with the loop busy (0: do not)"
    )
    parser.add_argument("--stall-seconds", type=float, default=300.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    figures = asyncio.run(measure(args))
    print("\n".join(report(args, figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
