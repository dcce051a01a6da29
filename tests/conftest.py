"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import prometheus_client
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


@contextlib.contextmanager
def _created_series(on: bool) -> Iterator[None]:
    """prometheus_client's process-wide ``_created`` switch, restored after."""
    was = prometheus_client.metrics._use_created
    if on:
        prometheus_client.enable_created_metrics()
    else:
        prometheus_client.disable_created_metrics()
    try:
        yield
    finally:
        prometheus_client.metrics._use_created = was


@pytest.fixture
def created_off() -> Iterator[None]:
    """``_created`` off, as the daemon runs."""
    with _created_series(on=False):
        yield


@pytest.fixture
def created_on() -> Iterator[None]:
    """``_created`` on, prometheus_client's default."""
    with _created_series(on=True):
        yield
