"""(c) on PostgreSQL: the same daemon as ``variant_full``, its store on the PostgreSQL server
an office would run it with (``postgresql+asyncpg://postgres@127.0.0.1:5432/``, or
``$CALLMON_BENCH_PG_URL``: any database there, used only to create and drop ours).

Each run creates a throwaway database, lets the daemon migrate it as ``run`` does, and
drops it at the end, whatever happened.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from _ingest.common import ClientArgs
from _ingest.variant_full import instrument, run_daemon

ADMIN_URL = os.environ.get(
    "CALLMON_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def _driver_dsn(url: str) -> str:
    """The URL as asyncpg takes it (no ``+asyncpg``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(statement: str) -> str:
    """Run ``statement`` on the admin connection; the server's version."""
    conn = await asyncpg.connect(_driver_dsn(ADMIN_URL), timeout=10)
    try:
        await conn.execute(statement)
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


async def _run(args: ClientArgs) -> dict[str, Any]:
    database = f"callmon_bench_{uuid.uuid4().hex[:12]}"
    try:
        version = await _admin(f'CREATE DATABASE "{database}"')
    except (OSError, asyncpg.PostgresError) as exc:
        return {"error": f"PostgreSQL at {ADMIN_URL} unusable: {type(exc).__name__}: {exc}"}
    try:
        store_url = make_url(ADMIN_URL).set(database=database)
        result = await run_daemon(args, store_url.render_as_string(hide_password=False))
        result["store"] = store_url.render_as_string(hide_password=True)
        result["server_version"] = version
        return result
    finally:
        # WITH (FORCE): a connection the daemon left behind does not keep it alive.
        await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def run(args: ClientArgs) -> dict[str, Any]:
    instrument()
    return asyncio.run(_run(args))
