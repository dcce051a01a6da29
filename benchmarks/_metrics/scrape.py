"""A scraper in a process of its own, as Prometheus is: ``GET`` the URL over one kept-alive
connection, ``--warmup`` times untimed, then ``--count`` times timed.

    python -m _metrics.scrape URL --count 30 [--accept HEADER]

Prints one ``RESULT {json}`` line: each request's seconds (from sending the request to the
last byte of the body read), the body's bytes and series, and the content type.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx

RESULT_PREFIX = "RESULT "


def series(body: bytes) -> int:
    """Samples in an exposition: the lines that are neither comments nor empty."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m _metrics.scrape")
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--accept", default="", help="the Accept header (none if empty)")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    # No Accept-Encoding: the app does not compress, and httpx would ask for gzip.
    headers = {"Accept-Encoding": "identity"}
    if args.accept:
        headers["Accept"] = args.accept
    times: list[float] = []
    body = b""
    content_type = ""
    with httpx.Client(timeout=args.timeout, headers=headers) as client:
        for index in range(args.warmup + args.count):
            started = time.perf_counter()
            response = client.get(args.url)
            body = response.read()
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if index >= args.warmup:
                times.append(elapsed)
            content_type = response.headers.get("content-type", "")
    result = {
        "times": times,
        "bytes": len(body),
        "series": series(body),
        "content_type": content_type,
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
