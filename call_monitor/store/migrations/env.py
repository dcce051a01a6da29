"""Alembic environment for SQLite (aiosqlite) and PostgreSQL (asyncpg), async engines only.

Where the database is, first found wins:
1. ``config.attributes["connection"]``: a sync ``Connection`` (for example the one
   ``AsyncConnection.run_sync`` hands over); migrations run on it, in its transaction;
2. ``config.attributes["url"]`` (set by :func:`call_monitor.store.schema.upgrade`, with
   optional ``config.attributes["connect_args"]`` for the driver);
3. ``-x url=...`` on the alembic command line;
4. the ``sqlalchemy.url`` main option;
5. ``CALLMON_STORE__URL``, then the :class:`~call_monitor.config.StoreSettings` default.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from call_monitor.config import StoreSettings
from call_monitor.store import accounts, obligations, outbox  # noqa: F401  (tables on Base)
from call_monitor.store.engine import create_engine
from call_monitor.store.models import Base

config = context.config
target_metadata = Base.metadata

# Only the alembic command line configures logging; the application has its own.
if config.config_file_name is not None and not config.attributes.get("programmatic", False):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return str(url)
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    return os.environ.get("CALLMON_STORE__URL") or StoreSettings().url


def _configure(**kwargs: Any) -> None:
    url = kwargs.pop("url", None)
    connection: Connection | None = kwargs.get("connection")
    dialect = connection.dialect.name if connection is not None else None
    if dialect is None and url is not None:
        dialect = make_url(url).get_backend_name()
        kwargs["url"] = url
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=dialect == "sqlite",
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(
        _url(), connect_args=config.attributes.get("connect_args"), poolclass=NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
