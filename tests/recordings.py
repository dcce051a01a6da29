"""Access to the shipped recordings and the ground truth of their SIP phones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).resolve().parent.parent / "call_monitor" / "demo" / "recordings"

SCENARIOS = [
    "a_answer_1ring",
    "c_answer_3rings_breach",
    "d_missed_then_callback",
    "e_blind_transfer",
    "f1_attended_transfer_2s",
    "g1_staff_hangs_up_first",
    "h1_ring_group",
    "h2_queue_ringall",
    "i1_group_pickup",
    "j_burst_50",
    "m_caller_abandons_while_ringing",
    "n_missed_then_two_callback_attempts",
    "p_internal_call",
    "s_ami_reconnect_midcall",
]


def streams(scenario: str) -> dict[str, list[Path]]:
    """The recorded streams of a scenario: ``.ami`` (monitor user), ``.full.ami`` (read=all)."""
    if scenario == "s_ami_reconnect_midcall":
        parts = [RECORDINGS / f"{scenario}.part1.ami", RECORDINGS / f"{scenario}.part2.ami"]
        return {"ami": parts, "full": [RECORDINGS / f"{scenario}.full.ami"]}
    return {"ami": [RECORDINGS / f"{scenario}.ami"], "full": [RECORDINGS / f"{scenario}.full.ami"]}


@cache
def truth(scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDINGS / f"{scenario}.truth.json").read_text())
    return data


@dataclass(frozen=True)
class Dialog:
    """One INVITE dialog as a SIP phone saw it."""

    phone: str
    call_id: str
    ringing_at: float | None  # 180 sent (a staff phone) or received (the customer)
    answered_at: float | None  # 200 OK to the INVITE, sent or received
    bye_sent_at: float | None


def dialogs(scenario: str) -> list[Dialog]:
    """Every INVITE dialog of every phone in the scenario's SIP timeline."""
    by_call: dict[tuple[str, str], dict[str, float]] = {}
    for entry in truth(scenario)["sip_timeline"]:
        key = (entry["phone"], entry["call_id"])
        marks = by_call.setdefault(key, {})
        line, cseq = entry["line"], entry["cseq"]
        if line.startswith("SIP/2.0 180") and cseq.endswith("INVITE"):
            marks.setdefault("ringing", entry["t"])
        elif line.startswith("SIP/2.0 200") and cseq.endswith("INVITE"):
            marks.setdefault("answered", entry["t"])
        elif line.startswith("BYE") and entry["dir"] == "sent":
            marks.setdefault("bye", entry["t"])
    return [
        Dialog(phone, call_id, m.get("ringing"), m.get("answered"), m.get("bye"))
        for (phone, call_id), m in by_call.items()
    ]


def sip_time(scenario: str, phone_prefix: str, line_prefix: str, direction: str = "sent") -> float:
    """The first time a phone sent (or received) a SIP message starting with ``line_prefix``."""
    for entry in truth(scenario)["sip_timeline"]:
        if (
            entry["phone"].startswith(phone_prefix)
            and entry["dir"] == direction
            and entry["line"].startswith(line_prefix)
        ):
            return float(entry["t"])
    raise LookupError(f"{scenario}: no {line_prefix!r} {direction} by {phone_prefix}")
