"""The async engine for the store: SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_MS = 5000


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL; ``None`` for other backends and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_directory(url: str | URL) -> None:
    """Create the directory of a SQLite database file if it is missing."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
    finally:
        cursor.close()


def create_engine(
    url: str | URL,
    *,
    connect_args: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine for ``url``.

    SQLite: the file's directory is created if missing, and every connection gets
    ``journal_mode=WAL``, ``synchronous=NORMAL``, ``foreign_keys=ON`` and a busy timeout.
    PostgreSQL: pooled connections are pinged before use, so a restarted server is survived.
    ``connect_args`` go to the driver (for example asyncpg's ``server_settings``); other
    keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine`.
    """
    parsed = make_url(url)
    options: dict[str, Any] = {"connect_args": dict(connect_args or {})}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        ensure_sqlite_directory(parsed)
    else:
        options["pool_pre_ping"] = True
    options.update(kwargs)
    engine = create_async_engine(parsed, **options)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine
