"""Hostile and broken input, and secrets, against the real daemon (a subprocess) (issue 14):
a garbled Hangup, lone-LF line ends, a NUL in a caller name, impossible times, a 2 MB
message, a banner mid-connection; no secret in any log line, metric, endpoint or --help."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from call_monitor.demo.pbx import PlaybackServer, recording_path
from tests.fault_rig import SECRETS, broker, daemon, metric, stored_calls, until

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def broken_copy() -> bytes:
    """``a_answer_1ring`` made hostile: each change is one of the issue's cases."""
    data = recording_path("a_answer_1ring.ami").read_bytes()
    # A NUL in the caller's name (item 7), a garbled line in the customer's Hangup (item 5).
    data = data.replace(b"CallerIDName: Customer\r\n", b"CallerIDName: Cust\x00omer\r\n")
    first_hangup = data.index(b"Event: Hangup\r\n")
    data = data[: first_hangup + 15] + b"garbage without a colon\r\n" + data[first_hangup + 15 :]
    # Impossible times on events the call does not need (item 1).
    odd = (
        b"Event: VarSet\r\nTimestamp: nan\r\n\r\nEvent: Newexten\r\nTimestamp: 99999999999\r\n\r\n"
    )
    # An unrelated call's events with lone-LF line ends (item 5), a 2 MB message, and the
    # banner again (a proxy's reconnect).
    lf_call = b"Event: Hold\nUniqueid: 1.99\nTimestamp: 1795847266.0\n\n"
    huge = b"Event: UserEvent\r\nData: " + b"x" * 2_000_000 + b"\r\n\r\n"
    at = data.index(b"Event: Newstate\r\n")
    # (The banner last: after it the client renews the link, and a playback PBX, unlike a
    # real one, does not go on with the recording on the new connection.)
    return data[:at] + odd + huge + lf_call + data[at:] + BANNER


async def test_broken_and_hostile_input_costs_nothing_but_itself(tmp_path: Path) -> None:
    async with (
        PlaybackServer([broken_copy()], secret=SECRETS["ami"]) as pbx,
        daemon(tmp_path, pbx.port) as monitor,
    ):
        db = tmp_path / "db" / "calls.sqlite3"
        await until("the call stored", lambda: len(stored_calls(db)) == 1)
        metrics = await monitor.metrics()
        healthy = await monitor.get("/healthz")
        assert await monitor.stop() == 0
    [call] = stored_calls(db)
    assert call["answered_by"] == "201"
    assert call["caller_name"] == "Cust\ufffdomer"
    assert call["ended_at"] is not None  # the garbled Hangup ended it
    assert healthy.status_code == 200
    assert metric(metrics, "callmon_ami_framing_repairs_total") >= 2  # the line, the LF call
    assert metric(metrics, "callmon_ami_framing_errors_total") >= 1  # the 2 MB message


async def test_no_secret_in_any_log_metric_endpoint_or_help(tmp_path: Path) -> None:
    """The AMI secret and the MQTT password, given to a daemon that ran calls, failed a
    login and lost its broker: in no log line, traceback, metric, endpoint or --help."""
    recording = recording_path("m_caller_abandons_while_ringing.ami").read_bytes()
    async with (
        broker(tmp_path) as mqtt,
        PlaybackServer([recording], secret=SECRETS["ami"]) as pbx,
        daemon(
            tmp_path,
            pbx.port,
            mqtt__host="127.0.0.1",
            mqtt__port=str(mqtt.port),
            mqtt__username="callmon",
            mqtt__password=SECRETS["mqtt"],
            log_level="DEBUG",
        ) as monitor,
    ):
        db = tmp_path / "db" / "calls.sqlite3"
        await until("the call stored", lambda: len(stored_calls(db)) == 1)
        await until("the alert", mqtt.messages)
        await mqtt.stop()  # the broker gone: reconnects logged
        await asyncio.sleep(1.0)
        answers = [
            (await monitor.get(path)).text
            for path in ("/metrics", "/readyz", "/healthz", "/api/callbacks")
        ]
        assert await monitor.stop() == 0
    # A login refused (a wrong secret given): what the daemon logs then.
    refused = PlaybackServer([recording], secret="another")
    async with refused, daemon(tmp_path, refused.port) as again:
        await asyncio.sleep(1.0)
        assert await again.stop() == 0
    help_text = await _help()
    seen = "\n".join([monitor.text, *answers, help_text, *mqtt.messages()])
    assert "refused by the PBX" in again.text  # the refusal was logged (one log file)
    for secret in SECRETS.values():
        assert secret not in seen


async def _help() -> str:
    texts = []
    for args in (["--help"], ["run", "--help"], ["memo", "--help"]):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "call_monitor", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        texts.append(out.decode())
    return "\n".join(texts)
