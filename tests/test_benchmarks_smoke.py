"""The benchmarks still run end to end (tiny inputs, one run; no timing asserted), and the
soak's verdict rule."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.backends import PG_URL, unavailable

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "ingest.py"


def _run_benchmark(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script small; it must end well (its output shown if not)."""
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_ingest_benchmark_runs_and_prints_its_table() -> None:
    done = _run_benchmark(
        BENCHMARK,
        "--events",
        "5000",
        "--runs",
        "1",
        "--paced-events",
        "2000",
        "--pyst2-events",
        "1000",
        # (f) needs PostgreSQL: its own test below.
        "--only",
        "raw",
        "framing",
        "full",
        "pyst2",
        "panoramisk",
    )
    out = done.stdout
    assert "| variant | events | events/s | vs (c) | peak RSS (VmHWM) | notes |" in out
    rows = {line.split("|")[1].strip()[:3] for line in out.splitlines() if line.startswith("| (")}
    assert {"(a)", "(b)", "(c)", "(d)", "(e)"} <= rows, out
    for label in (
        "(a) raw socket read",
        "(b) call-monitor framing only",
        "(c) call-monitor full pipeline",
        "(d) pyst2",
        "(e) panoramisk",
    ):
        assert f"| {label}" in out, out
    assert "| (c) full pipeline |" in out
    assert "| (c) lag, arrival → handled |" in out


@pytest.mark.postgres
def test_ingest_benchmark_runs_the_full_pipeline_on_postgresql() -> None:
    """(f) beside (c) in one run, its throwaway database dropped afterwards."""
    before = asyncio.run(_bench_databases())
    small = ["--events", "3000", "--runs", "1", "--rate", "0", "--only", "full", "full-pg"]
    done = _run_benchmark(BENCHMARK, *small)
    out = done.stdout
    (row,) = [line for line in out.splitlines() if line.startswith("| (f) ")]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[0] == "(f) call-monitor full pipeline on PostgreSQL (Daemon)"
    assert cells[1] == "3,000"
    assert float(cells[2].replace(",", "")) > 0, row  # events/s
    assert cells[5] == "", row  # no note: not failed, every event counted
    lines = out.splitlines()
    assert any(line.startswith("| SQLite, flat out | 3,000 |") for line in lines), out
    assert any(line.startswith("| PostgreSQL, flat out | 3,000 |") for line in lines), out
    (details,) = [line for line in lines if line.startswith("- (f) PostgreSQL, flat out")]
    judged = re.search(r"([\d,]+) calls judged, ([\d,]+) stored", details)
    assert judged, details
    assert judged[1] == judged[2] != "0", details  # every judged call reached PostgreSQL
    assert asyncio.run(_bench_databases()) == before  # dropped


async def _bench_databases() -> set[str]:
    admin = create_async_engine(PG_URL, poolclass=NullPool, connect_args={"timeout": 5})
    try:
        async with admin.connect() as conn:
            rows = await conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'callmon_bench_%'")
            )
            return {row[0] for row in rows}
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        unavailable(f"PostgreSQL at {PG_URL} unreachable: {type(exc).__name__}: {exc}")
        raise
    finally:
        await admin.dispose()


METRICS_BENCHMARK = BENCHMARK.with_name("metrics.py")
SOAK_BENCHMARK = BENCHMARK.with_name("soak.py")


def test_metrics_benchmark_runs_and_prints_its_table() -> None:
    done = _run_benchmark(
        METRICS_BENCHMARK,
        "--staff",
        "40",
        "--departments",
        "4",
        "--judged",
        "80",
        "--renders",
        "2",
        "--scrapes",
        "2",
    )
    out = done.stdout
    assert "| what | format | series | bytes |" in out, out
    assert "| /metrics: CallMetrics.exposition() | text 0.0.4 |" in out, out
    assert "| /metrics: CallMetrics.exposition() | OpenMetrics 1.0.0 |" in out, out
    assert "| GET /metrics | OpenMetrics 1.0.0 |" in out, out
    for fmt in ("text 0.0.4", "OpenMetrics 1.0.0"):
        baseline = f"| baseline: prometheus_client's encoder, same values | {fmt} |"
        (line,) = [line for line in out.splitlines() if line.startswith(baseline)]
        assert line.endswith("| identical |"), line  # the same bytes as exposition()
    assert "failed:" not in out, out
    assert "DIFFER" not in out, out
    assert "the traffic adds none" in out, out
    assert "exposition() gives the same bytes" in out, out  # with _created on too


def test_soak_benchmark_runs_and_prints_its_table() -> None:
    done = _run_benchmark(
        SOAK_BENCHMARK,
        "--calls",
        "300",
        "--every",
        "100",
        "--drain-every",
        "50",
        "--staff",
        "40",
        "--departments",
        "4",
        "--scrape-every",
        "0.5",
    )
    out = done.stdout
    assert "| calls | events | time | calls/s since last | VmRSS |" in out, out
    assert "- verdict: " in out, out
    assert "0 failed, 0 dropped" in out, out
    assert "0 events rejected, 0 calls incomplete" in out, out
    assert "(end) |" in out, out


def test_store_benchmark_runs_and_prints_its_table() -> None:
    done = _run_benchmark(BENCHMARK.with_name("store.py"), "--calls", "300", "--runs", "1")
    rows = {
        line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")
    }
    assert {"new", "rewrite", "contended"} <= rows, done.stdout
    assert "failures: store 0, callbacks 0, reads 0" in done.stdout


