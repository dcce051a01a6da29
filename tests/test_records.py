"""records.Shape: a dataclass's plain mapping read from its fields, and report()."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import pytest

from call_monitor.calls.model import CALL, LEG, TRANSFER, CallRecord, Leg
from call_monitor.charter.obligations import CHANGE, OBLIGATION
from call_monitor.records import (
    TIME,
    VALUE,
    Shape,
    compile_mapping,
    merged,
    report,
    tuple_getter,
)


@dataclass(frozen=True, slots=True)
class Visit:
    who: str
    came_at: float = field(metadata=TIME)
    left_at: float | None = field(default=None, metadata=TIME)
    note: str = ""
    seen: bool = field(default=False, init=False)

    @property
    def stay(self) -> float | None:
        return None if self.left_at is None else self.left_at - self.came_at

    @property
    def left_at_again(self) -> float | None:
        return self.left_at


VISIT = Shape(Visit, {"stay": VALUE, "left_at_again": TIME})


def test_names_are_the_fields_in_order_then_the_derived_values() -> None:
    assert VISIT.names == ("who", "came_at", "left_at", "note", "seen", "stay", "left_at_again")
    assert VISIT.times == {"came_at", "left_at", "left_at_again"}
    assert VISIT.init == ("who", "came_at", "left_at", "note")


def test_values_write_only_the_times_through_the_converter() -> None:
    visit = Visit("201", 10.0, 25.5, "hello")
    assert VISIT.values(visit) == {
        "who": "201",
        "came_at": 10.0,
        "left_at": 25.5,
        "note": "hello",
        "seen": False,
        "stay": 15.5,
        "left_at_again": 25.5,
    }
    assert VISIT.values(visit, lambda at: f"t={at}") == {
        "who": "201",
        "came_at": "t=10.0",
        "left_at": "t=25.5",
        "note": "hello",
        "seen": False,
        "stay": 15.5,
        "left_at_again": "t=25.5",
    }


def test_build_gives_the_record_back() -> None:
    visit = Visit("201", 10.0, None, "hello")
    written = VISIT.values(visit, lambda at: None if at is None else str(at))
    assert VISIT.build(written, lambda at: None if at is None else float(at)) == visit
    assert VISIT.build({"came_at": 1.0, "left_at": None, "note": ""}, who="x") == Visit("x", 1.0)
    with pytest.raises(KeyError):
        VISIT.build({"who": "201", "came_at": 1.0})


@pytest.mark.parametrize("name", ["who", "missing", "__init__"])
def test_a_derived_value_must_be_a_property(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        Shape(Visit, {name: VALUE})


def test_report_keeps_the_order_given_and_renames_pairs() -> None:
    values = {"a": 1, "b": 2, "c": 3}
    assert list(report(values, ("c", ("z", "a")))) == ["c", "z"]
    assert report(values, ("c", ("z", "a"))) == {"c": 3, "z": 1}
    with pytest.raises(KeyError):
        report(values, ("d",))


@dataclass(frozen=True, slots=True)
class Stamp:
    who: str
    left_at: float = field(metadata=TIME)

    @property
    def costly(self) -> str:
        raise AssertionError("read although not kept")


STAMP = Shape(Stamp, {"costly": VALUE})


def test_a_compiled_mapping_is_the_merged_mappings_report() -> None:
    visit, stamp = Visit("201", 10.0, 25.5, "hello"), Stamp("202", 30.0)
    order = ("who", ("came", "came_at"), "left_at", "stay", "desk")
    shapes = (VISIT, Shape(Stamp))
    mapping = compile_mapping(shapes, order, given=("desk",), time=str)
    expected = report(merged(shapes, (visit, stamp), str) | {"desk": 7}, order)
    assert list(mapping(visit, stamp, desk=7).items()) == list(expected.items())
    # The later shape's who and left_at.
    assert mapping(visit, stamp, desk=7) == {
        "who": "202",
        "came": "10.0",
        "left_at": "30.0",
        "stay": 15.5,
        "desk": 7,
    }
    assert compile_mapping(shapes, order, given=("desk",), time=str) is mapping
    with pytest.raises(TypeError, match="desk"):
        mapping(visit, stamp)


def test_a_compiled_mapping_reads_only_what_it_keeps() -> None:
    stamp = Stamp("202", 30.0)
    with pytest.raises(AssertionError, match="not kept"):
        STAMP.values(stamp)
    assert compile_mapping((STAMP,), ("left_at",))(stamp) == {"left_at": 30.0}


def test_a_compiled_mapping_refuses_what_it_cannot_write() -> None:
    with pytest.raises(KeyError, match="nowhere"):
        compile_mapping((VISIT,), ("who", "nowhere"))
    for given in ("class", "_time", "not a name"):
        with pytest.raises(ValueError, match=repr(given)):
            compile_mapping((VISIT,), ("who",), given=(given,))


def test_the_model_marks_its_times() -> None:
    assert CALL.times == {
        "started_at",
        "queue_joined_at",
        "ring_started_at",
        "ring_ended_at",
        "answered_at",
        "conference_at",
        "ended_at",
    }
    assert LEG.times == {"rang_at", "answered_at", "ended_at"}
    assert TRANSFER.times == {
        "started_at",
        "target_rang_at",
        "target_answered_at",
        "connected_at",
    }
    assert OBLIGATION.times == {
        "created_at",
        "due_at",
        "reminder_at",
        "closed_at",
        "reminded_at",
        "overdue_at",
    }
    assert CHANGE.times == {"at"}


def test_a_calls_mapping_holds_its_derived_values() -> None:
    record = CallRecord(
        "1.1",
        100.0,
        ring_started_at=101.0,
        answered_at=104.5,
        legs=[Leg("staff", "202", rang_at=101.0), Leg("staff", "201", rang_at=100.5)],
    )
    values = CALL.values(record)
    assert values["ring_seconds"] == 3.5
    assert values["rang"] == ["201", "202"]
    assert values["legs"] is record.legs  # shallow: the nested records are mapped by their own


@pytest.mark.parametrize(
    ("answered_at", "incomplete", "outcome"),
    [(None, False, "missed"), (5.0, False, "answered"), (5.0, True, "incomplete")],
)
def test_a_calls_outcome(answered_at: float | None, incomplete: bool, outcome: str) -> None:
    record = CallRecord("1.1", 0.0, answered_at=answered_at, incomplete=incomplete)
    assert record.outcome == outcome


@pytest.mark.parametrize("keys", [(), ("a",), ("a", "c")])
def test_tuple_getter_gives_a_tuple_of_any_number_of_keys(keys: tuple[str, ...]) -> None:
    get = tuple_getter(operator.itemgetter, keys)
    assert get({"a": 1, "b": 2, "c": 3}) == tuple({"a": 1, "c": 3}[key] for key in keys)
