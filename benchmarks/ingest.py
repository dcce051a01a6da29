#!/usr/bin/env python
"""Ingest speed and memory of call-monitor, next to the I/O limit and two AMI libraries.

    .venv/bin/python benchmarks/ingest.py [--events N] [--runs 3] [--rate 2000] [--profile]
        [--only full full-pg ...]

A benchmark, not a test: it prints a report (machine, Python, date, markdown tables).

The stream: the shipped ``*.full.ami`` recordings chained and repeated with rewritten
unique ids, linked ids, channel names and timestamps (every call distinct), 1,000,000 events
by default, written once to a temporary file (see ``_ingest/stream.py``).

Every measurement is one fresh client process against one fresh server process (an AMI
banner, a ``Login`` answered with the client's ``ActionID``, then the stream as fast as the
socket takes it, then FIN), repeated ``--runs`` times; the table shows medians. The clock
runs from the login reply to the last event handled (for (c) and (f): to the last judged call
written to the store). Events are every event on the wire, those a client drops by name too.
Peak RSS is the client's ``VmHWM``: on Linux ``ru_maxrss`` survives ``fork`` + ``exec``, so
a child's would include the orchestrator's RSS at the spawn (it is kept in the raw results).
Variants:

(a) raw socket reads of the same bytes, no parsing: the I/O limit;
(b) call-monitor's framing only (``AmiFramer``, default ``ignore_events``);
(c) call-monitor's full pipeline: the real ``Daemon`` (``AmiClient`` -> queue ->
    ``Pipeline`` -> ``CallMetrics`` -> ``StoreWriter`` on SQLite, web app up), flat out and
    with the server pacing ``--rate`` events/s; with RSS samples and the lag from an
    event's arrival to the end of its handling (its metric update when it ends a call);
(d) pyst2's ``asterisk.manager.Manager`` counting events in a callback, on a prefix of the
    stream (``--pyst2-events``: it reads one byte per ``recv``), under a watchdog;
(e) panoramisk's ``Manager`` counting events in a callback;
(f) (c) flat out with its store on PostgreSQL, as an office runs it: the server on
    127.0.0.1:5432 (``$CALLMON_BENCH_PG_URL``), a throwaway database per run.

``--profile`` also runs (c) (or ``--profile-variant full-pg``: (f)) once under py-spy on
``--profile-events`` events and prints the hot spots.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import json
import linecache
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from _ingest.common import LINKUP_LINE, RESULT_PREFIX, ClientArgs
from _machine import cpu_model, load_average

if TYPE_CHECKING:
    from _ingest.stream import Stream

SCRIPT = Path(__file__).resolve()
BENCHMARKS = SCRIPT.parent
REPO = BENCHMARKS.parent
# Children start in benchmarks/ so that ``-m`` finds the _ingest package.
CHILD = (sys.executable, "-m", "_ingest.child")
SERVER_GRACE_SECONDS = 45.0
RSS_EARLY_MARK = 100_000
PROFILER_ATTACH_SECONDS = 2.0


@dataclass(frozen=True)
class Variant:
    key: str
    label: str


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def variants() -> tuple[Variant, ...]:
    return (
        Variant("raw", "(a) raw socket read, no parsing"),
        Variant("framing", "(b) call-monitor framing only (AmiFramer)"),
        Variant("full", "(c) call-monitor full pipeline (Daemon)"),
        Variant("pyst2", f"(d) pyst2 {_version('pyst2')} Manager"),
        Variant("panoramisk", f"(e) panoramisk {_version('panoramisk')} Manager"),
        Variant("full-pg", "(f) call-monitor full pipeline on PostgreSQL (Daemon)"),
    )


FULL_PIPELINES = ("full", "full-pg")  # the variants with the full table's figures
STORES = {"full": "SQLite", "full-pg": "PostgreSQL"}


# -- one run: a server process and a client process ------------------------------------------


@dataclass
class Run:
    variant: str
    events: int  # sent by the server
    rate: float  # 0: flat out
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return "error" not in self.result and bool(self.result.get("seconds"))

    @property
    def events_per_second(self) -> float | None:
        seconds = self.result.get("seconds")
        counted = self.result.get("events")
        if not seconds or counted is None:
            return None
        return float(counted) / float(seconds)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """End a process this script started, and its children (its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_once(
    stream: Stream,
    variant: str,
    events: int,
    *,
    rate: float,
    timeout: float,
    workdir: Path,
    profile_to: Path | None = None,
    profile_rate: int = 250,
) -> Run:
    count, end = stream.prefix(events)
    run = Run(variant, count, rate)
    server = subprocess.Popen(
        [
            *CHILD,
            "serve",
            "--stream",
            str(stream.path),
            "--banner",
            stream.banner,
            "--end",
            str(end),
            "--rate",
            str(rate),
            *(["--hold", str(PROFILER_ATTACH_SECONDS)] if profile_to is not None else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=BENCHMARKS,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            _kill_group(server)
            _, err = server.communicate()
            run.result = {"error": f"the server did not start: {line!r} {err.strip()}"}
            return run
        quarters = (count // 4, count // 2, 3 * count // 4, count)
        marks = tuple(sorted({m for m in (RSS_EARLY_MARK, *quarters) if 0 < m <= count}))
        client_args = ClientArgs(
            port=int(line.split()[1]),
            expected=count,
            timeout=timeout,
            workdir=str(workdir),
            rss_marks=marks,
            announce=profile_to is not None,
        )
        command = [*CHILD, "client", variant, json.dumps(vars(client_args))]
        profile = None if profile_to is None else (profile_to, profile_rate)
        run.result = _run_client(command, timeout + 60.0, profile)
    finally:
        try:
            server.communicate(timeout=SERVER_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(server)
            server.communicate()
    return run


def _run_client(
    command: list[str], timeout: float, profile: tuple[Path, int] | None = None
) -> dict[str, Any]:
    """Run a client child; with ``profile``, attach py-spy to it once it has logged in (the
    server holds the stream meanwhile), so its imports and start-up are not sampled."""
    client = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=BENCHMARKS,
    )
    spy = None
    try:
        if profile is not None:
            assert client.stderr is not None
            if _wait_for_line(client.stderr, LINKUP_LINE, timeout):
                spy = subprocess.Popen(
                    [
                        _py_spy(),
                        "record",
                        "--pid",
                        str(client.pid),
                        "--threads",
                        "--format",
                        "raw",
                        "--full-filenames",
                        "--rate",
                        str(profile[1]),
                        "--output",
                        str(profile[0]),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
        try:
            out, err = client.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(client)
            out, err = client.communicate()
            return {"error": f"killed after {timeout:.0f} s", "stderr": err[-2000:]}
    finally:
        if spy is not None:
            try:
                spy.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                _kill_group(spy)
                spy.communicate()
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = (err or out).strip().splitlines()[-5:]
    return {"error": f"no result (exit {client.returncode}): " + " | ".join(tail)}


def _wait_for_line(pipe: IO[str], wanted: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([pipe], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = pipe.readline()
        if not line:
            return False  # the child ended
        if line.strip() == wanted:
            return True
    return False


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


# -- the runs, and what to print --------------------------------------------------------------


@dataclass
class Series:
    variant: Variant
    mode: str  # "flat out" or "paced N/s"
    runs: list[Run]

    @property
    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    def median(self, get: Callable[[Run], float | int | None]) -> float | None:
        values = [v for r in self.good if (v := get(r)) is not None]
        return statistics.median(values) if values else None

    @property
    def events_per_second(self) -> float | None:
        return self.median(lambda r: r.events_per_second)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure(
    stream: Stream,
    variant: Variant,
    events: int,
    runs: int,
    *,
    rate: float,
    timeout: float,
    workdir: Path,
) -> Series:
    mode = "flat out" if rate <= 0 else f"paced {rate:,.0f}/s"
    series = Series(variant, mode, [])
    for index in range(runs):
        rundir = workdir / f"{variant.key}-{'flat' if rate <= 0 else 'paced'}-{index}"
        rundir.mkdir()
        run = run_once(stream, variant.key, events, rate=rate, timeout=timeout, workdir=rundir)
        series.runs.append(run)
        eps = run.events_per_second
        shown = f"{eps:,.0f} events/s" if eps and run.ok else run.result.get("error", "failed")
        _progress(f"  {variant.label}, {mode}, run {index + 1}/{runs}: {shown}")
        shutil.rmtree(rundir, ignore_errors=True)
    return series


def _int(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _mib(kib: float | None) -> str:
    return "–" if kib is None else f"{kib / 1024:,.0f} MiB"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1e3:,.1f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.2f} ms"


def _notes(series: Series, stream_events: int) -> str:
    notes: list[str] = []
    if series.variant.key == "raw":
        notes.append("bytes only: events not counted")
    sent = series.runs[0].events if series.runs else 0
    eps = series.events_per_second
    if 0 < sent < stream_events and eps:
        seconds = stream_events / eps
        took = f"{seconds / 60:,.0f} min" if seconds >= 120 else f"{seconds:,.0f} s"
        notes.append(
            f"a prefix of the stream: all {stream_events:,} events would take ~{took} at this rate"
        )
    failed = [r for r in series.runs if not r.ok]
    for run in failed:
        result = run.result
        got = result.get("events")
        where = f" after {got:,} events" if isinstance(got, int) else ""
        if run.events_per_second:
            where += f" ({run.events_per_second:,.0f} events/s until then)"
        notes.append(f"run failed{where}: {result.get('error', 'no time')}")
    miscounted = {
        r.result["events"] for r in series.good if r.result.get("events") not in (None, r.events)
    }
    if miscounted and series.variant.key != "raw":
        shown = ", ".join(f"{n:,}" for n in sorted(miscounted))
        notes.append(f"counted {shown} of {series.runs[0].events:,} events sent")
    return "; ".join(notes)


def main_table(
    all_series: Sequence[Series], full_eps: float | None, stream_events: int
) -> list[str]:
    lines = [
        "| variant | events | events/s | vs (c) | peak RSS (VmHWM) | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for series in all_series:
        eps = series.events_per_second
        ratio = f"{eps / full_eps:.2f}×" if eps and full_eps else "–"
        sent = series.runs[0].events if series.runs else 0
        shown = f"{sent:,}" + (" (prefix)" if sent < stream_events else "") if sent else "–"
        notes = _notes(series, stream_events) if series.runs else "not run (--only)"
        good = len(series.good)
        if good < len(series.runs):
            notes = f"median of {good}/{len(series.runs)} runs; " + notes
        peak = series.median(lambda r: r.result.get("peak_rss_kib"))
        lines.append(
            f"| {series.variant.label} | {shown} | {_int(eps)} | {ratio} | {_mib(peak)} | {notes} |"
        )
    return lines


def full_table(both: Sequence[Series]) -> list[str]:
    """Throughput and memory of the full pipeline ((c) and (f), flat out and paced), then
    its lag."""
    marks = sorted(
        {int(k) for s in both for r in s.good for k in r.result.get("rss_marks_kib", {})}
    )
    lines = [
        "| (c) full pipeline | events | events/s, to the last call stored | "
        "events/s, to the last event handled | events per CPU second of the daemon, to the "
        "last call stored | store backlog then | RSS at start | "
        + "".join(f"RSS after {m:,} | " for m in marks)
        + "peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(marks) + "---:|",
    ]
    for series in both:

        def per_s(run: Run, key: str) -> float | None:
            seconds = run.result.get(key)
            return run.result["events"] / seconds if seconds else None

        pending = series.median(lambda r: r.result.get("store_pending_at_end"))
        backlog = series.median(lambda r: r.result.get("store_backlog_seconds"))
        cells = [
            _store_mode(series),
            f"{series.runs[0].events:,}" if series.runs else "0",
            _int(series.events_per_second),
            _int(series.median(lambda r: per_s(r, "pipeline_seconds"))),
            _int(series.median(lambda r: per_s(r, "cpu_seconds"))),
            "–" if pending is None else f"{pending:,.0f} calls, {backlog or 0:.2f} s",
            _mib(series.median(lambda r: r.result.get("rss_start_kib"))),
        ]
        for mark in marks:
            cells.append(
                _mib(series.median(lambda r, m=mark: r.result.get("rss_marks_kib", {}).get(str(m))))
            )
        cells.append(_mib(series.median(lambda r: r.result.get("peak_rss_kib"))))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| (c) lag, arrival → handled | events | p50 | p99 | max | "
        "call-ending events (→ metric update): p50 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for series in both:
        cells = [_store_mode(series), f"{series.runs[0].events:,}" if series.runs else "0"]
        for key, stat in (
            ("lag", "p50"),
            ("lag", "p99"),
            ("lag", "max"),
            ("call_end_lag", "p50"),
            ("call_end_lag", "p99"),
        ):
            cells.append(_ms(series.median(lambda r, k=key, s=stat: r.result.get(k, {}).get(s))))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _store_mode(series: Series) -> str:
    return f"{STORES[series.variant.key]}, {series.mode}"


def per_run_lines(all_series: Sequence[Series]) -> list[str]:
    lines = []
    for series in all_series:
        if not series.runs:
            continue
        shown = []
        for run in series.runs:
            eps = run.events_per_second
            shown.append(f"{eps:,.0f}" if eps and run.ok else "failed")
        lines.append(f"- {series.variant.label}, {series.mode}: {', '.join(shown)} events/s")
    return lines


def full_details(series: Series) -> str:
    runs = series.good
    name = f"{series.variant.label[:3]} {_store_mode(series)}"
    if not runs:
        return f"- {name}: no successful run"
    r = runs[len(runs) // 2].result
    store = f" (store {r['store']}, server {r.get('server_version', '?')})" if "store" in r else ""
    return (
        f"- {name}, one run{store}: {r.get('events', 0):,} events read, "
        f"{r.get('dropped_by_name', 0):,} dropped unparsed by name (ignore_events), "
        f"{r.get('correlator_events', 0):,} used by the correlator, "
        f"{r.get('rejected', 0):,} rejected; {r.get('calls', 0):,} calls judged, "
        f"{r.get('stored', 0):,} stored in {r.get('store_flushes', 0):,} batches; "
        f"calls queued in the store at the RSS samples: {r.get('store_pending_marks', {})}; "
        f"open callback obligations then: {r.get('open_obligation_marks', {})}, "
        f"their changes queued for the store: {r.get('callback_pending_marks', {})}; "
        f"daemon shutdown {r.get('shutdown_seconds', 0):.2f} s"
    )


# -- machine ----------------------------------------------------------------------------------


def machine_lines(stream: Stream, args: argparse.Namespace) -> list[str]:
    cpu = cpu_model()
    load = load_average()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    size_mb = stream.size / 1e6
    return [
        "## call-monitor ingest benchmark",
        "",
        f"- date: {now}",
        f"- machine: {cpu}, {os.cpu_count()} cores ({usable} usable), load average at start {load}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.platform()}",
        f"- call-monitor tree: {_git_state()}",
        f"- stream: {stream.events:,} events, {size_mb:,.0f} MB: the {len(stream.recordings)} "
        f"`*.full.ami` recordings chained, rounds: {stream.rounds}, each with rewritten ids, "
        f"channels and timestamps (built in {stream.build_seconds:.1f} s)",
        f"- runs per line: {args.runs}, each a fresh client process against a fresh server "
        "process on 127.0.0.1; medians shown; the clock runs from the login reply to the "
        "last event handled ((c), (f): to the last judged call written to the store); events: all "
        "events on the wire, including those a client drops by name",
        "- peak RSS: the client process's VmHWM (its ru_maxrss would also count the "
        "orchestrator's RSS at the spawn: Linux keeps it across fork + exec)",
    ]


def _git_state() -> str:
    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    changed = git("status", "--porcelain", "--", "call_monitor").splitlines()
    if not changed:
        return commit
    return f"{commit} + {len(changed)} uncommitted changes in call_monitor/"


# -- profile ----------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*):(?P<line>\d+)\)$")
_THREAD = re.compile(r"^thread \((?P<id>[^)]*)\)(?::\s*(?P<name>.*))?$")
# Where a worker thread sits idle in a blocking call that py-spy may still count as busy
# (aiosqlite's and the default executor's ``queue.get()``).
_WAITING_SOURCE = re.compile(r"\.get\(|\.wait\(|\.acquire\(|\.select\(")


@dataclass(frozen=True)
class Frame:
    file: str  # shortened: call_monitor/..., a site-packages or standard library path
    func: str
    source: str = ""  # the line being run, where the file is readable

    @property
    def name(self) -> str:
        return f"{self.file}:{self.func}" if self.file else self.func


def _short_path(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(REPO))
    match = re.search(r"/lib/python\d+\.\d+/(.*)$", path)
    return match[1] if match else Path(path).name


def _frame(text: str) -> Frame:
    match = _FRAME.match(text)
    if match is None:
        return Frame("", text)
    source = linecache.getline(match["file"], int(match["line"])).strip()
    return Frame(_short_path(match["file"]), match["func"], source)


@dataclass
class _Thread:
    name: str
    samples: int = 0
    waiting: int = 0  # samples in a blocking wait (idle)
    own: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    module: Counter[str] = field(default_factory=Counter)


def _read_profile(raw: Path) -> dict[str, _Thread]:
    """py-spy's raw (collapsed) output, ``--threads``: per thread, own and inclusive
    samples per ``file:function`` and per innermost call_monitor module."""
    threads: dict[str, _Thread] = {}
    cache: dict[str, Frame] = {}
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        count = int(number)
        texts = stack.split(";")
        thread_name = "?"
        if (match := _THREAD.match(texts[0])) is not None:
            thread_name = match["name"] or match["id"]
            texts = texts[1:]
        thread = threads.setdefault(thread_name, _Thread(thread_name))
        thread.samples += count
        frames = [cache.get(t) or cache.setdefault(t, _frame(t)) for t in texts]
        if not frames:
            thread.own["(no Python frame)"] += count
            thread.module["(no Python frame)"] += count
            continue
        leaf = frames[-1]
        if _WAITING_SOURCE.search(leaf.source) and not leaf.file.startswith("call_monitor/"):
            thread.waiting += count
        thread.own[leaf.name] += count
        for name in {f.name for f in frames}:
            thread.inclusive[name] += count
        ours = [f.file for f in frames if f.file.startswith("call_monitor/")]
        if ours:
            thread.module[ours[-1]] += count
        else:
            top = leaf.file.split("/", 1)[0] or leaf.func
            thread.module[f"{top} (no call_monitor frame)"] += count
    return threads


def summarize_profile(raw: Path, top: int = 10) -> list[str]:
    threads = _read_profile(raw)
    main = threads.get("MainThread") or max(threads.values(), key=lambda t: t.samples, default=None)
    if main is None or not main.samples:
        return ["(py-spy recorded no samples)"]
    total = main.samples

    def pct(n: int) -> str:
        return f"{100.0 * n / total:.1f} %"

    lines = [
        f"The event loop's thread ({main.name}): {total:,} samples while busy (py-spy leaves "
        "idle samples out); shares below are of those.",
        "",
        f"Top {top} by own time:",
        "",
        "| # | file:function | own | inclusive |",
        "|---:|---|---:|---:|",
    ]
    for rank, (name, n) in enumerate(main.own.most_common(top), 1):
        lines.append(f"| {rank} | {name} | {pct(n)} | {pct(main.inclusive[name])} |")
    lines += [
        "",
        "call_monitor functions by inclusive time:",
        "",
        "| file:function | inclusive | own |",
        "|---|---:|---:|",
    ]
    ours = [(k, n) for k, n in main.inclusive.most_common() if k.startswith("call_monitor/")]
    for name, n in ours[: top + 5]:
        lines.append(f"| {name} | {pct(n)} | {pct(main.own[name])} |")
    lines += [
        "",
        "By the innermost call_monitor module on the stack (time in what it calls included):",
        "",
        "| module | share |",
        "|---|---:|",
    ]
    for name, n in main.module.most_common():
        if n * 200 >= total:  # at least 0.5 %
            lines.append(f"| {name} | {pct(n)} |")
    others = [t for t in threads.values() if t is not main]
    if others:
        lines += ["", "Other threads (run beside the loop, on the other core):", ""]
        for thread in sorted(others, key=lambda t: -t.samples):
            busy = thread.samples - thread.waiting
            leaf = ", ".join(f"{k} {v:,}" for k, v in thread.own.most_common(2))
            lines.append(
                f"- {thread.name}: {thread.samples:,} samples, {thread.waiting:,} of them idle "
                f"in a blocking get/wait that py-spy counted; busy {pct(busy)} of the loop's "
                f"samples (top: {leaf})"
            )
    return lines


# -- entry points -----------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="call-monitor ingest speed and memory (a benchmark, not a test)"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the stream")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (median shown)")
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="events/s of the paced run of (c)"
    )
    parser.add_argument(
        "--paced-events", type=int, default=60_000, help="events of the paced run of (c)"
    )
    parser.add_argument(
        "--pyst2-events", type=int, default=20_000, help="prefix of the stream given to pyst2"
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds a run may take (per process)"
    )
    parser.add_argument(
        "--pyst2-timeout", type=float, default=180.0, help="watchdog of the pyst2 runs"
    )
    parser.add_argument("--profile", action="store_true", help="also profile (c) with py-spy")
    parser.add_argument(
        "--profile-variant", choices=FULL_PIPELINES, default="full", help="what --profile runs"
    )
    parser.add_argument("--profile-events", type=int, default=200_000)
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[v.key for v in variants()],
        help="run only these variants (the table lists the others as not run)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary stream file")
    args = parser.parse_args(argv)
    if args.events < 1 or args.runs < 1:
        parser.error("--events and --runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    stream_module = importlib.import_module("_ingest.stream")
    workdir = Path(tempfile.mkdtemp(prefix="callmon-ingest-"))
    try:
        _progress(f"building a stream of {args.events:,} events in {workdir} ...")
        stream: Stream = stream_module.build_stream(args.events, workdir / "stream.ami")
        _progress(
            f"  {stream.size / 1e6:,.0f} MB, {stream.rounds} rounds, {stream.build_seconds:.1f} s"
        )
        return _report(stream, args, workdir)
    finally:
        if args.keep:
            _progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _report(stream: Stream, args: argparse.Namespace, workdir: Path) -> int:
    header = machine_lines(stream, args)
    wanted = set(args.only or [v.key for v in variants()])
    all_series: list[Series] = []
    paced: Series | None = None
    for variant in variants():
        if variant.key not in wanted:
            all_series.append(Series(variant, "not run", []))
            continue
        events = min(args.pyst2_events, stream.events) if variant.key == "pyst2" else stream.events
        timeout = args.pyst2_timeout if variant.key == "pyst2" else args.timeout
        all_series.append(
            measure(
                stream,
                variant,
                events,
                args.runs,
                rate=0.0,
                timeout=timeout,
                workdir=workdir,
            )
        )
        if variant.key == "full" and args.rate > 0:
            paced = measure(
                stream,
                variant,
                min(args.paced_events, stream.events),
                args.runs,
                rate=args.rate,
                timeout=args.timeout,
                workdir=workdir,
            )
    full = next(s for s in all_series if s.variant.key == "full")
    out = [*header, "", *main_table(all_series, full.events_per_second, stream.events), ""]
    pipelines = [s for s in all_series if s.variant.key in FULL_PIPELINES and s.runs]
    pipelines[1:1] = [paced] if paced and full.runs else []  # SQLite paced after SQLite flat
    if pipelines:
        out += [*full_table(pipelines), ""]
        out += [full_details(s) for s in pipelines]
    out += ["", "Per run:", *per_run_lines([*all_series, *([paced] if paced else [])])]
    print("\n".join(out), flush=True)
    if args.profile:
        print("\n".join(["", *_profile(stream, args, workdir)]), flush=True)
    return 0 if all(s.good or not s.runs for s in all_series if s.variant.key != "pyst2") else 1


def _profile(stream: Stream, args: argparse.Namespace, workdir: Path) -> list[str]:
    raw = workdir / "profile.txt"
    events = min(args.profile_events, stream.events)
    rundir = workdir / "profile-run"
    rundir.mkdir()
    variant = next(v for v in variants() if v.key == args.profile_variant)
    name = variant.label[:3]
    _progress(f"profiling {name} on {events:,} events with py-spy ...")
    started = time.perf_counter()
    run = run_once(
        stream,
        variant.key,
        events,
        rate=0.0,
        timeout=args.timeout,
        workdir=rundir,
        profile_to=raw,
        profile_rate=args.profile_rate,
    )
    lines = [
        f"### Profile of {name} ({STORES[variant.key]}), {events:,} events flat out, "
        f"py-spy {args.profile_rate} Hz "
        f"({time.perf_counter() - started:.0f} s wall; "
        f"{_int(run.events_per_second)} events/s while sampled)",
        "",
    ]
    if not raw.exists():
        return [*lines, f"no profile written: {run.result.get('error', '?')}"]
    return lines + summarize_profile(raw)


if __name__ == "__main__":
    sys.exit(main())
