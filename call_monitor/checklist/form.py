"""The checklist form as data: parsed from TOML text and validated. Pure.

A form has an ``id`` and a ``version`` (each stored checklist pins both), its stages in order
(맞이 greeting, 응대 handling, 마무리 closing by default) and its items in order. An item:

- ``id``: unique, stable across versions (the metrics label answers with it);
- ``stage``: one of the form's stages; ``clause``: the charter clause, ``P1`` .. ``P7``;
- ``ko`` / ``en``: the question in Korean (shown by default) and English;
- ``weight`` (> 0) and ``critical`` (a "no" fails the call whatever the score);
- ``applies``: when the item is asked, one of :data:`CONDITIONS` (a small closed vocabulary,
  evaluated by :func:`call_monitor.checklist.facts.applies`);
- ``measure``: for an item the PBX measures, which measurement pre-fills it, one of
  :data:`MEASURES`; absent for the items only a listener can judge.

:func:`parse_form` refuses a bad form with :class:`FormError`, every problem named by its
place (``items[3].weight: ...``).
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Condition = Literal[
    "always",
    "answered_late",  # answered on ring >= charter.apology_from_ring (3): P2 expected
    "transferred",  # the caller was transferred (any kind)
    "attended_transfer",  # an attended transfer: the colleague could be briefed (P4)
    "other_department_transfer",  # a transfer to another department (P5)
    "colleague_answered",  # picked up by a colleague, or the dialled owner did not answer (P6)
]
CONDITIONS: tuple[Condition, ...] = get_args(Condition)

Measure = Literal[
    "p1_rings",  # answered within the P1 rings (CallVerdict.p1_met)
    "p4_transfer_wait",  # every transfer connected within the P4 limit (TransferVerdict.p4_met)
    "p7_hangup",  # the caller hung up first (CallVerdict.p7_met)
]
MEASURES: tuple[Measure, ...] = get_args(Measure)

FormClause = Literal["P1", "P2", "P3", "P4", "P5", "P6", "P7"]

# An identifier: a metric label value and a form field name, so short and plain.
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Words = Annotated[str, Field(min_length=1, max_length=500)]


class FormError(ValueError):
    """A form that cannot be used; ``problems``: one line each, the place first; ``where``
    (the setting and the file) heads the message once."""

    def __init__(self, problems: list[str], where: str = "") -> None:
        super().__init__(f"{where}: " * bool(where) + "; ".join(problems))
        self.problems = problems


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("ko", "en", check_fields=False)
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text


class Stage(_Part):
    id: Identifier
    ko: Words
    en: Words


class Item(_Part):
    id: Identifier
    stage: Identifier
    clause: FormClause
    ko: Words
    en: Words
    weight: float = Field(gt=0, le=100)
    critical: bool = False
    applies: Condition = "always"
    measure: Measure | None = None

    @property
    def measured(self) -> bool:
        return self.measure is not None


class Form(_Part):
    id: Identifier
    version: Annotated[str, Field(min_length=1, max_length=40)]
    stages: tuple[Stage, ...] = Field(min_length=1)
    items: tuple[Item, ...] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> Form:
        problems = [
            *(f"stages: id {i!r} twice" for i in _twice(s.id for s in self.stages)),
            *(f"items: id {i!r} twice" for i in _twice(i.id for i in self.items)),
        ]
        stage_ids = {stage.id for stage in self.stages}
        problems += [
            f"items[{n}].stage: {item.stage!r} is not one of the stages"
            for n, item in enumerate(self.items)
            if item.stage not in stage_ids
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def item(self, item_id: str) -> Item:
        """The item ``item_id``; ``KeyError`` if the form has none."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)


def _twice(ids: Iterable[str]) -> list[str]:
    return [value for value, count in Counter(ids).items() if count > 1]


def parse_form(text: str) -> Form:
    """The form in TOML ``text``; :class:`FormError` naming each problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormError([f"not TOML: {exc}"]) from exc
    try:
        return Form.model_validate(data)
    except ValidationError as exc:
        raise FormError(
            [
                f"{_place(error['loc'])}: {error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors(include_url=False, include_input=False)
            ]
        ) from exc


def _place(location: tuple[int | str, ...]) -> str:
    """``('items', 3, 'weight')`` as ``items[3].weight``; the form itself as ``form``."""
    place = ""
    for part in location:
        place += f"[{part}]" if isinstance(part, int) else f".{part}" if place else str(part)
    return place or "form"
