"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.backends import Backend, postgres_schema, sqlite_backend


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each store backend in turn: a SQLite file (not created yet), a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield sqlite_backend(tmp_path / "db" / "store.sqlite3")
        return
    async with postgres_schema() as pg:
        yield pg


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    """The backend migrated to the newest schema, and an engine on it (disposed after)."""
    await backend.migrate()
    engine = backend.engine()
    try:
        yield engine
    finally:
        await engine.dispose()
