"""Facts are snapshots: what the correlator emitted does not change while it goes on."""

from __future__ import annotations

import copy

import pytest

from call_monitor.ami.framing import FramingError
from call_monitor.calls.correlator import Correlator, Output, Topology
from call_monitor.calls.model import CallAnswered, CallEnded
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import read_recording
from tests.recordings import SCENARIOS, streams


def replay_keeping_copies(scenario: str) -> list[tuple[Output, Output]]:
    """Every fact of the scenario's recording, each with a deep copy taken as it came out."""
    settings = Settings()
    correlator = Correlator(
        Topology(
            frozenset(settings.directory.public_endpoints),
            frozenset(settings.directory.public_contexts),
        )
    )
    emitted: list[tuple[Output, Output]] = []
    for path in streams(scenario)["ami"]:
        for item in read_recording(path, settings):
            if not isinstance(item, FramingError):
                emitted += [(fact, copy.deepcopy(fact)) for fact in correlator.step(item)]
    emitted += [(fact, copy.deepcopy(fact)) for fact in correlator.close_all()]
    return emitted


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_facts_do_not_change_after_they_are_emitted(scenario: str) -> None:
    emitted = replay_keeping_copies(scenario)
    answered = [fact for fact, _ in emitted if isinstance(fact, CallAnswered)]
    ended = {
        fact.record.linkedid: fact.record for fact, _ in emitted if isinstance(fact, CallEnded)
    }
    assert ended
    # One answer fact per answered call: the loops below see every one.
    assert sorted(f.linkedid for f in answered) == sorted(
        linkedid for linkedid, record in ended.items() if record.answered
    )
    for fact, at_emission in emitted:
        assert fact == at_emission, fact
    # The snapshot agrees with the final record on what the answer settled.
    for fact in answered:
        record = ended[fact.linkedid]
        assert (fact.at, fact.answered_by, fact.picked_up) == (
            record.answered_at,
            record.answered_by,
            record.picked_up,
        )
        assert (fact.caller, fact.dialed, fact.started_at) == (
            record.caller,
            record.dialed,
            record.started_at,
        )
