#!/usr/bin/env python
"""What a Prometheus scrape of call-monitor costs with a whole office: time, bytes, series.

    .venv/bin/python benchmarks/metrics.py [--judged 20000] [--renders 30] [--scrapes 30]

A benchmark, not a test: it prints a report (machine, load, markdown tables).

The office: 1,300 staff (extensions 2000-3299) in 60 departments (부서01 ... 부서60), see
``_soak/traffic.py``. The day: the shipped ``*.ami`` recordings chained and repeated with
new ids and times, each recording's four staff phones (201-204) moved onto four of the
office's extensions, drawn in turn so every phone rings; round after round through the
real framing, correlator and charter rules (``Pipeline``) until ``--judged`` calls were
judged, every finished call observed into one ``CallMetrics`` (the daemon's metrics), its
correlator watched as the daemon does.

Then, with ``_created`` series off (the daemon's setting), in this process, ``--renders``
times each (after two untimed), in one run so the figures compare:

- ``CallMetrics.exposition(accept)``: what the ``/metrics`` handler calls, with no
  ``Accept`` header (text 0.0.4) and with Prometheus's (OpenMetrics 1.0.0);
- the baseline: the same values in prometheus_client's own ``Counter``/``Histogram``/...
  objects (``_metrics/baseline.py``), rendered by ``generate_latest`` and the OpenMetrics
  encoder (what ``/metrics`` did before); checked byte for byte against ``exposition()``;
- before: the baseline plus the per-staff P2 series that were created up front (0 forever),
  i.e. the registry and the render as they were;
- ``GET /metrics`` over a real socket: the real FastAPI app (``create_app``) served by
  ``call_monitor.web.app.serve`` on a free port in this process's event loop, scraped by an
  httpx client in a process of its own (``_metrics/scrape.py``), ``--scrapes`` times per
  format; meanwhile a 1 ms ticker on the serving loop records how late it wakes (how long
  a scrape blocks the loop).

Series: the exposition's lines that are neither comments nor empty. Target: a scrape under
50 ms, and a bounded series count (set by the directory, not by the traffic).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import gzip
import importlib.metadata
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prometheus_client
from _ingest.common import free_port
from _machine import cpu_model, load_average
from _metrics.baseline import plain_registry
from _soak.traffic import DEPARTMENT_FORMAT, bench_directory, build_traffic, judge_rounds
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from call_monitor.charter.judged import JudgedCall
from call_monitor.checklist.files import load_form
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import Pipeline
from call_monitor.directory import UNKNOWN
from call_monitor.metrics import CallMetrics
from call_monitor.web.app import create_app, serve

SCRIPT = Path(__file__).resolve()
BENCHMARKS = SCRIPT.parent
REPO = BENCHMARKS.parent
SCRAPER = (sys.executable, "-m", "_metrics.scrape")
HOST = "127.0.0.1"
TARGET_SECONDS = 0.050
LOOP_BUDGET_SECONDS = 0.005  # longer than that, a render would go to a worker thread
# What Prometheus 2.x sends by default (scrape_protocols: OpenMetrics 1.0.0, 0.0.1, text).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
RESULT_PREFIX = "RESULT "
IDLE_SECONDS = 2.0
AGAIN = 1000


def series_count(body: bytes) -> int:
    """Samples in an exposition: the lines that are neither comments nor empty."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def set_created(on: bool) -> None:
    """prometheus_client's process-wide switch, read at every collect."""
    if on:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]
    else:
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


# -- the day of calls -------------------------------------------------------------------------


@dataclass
class Day:
    settings: Settings
    pipeline: Pipeline
    metrics: CallMetrics
    rounds: int = 0
    calls: int = 0
    judged: int = 0
    events: int = 0
    seconds: float = 0.0
    staff_checked: Counter[str] = field(default_factory=Counter)
    departments_judged: Counter[str] = field(default_factory=Counter)
    # The day's last calls, observed again between timed scrapes (the traffic of a scrape
    # interval).
    again: list[JudgedCall] = field(default_factory=list)


