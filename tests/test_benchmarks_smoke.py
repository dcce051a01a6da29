"""The ingest benchmark still runs end to end (a tiny stream, one run; no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "ingest.py"


def test_ingest_benchmark_runs_and_prints_its_table() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--events",
            "5000",
            "--runs",
            "1",
            "--paced-events",
            "2000",
            "--pyst2-events",
            "1000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
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


METRICS_BENCHMARK = BENCHMARK.with_name("metrics.py")
SOAK_BENCHMARK = BENCHMARK.with_name("soak.py")


def test_metrics_benchmark_runs_and_prints_its_table() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(METRICS_BENCHMARK),
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
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
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
    done = subprocess.run(
        [
            sys.executable,
            str(SOAK_BENCHMARK),
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
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "| calls | events | time | calls/s since last | VmRSS |" in out, out
    assert "- verdict: " in out, out
    assert "0 failed, 0 dropped" in out, out
    assert "0 events rejected, 0 calls incomplete" in out, out
    assert "(end) |" in out, out


def test_store_benchmark_runs_and_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK.with_name("store.py")), "--calls", "300", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")
    }
    assert {"new", "rewrite", "contended"} <= rows, done.stdout
    assert "failures: store 0, callbacks 0, reads 0" in done.stdout
