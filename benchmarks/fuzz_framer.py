#!/usr/bin/env python
"""Fuzz the AMI framer (coverage-guided, atheris): any bytes, in any chunks.

    .venv/bin/python benchmarks/fuzz_framer.py [--runs 1000000] [--max-len 4096]

Each input is cut in chunks where its own bytes say, fed to a framer, and checked against
the same bytes fed whole: the framer never raises, yields only banners, messages and
framing errors, frames the same whatever the chunking, counts an error for each error it
yields, and holds no more than its message limit (plus a chunk) in memory. A failed check
is a crash (see ``benchmarks/_fuzz.py``). Seeds: the first 2 KiB of the recordings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._fuzz import RECORDINGS, fuzz, options

with atheris.instrument_imports(include=["call_monitor"]):
    from call_monitor.ami.framing import (
        AmiFramer,
        AmiMessage,
        Banner,
        FramingError,
        parse_message,
    )

LIMIT = 1024  # a small message limit, so oversized messages are reached


def check(data: bytes) -> None:
    """The framer's promises on ``data``; AssertionError when one is broken."""
    cuts = sorted({b * 7 % (len(data) + 1) for b in data[:16]})
    whole = AmiFramer(max_message_bytes=LIMIT)
    expected = whole.feed(data)
    chunked = AmiFramer(max_message_bytes=LIMIT)
    frames = []
    last = 0
    for cut in [*cuts, len(data)]:
        frames += chunked.feed(data[last:cut])
        assert len(chunked.pending) <= LIMIT + 3 + (cut - last), "framer holds too much"
        last = cut
    assert frames == expected, "chunking changed the frames"
    assert chunked.stats == whole.stats, "chunking changed the counts"
    assert all(isinstance(f, Banner | AmiMessage | FramingError) for f in frames)
    assert whole.stats.errors == sum(isinstance(f, FramingError) for f in expected)
    parse_message(data)  # the message parser alone, on anything


def main() -> None:
    args = options(__doc__ or "")
    seeds = [path.read_bytes()[:2048] for path in sorted(RECORDINGS.glob("*.ami"))]
    fuzz("fuzz_framer", check, seeds, args)


if __name__ == "__main__":
    main()
