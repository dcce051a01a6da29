"""A NUL in a caller name (strangers' text, issue 14 item 7): cleaned once, where AMI text
enters, so every store keeps the same call. It used to be stored as given on SQLite and the
whole call refused ("set aside") on PostgreSQL, while its obligation got U+FFFD."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.ami.framing import AmiMessage, parse_message
from call_monitor.charter.judged import JudgedCall
from call_monitor.config import Settings, StoreSettings
from call_monitor.daemon.pipeline import replay
from call_monitor.store import StoreWriter, load_call
from tests.recordings import RECORDINGS


def test_a_nul_in_a_header_becomes_the_replacement_character() -> None:
    message = parse_message(b"Event: Newchannel\r\nCallerIDName: Kim\x00Min\r\nUniqueid: 1.1")
    assert isinstance(message, AmiMessage)
    assert message.get("CallerIDName") == "Kim\ufffdMin"
    assert not message.invalid_utf8  # valid UTF-8: only the NUL was replaced


@given(st.binary(max_size=200))
def test_no_header_ever_holds_a_nul(raw: bytes) -> None:
    message = parse_message(b"Event: X\r\n" + raw.replace(b"\r\n\r\n", b"\r\n"))
    if isinstance(message, AmiMessage):
        assert all("\x00" not in k + v for k, v in message.headers.items())


def _recorded_call_named(name: bytes, tmp_path: Path) -> JudgedCall:
    recording = (RECORDINGS / "a_answer_1ring.ami").read_bytes()
    assert b"CallerIDName: Customer\r\n" in recording
    path = tmp_path / "nul.ami"
    path.write_bytes(
        recording.replace(b"CallerIDName: Customer\r\n", b"CallerIDName: " + name + b"\r\n")
    )
    [call] = [c for c in replay([path], Settings()) if isinstance(c, JudgedCall)]
    return call


async def test_the_same_call_is_stored_on_every_backend(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    call = _recorded_call_named(b"Cu\x00stomer", tmp_path)
    assert call.record.caller_name == "Cu\ufffdstomer"
    writer = StoreWriter(engine, StoreSettings(flush_interval_seconds=3600.0))
    writer.submit(call.record, call.verdict)
    await writer.close()
    assert writer.stats.rejected == 0  # PostgreSQL took it too: nothing set aside
    stored = await load_call(engine, call.record.linkedid)
    assert stored is not None
    assert stored["caller_name"] == "Cu\ufffdstomer"
