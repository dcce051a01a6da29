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
