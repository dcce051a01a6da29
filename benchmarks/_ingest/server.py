"""A minimal AMI server for the benchmark, run in its own process (standard library only).

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
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import select
import socket
import sys
import time
from pathlib import Path

from _ingest.common import EOL, HOST, TERMINATOR

FLAT_CHUNK = 256 * 1024
LINGER_SECONDS = 30.0


class _Peer:
    """The client's side of the conversation: its actions, and our replies to them."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = bytearray()
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
        self.buffer += data
        while (end := self.buffer.find(TERMINATOR)) >= 0:
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + len(TERMINATOR)]
            self._answer(_headers(raw))

    def _answer(self, headers: dict[str, str]) -> None:
        action = headers.get("action", "").lower()
        action_id = headers.get("actionid")
        if action == "login":
            self.logged_in = True
            self._reply("Success", action_id, "Message: Authentication accepted")
        elif action == "ping":
            self._reply("Success", action_id, f"Ping: Pong\r\nTimestamp: {time.time():.6f}")
        elif action == "logoff":
            self._reply("Goodbye", action_id, "Message: Thanks for all the fish.")
            self.logged_off = True
        else:
            self._reply("Error", action_id, "Message: Permission denied")

    def _reply(self, response: str, action_id: str | None, extra: str) -> None:
        lines = [f"Response: {response}"]
        if action_id is not None:
            lines.append(f"ActionID: {action_id}")
        lines.append(extra)
        with contextlib.suppress(OSError):
            self.conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def _headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.split(EOL):
        key, sep, value = line.partition(b":")
        if sep:
            headers.setdefault(
                key.strip().lower().decode("ascii", "replace"), value.strip().decode()
            )
    return headers


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
        deadline = time.perf_counter() + accept_timeout
        while not peer.logged_in and not peer.gone and time.perf_counter() < deadline:
            peer.service(deadline - time.perf_counter())
        if not peer.logged_in:
            print("the client left before logging in", file=sys.stderr)
            return 1
        if hold > 0:  # a profiler attaches to the client meanwhile
            deadline = time.perf_counter() + hold
            while not peer.gone and time.perf_counter() < deadline:
                peer.service(deadline - time.perf_counter())
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
        if not peer.gone:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            deadline = time.perf_counter() + LINGER_SECONDS
            while not peer.gone and time.perf_counter() < deadline:
                peer.service(deadline - time.perf_counter())
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
