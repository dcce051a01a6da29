"""The benchmarks still run end to end (tiny inputs, one run; no timing asserted), and the
soak's verdict rule."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
