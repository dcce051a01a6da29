"""Bring a database to the current schema with the Alembic migrations shipped in the package."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.store.engine import check_sqlite_opens, ensure_sqlite_directory, sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = MIGRATIONS_DIR / "alembic.ini"

# Alembic's ``context`` is process-global: one migration run at a time.
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(url: str, *, connect_args: Mapping[str, Any] | None = None) -> Config:
    """The Alembic configuration for ``url``, independent of the working directory."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolates '%': escape it (a password may contain one).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["url"] = url
    config.attributes["connect_args"] = dict(connect_args or {})
    config.attributes["programmatic"] = True
    return config


def head_revision() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no migrations found")
    return head


async def is_new(url: str, engine: AsyncEngine) -> bool:
    """Whether ``url`` holds no call-monitor database yet: no SQLite file (not created by
    asking), or no Alembic version table."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return True
    async with engine.connect() as conn:
        return not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))


def upgrade_sync(
    url: str, *, connect_args: Mapping[str, Any] | None = None, revision: str = "head"
) -> None:
    """``alembic upgrade head`` on ``url``; blocking (it runs its own event loop)."""
    ensure_sqlite_directory(url)
    check_sqlite_opens(url)
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config(url, connect_args=connect_args), revision)


async def upgrade(
    url: str, *, connect_args: Mapping[str, Any] | None = None, revision: str = "head"
) -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default).

    Runs in a worker thread, so the caller's event loop never blocks. A SQLite file's
    directory is created if missing. ``connect_args`` go to the driver (for example
    ``{"server_settings": {"search_path": "myschema"}}`` for asyncpg).
    """
    await asyncio.to_thread(upgrade_sync, url, connect_args=connect_args, revision=revision)
