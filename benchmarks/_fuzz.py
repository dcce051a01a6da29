"""The driver both fuzzers share: atheris (libFuzzer, coverage-guided) for a fixed number of
inputs, then one report line: inputs tried, seconds, inputs/s, peak RSS.

libFuzzer ends the process itself once its runs are done (no ``finally``, no ``atexit``),
so the report is printed by the target at its last input. A target that raises is a crash:
libFuzzer prints the traceback, saves the input as ``crash-<sha1>`` in ``--artifacts``
(keep it under ``tests/fuzz_regressions/<fuzzer>/``: ``tests/test_fuzz_regressions.py``
replays every file there) and exits non-zero.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

RECORDINGS = Path(__file__).resolve().parent.parent / "call_monitor" / "demo" / "recordings"


def options(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs to try")
    parser.add_argument("--max-len", type=int, default=4096, help="bytes per input at most")
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer's seed (0: random)")
    parser.add_argument(
        "--artifacts", type=Path, default=Path("."), help="where a crashing input is saved"
    )
    return parser.parse_args()


def fuzz(
    name: str, target: Callable[[bytes], None], seeds: Iterable[bytes], args: argparse.Namespace
) -> None:
    """Run ``target`` on ``args.runs`` inputs from libFuzzer, seeded with ``seeds``."""
    corpus = Path(tempfile.mkdtemp(prefix=f"{name}-corpus-"))
    for number, seed in enumerate(seeds):
        (corpus / f"seed-{number}").write_bytes(seed[: args.max_len])
    # libFuzzer counts the seeds it reads as runs too: the report is at the last of them.
    tried = 0
    started = time.perf_counter()

    def counted(data: bytes) -> None:
        nonlocal tried
        tried += 1
        target(data)
        if tried == args.runs:
            seconds = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"{name}: {tried:,} inputs in {seconds:.1f} s ({tried / seconds:,.0f}/s), "
                f"no crash; peak RSS {peak:.1f} MiB (corpus kept in {corpus})",
                flush=True,
            )

    libfuzzer = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-max_len={args.max_len}",
        f"-seed={args.seed}",
        f"-artifact_prefix={args.artifacts}/",
        "-print_final_stats=0",
        "-rss_limit_mb=2048",
        str(corpus),
    ]
    atheris.Setup(libfuzzer, counted)
    atheris.Fuzz()
