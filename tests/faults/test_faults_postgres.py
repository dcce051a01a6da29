"""PostgreSQL faults against the real daemon (a subprocess), on a temporary cluster of the
test's own (initdb, pg_ctl, a free port; never the shared server): the database restarted
while calls flow, and a SIGTERM while it is down (issue 14, item 6)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from call_monitor.demo.pbx import PlaybackServer, Recording, recording_path
from tests.fault_rig import SECRETS, DaemonProcess, daemon, free_port, metric, until

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
pytestmark = pytest.mark.skipif(
    not BIN or shutil.which("runuser") is None, reason="no PostgreSQL server binaries"
)
MISSED = Recording.load(recording_path("m_caller_abandons_while_ringing.ami"))


class Cluster:
    """A throwaway PostgreSQL cluster (trust auth, loopback, ``port``), run as postgres."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="callmon-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"

    async def _as_postgres(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "runuser", "-u", "postgres", "--", *args, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await process.wait() == 0, args

    async def init(self) -> None:
        await self._as_postgres(
            f"{BIN[-1]}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._as_postgres(
            f"{BIN[-1]}/pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    async def stop(self) -> None:
        await self._as_postgres(
            f"{BIN[-1]}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def count_calls(self) -> int:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            return int(await conn.fetchval("SELECT count(*) FROM calls"))
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    pg = Cluster()
    await pg.init()
    await pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(AssertionError):
            await pg.stop()
        shutil.rmtree(pg.dir, ignore_errors=True)


def _metric_at_least(monitor: object, name: str, value: float) -> object:
    async def check() -> bool:
        return metric(await monitor.metrics(), name) >= value  # type: ignore[attr-defined]

    return check


@contextlib.asynccontextmanager
async def database_down_mid_run(
    tmp_path: Path,
) -> AsyncIterator[tuple[Cluster, PlaybackServer, DaemonProcess]]:
    """Calls flowing into a daemon on a cluster of our own, then the cluster stopped: given
    once the daemon counted a failed write."""
    pbx = PlaybackServer([MISSED], speed=50, loop=True, secret=SECRETS["ami"])
    async with cluster() as pg, pbx, daemon(tmp_path, pbx.port, store__url=pg.url) as monitor:
        await until("calls stored", pg.count_calls, seconds=30)
        await pg.stop()
        failing = _metric_at_least(monitor, "callmon_store_write_failures_total", 1)
        await until("writes failing", failing)
        yield pg, pbx, monitor


async def test_the_database_restarted_while_calls_flow_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    async with database_down_mid_run(tmp_path) as (pg, pbx, monitor):
        await pg.start()
        await pbx.stop()
        await asyncio.sleep(1.0)
        seen = metric(await monitor.metrics(), "callmon_calls_total")
        await until("every call written", lambda: _equals(pg.count_calls(), seen))
        assert await monitor.stop() == 0
        assert await pg.count_calls() == seen


async def _equals(count: object, expected: float) -> bool:
    return await count == expected  # type: ignore[misc]


async def test_a_sigterm_while_the_database_is_down_keeps_the_calls_for_the_next_start(
    tmp_path: Path,
) -> None:
    """It waited 60 s, exited 1 and logged "56 calls NOT written"; now it spools them."""
    async with database_down_mid_run(tmp_path) as (pg, pbx, monitor):
        await pbx.stop()
        await asyncio.sleep(0.5)
        seen = metric(await monitor.metrics(), "callmon_calls_total")
        assert await monitor.stop(signal.SIGTERM, seconds=20) == 0
        spool = tmp_path / "home" / "data" / "call-monitor" / "store.spool"
        assert spool.exists()
        await pg.start()
        await monitor.start()
        assert not spool.exists()
        assert await monitor.stop() == 0
        assert await pg.count_calls() == seen
