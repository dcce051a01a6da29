"""The verdicts an export counts, as SQL expressions: as stored, or re-judged.

As stored (the default): the verdict columns written with each call (``p1_met``, ``rings``,
``apology_expected``, ``transfers.p4_met``), under the ``definitions_version`` they carry, so
a past month exports the same figures after a threshold changed. Re-judged (``--recompute``):
the same rules (``charter/rules.py``) applied in SQL to the stored facts (ring seconds,
transfer waits) with the current ``[charter]`` thresholds. Which calls are judged and who
a verdict is attributed to stay as stored: they do not depend on a threshold.

The rules count rings as ``floor(t / period) + 1``; with ``x = t / period`` computed by the
database exactly as Python computes it (IEEE division of the same doubles), ring ``<= m``
is ``x < m`` and ring ``>= a`` is ``x >= a - 1``: no floor, which SQLite may lack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, case, cast, false, func, literal, null

from call_monitor.config import CharterSettings
from call_monitor.store.models import calls_table, transfers_table

RING_BUCKETS = (1, 2, 3, 4)  # then 5 and more
Expression = ColumnElement[Any]


@dataclass(frozen=True, slots=True)
class Judgement:
    charter: CharterSettings
    recompute: bool

    def _x(self) -> Expression:
        """Rings elapsed, as a real number: ring seconds over the cadence's period."""
        return calls_table.c.ring_seconds / literal(self.charter.ring_period_seconds)

    def p1_met(self) -> Expression:
        stored = calls_table.c.p1_met
        if not self.recompute:
            return stored
        limit = self.charter.max_rings_p1
        return case((stored.is_(None), null()), else_=self._x() < literal(limit))

    def apology_expected(self) -> Expression:
        stored = calls_table.c.apology_expected
        if not self.recompute:
            return stored
        from_ring = self.charter.apology_from_ring - 1
        return case((stored.is_(None), null()), else_=self._x() >= literal(from_ring))

    def on_ring(self, ring: int) -> Expression:
        """Answered on ring ``ring`` (``RING_BUCKETS``), or on ring 5 or later (``5``)."""
        if not self.recompute:
            rings = calls_table.c.rings
            return rings >= ring if ring > RING_BUCKETS[-1] else rings == ring
        x = self._x()
        if ring > RING_BUCKETS[-1]:
            return x >= literal(ring - 1)
        return and_(x >= literal(ring - 1), x < literal(ring))

    def rings(self, dialect: str) -> Expression:
        """The ring answered on (or reached): as stored, or ``floor(x) + 1`` re-judged
        (SQLite: a cast truncates, which is the floor of a non-negative number)."""
        if not self.recompute:
            return calls_table.c.rings
        x = self._x()
        floor = func.floor(x) if dialect == "postgresql" else x
        return case((calls_table.c.ring_seconds.is_(None), null()), else_=cast(floor, Integer) + 1)

    def p4_met(self) -> Expression:
        stored = transfers_table.c.p4_met
        if not self.recompute:
            return stored
        wait = transfers_table.c.wait_seconds
        limit = literal(self.charter.transfer_limit_seconds)
        return case(
            (wait.is_not(None), wait < limit),
            (transfers_table.c.to_ext.is_not(None), false()),
            else_=null(),
        )


def count_if(condition: Expression) -> Expression:
    """``SUM(CASE WHEN condition THEN 1 ELSE 0 END)``: a conditional count, 0 when none."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
