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

Then, with ``_created`` series off (what the daemon sets) and on (prometheus_client's
default):

- ``CallMetrics.render()`` (text format 0.0.4) and the OpenMetrics encoder that
  ``/metrics`` picks for Prometheus's ``Accept`` header, in this process, ``--renders``
  times each (after two untimed);
- ``GET /metrics`` over a real socket: the real FastAPI app (``create_app``) served by
  ``call_monitor.web.app.serve`` on a free port in this process's event loop, scraped by an
  httpx client in a process of its own (``_metrics/scrape.py``), with no ``Accept`` header
  (text 0.0.4) and with Prometheus's (OpenMetrics), ``--scrapes`` times each;
- what if (``_created`` off, ``render()``): plus a per-staff answer-rings histogram (the
  issue's alternative to per-staff counters); without the per-staff counters; and the same
  bytes from a renderer that formats each series' name and labels once
  (``_metrics/fast.py``, checked byte for byte against ``generate_latest``).

Series: the exposition's lines that are neither comments nor empty. Target: a scrape under
50 ms, and a bounded series count (set by the directory, not by the traffic).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
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
from _metrics.fast import CachedRenderer, check
from _soak.traffic import DEPARTMENT_FORMAT, bench_directory, build_traffic, judge_rounds
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder

from call_monitor.config import Settings
from call_monitor.directory import UNKNOWN
from call_monitor.metrics import ANSWER_RING_BUCKETS, CallMetrics
from call_monitor.pipeline import JudgedCall, Pipeline
from call_monitor.web.app import create_app, serve

SCRIPT = Path(__file__).resolve()
BENCHMARKS = SCRIPT.parent
REPO = BENCHMARKS.parent
SCRAPER = (sys.executable, "-m", "_metrics.scrape")
HOST = "127.0.0.1"
TARGET_SECONDS = 0.050
# What Prometheus 2.x sends by default (scrape_protocols: OpenMetrics 1.0.0, 0.0.1, text).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
RESULT_PREFIX = "RESULT "


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
    whatif: Histogram | None = None


def staff_rings_histogram(extensions: list[str]) -> Histogram:
    """What if answer rings were a histogram per staff member (not registered anywhere)."""
    histogram = Histogram(
        "callmon_bench_staff_answer_rings",
        "What if: ring on which customer calls were answered, by staff extension.",
        ["staff"],
        buckets=ANSWER_RING_BUCKETS,
        registry=None,
    )
    for extension in [*extensions, UNKNOWN]:
        histogram.labels(extension)
    return histogram


def replay_day(args: argparse.Namespace) -> Day:
    directory = bench_directory(args.staff, args.departments, args.first_extension)
    settings = Settings(directory=directory)
    pipeline = Pipeline(settings)
    metrics = CallMetrics(
        pipeline.directory, definitions_version=settings.charter.definitions_version
    )
    # As the daemon wires them (the link and the store are not part of this run).
    metrics.watch_correlator(lambda: pipeline.correlator.stats)
    metrics.watch_calls_in_progress(lambda: pipeline.correlator.calls_in_progress)
    day = Day(settings, pipeline, metrics)
    day.whatif = staff_rings_histogram(pipeline.directory.extensions)
    traffic = build_traffic(list(directory.staff), kind=args.kind)
    started = time.perf_counter()
    judged: JudgedCall
    for round_no, judged in judge_rounds(traffic, pipeline, itertools.count(1)):
        day.rounds = round_no
        metrics.observe_call(judged.record, judged.verdict)
        day.calls += 1
        verdict = judged.verdict
        if verdict.judged:
            day.judged += 1
            day.departments_judged[pipeline.directory.department_label(verdict.department)] += 1
            if judged.record.answered and verdict.rings is not None:
                staff = pipeline.directory.staff_label(judged.record.answered_by)
                day.whatif.labels(staff).observe(verdict.rings)
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
    created: bool
    times: list[float]
    body: bytes = b""
    size: int = 0
    series: int = 0
    error: str = ""

    def stat(self, q: float) -> float | None:
        if not self.times:
            return None
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def time_render(what: str, fmt: str, created: bool, render: Callable[[], bytes], count: int) -> Row:
    set_created(created)
    for _ in range(2):
        body = render()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        body = render()
        times.append(time.perf_counter() - started)
    return Row(what, fmt, created, times, body, len(body), series_count(body))


async def scrape_over_http(
    metrics: CallMetrics, plan: list[tuple[str, str, bool]], count: int, limit_seconds: float
) -> list[Row]:
    """Serve the real app on a free port in this loop; a scraper process GETs /metrics."""
    app = create_app(metrics, ready=lambda: True)
    port = free_port()
    started = asyncio.Event()
    server = asyncio.create_task(serve(app, HOST, port, started=started), name="web")
    rows = []
    try:
        async with asyncio.timeout(30):
            await started.wait()
        for what, accept, created in plan:
            set_created(created)
            fmt = "OpenMetrics 1.0.0" if accept else "text 0.0.4"
            command = [*SCRAPER, f"http://{HOST}:{port}/metrics", "--count", str(count)]
            if accept:
                command += ["--accept", accept]
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
                rows.append(Row(what, fmt, created, [], error=error))
                continue
            result = _result(out.decode())
            if result is None:
                tail = err.decode().strip().splitlines()[-3:]
                rows.append(Row(what, fmt, created, [], error=" | ".join(tail) or "no result"))
                continue
            rows.append(
                Row(
                    what,
                    fmt,
                    created,
                    [float(t) for t in result["times"]],
                    size=int(result["bytes"]),
                    series=int(result["series"]),
                )
            )
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    return rows


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
        "| what | format | _created | series | bytes | gzip -6 | median | p95 | max "
        "| under 50 ms (p95) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row.error:
            lines.append(
                f"| {row.what} | {row.fmt} | {'on' if row.created else 'off'} | – | – | – "
                f"| – | – | – | failed: {row.error} |"
            )
            continue
        zipped = _kib(len(gzip.compress(row.body, 6))) if row.body else "–"
        p95 = row.stat(0.95)
        met = "–" if p95 is None else ("yes" if p95 < TARGET_SECONDS else "**no**")
        lines.append(
            f"| {row.what} | {row.fmt} | {'on' if row.created else 'off'} | {row.series:,} "
            f"| {_kib(row.size)} | {zipped} | {_ms(row.median)} | {_ms(p95)} "
            f"| {_ms(max(row.times) if row.times else None)} | {met} |"
        )
    return lines


def families_table(registry: CollectorRegistry, total: int) -> list[str]:
    """Series per metric family (as collected: ``_created`` as currently set)."""
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
    fresh = CallMetrics(Pipeline(Settings(directory=directory)).directory)
    return series_count(fresh.render())


def bound_lines(args: argparse.Namespace, after_the_day: int) -> list[str]:
    """Whether the series count is set by the directory alone, and how it grows with it
    (measured on new CallMetrics, ``_created`` off)."""
    set_created(False)
    at_start = fresh_series(args.staff, args.departments, args.first_extension)
    more_staff = fresh_series(args.staff + 100, args.departments, args.first_extension)
    more_departments = fresh_series(args.staff, args.departments + 10, args.first_extension)
    same = "the same" if at_start == after_the_day else f"NOT the same ({after_the_day:,})"
    # CallMetrics's own series plus the two watched providers this run wires (the daemon
    # adds the link's and the store's).
    return [
        f"- bounded: a new CallMetrics for this directory, before any call, has {at_start:,} "
        f"series; after the day {same}: every series exists from the start, the traffic "
        "adds none",
        f"- growth with the directory: +{(more_staff - at_start) / 100:.1f} series per staff "
        f"member, +{(more_departments - at_start) / 10:.1f} per department (new CallMetrics "
        f"with 100 more staff, 10 more departments); a per-staff answer-rings histogram "
        f"would add {len(ANSWER_RING_BUCKETS) + 3} more per staff member (the what-if row)",
    ]


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def header_lines(args: argparse.Namespace, day: Day, load_start: str) -> list[str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    staff_hit = sum(1 for k in day.staff_checked if k != UNKNOWN)
    departments_hit = sum(1 for k in day.departments_judged if k != UNKNOWN)
    return [
        "## call-monitor /metrics scrape cost",
        "",
        f"- date: {now}",
        f"- machine: {cpu}, {os.cpu_count()} cores; load average at start {load_start}, "
        f"at the end {_load()} (the machine is shared: other test runs may be in the figures)",
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
        f"- renders: {args.renders} timed per line after 2 untimed, in this process; HTTP: "
        f"{args.scrapes} GETs per line after 2 untimed, httpx in its own process over one "
        "kept-alive connection to the app served by `serve()` on 127.0.0.1 (request sent → "
        "last byte read); the event loop serving it does nothing else",
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
    parser.add_argument("--scrapes", type=int, default=30, help="timed GETs per line")
    parser.add_argument("--no-http", action="store_true", help="skip the GET /metrics rows")
    parser.add_argument("--timeout", type=float, default=300.0, help="per scraper process")
    args = parser.parse_args(argv)
    if args.renders < 1 or args.scrapes < 1 or args.judged < 1:
        parser.error("--renders, --scrapes and --judged must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    load_start = _load()
    print(f"replaying a day of {args.judged:,} judged calls ...", file=sys.stderr, flush=True)
    day = replay_day(args)
    metrics = day.metrics
    _, openmetrics_content = choose_encoder(PROMETHEUS_ACCEPT)
    openmetrics, _ = choose_encoder(PROMETHEUS_ACCEPT)
    print("timing renders ...", file=sys.stderr, flush=True)
    rows: list[Row] = []
    for created in (False, True):
        rows.append(time_render("render()", "text 0.0.4", created, metrics.render, args.renders))
        rows.append(
            time_render(
                "OpenMetrics encoder",
                "OpenMetrics 1.0.0",
                created,
                lambda: openmetrics(metrics.registry),
                args.renders,
            )
        )
    if not args.no_http:
        print("scraping over HTTP ...", file=sys.stderr, flush=True)
        plan = [
            ("GET /metrics", accept, created)
            for created in (False, True)
            for accept in ("", PROMETHEUS_ACCEPT)
        ]
        rows += asyncio.run(scrape_over_http(metrics, plan, args.scrapes, args.timeout))
    rows += what_if_rows(day, args.renders)
    set_created(False)
    daemon_like = next(r for r in rows if r.what == "render()" and not r.created)
    out = [
        *header_lines(args, day, load_start),
        "",
        *results_table(rows),
        "",
        f"Series per family (`_created` off, as the daemon runs; {daemon_like.series:,} in all):",
        "",
        *families_table(metrics.registry, daemon_like.series),
        "",
        *bound_lines(args, daemon_like.series),
        f"- Prometheus negotiates OpenMetrics ({openmetrics_content.split(';')[0]}): the "
        "`GET /metrics` rows with the OpenMetrics format are what a real scrape costs",
        *verdict_lines(rows),
    ]
    print("\n".join(out), flush=True)
    return 0


def what_if_rows(day: Day, renders: int) -> list[Row]:
    """The same registry rendered otherwise (``_created`` off): with a per-staff histogram,
    without the per-staff counters, and by the cached-prefix renderer of ``_metrics/fast.py``."""
    metrics = day.metrics
    rows = []
    assert day.whatif is not None
    metrics.registry.register(day.whatif)
    try:
        rows.append(
            time_render(
                "what if: + per-staff answer-rings histogram, render()",
                "text 0.0.4",
                False,
                metrics.render,
                renders,
            )
        )
    finally:
        metrics.registry.unregister(day.whatif)
    metrics.registry.unregister(metrics.staff_charter_checks)
    try:
        rows.append(
            time_render(
                "what if: no per-staff counters (callmon_staff_charter_checks), render()",
                "text 0.0.4",
                False,
                metrics.render,
                renders,
            )
        )
    finally:
        metrics.registry.register(metrics.staff_charter_checks)
    set_created(False)
    renderer = CachedRenderer(metrics.registry)
    what = "what if: label prefixes formatted once (`_metrics/fast.py`), same bytes"
    differs = check(renderer)
    if differs:
        rows.append(Row(what, "text 0.0.4", False, [], error=f"bytes differ: {differs}"))
    else:
        rows.append(time_render(what, "text 0.0.4", False, renderer.render, renders))
    return rows


def verdict_lines(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.what.startswith("what if") or row.created:
            continue
        p95 = row.stat(0.95)
        if p95 is None:
            continue
        met = "met" if p95 < TARGET_SECONDS else "NOT met"
        lines.append(
            f"- target < 50 ms, {row.what}, {row.fmt}, `_created` off (the daemon's setting): "
            f"p95 {_ms(p95)}: {met}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
