"""Every column filled from a record's mapping, every value of a mapping stored or excluded
with a reason: a field added to a dataclass without a column fails here."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy import Column, Double, MetaData, Table, Text

from call_monitor.calls.model import LEG
from call_monitor.charter.judged import judged_values
from call_monitor.charter.obligations import CHANGE, OBLIGATION
from call_monitor.records import TIME, Shape
from call_monitor.store.models import CALLS, LEGS, TRANSFERS, VERDICTS, from_epoch
from call_monitor.store.obligations import CHANGES, OBLIGATIONS, change_row, obligation_row
from call_monitor.store.rows import TableMap
from call_monitor.store.writer import call_rows
from tests.test_callbacks_service import tracker_changes
from tests.test_store import transferred_call


def test_the_call_tables_are_filled_from_the_judged_calls_mapping() -> None:
    values = judged_values(*transferred_call())
    assert values["legs"]
    assert values["transfers"]
    assert values["checks"]
    assert CALLS.gaps(values) == []
    assert LEGS.gaps(values["legs"][0]) == []
    assert TRANSFERS.gaps(values["transfers"][0]) == []
    assert VERDICTS.gaps(values["checks"][0]) == []


def test_the_obligation_tables_are_filled_from_their_mappings() -> None:
    _, changes = tracker_changes()
    assert OBLIGATIONS.gaps(OBLIGATION.values(changes[-1].obligation)) == []
    assert CHANGES.gaps(CHANGE.values(changes[-1].change)) == []


@dataclass(slots=True)
class Parcel:
    code: str
    weight: float
    sent_at: float = field(metadata=TIME)
    colour: str = ""  # added to the dataclass, not to the table


PARCEL = Shape(Parcel)
PARCELS = Table(
    "parcels",
    MetaData(),
    Column("code", Text, primary_key=True),
    Column("kg", Double),
    Column("sent_at", Text),
    Column("batch", Text),
)


def test_a_field_without_a_column_is_a_gap_until_it_has_a_reason() -> None:
    parcels = TableMap(PARCELS, context=("batch",), renamed={"weight": "kg"})
    assert parcels.gaps(PARCEL.names) == ["parcels: no column for 'colour'"]
    excused = TableMap(
        PARCELS, context=("batch",), renamed={"weight": "kg"}, not_stored={"colour": "why"}
    )
    assert excused.gaps(PARCEL.names) == []


def test_a_column_nothing_fills_and_a_stale_reason_are_gaps() -> None:
    unfilled = TableMap(PARCELS, not_stored={"colour": "why"})
    assert unfilled.gaps(PARCEL.names) == [
        "parcels: no column for 'weight'",
        "parcels: nothing fills 'batch'",
        "parcels: nothing fills 'kg'",
    ]
    stale = TableMap(
        PARCELS,
        context=("batch", "code"),
        renamed={"weight": "kg"},
        not_stored={"colour": "why", "gone": "why"},
    )
    assert stale.gaps(PARCEL.names) == [
        "parcels: 'code' is both context and stored",
        "parcels: 'gone' not stored, yet not in the mapping or a column",
    ]


def test_a_row_is_the_mapping_in_the_tables_columns() -> None:
    parcels = TableMap(
        PARCELS, context=("batch",), renamed={"weight": "kg"}, not_stored={"colour": "why"}
    )
    values = PARCEL.values(Parcel("p1", 2.5, 10.0, "red"), str)
    assert parcels.row(values, batch="b") == {
        "code": "p1",
        "kg": 2.5,
        "sent_at": "10.0",
        "batch": "b",
    }
    with pytest.raises(TypeError, match="context"):
        parcels.row(values)
    with pytest.raises(KeyError, match="weight"):
        parcels.row({"code": "p1", "sent_at": "10.0"}, batch="b")
    row = parcels.row(values, batch="b")
    assert parcels.record(PARCEL, row, float, colour="red") == Parcel("p1", 2.5, 10.0, "red")
    with pytest.raises(TypeError, match="colour"):
        parcels.record(PARCEL, row, float)


def test_a_compiled_row_is_the_row_of_the_mapping() -> None:
    parcels = TableMap(
        PARCELS, context=("batch",), renamed={"weight": "kg"}, not_stored={"colour": "why"}
    )
    parcel = Parcel("p1", 2.5, 10.0, "red")
    row = parcels.compile(PARCEL, time=str)
    assert row(parcel, batch="b") == parcels.row(PARCEL.values(parcel, str), batch="b")
    assert list(row(parcel, batch="b")) == ["code", "kg", "sent_at", "batch"]
    with pytest.raises(TypeError, match="batch"):
        row(parcel)
    unfilled = TableMap(PARCELS, context=("batch",), not_stored={"colour": "why"})
    with pytest.raises(KeyError, match="kg"):
        unfilled.compile(PARCEL)


def test_call_rows_take_their_times_through_from_epoch() -> None:
    record, verdict = transferred_call()
    rows = call_rows(record, verdict)
    assert rows.call["started_at"] == from_epoch(record.started_at)
    assert [row["rang_at"] for row in rows.legs] == [from_epoch(leg.rang_at) for leg in record.legs]
    back = [LEGS.record(LEG, row, lambda at: at and at.timestamp()) for row in rows.legs]
    assert back == record.legs


def test_obligation_and_change_rows_read_back_as_they_were() -> None:
    _, changes = tracker_changes()
    for change in changes:
        obligation = change.obligation
        back = OBLIGATIONS.record(
            OBLIGATION,
            obligation_row(obligation, change.change.cause),
            missed_calls=obligation.missed_calls,
            history_length=obligation.history_length,
            kind_counts=obligation.kind_counts,
        )
        assert back == obligation
        assert CHANGES.record(CHANGE, change_row(change)) == change.change
