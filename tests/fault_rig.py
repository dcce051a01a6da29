"""The rig of the fault scenarios (tests/faults/): the real daemon as a subprocess
(``python -m call_monitor run``), the playback AMI server in the test's event loop, a
Mosquitto of the test's own on a free port, and readers of the store, the metrics and the
MQTT messages. Nothing here touches the shared PostgreSQL or the shared broker on 1883.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

SECRETS = {
    "ami": "ami-S3cret-7f2a",
    "mqtt": "mqtt-S3cret-91bc",
}
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def stored_calls(db: Path) -> list[dict[str, object]]:
    """The calls table of a SQLite store, read with the plain driver."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM calls ORDER BY started_at")]


async def until(what: str, check: object, seconds: float = DEADLINE) -> None:
    """Poll ``check`` (a sync or async callable) until it is true."""
    async with asyncio.timeout(seconds):
        while True:
            result = check()  # type: ignore[operator]
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


@dataclass
class DaemonProcess:
    """``call-monitor run`` in a subprocess, its output in ``log``."""

    env: dict[str, str]
    log: Path
    web_port: int
    process: asyncio.subprocess.Process | None = None
    runs: int = 0
    token: str | None = None  # an admin's API token, made at the first /api/ request

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    async def start(self) -> None:
        self.runs += 1
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n=== run {self.runs} ===\n")
        handle = self.log.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "call_monitor", "run", env=self.env, stdout=handle,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        handle.close()
        await until("the web port", self._healthy)

    async def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"the daemon exited {self.process.returncode}:\n{self.text}")
        try:
            return (await self.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    async def get(self, path: str) -> httpx.Response:
        """``path`` from the daemon; the API (``/api/``) as an admin, by an API token."""
        headers = {}
        if path.startswith("/api/"):
            headers["Authorization"] = f"Bearer {await self._token()}"
        async with httpx.AsyncClient(base_url=self.base, timeout=5.0) as client:
            return await client.get(path, headers=headers)

    async def _token(self) -> str:
        """An admin account and its API token, made by ``call-monitor user`` in the daemon's
        store (migrated by the daemon's start)."""
        if self.token is None:
            await self._cli("user", "add", "rig", "--role", "admin", stdin=b"rig-password-1\n")
            self.token = (await self._cli("user", "token", "rig")).strip()
        return self.token

    async def _cli(self, *args: str, stdin: bytes = b"") -> str:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "call_monitor", *args, env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await child.communicate(stdin)
        assert child.returncode == 0, err.decode(errors="replace")
        return out.decode()

    async def metrics(self) -> str:
        response = await self.get("/metrics")
        assert response.status_code == 200
        return response.text

    async def stop(self, sig: signal.Signals = signal.SIGTERM, seconds: float = DEADLINE) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        async with asyncio.timeout(seconds):
            return await self.process.wait()

    @property
    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def daemon_env(tmp: Path, ami_port: int, web_port: int, **settings: str) -> dict[str, str]:
    """The environment of a daemon: ours without CALLMON_*, a home of its own under ``tmp``
    (its data directory), the AMI target, and ``settings`` as CALLMON_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMON_")}
    env.update(
        HOME=str(tmp / "home"),
        XDG_DATA_HOME=str(tmp / "home" / "data"),
        CALLMON_AMI__HOST="127.0.0.1",
        CALLMON_AMI__PORT=str(ami_port),
        CALLMON_AMI__SECRET=SECRETS["ami"],
        CALLMON_AMI__RECONNECT_INITIAL_SECONDS="0.05",
        CALLMON_AMI__RECONNECT_MAX_SECONDS="0.2",
        CALLMON_AMI__PING_INTERVAL_SECONDS="1",
        CALLMON_AMI__PING_TIMEOUT_SECONDS="1",
        CALLMON_WEB__PORT=str(web_port),
        CALLMON_STORE__URL=f"sqlite+aiosqlite:///{tmp / 'db' / 'calls.sqlite3'}",
        CALLMON_STORE__FLUSH_INTERVAL_SECONDS="0.1",
        CALLMON_STORE__SHUTDOWN_WRITE_SECONDS="1",
    )
    env.update({f"CALLMON_{key.upper()}": value for key, value in settings.items()})
    return env


@contextlib.asynccontextmanager
async def daemon(tmp: Path, ami_port: int, **settings: str) -> AsyncIterator[DaemonProcess]:
    """A started daemon; killed at the end if the test left it running."""
    process = DaemonProcess(
        daemon_env(tmp, ami_port, free_port(), **settings), tmp / "daemon.log", 0
    )
    process.web_port = int(process.env["CALLMON_WEB__PORT"])
    await process.start()
    try:
        yield process
    finally:
        if process.process is not None and process.process.returncode is None:
            process.process.kill()
            await process.process.wait()


@dataclass
class Broker:
    """A Mosquitto of the test's own, and a ``mosquitto_sub`` on ``callmon/#``."""

    port: int
    tmp: Path
    server: asyncio.subprocess.Process | None = None
    reader: asyncio.subprocess.Process | None = None
    received: Path = field(init=False)

    def __post_init__(self) -> None:
        self.received = self.tmp / f"mqtt-{self.port}.txt"

    async def start(self) -> None:
        mosquitto = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
        if mosquitto is None:
            pytest.skip("no mosquitto (scripts/services installs it)")
        self.server = await asyncio.create_subprocess_exec(
            mosquitto, "-p", str(self.port), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await until("the broker", self._listening)
        out = self.received.open("ab")
        self.reader = await asyncio.create_subprocess_exec(
            "mosquitto_sub", "-p", str(self.port), "-t", "callmon/#", "-v", "-q", "1",
            stdout=out,
        )  # fmt: skip
        out.close()
        await asyncio.sleep(0.3)  # subscribed before anything is published

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    def messages(self) -> list[str]:
        if not self.received.exists():
            return []
        return self.received.read_text(encoding="utf-8").splitlines()

    async def stop(self) -> None:
        for process in (self.reader, self.server):
            if process is not None and process.returncode is None:
                process.terminate()
                await process.wait()


@contextlib.asynccontextmanager
async def broker(tmp: Path, port: int | None = None) -> AsyncIterator[Broker]:
    started = Broker(port or free_port(), tmp)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@contextlib.contextmanager
def moved_away(directory: Path) -> Iterator[Path]:
    """``directory`` renamed away for the block (a database's directory gone), then back."""
    away = directory.with_name(directory.name + ".away")
    directory.rename(away)
    try:
        yield away
    finally:
        for path in away.iterdir():
            directory.mkdir(exist_ok=True)
            path.rename(directory / path.name)
        away.rmdir()
