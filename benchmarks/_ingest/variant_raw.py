"""(a) The I/O limit: read the same bytes from the socket and do nothing with them."""

from __future__ import annotations

import socket
import time
from typing import Any

from _ingest.common import HOST, ClientArgs, blocking_login, peak_rss_kib

BUFFER = 1 << 20


def run(args: ClientArgs) -> dict[str, Any]:
    with socket.create_connection((HOST, args.port), timeout=args.timeout) as sock:
        from_login = blocking_login(sock, "raw-1")
        started = time.perf_counter()
        received = len(from_login)
        buffer = bytearray(BUFFER)
        view = memoryview(buffer)
        while n := sock.recv_into(view):
            received += n
        elapsed = time.perf_counter() - started
    return {
        "events": args.expected,  # not counted: nothing is parsed
        "bytes": received,
        "seconds": elapsed,
        "peak_rss_kib": peak_rss_kib(),
    }
