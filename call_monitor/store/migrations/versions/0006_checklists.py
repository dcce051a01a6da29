"""The supervisors' checklists: revisions, answers, acknowledgements, disputes; an index
on ``calls (answered_by, started_at)`` for sampling and progress.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 00:00:00

Kept by hand in step with call_monitor/store/checklists.py (the migration test compares the
migrated database with the models on SQLite and PostgreSQL). No foreign key to ``calls``:
the writer replaces a call's row when it writes the call again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ["linkedid", "revision"]


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("linkedid", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
    ]


def _of_revision(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        _KEY,
        [f"checklist_revisions.{column}" for column in _KEY],
        name=f"fk_{table}_linkedid_checklist_revisions",
    )


def upgrade() -> None:
    # Sampling's candidates and a department's progress: a staff member's calls of a month.
    op.create_index("ix_calls_answered_by_started_at", "calls", ["answered_by", "started_at"])
    op.create_table(
        "checklist_revisions",
        *_key_columns(),
        sa.Column("form_id", sa.Text(), nullable=False),
        sa.Column("form_version", sa.Text(), nullable=False),
        sa.Column("supervisor", sa.Text(), nullable=False),
        sa.Column("submitted_at", _when(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("staff", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("call_started_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, name="pk_checklist_revisions"),
    )
    op.create_index(
        "ix_checklist_revisions_staff_call_started_at",
        "checklist_revisions",
        ["staff", "call_started_at"],
    )
    op.create_index(
        "ix_checklist_revisions_department_call_started_at",
        "checklist_revisions",
        ["department", "call_started_at"],
    )
    op.create_table(
        "checklist_answers",
        *_key_columns(),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("measured", sa.Boolean(), nullable=False),
        sa.Column("overridden", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, "item_id", name="pk_checklist_answers"),
        _of_revision("checklist_answers"),
        sa.CheckConstraint("answer IN ('yes', 'no', 'na')", name="ck_checklist_answers_answer"),
    )
    op.create_table(
        "checklist_acknowledgements",
        *_key_columns(),
        sa.Column("staff", sa.Text(), nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, name="pk_checklist_acknowledgements"),
        _of_revision("checklist_acknowledgements"),
    )
    op.create_table(
        "checklist_disputes",
        *_key_columns(),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("staff", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("opened_at", _when(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("resolved_at", _when(), nullable=True),
        sa.Column("resolution_comment", sa.Text(), nullable=True),
        sa.Column("resolving_revision", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint(*_KEY, name="pk_checklist_disputes"),
        _of_revision("checklist_disputes"),
    )
    op.create_index("ix_checklist_disputes_resolution", "checklist_disputes", ["resolution"])


def downgrade() -> None:
    op.drop_index("ix_checklist_disputes_resolution", table_name="checklist_disputes")
    op.drop_table("checklist_disputes")
    op.drop_table("checklist_acknowledgements")
    op.drop_table("checklist_answers")
    op.drop_index(
        "ix_checklist_revisions_department_call_started_at", table_name="checklist_revisions"
    )
    op.drop_index("ix_checklist_revisions_staff_call_started_at", table_name="checklist_revisions")
    op.drop_table("checklist_revisions")
    op.drop_index("ix_calls_answered_by_started_at", table_name="calls")
