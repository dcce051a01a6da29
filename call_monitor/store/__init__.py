"""Persistence: finished calls and their charter verdicts in SQLite or PostgreSQL.

- :mod:`.models`: the SQLAlchemy tables (``calls``, ``call_legs``, ``transfers``, ``verdicts``).
- :mod:`.schema`: :func:`upgrade` runs the Alembic migrations shipped in ``migrations/``.
- :mod:`.writer`: :class:`StoreWriter` batches results and writes them idempotently;
  :func:`create_engine`, :func:`count_calls` and :func:`load_call` help the rest of the app.
- :mod:`.obligations`: callback obligations and their history (imported here so that its
  tables are on ``Base.metadata`` whenever the store is).
"""

from __future__ import annotations

from call_monitor.store import obligations
from call_monitor.store.engine import create_engine
from call_monitor.store.reading import count_calls, load_call
from call_monitor.store.schema import upgrade
from call_monitor.store.writer import StoreWriter, WriterStats

__all__ = [
    "StoreWriter",
    "WriterStats",
    "count_calls",
    "create_engine",
    "load_call",
    "obligations",
    "upgrade",
]
