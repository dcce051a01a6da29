"""Call shapes of a real office (issue 15): the facts the correlator now records.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 00:00:00

- ``calls.talked``: a staff phone was bridged with the customer (P7 is judged only then).
- ``calls.ring_ended_at``, ``calls.after_dial``, ``calls.voicemail_left``: an unanswered
  caller the dialplan took on after the Dial (voicemail, an announcement): when the last
  staff phone stopped ringing, where the caller went, whether a message was left.
- ``calls.queue_joined_at``, ``calls.queue_wait_seconds``: a queue's caller, when they
  joined it and how long they waited there before the first phone rang.
- ``transfers.external``: the transfer took the call out of the office.
- ``calls.conference_at``, ``call_legs.conference``: the customer's call became a
  conference (ConfBridge), and which legs joined it.

Calls stored before this revision were never measured for these facts: the booleans are
false there (a server default fills the existing rows), the other columns null.

Kept by hand in step with call_monitor/store/models.py (the migration test compares the
migrated database with the models on SQLite and PostgreSQL). On its branch this revision
follows 0004; at merge it is chained after the accounts (0005) and checklist (0006) ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column) of every column this revision adds, in order: downgrade drops them back.
_ADDED: tuple[tuple[str, sa.Column[object]], ...] = (
    ("calls", sa.Column("talked", sa.Boolean(), nullable=False, server_default=sa.false())),
    ("calls", sa.Column("ring_ended_at", sa.DateTime(timezone=True), nullable=True)),
    ("calls", sa.Column("after_dial", sa.Text(), nullable=True)),
    (
        "calls",
        sa.Column("voicemail_left", sa.Boolean(), nullable=False, server_default=sa.false()),
    ),
    ("calls", sa.Column("queue_joined_at", sa.DateTime(timezone=True), nullable=True)),
    ("calls", sa.Column("queue_wait_seconds", sa.Double(), nullable=True)),
    (
        "transfers",
        sa.Column("external", sa.Boolean(), nullable=False, server_default=sa.false()),
    ),
    ("calls", sa.Column("conference_at", sa.DateTime(timezone=True), nullable=True)),
    (
        "call_legs",
        sa.Column("conference", sa.Boolean(), nullable=False, server_default=sa.false()),
    ),
)


def upgrade() -> None:
    for table, column in _ADDED:
        op.add_column(table, column)


def downgrade() -> None:
    # In place (SQLite 3.35 or newer): a recreated ``calls`` would cascade-delete its children.
    for table, column in reversed(_ADDED):
        op.drop_column(table, column.name)
