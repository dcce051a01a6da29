"""The stored schema: one row per call, its legs, transfers and charter checks.

- ``calls``: what the correlator saw (:class:`~call_monitor.calls.model.CallRecord`) plus the
  call-level judgement (:class:`~call_monitor.charter.rules.CallVerdict`): ``judged``,
  ``rings``, ``p1_met``, ``apology_expected``, ``p7_met`` and the ``definitions_version`` they
  were judged under. One row per ``linkedid`` (the primary key): writing a call again replaces
  it and all its children.
- ``call_legs``: each phone's part in the call (:class:`~call_monitor.calls.model.Leg`), in the
  order of ``CallRecord.legs`` (``position`` from 0): the customer's line (``party`` customer,
  no ``extension``) and every staff phone, with when it rang, answered and hung up, the
  hang-up cause and whether it rang after the answer (a transfer target). The extensions that
  rang for the caller (``CallRecord.rang``) are derived from these rows, not stored.
- ``transfers``: the transfers, in order (``position`` from 0), with their P4/P5 judgement.
- ``verdicts``: one row per :class:`~call_monitor.charter.rules.Check` (what the charter counts):
  ``position`` is the check's ordinal among the call's checks of the same clause (0 for P1 and
  P7; P4/P5 count 0, 1, ... over the judged transfers).

Each table's rows are the records' mappings (``CALL``, ``LEG``, ... next to the dataclasses)
restricted to its columns: :data:`CALLS`, :data:`LEGS`, :data:`TRANSFERS`, :data:`VERDICTS`
(:class:`~call_monitor.store.rows.TableMap`) say which columns come from elsewhere and which
of the records' values have no column, and why.

Times are ``TIMESTAMP WITH TIME ZONE`` in UTC with microseconds. SQLite has no time zone
type: :class:`UtcDateTime` stores naive UTC there and gives back aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from call_monitor.store.rows import TableMap

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (naive UTC on SQLite, timestamptz elsewhere)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware datetimes only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - driver contract
            raise TypeError(f"unexpected datetime value {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def from_epoch(seconds: float | None) -> datetime | None:
    """Epoch seconds (the events' ``Timestamp``) as an aware UTC datetime, microseconds kept."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Call(Base):
    __tablename__ = "calls"

    linkedid: Mapped[str] = mapped_column(Text, primary_key=True)
    direction: Mapped[str] = mapped_column(Text)
    caller: Mapped[str] = mapped_column(Text)
    caller_name: Mapped[str] = mapped_column(Text)
    dialed: Mapped[str] = mapped_column(Text)
    staff: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ring_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ring_ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_by: Mapped[str | None] = mapped_column(Text)
    conference_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    picked_up: Mapped[bool] = mapped_column(Boolean)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    missed: Mapped[bool] = mapped_column(Boolean)
    missed_reason: Mapped[str | None] = mapped_column(Text)
    after_dial: Mapped[str | None] = mapped_column(Text)
    voicemail_left: Mapped[bool] = mapped_column(Boolean)
    hangup_first: Mapped[str] = mapped_column(Text)
    talked: Mapped[bool] = mapped_column(Boolean)
    incomplete: Mapped[bool] = mapped_column(Boolean)
    ring_seconds: Mapped[float | None] = mapped_column(Double)
    queue_joined_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    queue_wait_seconds: Mapped[float | None] = mapped_column(Double)
    # The call-level judgement (CallVerdict), under definitions_version.
    definitions_version: Mapped[str] = mapped_column(Text)
    judged: Mapped[bool] = mapped_column(Boolean)
    rings: Mapped[int | None] = mapped_column(Integer)
    p1_met: Mapped[bool | None] = mapped_column(Boolean)
    apology_expected: Mapped[bool | None] = mapped_column(Boolean)
    p7_met: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (
        # A month in order, oldest or newest first (the export, the web's calls list; 0008).
        Index("ix_calls_started_at_linkedid", "started_at", "linkedid"),
        Index("ix_calls_department_started_at", "department", "started_at"),
        # A staff member's answered calls of a month: checklist sampling and progress (0006).
        Index("ix_calls_answered_by_started_at", "answered_by", "started_at"),
    )


class LegRow(Base):
    __tablename__ = "call_legs"

    linkedid: Mapped[str] = mapped_column(
        Text, ForeignKey("calls.linkedid", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    party: Mapped[str] = mapped_column(Text)
    extension: Mapped[str | None] = mapped_column(Text)
    rang_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    hangup_cause: Mapped[str | None] = mapped_column(Text)
    after_answer: Mapped[bool] = mapped_column(Boolean)
    conference: Mapped[bool] = mapped_column(Boolean)


class TransferRow(Base):
    __tablename__ = "transfers"

    linkedid: Mapped[str] = mapped_column(
        Text, ForeignKey("calls.linkedid", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    from_ext: Mapped[str | None] = mapped_column(Text)
    to_ext: Mapped[str | None] = mapped_column(Text)
    external: Mapped[bool] = mapped_column(Boolean)
    completed: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    target_rang_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    target_answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    connected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    wait_seconds: Mapped[float | None] = mapped_column(Double)
    target_ring_seconds: Mapped[float | None] = mapped_column(Double)
    other_department: Mapped[bool | None] = mapped_column(Boolean)
    p4_met: Mapped[bool | None] = mapped_column(Boolean)


class VerdictRow(Base):
    __tablename__ = "verdicts"

    linkedid: Mapped[str] = mapped_column(
        Text, ForeignKey("calls.linkedid", ondelete="CASCADE"), primary_key=True
    )
    clause: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    definitions_version: Mapped[str] = mapped_column(Text, primary_key=True)
    met: Mapped[bool] = mapped_column(Boolean)
    staff: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_verdicts_clause_staff", "clause", "staff"),
        Index("ix_verdicts_clause_department", "clause", "department"),
    )


calls_table: Table = Base.metadata.tables["calls"]
call_legs_table: Table = Base.metadata.tables["call_legs"]
transfers_table: Table = Base.metadata.tables["transfers"]
verdicts_table: Table = Base.metadata.tables["verdicts"]
CHILD_TABLES: tuple[Table, ...] = (call_legs_table, transfers_table, verdicts_table)

# A judged call's mapping (charter.judged.judged_values) to its rows.
CALLS = TableMap(
    calls_table,
    not_stored={
        "legs": "rows of call_legs",
        "transfers": "rows of transfers",
        "checks": "rows of verdicts",
        "rang": "derived from the call_legs rows when read (load_call)",
        "conference": "derived from the call_legs rows (their conference flag)",
    },
)
LEGS = TableMap(call_legs_table, context=("linkedid", "position"))
TRANSFERS = TableMap(transfers_table, context=("linkedid", "position"))
# position: the check's ordinal among the call's checks of its clause.
VERDICTS = TableMap(verdicts_table, context=("linkedid", "position", "definitions_version"))
