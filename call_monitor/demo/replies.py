"""What a fake PBX says back, every byte written by the framing's encoder.

:func:`~call_monitor.ami.framing.encode_message` refuses a CR or LF in a value, so an echoed
``ActionID`` or action name cannot inject headers; :func:`refusal` answers, up front, an
action that could not be echoed safely. Used by the playback PBX and the benchmarks' AMI
servers.
"""

from __future__ import annotations

from collections.abc import Iterable

from call_monitor.ami.framing import AmiMessage, UnsafeHeaderError, encode_message
from call_monitor.ami.stream import RESYNC_COMPLETE_EVENT

UNSAFE_ACTION = "Header with CR or LF in a line refused"


def reply(response: str, action_id: str | None, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """``Response: <response>``, the client's ``ActionID`` (if it gave one), then ``headers``."""
    pairs = [("Response", response)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs.extend(headers)
    return encode_message(pairs)


def error(action_id: str | None, text: str) -> bytes:
    return reply("Error", action_id, [("Message", text)])


def pong(action_id: str | None, now: float) -> bytes:
    return reply("Success", action_id, [("Ping", "Pong"), ("Timestamp", f"{now:.6f}")])


def login_accepted(action_id: str | None) -> bytes:
    return reply("Success", action_id, [("Message", "Authentication accepted")])


def goodbye(action_id: str | None) -> bytes:
    return reply("Goodbye", action_id, [("Message", "Thanks for all the fish.")])


def empty_resync(action_id: str | None) -> bytes:
    """An empty ``CoreShowChannels`` list: its start and its complete event."""
    start = reply(
        "Success", action_id, [("EventList", "start"), ("Message", "Channels will follow")]
    )
    complete = [("Event", RESYNC_COMPLETE_EVENT)]
    if action_id is not None:
        complete.append(("ActionID", action_id))
    complete += [("EventList", "Complete"), ("ListItems", "0")]
    return start + encode_message(complete)


def refusal(action: AmiMessage) -> bytes | None:
    """``Response: Error`` (without the ``ActionID``, which may be the culprit) for an action
    with a key or value the encoder would refuse to echo; None for any other action."""
    pairs = [(key, value) for key in action.headers for value in action.get_all(key)]
    try:
        encode_message(pairs)
    except UnsafeHeaderError:
        return error(None, UNSAFE_ACTION)
    return None
