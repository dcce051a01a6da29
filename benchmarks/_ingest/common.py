"""Helpers shared by the benchmark's child processes (standard library only)."""

from __future__ import annotations

import json
import math
import resource
import socket
import sys
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
USERNAME = "bench"
SECRET = "bench"
RESULT_PREFIX = "RESULT "
LINKUP_LINE = "LINKUP"
TERMINATOR = b"\r\n\r\n"
EOL = b"\r\n"
READ_CHUNK = 65536  # what call_monitor.ami.client reads per call


def login_action(action_id: str) -> bytes:
    return (
        f"Action: Login\r\nActionID: {action_id}\r\nUsername: {USERNAME}\r\n"
        f"Secret: {SECRET}\r\nEvents: on\r\n\r\n"
    ).encode()


def emit(result: dict[str, Any]) -> None:
    """The child's one line of results, read by the orchestrator."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def ru_maxrss_kib() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux).

    Linux carries it across ``fork`` + ``exec``: a child's value is at least its parent's
    RSS at the spawn, so the orchestrator's memory leaks into it. Reported, not tabled.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_kib() -> int:
    """Peak RSS of this process's own memory since its ``exec`` (``VmHWM``)."""
    value = _status_kib("VmHWM")
    return ru_maxrss_kib() if value is None else value


def current_rss_kib() -> int:
    """Resident set size now (``VmRSS``)."""
    value = _status_kib("VmRSS")
    return peak_rss_kib() if value is None else value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def blocking_login(sock: socket.socket, action_id: str) -> bytes:
    """Wait for the banner, log in, wait for the reply; return the bytes that followed it."""
    buf = bytearray()
    while EOL not in buf:
        _recv_into(sock, buf)
    del buf[: buf.index(EOL) + 2]
    sock.sendall(login_action(action_id))
    while TERMINATOR not in buf:
        _recv_into(sock, buf)
    end = buf.index(TERMINATOR) + len(TERMINATOR)
    if b"Response: Success" not in buf[:end]:
        raise RuntimeError(f"login refused: {bytes(buf[:end])!r}")
    return bytes(buf[end:])


def _recv_into(sock: socket.socket, buf: bytearray) -> None:
    data = sock.recv(READ_CHUNK)
    if not data:
        raise ConnectionError("the server closed the connection during the login")
    buf += data


class LagHistogram:
    """Latencies in log-spaced buckets 2 % wide from 1 µs: bounded memory, ~1 % percentiles.

    A list of a million floats would itself move the RSS being measured.
    """

    RATIO = 1.02
    BUCKETS = 1200  # 1.02 ** 1200 µs is far beyond any run

    def __init__(self) -> None:
        self.counts = [0] * self.BUCKETS
        self.count = 0
        self.max = 0.0
        self._log_ratio = math.log(self.RATIO)

    def add(self, seconds: float) -> None:
        micros = seconds * 1e6
        index = 0 if micros <= 1.0 else int(math.log(micros) / self._log_ratio) + 1
        self.counts[min(index, self.BUCKETS - 1)] += 1
        self.count += 1
        self.max = max(self.max, seconds)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in seconds: the geometric middle of its bucket."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                if index == 0:
                    return 1e-6
                return min(self.max, self.RATIO ** (index - 0.5) * 1e-6)
        return self.max

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "p50": self.percentile(50),
            "p99": self.percentile(99),
            "max": self.max if self.count else None,
        }


@dataclass(frozen=True)
class ClientArgs:
    """What the orchestrator tells a variant's child process."""

    port: int
    expected: int  # events the server will send
    timeout: float  # seconds the variant may take before it reports a hang
    workdir: str  # a fresh directory of its own (the SQLite file of variant c)
    rss_marks: tuple[int, ...] = ()  # event counts at which variant c samples its RSS
    announce: bool = False  # variant c: print LINKUP on stderr once logged in (profiling)
