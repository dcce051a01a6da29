"""Persistence in SQLite or PostgreSQL: every table, its migrations, its writers and queries.

- :mod:`.models`: the call tables (``calls``, ``call_legs``, ``transfers``, ``verdicts``).
- :mod:`.obligations`: callback obligations and their history (``obligations``,
  ``obligation_changes``), written with their alerts in one transaction.
- :mod:`.accounts`: the web's users, API tokens and audit log (``users``, ``api_tokens``,
  ``audit_log``).
- :mod:`.checklists`: the supervisors' checklists (revisions, answers, acknowledgements,
  disputes) and their queries; :mod:`.checklist_service`: what the pages call.
- :mod:`.outbox`: the alerts waiting for the broker (``outbox``); the publisher reads it.
- :mod:`.schema`: :func:`upgrade` runs the Alembic migrations shipped in ``migrations/``.
- :mod:`.writer`: :class:`StoreWriter` batches finished calls and writes them idempotently.
- :mod:`.reading`: :func:`count_calls` and :func:`load_call`.
- :mod:`.retry`: the writers' retry loops and what counts as data the database refuses.
- :mod:`.engine`, :mod:`.sqlite_batch`, :mod:`.chunks`: the engine and the SQLite batches.

Importing the package puts every table on ``Base.metadata``.
"""

from __future__ import annotations

from call_monitor.store import accounts, checklists, obligations, outbox
from call_monitor.store.engine import STORE_DOWN, create_engine
from call_monitor.store.reading import count_calls, load_call
from call_monitor.store.schema import upgrade
from call_monitor.store.writer import StoreWriter, WriterStats

__all__ = [
    "STORE_DOWN",
    "StoreWriter",
    "WriterStats",
    "accounts",
    "checklists",
    "count_calls",
    "create_engine",
    "load_call",
    "obligations",
    "outbox",
    "upgrade",
]
