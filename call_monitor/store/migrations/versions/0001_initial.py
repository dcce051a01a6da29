"""Initial schema: calls, call_legs, transfers, verdicts.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00

Kept by hand in step with call_monitor/store/models.py (tests/test_store.py compares the
migrated database with the models on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _call_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["linkedid"], ["calls.linkedid"], name=f"fk_{table}_linkedid_calls", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("linkedid", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("caller_name", sa.Text(), nullable=False),
        sa.Column("dialed", sa.Text(), nullable=False),
        sa.Column("staff", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("started_at", _when(), nullable=False),
        sa.Column("ring_started_at", _when(), nullable=True),
        sa.Column("answered_at", _when(), nullable=True),
        sa.Column("answered_by", sa.Text(), nullable=True),
        sa.Column("picked_up", sa.Boolean(), nullable=False),
        sa.Column("ended_at", _when(), nullable=True),
        sa.Column("missed", sa.Boolean(), nullable=False),
        sa.Column("missed_reason", sa.Text(), nullable=True),
        sa.Column("hangup_first", sa.Text(), nullable=False),
        sa.Column("incomplete", sa.Boolean(), nullable=False),
        sa.Column("ring_seconds", sa.Double(), nullable=True),
        sa.Column("definitions_version", sa.Text(), nullable=False),
        sa.Column("judged", sa.Boolean(), nullable=False),
        sa.Column("rings", sa.Integer(), nullable=True),
        sa.Column("p1_met", sa.Boolean(), nullable=True),
        sa.Column("apology_expected", sa.Boolean(), nullable=True),
        sa.Column("p7_met", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("linkedid", name="pk_calls"),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_department_started_at", "calls", ["department", "started_at"])

    op.create_table(
        "call_legs",
        sa.Column("linkedid", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("party", sa.Text(), nullable=False),
        sa.Column("extension", sa.Text(), nullable=True),
        sa.Column("rang_at", _when(), nullable=True),
        sa.Column("answered_at", _when(), nullable=True),
        sa.Column("ended_at", _when(), nullable=True),
        sa.Column("hangup_cause", sa.Text(), nullable=True),
        sa.Column("after_answer", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("linkedid", "position", name="pk_call_legs"),
        _call_fk("call_legs"),
    )

    op.create_table(
        "transfers",
        sa.Column("linkedid", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("from_ext", sa.Text(), nullable=True),
        sa.Column("to_ext", sa.Text(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("started_at", _when(), nullable=False),
        sa.Column("target_rang_at", _when(), nullable=True),
        sa.Column("target_answered_at", _when(), nullable=True),
        sa.Column("connected_at", _when(), nullable=True),
        sa.Column("wait_seconds", sa.Double(), nullable=True),
        sa.Column("target_ring_seconds", sa.Double(), nullable=True),
        sa.Column("other_department", sa.Boolean(), nullable=True),
        sa.Column("p4_met", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("linkedid", "position", name="pk_transfers"),
        _call_fk("transfers"),
    )

    op.create_table(
        "verdicts",
        sa.Column("linkedid", sa.Text(), nullable=False),
        sa.Column("clause", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("definitions_version", sa.Text(), nullable=False),
        sa.Column("met", sa.Boolean(), nullable=False),
        sa.Column("staff", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "linkedid", "clause", "position", "definitions_version", name="pk_verdicts"
        ),
        _call_fk("verdicts"),
    )
    op.create_index("ix_verdicts_clause_staff", "verdicts", ["clause", "staff"])
    op.create_index("ix_verdicts_clause_department", "verdicts", ["clause", "department"])


def downgrade() -> None:
    op.drop_index("ix_verdicts_clause_department", table_name="verdicts")
    op.drop_index("ix_verdicts_clause_staff", table_name="verdicts")
    op.drop_table("verdicts")
    op.drop_table("transfers")
    op.drop_table("call_legs")
    op.drop_index("ix_calls_department_started_at", table_name="calls")
    op.drop_index("ix_calls_started_at", table_name="calls")
    op.drop_table("calls")
