"""The databases the store tests run on: a SQLite file, or a throwaway PostgreSQL schema.

PostgreSQL is ``postgresql+asyncpg://postgres@127.0.0.1:5432/test`` (or ``$CALLMON_TEST_PG_URL``).
Outside CI an unreachable server skips its tests; with ``CI=true`` it fails them. The
``backend`` and ``engine`` fixtures (``tests/conftest.py``) give each test both, in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from call_monitor.store import create_engine, upgrade

PG_URL = os.environ.get("CALLMON_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> None:
    """Skip the test for a missing service; fail it in CI, where every service is required."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


@dataclass
class Backend:
    name: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)

    def engine(self, url: str | None = None, **kwargs: Any) -> AsyncEngine:
        """An engine as the daemon builds it (``kwargs`` go to ``create_engine``)."""
        return create_engine(url or self.url, connect_args=self.connect_args, **kwargs)

    async def migrate(self, url: str | None = None) -> None:
        await upgrade(url or self.url, connect_args=self.connect_args)


def sqlite_backend(path: Path) -> Backend:
    return Backend("sqlite", f"sqlite+aiosqlite:///{path}")


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[Backend]:
    """A fresh schema on the test server, dropped afterwards."""
    admin = create_async_engine(
        PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5}
    )
    try:
        try:
            async with admin.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            unavailable(f"PostgreSQL at {PG_URL} unreachable: {type(exc).__name__}: {exc}")
        schema = f"callmon_test_{uuid.uuid4().hex}"
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield Backend("postgresql", PG_URL, {"server_settings": {"search_path": schema}})
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def _admin(statement: str) -> None:
    admin = create_async_engine(
        PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5}
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the test server (its URL), dropped afterwards: for a process
    that takes only ``store.url`` (the CLI), where a schema's search_path cannot be given.
    Synchronous: for tests that run the CLI (it runs its own event loop)."""
    name = f"callmon_test_{uuid.uuid4().hex}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        unavailable(f"PostgreSQL at {PG_URL} unreachable: {type(exc).__name__}: {exc}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
