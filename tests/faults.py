"""A bug that one call triggers, planted at one stage of the pipeline (issue 9): the tests
of the daemon, of ``replay()`` and of ``call-monitor replay`` show that it costs that call
only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from call_monitor.calls import correlator
from call_monitor.calls.model import CallRecord
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import JudgedCall
from call_monitor.cli import replay as cli_replay
from call_monitor.daemon import pipeline
from call_monitor.daemon.callbacks import CallbackService
from call_monitor.demo.pbx import recording_path
from call_monitor.metrics import CallMetrics
from call_monitor.store import StoreWriter

# Fifty overlapping calls; the bad one is a missed call (it owes a callback) in the middle.
BURST = [recording_path("j_burst_50.ami")]
BAD = "1795847574.110"
BAD_OBLIGATION = f"call-{BAD}"


class InjectedBug(RuntimeError):
    """What a bug that one odd call triggers raises."""


def _raising_for_bad(function: Callable[..., Any], linkedid_of: Callable[..., str]) -> Any:
    def buggy(*args: Any) -> Any:
        if linkedid_of(*args) == BAD:
            raise InjectedBug(f"injected into call {BAD}")
        return function(*args)

    return buggy


def _by_record(_: object, record: CallRecord, *__: object) -> str:
    return record.linkedid


def _by_judged(_: object, judged: JudgedCall) -> str:
    return judged.record.linkedid


def plant_bug(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    """Make the call ``BAD``, and only it, raise at ``stage`` (``daemon.pipeline.Stage``)."""
    if stage == "correlate":
        # A bug after the handler changed the call's state: the call is left half-updated.
        newstate = correlator._HANDLERS["Newstate"]

        def buggy_newstate(self: Any, msg: Any, ts: float, out: list[Any]) -> None:
            newstate(self, msg, ts, out)
            if msg.headers.get("Linkedid") == BAD:
                raise InjectedBug(f"injected into call {BAD}")

        monkeypatch.setitem(correlator._HANDLERS, "Newstate", buggy_newstate)
        return
    targets: dict[str, list[tuple[Any, str, Callable[..., str]]]] = {
        "judge": [(pipeline, "judge", lambda record, *_: record.linkedid)],
        "metrics": [(CallMetrics, "observe_call", _by_record)],
        "store": [(StoreWriter, "submit", _by_record)],
        # The daemon's service (the tracker inside it already keeps its own errors), and
        # the tracker that ``call-monitor replay`` calls directly.
        "callbacks": [
            (CallbackService, "on_call", _by_judged),
            (CallbackTracker, "on_call", lambda _, record: record.linkedid),
        ],
        # The call line ``call-monitor replay`` prints (the daemon's is its on_call hook).
        "report": [
            (cli_replay, "call_report", lambda record, _: record.linkedid),
            (cli_replay, "describe", lambda judged, _: judged.record.linkedid),
        ],
    }
    for owner, name, linkedid_of in targets[stage]:
        monkeypatch.setattr(owner, name, _raising_for_bad(getattr(owner, name), linkedid_of))
