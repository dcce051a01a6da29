"""Small read helpers over the store (tests, the web pages and the exports use them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.calls.model import LEG, CallRecord
from call_monitor.store.models import (
    LEGS,
    call_legs_table,
    calls_table,
    transfers_table,
    verdicts_table,
)


async def count_calls(engine: AsyncEngine) -> int:
    """How many calls are stored."""
    async with engine.connect() as conn:
        result = await conn.execute(select(func.count()).select_from(calls_table))
        return int(result.scalar_one())


async def load_call(engine: AsyncEngine, linkedid: str) -> dict[str, Any] | None:
    """One stored call as plain data, or ``None``.

    The keys are the ``calls`` columns (times as aware UTC datetimes) plus: ``legs`` (dicts
    of the ``call_legs`` columns without ``linkedid``, in order), ``rang`` (the staff
    extensions rung for the caller before the answer, first to ring first: derived from the
    legs exactly as :attr:`CallRecord.rang <call_monitor.calls.model.CallRecord.rang>` is),
    ``conference`` (the staff extensions that joined the customer's conference, the same way),
    ``transfers`` (dicts of the ``transfers`` columns without ``linkedid``, in order) and
    ``checks`` (dicts of the ``verdicts`` columns without ``linkedid``, by clause then
    position).
    """
    async with engine.connect() as conn:
        call = (
            (await conn.execute(select(calls_table).where(calls_table.c.linkedid == linkedid)))
            .mappings()
            .one_or_none()
        )
        if call is None:
            return None
        legs = await conn.execute(
            select(call_legs_table)
            .where(call_legs_table.c.linkedid == linkedid)
            .order_by(call_legs_table.c.position)
        )
        transfers = await conn.execute(
            select(transfers_table)
            .where(transfers_table.c.linkedid == linkedid)
            .order_by(transfers_table.c.position)
        )
        checks = await conn.execute(
            select(verdicts_table)
            .where(verdicts_table.c.linkedid == linkedid)
            .order_by(
                verdicts_table.c.clause,
                verdicts_table.c.position,
                verdicts_table.c.definitions_version,
            )
        )
        result: dict[str, Any] = dict(call)
        result["legs"] = [_without_linkedid(row) for row in legs.mappings()]
        from_legs = _from_legs(result["legs"])
        result["rang"] = from_legs.rang
        result["conference"] = from_legs.conference
        result["transfers"] = [_without_linkedid(row) for row in transfers.mappings()]
        result["checks"] = [_without_linkedid(row) for row in checks.mappings()]
        return result


def _without_linkedid(row: Any) -> dict[str, Any]:
    return {key: value for key, value in dict(row).items() if key != "linkedid"}


def _from_legs(legs: list[dict[str, Any]]) -> CallRecord:
    """A record of the stored legs alone, for what ``CallRecord`` derives from its legs
    (``rang``, ``conference``): the model's own derivations, not copies of them."""
    return CallRecord(
        linkedid="", started_at=0.0, legs=[LEGS.record(LEG, leg, _epoch) for leg in legs]
    )


def _epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()
