"""(b) call-monitor's framing only: ``AmiFramer`` as the daemon sets it up (the default
``ignore_events`` and the correlator's ``EVENT_FILTER``).

The socket is read in the client's chunk size; every chunk goes through ``feed`` and the
frames are dropped. Events = messages framed + events dropped by name - the login reply.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from _ingest.common import HOST, READ_CHUNK, ClientArgs, login_action, peak_rss_kib
from call_monitor.ami.framing import AmiFramer, AmiMessage
from call_monitor.calls.correlator import EVENT_FILTER
from call_monitor.config import AmiSettings


def run(args: ClientArgs) -> dict[str, Any]:
    framer = AmiFramer(ignore_events=AmiSettings().ignore_events, event_filter=EVENT_FILTER)
    with socket.create_connection((HOST, args.port), timeout=args.timeout) as sock:
        frames = []
        while not frames:
            frames = framer.feed(_recv(sock))  # the banner
        sock.sendall(login_action("framing-1"))
        while not any(isinstance(f, AmiMessage) and f.response for f in frames):
            frames = framer.feed(_recv(sock))
        started = time.perf_counter()
        feed = framer.feed
        recv = sock.recv
        while data := recv(READ_CHUNK):
            feed(data)
        elapsed = time.perf_counter() - started
    stats = framer.stats
    return {
        "events": stats.messages + stats.dropped - 1,  # the login reply is no event
        "decoded": stats.messages - 1,
        "dropped_by_name": stats.dropped,
        "framing_errors": stats.errors,
        "seconds": elapsed,
        "peak_rss_kib": peak_rss_kib(),
    }


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(READ_CHUNK)
    if not data:
        raise ConnectionError("the server closed the connection during the login")
    return data