def replay_day(args: argparse.Namespace) -> Day:
    directory = bench_directory(args.staff, args.departments, args.first_extension)
    settings = Settings(directory=directory)
    pipeline = Pipeline(settings)
    metrics = CallMetrics(
        pipeline.directory,
        definitions_version=settings.charter.definitions_version,
        checklist_form=load_form(),  # as the daemon builds it: the checklist's series too
    )
    # As the daemon wires them (the link and the store are not part of this run).
    metrics.watch_correlator(lambda: pipeline.correlator.stats)
    metrics.watch_calls_in_progress(lambda: pipeline.correlator.calls_in_progress)
    day = Day(settings, pipeline, metrics)
    traffic = build_traffic(list(directory.staff), kind=args.kind)
    started = time.perf_counter()
    judged: JudgedCall
    for round_no, judged in judge_rounds(traffic, pipeline, itertools.count(1)):
        day.rounds = round_no
        metrics.observe_call(judged.record, judged.verdict)
        day.calls += 1
        day.again.append(judged)
        if len(day.again) > 2 * AGAIN:
            del day.again[:AGAIN]
        verdict = judged.verdict
        if verdict.judged:
            day.judged += 1
            day.departments_judged[pipeline.directory.department_label(verdict.department)] += 1
        for judged_check in verdict.checks:
            day.staff_checked[pipeline.directory.staff_label(judged_check.staff)] += 1
        if day.judged >= args.judged:
            break
    day.seconds = time.perf_counter() - started
    day.events = day.rounds * traffic.events_per_round
    return day


# -- measurements -----------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    fmt: str
    times: list[float]
    body: bytes = b""
    size: int = 0
    series: int = 0
    same: str = ""  # the bytes compared with exposition()'s
    error: str = ""
    cpu: list[float] = field(default_factory=list)  # this thread's CPU time per render

    def stat(self, q: float, cpu: bool = False) -> float | None:
        times = self.cpu if cpu else self.times
        if not times:
            return None
        ordered = sorted(times)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def time_render(
    what: str,
    fmt: str,
    render: Callable[[], bytes],
    count: int,
    between: Callable[[], object] | None = None,
) -> Row:
    """``count`` timed renders after two untimed; ``between`` runs untimed before each."""
    for _ in range(2):
        body = render()
    times, cpu = [], []
    for _ in range(count):
        if between is not None:
            between()
        started, started_cpu = time.perf_counter(), time.thread_time()
        body = render()
        cpu.append(time.thread_time() - started_cpu)
        times.append(time.perf_counter() - started)
    return Row(what, fmt, times, body, len(body), series_count(body), cpu=cpu)


def first_scrape_row(metrics: CallMetrics) -> Row:
    """The first scrape after the day: every line the day changed is formatted again."""
    started, started_cpu = time.perf_counter(), time.thread_time()
    body = metrics.exposition("")[0]
    cpu = time.thread_time() - started_cpu
    elapsed = time.perf_counter() - started
    return Row(
        "/metrics: exposition(), the first scrape after the whole day",
        "text 0.0.4",
        [elapsed],
        body,
        len(body),
        series_count(body),
        cpu=[cpu],
    )


def fmt_name(accept: str) -> str:
    return "OpenMetrics 1.0.0" if accept else "text 0.0.4"


def render_rows(day: Day, renders: int, calls_between: int) -> list[Row]:
    """exposition() (the handler's call) against prometheus_client's encoders, same values."""
    metrics = day.metrics
    rows = [first_scrape_row(metrics)]
    again = itertools.cycle(day.again)

    def traffic() -> None:
        for judged in itertools.islice(again, calls_between):
            metrics.observe_call(judged.record, judged.verdict)

    for accept in ("", PROMETHEUS_ACCEPT):
        render = functools.partial(lambda a: metrics.exposition(a)[0], accept)
        rows.append(
            time_render("/metrics: CallMetrics.exposition()", fmt_name(accept), render, renders)
        )
        rows.append(
            time_render(
                f"/metrics: CallMetrics.exposition(), {calls_between} calls between scrapes",
                fmt_name(accept),
                render,
                renders,
                traffic if calls_between and day.again else None,
            )
        )
    fast = {accept: metrics.exposition(accept)[0] for accept in ("", PROMETHEUS_ACCEPT)}
    baseline = plain_registry(metrics)
    before = plain_registry(metrics, staff_p2=True)
    for what, registry in (
        ("baseline: prometheus_client's encoder, same values", baseline),
        ("before: the same + per-staff P2 series, prometheus_client's encoder", before),
    ):
        for accept in ("", PROMETHEUS_ACCEPT):
            encoder, _ = choose_encoder(accept)
            row = time_render(
                what,
                fmt_name(accept),
                functools.partial(encoder, registry),
                renders,
            )
            row.same = _compare(row.body, fast[accept])
            rows.append(row)
    return rows


