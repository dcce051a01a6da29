"""What a call says to the checklist: which items apply, and what the PBX measured. Pure.

:class:`CallFacts` is built by :func:`facts_of` from a judged call's one mapping: the
``judged_values`` of :mod:`call_monitor.charter.judged` for a call just judged, or the stored
call as :func:`call_monitor.store.load_call` reads it back (the same names: the store's
columns are that mapping's). So a checklist asks the same questions of a call whether it
comes from the pipeline or from the store.

When an item applies (:func:`applies`, the form's ``applies``):

- ``always``;
- ``answered_late``: the verdict expects an apology (answered on ring >= 3, P2);
- ``transferred``: the call has a transfer; ``attended_transfer``: one of them attended;
- ``other_department_transfer``: a transfer whose target is in another department (P5);
- ``colleague_answered``: picked up by a colleague (call pickup), or the dialled number is a
  staff member's own extension and somebody else answered (the owner was absent, P6).

Measured items (:func:`measured_answer`, the form's ``measure``): ``p1_rings`` is the
verdict's ``p1_met``; ``p7_hangup`` its ``p7_met``; ``p4_transfer_wait`` is "no" if any
judged transfer missed the limit, "yes" if every judged one met it. ``None`` when not
measured (an unknown hang-up side, no judged transfer): the supervisor answers it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from call_monitor.checklist.form import Condition, Form, Item, Measure
from call_monitor.directory import Directory

Answer = Literal["yes", "no", "na"]
ANSWERS: tuple[Answer, ...] = ("yes", "no", "na")


@dataclass(frozen=True, slots=True)
class TransferFacts:
    kind: str  # blind | attended
    other_department: bool | None
    p4_met: bool | None
    # The target's department (the directory's): the P5 item shows its direct number.
    to_department: str | None = None


@dataclass(frozen=True, slots=True)
class CallFacts:
    """The facts of one call the checklist reads."""

    linkedid: str
    answered: bool
    answered_by: str | None  # the staff member scored for the call
    department: str | None  # the call's department (the verdict's)
    rings: int | None
    apology_expected: bool | None
    p1_met: bool | None
    p7_met: bool | None
    colleague_answered: bool
    transfers: tuple[TransferFacts, ...] = ()


def facts_of(values: Mapping[str, Any], directory: Directory) -> CallFacts:
    """The facts in a judged call's mapping (``judged_values`` or a stored call)."""
    answered_by = values["answered_by"]
    dialed = values["dialed"]
    owner_absent = directory.is_staff(dialed) and answered_by not in (None, dialed)
    return CallFacts(
        linkedid=values["linkedid"],
        answered=values["answered_at"] is not None,
        answered_by=answered_by,
        department=values["department"],
        rings=values["rings"],
        apology_expected=values["apology_expected"],
        p1_met=values["p1_met"],
        p7_met=values["p7_met"],
        colleague_answered=bool(values["picked_up"]) or owner_absent,
        transfers=tuple(_transfer(t, directory) for t in values["transfers"]),
    )


def _transfer(values: Mapping[str, Any], directory: Directory) -> TransferFacts:
    return TransferFacts(
        values["kind"],
        values["other_department"],
        values["p4_met"],
        directory.department_of(values["to_ext"]),
    )


def applies(condition: Condition, facts: CallFacts) -> bool:
    transfers = facts.transfers
    match condition:
        case "always":
            return True
        case "answered_late":
            return facts.apology_expected is True
        case "transferred":
            return bool(transfers)
        case "attended_transfer":
            return any(t.kind == "attended" for t in transfers)
        case "other_department_transfer":
            return any(t.other_department is True for t in transfers)
        case "colleague_answered":
            return facts.colleague_answered


def measured_answer(measure: Measure, facts: CallFacts) -> Answer | None:
    """What the PBX says of a measured item, or ``None`` if it did not measure it."""
    match measure:
        case "p1_rings":
            return _yes_no(facts.p1_met)
        case "p7_hangup":
            return _yes_no(facts.p7_met)
        case "p4_transfer_wait":
            return _yes_no(_all_met(t.p4_met for t in facts.transfers))


def _all_met(results: Iterable[bool | None]) -> bool | None:
    judged = [met for met in results if met is not None]
    return all(judged) if judged else None


def _yes_no(met: bool | None) -> Answer | None:
    return None if met is None else "yes" if met else "no"


@dataclass(frozen=True, slots=True)
class Asked:
    """One item as the page shows it for one call."""

    item: Item
    applicable: bool
    prefilled: Answer | None  # the PBX's answer for a measured item, if measured


def ask(form: Form, facts: CallFacts) -> tuple[Asked, ...]:
    """Every item of the form for this call, in order: does it apply, what is pre-filled."""
    asked = []
    for item in form.items:
        applicable = applies(item.applies, facts)
        prefilled = (
            measured_answer(item.measure, facts)
            if applicable and item.measure is not None
            else None
        )
        asked.append(Asked(item, applicable, prefilled))
    return tuple(asked)
