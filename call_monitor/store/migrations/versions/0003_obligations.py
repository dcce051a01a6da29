"""Callback obligations (P6, V4): obligations and their history, obligation_changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03 00:00:00

Kept by hand in step with call_monitor/store/obligations.py (the migration test compares the
migrated database with the models on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "obligations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("owner_kind", sa.Text(), nullable=False),
        sa.Column("owner_department", sa.Text(), nullable=True),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("raw_number", sa.Text(), nullable=False),
        sa.Column("caller_name", sa.Text(), nullable=False),
        sa.Column("matter", sa.Text(), nullable=False),
        sa.Column("taken_by", sa.Text(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("due_at", _when(), nullable=False),
        sa.Column("reminder_at", _when(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("calls", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Text(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("reminded_at", _when(), nullable=True),
        sa.Column("overdue_at", _when(), nullable=True),
        sa.Column("closed_at", _when(), nullable=True),
        sa.Column("closed_cause", sa.Text(), nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("closing_call", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_obligations"),
    )
    op.create_index("ix_obligations_state", "obligations", ["state"])
    op.create_index("ix_obligations_owner_state", "obligations", ["owner", "state"])
    op.create_index(
        "ix_obligations_owner_department_state", "obligations", ["owner_department", "state"]
    )
    op.create_index("ix_obligations_number", "obligations", ["number"])

    op.create_table(
        "obligation_changes",
        sa.Column("obligation_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state_after", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=True),
        sa.Column("by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("obligation_id", "position", name="pk_obligation_changes"),
        sa.ForeignKeyConstraint(
            ["obligation_id"],
            ["obligations.id"],
            name="fk_obligation_changes_obligation_id_obligations",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_obligation_changes_at", "obligation_changes", ["at"])


def downgrade() -> None:
    op.drop_index("ix_obligation_changes_at", table_name="obligation_changes")
    op.drop_table("obligation_changes")
    op.drop_index("ix_obligations_number", table_name="obligations")
    op.drop_index("ix_obligations_owner_department_state", table_name="obligations")
    op.drop_index("ix_obligations_owner_state", table_name="obligations")
    op.drop_index("ix_obligations_state", table_name="obligations")
    op.drop_table("obligations")
