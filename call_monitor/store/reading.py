"""Small read helpers over the store (tests, the web pages and the exports use them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.store.models import (
    call_rang_table,
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

    The keys are the ``calls`` columns (times as aware UTC datetimes) plus:
    ``rang`` (the extensions that rang, in order), ``transfers`` (dicts of the ``transfers``
    columns without ``linkedid``, in order) and ``checks`` (dicts of the ``verdicts`` columns
    without ``linkedid``, by clause then position).
    """
    async with engine.connect() as conn:
        call = (
            (await conn.execute(select(calls_table).where(calls_table.c.linkedid == linkedid)))
            .mappings()
            .one_or_none()
        )
        if call is None:
            return None
        rang = await conn.execute(
            select(call_rang_table.c.extension)
            .where(call_rang_table.c.linkedid == linkedid)
            .order_by(call_rang_table.c.position)
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
        result["rang"] = list(rang.scalars())
        result["transfers"] = [_without_linkedid(row) for row in transfers.mappings()]
        result["checks"] = [_without_linkedid(row) for row in checks.mappings()]
        return result


def _without_linkedid(row: Any) -> dict[str, Any]:
    return {key: value for key, value in dict(row).items() if key != "linkedid"}
