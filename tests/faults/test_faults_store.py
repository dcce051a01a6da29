"""The store's faults, against the real daemon (a subprocess): the SQLite database's
directory gone mid-run and a SIGTERM meanwhile, kill -9 and restart, the broker down
while calls are missed (issue 14)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from call_monitor.demo.pbx import PlaybackServer, Recording, recording_path
from tests.fault_rig import (
    SECRETS,
    broker,
    daemon,
    metric,
    moved_away,
    stored_calls,
    until,
)
from tests.test_store import TcpProxy

MISSED = Recording.load(recording_path("m_caller_abandons_while_ringing.ami"))


async def test_a_store_gone_then_a_stop_keeps_every_call_for_the_next_start(
    tmp_path: Path,
) -> None:
    """Issue 14, items 3 and 6: the database's directory removed mid-run took 392 calls
    into a deleted file, silently; a SIGTERM with the store down dropped what was queued.
    Now the writes fail, loudly; the stop spools them; the next start writes them."""
    db = tmp_path / "db" / "calls.sqlite3"
    pbx = PlaybackServer([MISSED], speed=50, loop=True, secret=SECRETS["ami"])
    async with pbx, daemon(tmp_path, pbx.port) as monitor:
        await until("calls stored", lambda: len(stored_calls(db)) >= 2)
        with moved_away(db.parent):
            await until("writes failing", _failing(monitor))
            ready = await monitor.get("/readyz")
            await pbx.stop()  # no more calls: the count below is final
            await until("the link down", _link_down(monitor))
            seen = metric(await monitor.metrics(), "callmon_calls_total")
            assert await monitor.stop() == 0
            spool = db.parent / "calls.sqlite3.spool"  # beside the store, its directory made
            assert spool.exists()
        log = monitor.text
        assert ready.status_code == 503
        assert "store failing" in ready.json()["reason"]
        assert "was deleted while open" in log
        assert "written at the next start" in log
        await monitor.start()  # the store is back: the spool goes in first
        assert not spool.exists()
        assert await monitor.stop() == 0
    assert len(stored_calls(db)) == seen
    assert SECRETS["ami"] not in monitor.text


def _failing(monitor: object) -> object:
    async def check() -> bool:
        return metric(await monitor.metrics(), "callmon_store_write_failures_total") >= 1  # type: ignore[attr-defined]

    return check


def _link_down(monitor: object) -> object:
    async def check() -> bool:
        return metric(await monitor.metrics(), "callmon_ami_connected") == 0  # type: ignore[attr-defined]

    return check


async def test_kill_9_and_restart_bring_the_open_callbacks_back(tmp_path: Path) -> None:
    """What was committed before a kill -9 is there after the restart: every open
    obligation with its deadline."""
    db = tmp_path / "db" / "calls.sqlite3"
    pbx = PlaybackServer([MISSED], speed=50, loop=True, secret=SECRETS["ami"])
    async with pbx, daemon(tmp_path, pbx.port) as monitor:
        await until("missed calls stored", lambda: len(stored_calls(db)) >= 3)
        await pbx.stop()
        await until("the link down", _link_down(monitor))
        before = (await monitor.get("/api/callbacks")).json()["obligations"]
        assert await monitor.stop(signal.SIGKILL) == -signal.SIGKILL
        stored = len(stored_calls(db))
        await monitor.start()
        after = (await monitor.get("/api/callbacks")).json()["obligations"]
        assert await monitor.stop() == 0
    assert stored >= 3
    assert before
    assert [(o["id"], o["due_at"]) for o in after] == [(o["id"], o["due_at"]) for o in before]


async def test_the_broker_down_while_calls_are_missed_delays_the_alerts_only(
    tmp_path: Path,
) -> None:
    """Alerts wait in the outbox while the broker cannot be reached, and go out once, all of
    them, when it can. (The broker and its subscriber run throughout; a proxy in front of it
    hangs up on the daemon while "down", so nothing is published before the subscriber.)"""
    db = tmp_path / "db" / "calls.sqlite3"
    pbx = PlaybackServer([MISSED], speed=50, loop=True, secret=SECRETS["ami"])
    async with broker(tmp_path) as mqtt, TcpProxy("127.0.0.1", mqtt.port) as link:
        settings = {
            "mqtt__host": "127.0.0.1",
            "mqtt__port": str(link.listen_port),
            "mqtt__username": "callmon",
            "mqtt__password": SECRETS["mqtt"],
            "mqtt__reconnect_max_seconds": "0.5",
        }
        async with pbx, daemon(tmp_path, pbx.port, **settings) as monitor:
            await until("missed calls stored", lambda: len(stored_calls(db)) >= 3)
            await pbx.stop()
            metrics = await monitor.metrics()
            assert metric(metrics, "callmon_alerts_published_messages_total") == 0
            link.up = True
            await until("the alerts out", _outbox_empty(monitor))
            await until("the alerts in", lambda: len(mqtt.messages()) > 0)
            published = metric(await monitor.metrics(), "callmon_alerts_published_messages_total")
            assert await monitor.stop() == 0
        await asyncio.sleep(0.5)  # the last messages reach the subscriber
        messages = mqtt.messages()
    keys = [m.split('"idempotency_key":"', 1)[1].split('"', 1)[0] for m in messages]
    assert len(keys) == len(set(keys))  # each alert once
    assert len(messages) == published
    assert [m for m in messages if '"event":"created"' in m]
    assert SECRETS["mqtt"] not in monitor.text


def _outbox_empty(monitor: object) -> object:
    async def check() -> bool:
        return metric(await monitor.metrics(), "callmon_alerts_outbox_pending_messages") == 0  # type: ignore[attr-defined]

    return check
