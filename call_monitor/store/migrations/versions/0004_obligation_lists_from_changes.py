"""Obligations: drop the ``calls`` and ``attempts`` JSON lists, kept by obligation_changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-01-04 00:00:00

The tracker's snapshots no longer hold the joined calls' linkedids and the attempts (a list
rewritten whole on every change grows without bound); the ``obligation_changes`` rows, which
have always been written alongside, are the record of both: a ``created`` or ``joined`` row
with a ``call_id`` is a missed call, an ``attempt`` row an attempt (its ``at``, ``by`` and
``call_id``). So nothing is lost, and the data is read back from those rows.

Downgrade puts the columns back, rebuilt from those rows in the 0003 format (left with a
server default of ``'[]'``, which 0003 did not have: harmless, and gone again on upgrade).

Kept by hand in step with call_monitor/store/obligations.py (the migration test compares the
migrated database with the models on SQLite and PostgreSQL). SQLite drops a column in place
(``ALTER TABLE ... DROP COLUMN``, SQLite 3.35 or newer), without recreating the table: a
recreated ``obligations`` would cascade-delete its history under ``foreign_keys=ON``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from call_monitor.store.models import UtcDateTime
from call_monitor.timefmt import SEOUL

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("obligations", "calls")
    op.drop_column("obligations", "attempts")


def downgrade() -> None:
    for name in ("calls", "attempts"):
        op.add_column(
            "obligations",
            sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        )
    obligations = sa.table(
        "obligations", sa.column("id", sa.Text()), sa.column("calls"), sa.column("attempts")
    )
    changes = sa.table(
        "obligation_changes",
        sa.column("obligation_id", sa.Text()),
        sa.column("position", sa.Integer()),
        sa.column("at", UtcDateTime()),
        sa.column("kind", sa.Text()),
        sa.column("call_id", sa.Text()),
        sa.column("by", sa.Text()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(changes)
        .where(changes.c.kind.in_(["created", "joined", "attempt"]))
        .where(changes.c.call_id.is_not(None))
        .order_by(changes.c.obligation_id, changes.c.position)
    )
    calls: dict[str, list[str]] = {}
    attempts: dict[str, list[dict[str, str | None]]] = {}
    for row in rows:
        if row.kind == "attempt":
            at = row.at.astimezone(SEOUL).isoformat()
            attempts.setdefault(row.obligation_id, []).append(
                {"at": at, "by": row.by, "linkedid": row.call_id}
            )
        else:
            calls.setdefault(row.obligation_id, []).append(row.call_id)
    for obligation_id in calls.keys() | attempts.keys():
        bind.execute(
            obligations.update()
            .where(obligations.c.id == obligation_id)
            .values(
                calls=json.dumps(calls.get(obligation_id, []), ensure_ascii=False),
                attempts=json.dumps(attempts.get(obligation_id, []), ensure_ascii=False),
            )
        )
