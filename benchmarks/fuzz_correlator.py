#!/usr/bin/env python
"""Fuzz the correlator (coverage-guided, atheris): any order of any events, any times.

    .venv/bin/python benchmarks/fuzz_correlator.py [--runs 1000000] [--max-len 4096]

Each input's bytes choose a stream: events of the kinds the correlator reads (and a few
it does not), about a handful of channels and calls, with times that go forward, back,
jump a day or to 99999999999, or are NaN, inf, -1e12, ``notanumber``; link drops, resyncs
listing any channels, PBX restarts. Every finished call goes the way the daemon takes it:
judged by the charter rules (an unjudged verdict if they fail), turned into the store's
rows (times into dates), into ``replay --json``'s line and into its Korean line. Checks:
nothing raises, the calls in progress stay within the cap, and none is left after the end
of the input. A failed check is a crash (see ``benchmarks/_fuzz.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The libraries first, uninstrumented: coverage is wanted of the project's code only.
import pydantic  # noqa: F401
import sqlalchemy  # noqa: F401

from benchmarks._fuzz import fuzz, options

with atheris.instrument_imports(include=["call_monitor"]):
    from call_monitor.ami.framing import AmiMessage
    from call_monitor.ami.stream import LinkDown, LinkUp, PbxRestarted, Resync, StreamItem
    from call_monitor.calls.correlator import Correlator, Topology
    from call_monitor.calls.model import CallEnded
    from call_monitor.charter.judged import JudgedCall, call_report
    from call_monitor.charter.lines import describe
    from call_monitor.charter.rules import judge
    from call_monitor.config import Settings
    from call_monitor.directory import Directory
    from call_monitor.store.writer import call_rows

SETTINGS = Settings()
DIRECTORY = Directory(SETTINGS.directory)
TOPOLOGY = Topology(frozenset({"pstn"}), frozenset({"from-pstn"}))
MAX_CALLS = 8
BASE = 1_795_847_264.0
EVENTS = [
    "Newchannel", "Newstate", "DialBegin", "DialEnd", "HangupRequest", "SoftHangupRequest",
    "Hangup", "BridgeEnter", "BridgeLeave", "Hold", "Unhold", "BlindTransfer",
    "AttendedTransfer", "Pickup", "DTMFBegin", "CEL", "Shutdown", "VarSet",
]  # fmt: skip
UNIQUEIDS = [f"{BASE:.0f}.{n}" for n in range(6)]
CHANNELS = [
    "PJSIP/pstn-00000001",
    "PJSIP/201-00000002",
    "PJSIP/202-00000003",
    "Local/600@staff-00000004;1",
    "Local/600@staff-00000004;2",
    "PJSIP/203-00000005",
]
CONTEXTS = ["from-pstn", "staff", ""]
STATES = ["5", "6", "4", "0", ""]
ODD_TIMES = ["nan", "inf", "-inf", "1e12", "-1e12", "99999999999", "notanumber", "", "1e300"]
STATUSES = ["ANSWER", "NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION", "Success", "Fail"]


def _time(data: atheris.FuzzedDataProvider, clock: list[float]) -> str:
    kind = data.ConsumeIntInRange(0, 9)
    if kind == 0:
        return data.PickValueInList(ODD_TIMES)
    if kind == 1:
        clock[0] += data.PickValueInList([-86400.0, 86400.0, 4 * 3600 + 61.0, -7200.0])
    else:
        clock[0] += data.ConsumeIntInRange(0, 30) / 4
    return f"{clock[0]:.6f}"


def _event(data: atheris.FuzzedDataProvider, clock: list[float]) -> AmiMessage:
    pick = data.PickValueInList
    headers = {"Event": pick(EVENTS), "Timestamp": _time(data, clock)}
    for key in ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid", "UniqueID"):
        if data.ConsumeBool():
            headers[key] = pick(UNIQUEIDS)
    for key in ("Channel", "DestChannel", "TransfererChannel", "TransfereeChannel",
                "OrigTransfererChannel", "SecondTransfererChannel", "TargetChannel",
                "TransferTargetChannel"):  # fmt: skip
        if data.ConsumeBool():
            headers[key] = pick(CHANNELS)
    headers["Context"] = pick(CONTEXTS)
    headers["DestContext"] = pick(CONTEXTS)
    headers["ChannelState"] = pick(STATES)
    headers["DialStatus"] = pick(STATUSES)
    headers["Result"] = pick(STATUSES)
    headers["Cause"] = pick(["4", "16", "17", ""])
    headers["BridgeUniqueid"] = pick(["b1", "b2", ""])
    headers["EventName"] = pick(["DTMF", "ANSWER"])
    headers["CallerIDNum"] = pick(["01012345678", "201", "", "=1+1"])
    headers["Exten"] = pick(["201", "600", "0101234", ""])
    return AmiMessage(headers)


def _resync(data: atheris.FuzzedDataProvider) -> Resync:
    listed = []
    for _ in range(data.ConsumeIntInRange(0, 4)):
        listed.append(
            AmiMessage(
                {
                    "Event": "CoreShowChannel",
                    "Uniqueid": data.PickValueInList(UNIQUEIDS),
                    "Linkedid": data.PickValueInList(UNIQUEIDS),
                    "Channel": data.PickValueInList(CHANNELS),
                    "Context": data.PickValueInList(CONTEXTS),
                    "ChannelState": data.PickValueInList(STATES),
                    "BridgeId": data.PickValueInList(["b1", "b2", ""]),
                    "Duration": data.PickValueInList(["00:00:05", "99:99:99", "x", ""]),
                }
            )
        )
    return Resync(tuple(listed))


def stream(raw: bytes) -> list[StreamItem]:
    data = atheris.FuzzedDataProvider(raw)
    clock = [BASE]
    items: list[StreamItem] = []
    while data.remaining_bytes() > 2:
        kind = data.ConsumeIntInRange(0, 31)
        if kind == 0:
            items += [LinkDown("fuzz"), LinkUp()]
        elif kind == 1:
            items.append(_resync(data))
        elif kind == 2:
            items.append(PbxRestarted())
        else:
            items.append(_event(data, clock))
    return items


def _consume(record_end: CallEnded) -> None:
    record = record_end.record
    verdict = judge(record, SETTINGS.charter, DIRECTORY)
    call_rows(record, verdict)
    json.dumps(call_report(record, verdict), ensure_ascii=False, allow_nan=False)
    describe(JudgedCall(record, verdict), "ko", directory=DIRECTORY)


def check(raw: bytes) -> None:
    correlator = Correlator(TOPOLOGY, max_calls=MAX_CALLS)
    for item in stream(raw):
        for output in correlator.step(item):
            if isinstance(output, CallEnded):
                _consume(output)
        assert correlator.calls_in_progress <= MAX_CALLS, "the cap on calls was passed"
    for output in correlator.close_all():
        if isinstance(output, CallEnded):
            _consume(output)
    assert correlator.calls_in_progress == 0, "a call left open after the end"


def main() -> None:
    args = options(__doc__ or "")
    fuzz("fuzz_correlator", check, [bytes(range(256)) * 4], args)


if __name__ == "__main__":
    main()