def _compare(body: bytes, fast: bytes) -> str:
    if body == fast:
        return "identical"
    lines, fast_lines = body.splitlines(), fast.splitlines()
    extra = len(lines) - len(fast_lines)
    if extra > 0 and set(fast_lines) <= set(lines):
        return f"+{extra:,} lines"
    for index, (a, b) in enumerate(zip(lines, fast_lines, strict=False)):
        if a != b:
            return f"DIFFERS at line {index + 1}: {a[:80]!r} != {b[:80]!r}"
    return f"DIFFERS: {len(lines):,} lines != {len(fast_lines):,}"


@dataclass
class Stalls:
    """How late a 1 ms ticker on the serving loop woke, during the HTTP scrapes."""

    lags: list[float] = field(default_factory=list)

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, loop.time() - due))


async def scrape_over_http(
    metrics: CallMetrics, plan: list[str], count: int, limit_seconds: float
) -> tuple[list[Row], dict[str, Stalls]]:
    """Serve the real app on a free port in this loop; a scraper process GETs /metrics."""
    app = create_app(metrics, ready=lambda: None)
    port = free_port()
    started = asyncio.Event()
    server = asyncio.create_task(serve(app, HOST, port, started=started), name="web")
    rows = []
    stalls: dict[str, Stalls] = {}
    try:
        async with asyncio.timeout(30):
            await started.wait()
        # The same ticker with no scrape, for comparison (the machine's own noise).
        stalls["idle"] = Stalls()
        ticker = asyncio.create_task(stalls["idle"].tick())
        await asyncio.sleep(IDLE_SECONDS)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        for accept in plan:
            fmt = fmt_name(accept)
            command = [*SCRAPER, f"http://{HOST}:{port}/metrics", "--count", str(count)]
            if accept:
                command += ["--accept", accept]
            stalls[fmt] = Stalls()
            ticker = asyncio.create_task(stalls[fmt].tick())
            proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=BENCHMARKS,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                async with asyncio.timeout(limit_seconds):
                    out, err = await proc.communicate()
            except TimeoutError:
                proc.kill()
                await proc.wait()
                error = f"scraper killed after {limit_seconds:g} s"
                rows.append(Row("GET /metrics", fmt, [], error=error))
                continue
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            result = _result(out.decode())
            if result is None:
                tail = err.decode().strip().splitlines()[-3:]
                rows.append(Row("GET /metrics", fmt, [], error=" | ".join(tail) or "no result"))
                continue
            rows.append(
                Row(
                    "GET /metrics",
                    fmt,
                    [float(t) for t in result["times"]],
                    size=int(result["bytes"]),
                    series=int(result["series"]),
                )
            )
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    return rows, stalls


def _result(out: str) -> dict[str, Any] | None:
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            loaded: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return loaded
    return None


# -- the report -------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1e3:.1f} ms"


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB" if size else "–"


