"""The AMI link's faults, against the real daemon (a subprocess): a link dropped mid-call,
a PBX restart, hostile and broken input (issue 14)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from call_monitor.demo.pbx import PlaybackServer, Recording, recording_path
from call_monitor.demo.recording import RECORDINGS_DIR
from tests.fault_rig import SECRETS, broker, daemon, metric, stored_calls, until

RECONNECT = [RECORDINGS_DIR / f"s_ami_reconnect_midcall.part{n}.ami" for n in (1, 2)]


def cut_after(name: str, marker: bytes, extra: bytes = b"") -> bytes:
    """A recording up to (and including) the first message holding ``marker``, then
    ``extra`` (whole messages)."""
    data = recording_path(name).read_bytes()
    end = data.index(b"\r\n\r\n", data.index(marker)) + 4
    return data[:end] + extra


def shutdown_at(data: bytes) -> bytes:
    """A ``Shutdown`` (Restart) stamped one second after the last event of ``data``."""
    stamp = float(data.rsplit(b"Timestamp: ", 1)[1].split(b"\r\n", 1)[0]) + 1
    return (
        f"Event: Shutdown\r\nPrivilege: system,all\r\nTimestamp: {stamp:.6f}\r\n"
        "Shutdown: Cleanly\r\nRestart: True\r\n\r\n"
    ).encode()


async def test_a_link_dropped_while_talking_loses_nothing(tmp_path: Path) -> None:
    """The recorded drop of a real Asterisk's AMI socket mid-call: reconnected, resynced,
    the call measured whole; the reconnect counted."""
    async with (
        PlaybackServer([Recording.load(p) for p in RECONNECT], secret=SECRETS["ami"]) as pbx,
        daemon(tmp_path, pbx.port) as monitor,
    ):
        await until(
            "the call stored", lambda: len(stored_calls(tmp_path / "db" / "calls.sqlite3")) == 1
        )
        metrics = await monitor.metrics()
        assert metric(metrics, "callmon_ami_reconnects_total") >= 1
        assert await monitor.stop() == 0
    [call] = stored_calls(tmp_path / "db" / "calls.sqlite3")
    assert (call["answered_by"], call["missed"]) == ("201", 0)


async def test_a_pbx_restart_while_ringing_owes_a_callback_and_says_so(tmp_path: Path) -> None:
    """Issue 14, item 11 against the real daemon: ``core restart now`` while the phone rang
    (Shutdown, the link closed, a new connection with no channels)."""
    ringing = cut_after("m_caller_abandons_while_ringing.ami", b"ChannelState: 5\r\n")
    restart = ringing + shutdown_at(ringing)
    after = recording_path("a_answer_1ring.ami").read_bytes()  # the PBX back, one call
    async with (
        broker(tmp_path) as mqtt,
        PlaybackServer([restart, after], secret=SECRETS["ami"]) as pbx,
        daemon(tmp_path, pbx.port, mqtt__host="127.0.0.1", mqtt__port=str(mqtt.port)) as monitor,
    ):
        db = tmp_path / "db" / "calls.sqlite3"
        await until("both calls stored", lambda: len(stored_calls(db)) == 2)
        await until("the alert", lambda: any('"created"' in m for m in mqtt.messages()))
        metrics = await monitor.metrics()
        callbacks = (await monitor.get("/api/callbacks")).json()["obligations"]
        assert await monitor.stop() == 0
    [restarted] = [c for c in stored_calls(db) if c["missed"]]
    [answered] = [c for c in stored_calls(db) if not c["missed"]]
    assert (restarted["missed"], restarted["missed_reason"]) == (1, "pbx_restart")
    assert restarted["incomplete"] == 0
    assert answered["answered_by"] == "201"
    assert metric(metrics, "callmon_pbx_restarts_total") == 1
    assert metric(metrics, "callmon_missed_calls_total", reason="pbx_restart") == 1
    assert len(callbacks) == 1  # the caller is still owed a callback


class _Trickler:
    """A PBX that logs the monitor in, then answers nothing: it sends one byte every
    ``every`` seconds that never completes a message (``every`` None: nothing, stalled)."""

    def __init__(self, every: float | None) -> None:
        self.every = every
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            writer.write(b"Asterisk Call Manager/11.0.0\r\n")
            login = await reader.readuntil(b"\r\n\r\n")
            action_id = login.split(b"ActionID: ", 1)[1].split(b"\r\n", 1)[0]
            writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\n\r\n")
            while True:
                await asyncio.sleep(self.every or 3600)
                writer.write(b"E")
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("every", [0.2, None], ids=["trickling", "stalled"])
async def test_a_trickling_or_stalled_link_is_dropped_and_renewed(
    tmp_path: Path, every: float | None
) -> None:
    """Issue 14, item 4 against the real daemon: bytes that complete no message are no
    liveness; a missing Pong past its timeout drops the link, and the monitor connects
    again."""
    pbx = _Trickler(every)
    server = await asyncio.start_server(pbx.handle, "127.0.0.1", 0)
    pbx.port = server.sockets[0].getsockname()[1]
    try:
        async with daemon(tmp_path, pbx.port) as monitor:
            await until("a second connection", lambda: pbx.connections >= 2, seconds=15)
            metrics = await monitor.metrics()
            assert await monitor.stop() == 0
    finally:
        server.close()
    assert metric(metrics, "callmon_ami_reconnects_total") >= 1
    assert "no reply to Ping" in monitor.text
