"""A submitted checklist checked against the form and the call, and scored. Pure.

Rules (:func:`evaluate`):

- every item is answered ``yes``, ``no`` or ``na`` (not applicable / cannot tell), with an
  optional comment (at most :data:`MAX_COMMENT` characters);
- an item that does not apply to the call is ``na`` (left out, or given as ``na``; a yes or
  no there is refused: the call has no such moment);
- a measured item is pre-filled with the PBX's answer; left out, it keeps it; answered
  otherwise, it is an override, refused without a comment, and stored as overridden;
- every other applicable item must be answered;
- ``score`` = 100 x (sum of the weights answered yes) / (sum of the weights answered yes or
  no), rounded to 2 decimals; ``None`` when nothing was answered yes or no;
- ``passed`` is false as soon as one critical item is answered no, whatever the score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from call_monitor.checklist.facts import ANSWERS, Answer, CallFacts, ask
from call_monitor.checklist.form import Form, Item

MAX_COMMENT = 2000


class ChecklistError(ValueError):
    """A submission that cannot be stored; ``problems``: one per item, the item id first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Given:
    """A supervisor's answer to one item."""

    answer: Answer
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item_id: str
    answer: Answer
    comment: str
    measured: bool  # pre-filled from the PBX
    overridden: bool  # measured, and answered otherwise (with a comment)


@dataclass(frozen=True, slots=True)
class Scored:
    items: tuple[ScoredItem, ...]  # in the form's order
    score: float | None  # 0-100; None when no item was answered yes or no
    passed: bool  # no critical item answered no


def score(items: Mapping[str, Answer], form: Form) -> tuple[float | None, bool]:
    """The score and the pass mark of ``items`` (item id -> answer) on ``form``."""
    counted = yes = 0.0
    passed = True
    for item_id, answer in items.items():
        item = form.item(item_id)
        if answer == "na":
            continue
        counted += item.weight
        if answer == "yes":
            yes += item.weight
        elif item.critical:
            passed = False
    return (None if counted == 0 else round(100 * yes / counted, 2)), passed


def evaluate(form: Form, facts: CallFacts, given: Mapping[str, Given]) -> Scored:
    """The checked, scored checklist; :class:`ChecklistError` listing every problem."""
    problems = [
        f"{item_id}: no such item in form {form.id}"
        for item_id in given.keys() - set(form.item_ids)
    ]
    items: list[ScoredItem] = []
    for asked in ask(form, facts):
        item, answer = asked.item, given.get(asked.item.id)
        try:
            items.append(_item(item, asked.applicable, asked.prefilled, answer))
        except ValueError as exc:
            problems.append(f"{item.id}: {exc}")
    if problems:
        raise ChecklistError(sorted(problems))
    total, passed = score({i.item_id: i.answer for i in items}, form)
    return Scored(tuple(items), total, passed)


def _item(
    item: Item, applicable: bool, prefilled: Answer | None, given: Given | None
) -> ScoredItem:
    if given is not None:
        if given.answer not in ANSWERS:
            raise ValueError(f"answer {given.answer!r} is not one of {', '.join(ANSWERS)}")
        if len(given.comment) > MAX_COMMENT:
            raise ValueError(f"comment longer than {MAX_COMMENT} characters")
    comment = "" if given is None else given.comment.strip()
    if not applicable:
        if given is not None and given.answer != "na":
            raise ValueError("does not apply to this call: na only")
        return ScoredItem(item.id, "na", comment, item.measured, overridden=False)
    if given is None:
        if prefilled is None:
            raise ValueError("not answered")
        return ScoredItem(item.id, prefilled, "", measured=True, overridden=False)
    overridden = prefilled is not None and given.answer != prefilled
    if overridden and not comment:
        raise ValueError(f"measured {prefilled!r} by the PBX: a different answer needs a comment")
    return ScoredItem(item.id, given.answer, comment, item.measured, overridden)
