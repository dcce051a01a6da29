"""Indexes for reading a month in order (issue 11's export speed).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 00:00:00

- ``calls (started_at, linkedid)`` replaces ``calls (started_at)``: a month's calls in the
  export's order (and the web's calls list, newest first) come from the index, with no
  sort of the whole month in the database.
- ``obligation_changes (call_id)``: the missed calls' obligations found by their call
  (SQLite built an index of its own for each export).

Kept by hand in step with call_monitor/store/models.py and store/obligations.py (the
migration test compares the migrated database with the models).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_calls_started_at_linkedid", "calls", ["started_at", "linkedid"])
    op.drop_index("ix_calls_started_at", table_name="calls")
    op.create_index("ix_obligation_changes_call_id", "obligation_changes", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_obligation_changes_call_id", table_name="obligation_changes")
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.drop_index("ix_calls_started_at_linkedid", table_name="calls")