def test_mapping_benchmark_runs_and_prints_its_table() -> None:
    done = _run_benchmark(BENCHMARK.with_name("mapping.py"), "--runs", "1", "--repeat", "1")
    rows = {
        line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")
    }
    assert {"call_rows", "call_report (replay --json)", "obligation_row", "change_row"} <= rows
    assert "| function | records | µs per record, best | median |" in done.stdout


def _soak_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(SOAK_BENCHMARK.parent))
    spec = importlib.util.spec_from_file_location("soak_benchmark", SOAK_BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


def _samples(rss_mib: list[float], callbacks_open: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "when": "every",
            "calls": (n + 1) * 100_000,
            "rss_kib": int(rss * 1024),
            "callbacks_open": k,
        }
        for n, (rss, k) in enumerate(zip(rss_mib, callbacks_open, strict=True))
    ]


def test_the_soak_verdict_waits_for_owed_work_but_not_for_a_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    soak = _soak_module(monkeypatch)
    # Open callbacks rise to 400k calls and level off; the memory with them, then flat.
    settling = _samples(
        [230, 235, 241, 247, 249, 249, 249, 249, 249, 249],
        [20_000, 21_000, 22_000, 23_000, 23_100, 23_100, 23_100, 23_100, 23_100, 23_100],
    )
    baseline, lines = soak.verdict(settling, 200_000)
    assert baseline["calls"] == 400_000
    assert "**FLAT**" in lines[0], lines
    assert "baseline moved past 200,000" in lines[0], lines
    # The same memory with the open callbacks flat from the start: a leak, not owed work.
    leaking = _samples([230, 235, 241, 247, 249, 251, 253, 255, 257, 259], [23_100] * 10)
    baseline, lines = soak.verdict(leaking, 200_000)
    assert baseline["calls"] == 200_000
    assert "**GROWS**" in lines[0], lines
    assert "moved past" not in lines[0], lines


def test_web_benchmark_runs_and_prints_its_table() -> None:
    script = BENCHMARK.parent / "web.py"
    small = ["--calls", "3000", "--users", "3", "--seconds", "2", "--warmup", "0.5"]
    done = _run_benchmark(script, "--sqlite", *small, "--rate", "500", "--think", "0.1", "0.3")
    out = done.stdout
    assert "| phase | tree | load | request | count | p50 ms | p95 ms | max ms | target |" in out
    for mode in ("think", "flat out"):
        for kind in (
            "calls list, supervisor, page 1",
            "calls list, admin, next page",
            "call page",
            "checklist submit",
        ):
            assert re.search(rf"\| {mode} \| working tree \| [^|]+ \| {kind} \| [1-9]", out), (
                mode,
                kind,
                out,
            )
    for mode in ("idle", "think", "flat out"):
        lag = re.search(rf"\| {mode} \| working tree \| [^|]+ \| ingest lag [^|]+ \| (\d+) \|", out)
        assert lag is not None, out
        assert int(lag.group(1)) > 0, out  # the daemon handled AMI events meanwhile


def test_checklist_benchmark_runs_and_prints_its_table() -> None:
    small = ["--calls", "2000", "--staff", "20", "--departments", "3", "--repeat", "5"]
    done = _run_benchmark(BENCHMARK.with_name("checklist.py"), *small, "--backend", "sqlite")
    out = done.stdout
    assert "| operation | n | p50 ms | p95 ms | max ms |" in out
    assert "| submit | 40 |" in out, out  # 2 a staff member, each on sampling's pick
    assert "- target: checklist submit p95 < 100 ms" in out


EXPORT_BENCHMARK = BENCHMARK.with_name("export.py")


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_export_benchmark_runs_every_format(backend: str) -> None:
    if backend == "postgresql":
        before = asyncio.run(_bench_databases())
    done = _run_benchmark(EXPORT_BENCHMARK, "--calls", "300", "--backends", backend)
    out = done.stdout
    assert (
        "| backend | calls | format | seconds | CPU seconds | peak RSS (VmHWM) "
        "| reader's peak RSS | file |" in out
    )
    for fmt in ("xlsx", "csv", "json", "html"):
        (row,) = [
            line for line in out.splitlines() if line.startswith(f"| {backend} | 300 | {fmt} |")
        ]
        seconds = row.split("|")[4].strip()
        assert float(seconds) > 0, row  # a time, not "failed: ..."
        reader = row.split("|")[7].strip()  # SQLite's streamed sheets: a reader process
        assert (reader != "-") == (backend == "sqlite" and fmt in ("xlsx", "csv")), row
    if backend == "postgresql":
        assert asyncio.run(_bench_databases()) == before  # dropped


@pytest.mark.parametrize("fuzzer", ["fuzz_framer", "fuzz_correlator"])
def test_a_fuzzer_runs_small_and_reports(fuzzer: str, tmp_path: Path) -> None:
    script = BENCHMARK.parent / f"{fuzzer}.py"
    done = _run_benchmark(script, "--runs", "300", "--seed", "1", "--artifacts", str(tmp_path))
    assert re.search(rf"{fuzzer}: 300 inputs in [\d.]+ s .*no crash; peak RSS", done.stdout)