def results_table(rows: list[Row]) -> list[str]:
    lines = [
        "| what | format | series | bytes | gzip -6 | median | p95 | max | CPU median "
        "| CPU p95 | under 50 ms (p95) | bytes vs exposition() |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        if row.error:
            lines.append(
                f"| {row.what} | {row.fmt} | – | – | – | – | – | – | – | – "
                f"| failed: {row.error} | – |"
            )
            continue
        zipped = _kib(len(gzip.compress(row.body, 6))) if row.body else "–"
        p95 = row.stat(0.95)
        met = "–" if p95 is None else ("yes" if p95 < TARGET_SECONDS else "**no**")
        cpu_median = statistics.median(row.cpu) if row.cpu else None
        lines.append(
            f"| {row.what} | {row.fmt} | {row.series:,} | {_kib(row.size)} | {zipped} "
            f"| {_ms(row.median)} | {_ms(p95)} | {_ms(max(row.times) if row.times else None)} "
            f"| {_ms(cpu_median)} | {_ms(row.stat(0.95, cpu=True))} | {met} "
            f"| {row.same or '–'} |"
        )
    return lines


def families_table(registry: CollectorRegistry, total: int) -> list[str]:
    """Series per metric family (as collected)."""
    counts = []
    for family in registry.collect():
        labels = sorted({k for s in family.samples for k in s.labels if k != "le"})
        counts.append((len(family.samples), family.name, family.type, labels))
    counts.sort(key=lambda c: (-c[0], c[1]))
    lines = [
        "| family | type | labels | series | share |",
        "|---|---|---|---:|---:|",
    ]
    for n, name, kind, labels in counts:
        share = f"{100.0 * n / total:.1f} %" if total else "–"
        lines.append(f"| {name} | {kind} | {', '.join(labels) or '–'} | {n:,} | {share} |")
    return lines


def fresh_series(staff: int, departments: int, first_extension: int) -> int:
    """Series of a new CallMetrics (no call yet) for a directory of this size."""
    directory = bench_directory(staff, departments, first_extension)
    fresh = CallMetrics(
        Pipeline(Settings(directory=directory)).directory, checklist_form=load_form()
    )
    return series_count(fresh.render())


def bound_lines(args: argparse.Namespace, after_the_day: int) -> list[str]:
    """Whether the series count is set by the directory alone, and how it grows with it
    (measured on new CallMetrics)."""
    at_start = fresh_series(args.staff, args.departments, args.first_extension)
    more_staff = fresh_series(args.staff + 100, args.departments, args.first_extension)
    more_departments = fresh_series(args.staff, args.departments + 10, args.first_extension)
    same = "the same" if at_start == after_the_day else f"NOT the same ({after_the_day:,})"
    # CallMetrics's own series plus the two watched providers this run wires (the daemon
    # adds the link's and the store's).
    return [
        f"- bounded: a new CallMetrics for this directory, before any call, has {at_start:,} "
        f"series; after the day {same}: every series exists from the start, the traffic "
        "adds none (per-staff P2 series would come only with P2 checks from the checklist: "
        "2 per staff member at most)",
        f"- growth with the directory: +{(more_staff - at_start) / 100:.1f} series per staff "
        f"member, +{(more_departments - at_start) / 10:.1f} per department (new CallMetrics "
        "with 100 more staff, 10 more departments)",
    ]


def created_line(metrics: CallMetrics) -> str:
    """exposition() with prometheus_client's default (``_created`` on): the same bytes."""
    off = metrics.exposition()[0]
    set_created(True)
    try:
        body = metrics.exposition()[0]
    finally:
        set_created(False)
    same = "the same bytes" if body == off else "DIFFERENT bytes"
    return (
        f"- `_created` on (prometheus_client's default): exposition() gives {same} "
        f"({series_count(body):,} series): CallMetrics's families have no `_created` series"
    )


def stall_lines(stalls: dict[str, Stalls]) -> list[str]:
    lines = []
    for fmt, stall in stalls.items():
        if not stall.lags:
            continue
        ordered = sorted(stall.lags)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        during = f"with no scrape ({IDLE_SECONDS:g} s)" if fmt == "idle" else "during the GET"
        if fmt != "idle":
            during += f" /metrics ({fmt}) scrapes"
        lines.append(
            f"- event loop {during}: a 1 ms ticker woke late by {_ms(max(ordered))} at most, "
            f"p99 {_ms(p99)}, median {_ms(statistics.median(ordered))} ({len(ordered):,} ticks)"
        )
    if lines:
        lines.append(
            "  (the render runs on the loop; the lateness includes the scheduling of a shared "
            "machine, where the scraper process runs too)"
        )
    return lines


def header_lines(args: argparse.Namespace, day: Day, load_start: str) -> list[str]:
    cpu = cpu_model()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    staff_hit = sum(1 for k in day.staff_checked if k != UNKNOWN)
    departments_hit = sum(1 for k in day.departments_judged if k != UNKNOWN)
    return [
        "## call-monitor /metrics scrape cost",
        "",
        f"- date: {now}",
        f"- machine: {cpu}, {os.cpu_count()} cores; load average at start {load_start}, "
        f"at the end {load_average()} "
        "(the machine is shared: other test runs may be in the figures)",
        f"- Python {platform.python_version()}, prometheus_client "
        f"{_version('prometheus_client')}, uvicorn {_version('uvicorn')}, fastapi "
        f"{_version('fastapi')}, httpx {_version('httpx')}",
        f"- directory: {args.staff:,} staff (extensions {args.first_extension}-"
        f"{args.first_extension + args.staff - 1}) in {args.departments} departments "
        f"({DEPARTMENT_FORMAT.format(1)} ... {DEPARTMENT_FORMAT.format(args.departments)})",
        f"- the day: {day.calls:,} calls ({day.judged:,} judged) from {day.rounds:,} rounds of "
        f"the `*.{args.kind}` recordings (~{day.events:,} events) through Pipeline and "
        f"CallMetrics.observe_call in {day.seconds:.1f} s; staff with a judged check: "
        f"{staff_hit:,} of {args.staff:,}; departments with judged calls: {departments_hit} "
        f"of {args.departments}",
        f"- renders: {args.renders} timed per line after 2 untimed, in this process, "
        "`_created` off (the daemon's setting); HTTP: "
        f"{args.scrapes} GETs per line after 2 untimed, httpx in its own process over one "
        "kept-alive connection to the app served by `serve()` on 127.0.0.1 (request sent → "
        "last byte read); the event loop serving it does nothing else but a 1 ms ticker",
    ]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# -- entry point -----------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="call-monitor /metrics scrape cost")
    parser.add_argument("--staff", type=int, default=1300)
    parser.add_argument("--departments", type=int, default=60)
    parser.add_argument("--first-extension", type=int, default=2000)
    parser.add_argument("--judged", type=int, default=20_000, help="judged calls in the day")
    parser.add_argument("--kind", choices=["ami", "full"], default="ami", help="recordings")
    parser.add_argument("--renders", type=int, default=30, help="timed renders per line")
    parser.add_argument(
        "--calls-between",
        type=int,
        default=50,
        help="calls observed (untimed) before each timed render, on the second rows",
    )
    parser.add_argument("--scrapes", type=int, default=30, help="timed GETs per line")
    parser.add_argument("--no-http", action="store_true", help="skip the GET /metrics rows")
    parser.add_argument("--timeout", type=float, default=300.0, help="per scraper process")
    args = parser.parse_args(argv)
    if args.renders < 1 or args.scrapes < 1 or args.judged < 1:
        parser.error("--renders, --scrapes and --judged must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    load_start = load_average()
    set_created(False)  # as the daemon runs
    print(f"replaying a day of {args.judged:,} judged calls ...", file=sys.stderr, flush=True)
    day = replay_day(args)
    metrics = day.metrics
    _, openmetrics_content = choose_encoder(PROMETHEUS_ACCEPT)
    print("timing renders ...", file=sys.stderr, flush=True)
    rows = render_rows(day, args.renders, args.calls_between)
    stalls: dict[str, Stalls] = {}
    if not args.no_http:
        print("scraping over HTTP ...", file=sys.stderr, flush=True)
        http_rows, stalls = asyncio.run(
            scrape_over_http(metrics, ["", PROMETHEUS_ACCEPT], args.scrapes, args.timeout)
        )
        rows += http_rows
    daemon_like = rows[1]
    out = [
        *header_lines(args, day, load_start),
        "",
        *results_table(rows),
        "",
        f"Series per family ({daemon_like.series:,} in all):",
        "",
        *families_table(metrics.registry, daemon_like.series),
        "",
        *bound_lines(args, daemon_like.series),
        created_line(metrics),
        f"- Prometheus negotiates OpenMetrics ({openmetrics_content.split(';')[0]}): the "
        "OpenMetrics rows are what a real scrape costs",
        *stall_lines(stalls),
        *verdict_lines(rows),
    ]
    print("\n".join(out), flush=True)
    return 0


def verdict_lines(rows: list[Row]) -> list[str]:
    lines = []
    in_loop = [
        (p, c)
        for r in rows
        if r.what.startswith("/metrics: CallMetrics.exposition()")
        and (p := r.stat(0.95)) is not None
        and (c := r.stat(0.95, cpu=True)) is not None
    ]
    if in_loop:
        worst = max(p for p, _ in in_loop)
        worst_cpu = max(c for _, c in in_loop)
        under = "under" if worst_cpu < LOOP_BUDGET_SECONDS else "OVER"
        lines.append(
            f"- exposition() runs in the event loop (no worker thread): p95 {_ms(worst_cpu)} "
            f"of CPU at worst over its timed rows, {under} the {_ms(LOOP_BUDGET_SECONDS)} "
            f"budget for that ({_ms(worst)} wall clock: the rest is this shared machine "
            "running something else); the first scrape after a whole day unscraped formats "
            "every line the day changed, once: the first row"
        )
    for row in rows:
        if not row.what.startswith(("/metrics", "GET")):
            continue
        p95 = row.stat(0.95)
        if p95 is None:
            continue
        met = "met" if p95 < TARGET_SECONDS else "NOT met"
        lines.append(f"- target < 50 ms, {row.what}, {row.fmt}: p95 {_ms(p95)}: {met}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
