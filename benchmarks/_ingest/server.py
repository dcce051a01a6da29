"""A minimal AMI server for the benchmark, run in its own process.

It accepts one connection and

1. sends the AMI banner;
2. waits for ``Login`` and answers ``Response: Success`` with the client's ``ActionID``
   (then, with ``--hold``, waits that long: time for a profiler to attach);
3. sends the first ``end`` bytes of the stream file: flat out (chunks of about 256 KiB cut
   at message boundaries, as fast as the socket takes them), or paced at ``rate`` events
   per second;
4. meanwhile answers ``Ping`` (the call-monitor client drops a link whose pings go
   unanswered) and ``Logoff``; anything else gets ``Response: Error``. Replies only ever go
   out between two whole messages;
5. at the end closes its side (FIN after every byte), waits for the client to close, exits.

It prints ``PORT <n>`` once listening and ``SENT <bytes> <seconds>`` at the end.

The client's actions are read by call-monitor's framer and answered through the playback
PBX's replies (:mod:`call_monitor.demo.replies`, the framing's encoder): a blocking socket
loop of its own, as the stream goes out of a memory-mapped file, but no AMI parser or
encoder of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _ingest.common import EOL, HOST, TERMINATOR
from call_monitor.ami.framing import AmiFramer, AmiMessage
from call_monitor.demo import replies

FLAT_CHUNK = 256 * 1024
LINGER_SECONDS = 30.0


class _Peer:
    """The client's side of the conversation: its actions, and our replies to them."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.framer = AmiFramer(expect_banner=False)
        self.gone = False  # the client closed its side
        self.logged_in = False
        self.logged_off = False

    def service(self, timeout: float) -> None:
        """Read what the client sent within ``timeout`` seconds and answer it."""
        if self.gone:
            return
        readable, _, _ = select.select([self.conn], [], [], max(0.0, timeout))
        if not readable:
            return
        try:
            data = self.conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.gone = True
            return
        for frame in self.framer.feed(data):
            if isinstance(frame, AmiMessage):
                self._send(replies.refusal(frame) or self._answer(frame))

    def serve_for(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Answer the client for ``seconds``, or until it leaves or ``until()`` holds."""
        deadline = time.perf_counter() + seconds
        while not self.gone and not until() and time.perf_counter() < deadline:
            self.service(deadline - time.perf_counter())

    def log_in(self, timeout: float) -> bool:
        """Answer the client until it has logged in (within ``timeout`` seconds)."""
        self.serve_for(timeout, lambda: self.logged_in)
        return self.logged_in

    def hang_up(self, linger: float) -> None:
        """Close our side (FIN after every byte), then answer until the client closes."""
        if self.gone:
            return
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_WR)
        self.serve_for(linger)

    def _answer(self, action: AmiMessage) -> bytes:
        name = action.get("Action").lower()
        action_id = action.action_id
        if name == "login":
            self.logged_in = True
            return replies.login_accepted(action_id)
        if name == "ping":
            return replies.pong(action_id, time.time())
        if name == "logoff":
            self.logged_off = True
            return replies.goodbye(action_id)
        return replies.error(action_id, "Permission denied")

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.conn.sendall(data)


def _send_flat(peer: _Peer, mm: mmap.mmap, end: int) -> None:
    position = 0
    while position < end and not peer.gone and not peer.logged_off:
        limit = min(position + FLAT_CHUNK, end)
        cut = limit
        if limit < end:
            boundary = mm.rfind(TERMINATOR, position, limit)
            if boundary >= 0:
                cut = boundary + len(TERMINATOR)
        peer.conn.sendall(mm[position:cut])
        position = cut
        peer.service(0.0)


def _send_paced(peer: _Peer, mm: mmap.mmap, end: int, rate: float) -> None:
    bounds = [0]
    while bounds[-1] < end:
        boundary = mm.find(TERMINATOR, bounds[-1], end)
        bounds.append(end if boundary < 0 else boundary + len(TERMINATOR))
    total = len(bounds) - 1
    sent = 0
    started = time.perf_counter()
    while sent < total and not peer.gone and not peer.logged_off:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        if due > sent:
            peer.conn.sendall(mm[bounds[sent] : bounds[due]])
            sent = due
        peer.service(started + sent / rate - time.perf_counter())


def serve(
    stream: Path, banner: str, end: int, *, rate: float, accept_timeout: float, hold: float = 0.0
) -> int:
    with socket.create_server((HOST, 0)) as listener:
        listener.settimeout(accept_timeout)
        print(f"PORT {listener.getsockname()[1]}", flush=True)
        conn, _ = listener.accept()
    conn.settimeout(None)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer = _Peer(conn)
    started = time.perf_counter()
    with conn:
        conn.sendall(banner.encode() + EOL)
        if not peer.log_in(accept_timeout):
            print("the client left before logging in", file=sys.stderr)
            return 1
        peer.serve_for(hold)  # a profiler attaches to the client meanwhile
        started = time.perf_counter()
        if end > 0:
            with stream.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                try:
                    if rate > 0:
                        _send_paced(peer, mm, end, rate)
                    else:
                        _send_flat(peer, mm, end)
                except OSError as exc:  # the client went away mid-stream
                    print(f"send failed: {exc}", file=sys.stderr)
                    peer.gone = True
        elapsed = time.perf_counter() - started
        peer.hang_up(LINGER_SECONDS)
    print(f"SENT {end} {elapsed:.6f}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ingest.py _serve")
    parser.add_argument("--stream", type=Path, required=True)
    parser.add_argument("--banner", required=True)
    parser.add_argument("--end", type=int, required=True, help="bytes of the stream to send")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0: flat out")
    parser.add_argument("--accept-timeout", type=float, default=180.0)
    parser.add_argument(
        "--hold", type=float, default=0.0, help="seconds between the login and the stream"
    )
    args = parser.parse_args(argv)
    return serve(
        args.stream,
        args.banner,
        args.end,
        rate=args.rate,
        accept_timeout=args.accept_timeout,
        hold=args.hold,
    )
