"""The async engine for the store: SQLite (aiosqlite) or PostgreSQL (asyncpg).

SQLite: one connection, one user at a time
------------------------------------------

The daemon's writers share one engine (``service.py``): the :class:`StoreWriter
<call_monitor.store.writer.StoreWriter>` (calls), the callback service (obligations and their
outbox rows) and the MQTT publisher (outbox rows delivered), with the web API reading. SQLite
takes one writer at a time per file; given a connection (each its own aiosqlite thread) each,
their transactions would fight for that lock, and one held longer than the busy timeout (a
batch, with the event loop busy) fails the others with "database is locked".

So a SQLite engine's pool is exactly one connection (``AsyncAdaptedQueuePool``,
``pool_size=1``, ``max_overflow=0``): whoever wants the database waits for it in the pool, in
the event loop and in turn (``pool_timeout``: :data:`SQLITE_POOL_TIMEOUT_SECONDS`), never on
SQLite's lock. Every transaction of the process is serialized, reads too: WAL would let a
read run beside a write on a connection of its own, but the reads here (the web API, the
outbox) are short and few. No ``BEGIN IMMEDIATE`` is needed, as nothing else in the process
takes the lock. The busy timeout stays, for other processes on the file (a ``sqlite3``
shell, a backup) and for the Alembic upgrade, which runs its own engine in a worker thread
before the writers start (``store/schema.py``).

It cannot deadlock as long as no coroutine holds a connection while it asks for another:
every user of the engine (``store/writer.py``, ``store/obligations.py``, ``store/reading.py``,
``alerts/outbox.py``) opens one ``engine.begin()`` / ``engine.connect()``, runs its
statements on it and returns it, and none waits for anything else (a lock, an event, the
network) while holding it. A connection that is never returned would stall the others until
``pool_timeout`` (they fail with ``sqlalchemy.exc.TimeoutError``; the writers keep their rows
and retry). A task cancelled while SQLite runs one of its statements does not keep the
connection: SQLAlchemy invalidates it, which frees the slot, and the engine rolls it back
before it is closed (:func:`_sqlite_on_invalidate`); closed with its transaction open, the
abandoned sqlite3 connection would hold the write lock until garbage-collected, and the next
connection would wait for it (the busy timeout) and fail, "database is locked". (Seen with
any pool: the daemon never cancels its store writers for this reason, ``service.py``.)

In-memory SQLite (``sqlite+aiosqlite://``) gets the same pool: its one connection is the
database, kept for the life of the engine (as the ``StaticPool`` SQLAlchemy would choose
keeps it), and its users also take turns instead of sharing one transaction.

The connection keeps no prepared statements (``cached_statements=0``; Python's default is
128): the store writes a batch in multi-row statements whose text differs with the number of
rows (``store/sqlite_batch.py``), each a one-off; kept in the cache, the last 128 of them
held their memory (with 1,000-call transactions the daemon's RSS after a million events was
183 MiB, 117 MiB without the cache: ``benchmarks/ingest.py``). Preparing the few small
statements the other users repeat costs microseconds. A caller's ``connect_args`` win.

A caller that passes ``poolclass`` or ``pool`` chooses its own pool (the migrations use
``NullPool``; a test can ask for the old default, ``poolclass=AsyncAdaptedQueuePool``).
PostgreSQL keeps SQLAlchemy's default pool, its connections pinged before use.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

# What a store that is down or gone raises: SQLAlchemy's wrapping, or the driver's own
# (asyncpg's refused connection is an OSError; a connect that hangs a TimeoutError).
STORE_DOWN: tuple[type[Exception], ...] = (SQLAlchemyError, OSError, TimeoutError, sqlite3.Error)

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000
# How long a SQLite user waits for the one connection: generous, as a batch written while
# the event loop is busy takes a while; past it the wait fails (and a writer retries).
SQLITE_POOL_TIMEOUT_SECONDS = 60.0
SQLITE_CACHED_STATEMENTS = 0  # see the module docstring
_POOL_CHOICES = frozenset({"poolclass", "pool"})


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


def check_sqlite_opens(url: str | URL) -> None:
    """Open and close a SQLite database file with the plain driver (``sqlite3.Error`` if it
    cannot be opened). A failed first connection through aiosqlite inside Alembic's
    short-lived event loop leaves its worker thread printing a traceback after the loop is
    gone: the migrations ask this first."""
    path = sqlite_file(url)
    if path is not None:
        sqlite3.connect(path).close()


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
    finally:
        cursor.close()


class StoreFileGone(OSError):
    """The SQLite database file was deleted or replaced while the store had it open."""


class _FileIdentity:
    """The SQLite file the store opened, checked before each transaction.

    A connection keeps writing to its file after the file (or its directory) is deleted:
    the writes "succeed" into a file no one can open again, and are gone at the stop. So the
    file's identity (device, inode) is noted at the first connection and every transaction
    first checks that the path still names it; if not, it fails (``StoreFileGone``), and the
    writers keep their calls queued and count the failure (``/readyz`` says so) until the
    file is back where it was or the monitor is restarted on a restored copy.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity: tuple[int, int] | None = None

    def on_connect(self, _dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        if self.identity is None:
            stat = os.stat(self.path)
            self.identity = (stat.st_dev, stat.st_ino)

    def on_begin(self, _connection: Any) -> None:
        if self.identity is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise StoreFileGone(
                f"the SQLite store {self.path} was deleted while open: nothing written to it "
                "(calls kept queued); put it back, or restart on a restored copy"
            ) from None
        if (stat.st_dev, stat.st_ino) != self.identity:
            raise StoreFileGone(
                f"the SQLite store {self.path} was replaced by another file while open: "
                "nothing written (calls kept queued); restart to use the new one"
            )


def _sqlite_on_invalidate(
    dbapi_connection: Any, _record: ConnectionPoolEntry, _exception: BaseException | None
) -> None:
    """End the transaction of a connection the pool gives up on, before it is closed.

    A task cancelled in the middle of a transaction gets its connection invalidated (and
    the pool's one slot freed), not returned. Closed as it is, with statements of the
    cancelled transaction still unfinalized, sqlite3 keeps it as a zombie that holds the
    write lock until they are garbage-collected: every later writer waits the busy timeout
    and fails "database is locked". So: roll back first (on the connection's own thread,
    after the statement it is running).
    """
    try:
        dbapi_connection.rollback()
    except Exception:  # a lost connection, or no event loop (garbage collection): close it
        log.debug("rollback of an invalidated SQLite connection failed", exc_info=True)


def create_reader(
    engine: AsyncEngine, *, connect_args: Mapping[str, Any] | None = None
) -> AsyncEngine:
    """An engine for the web's short reads beside the store's ``engine`` (a page's call, a
    session's user, an audit row). PostgreSQL: a pool of its own in autocommit, so a read is
    its statement and the pool's one-statement ping, not the four more round trips of a
    transaction (``BEGIN``, ``ROLLBACK``) and of SQLAlchemy's ping inside one (``BEGIN; ;
    ROLLBACK``): each round trip is a wake-up of the event loop the monitor shares
    (``benchmarks/web.py``). SQLite: ``engine`` itself (its one connection is the process's).
    Each statement then sees the store as of its own start: the few statements of one page
    (a call, then its legs) may straddle a write of that call, as two page loads would;
    whatever must be consistent is written and checked in a transaction on ``engine``.
    ``connect_args``: the driver's, as ``engine`` was given them.
    """
    if engine.dialect.name == "sqlite":
        return engine
    return create_engine(engine.url, connect_args=connect_args, isolation_level="AUTOCOMMIT")


def create_engine(
    url: str | URL,
    *,
    connect_args: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine for ``url``.

    SQLite: the file's directory is created if missing; the pool is ONE connection, so all
    database work through the engine is serialized (see the module docstring); it caches no
    prepared statements; every connection gets ``journal_mode=WAL``, ``synchronous=NORMAL``,
    ``foreign_keys=ON`` and a busy timeout. PostgreSQL: pooled connections are pinged before
    use, so a restarted server is survived. ``connect_args`` go to the driver (for example
    asyncpg's ``server_settings``); other keyword arguments go to
    :func:`sqlalchemy.ext.asyncio.create_async_engine` (``poolclass`` or ``pool`` replace the
    single-connection pool of SQLite).
    """
    parsed = make_url(url)
    options: dict[str, Any] = {"connect_args": dict(connect_args or {})}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        ensure_sqlite_directory(parsed)
        options["connect_args"].setdefault("cached_statements", SQLITE_CACHED_STATEMENTS)
        if not _POOL_CHOICES & kwargs.keys():
            options.update(
                poolclass=AsyncAdaptedQueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=SQLITE_POOL_TIMEOUT_SECONDS,
            )
    else:
        options["pool_pre_ping"] = True
    options.update(kwargs)
    engine = create_async_engine(parsed, **options)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "invalidate", _sqlite_on_invalidate)
        path = sqlite_file(parsed)
        if path is not None:
            identity = _FileIdentity(path)
            event.listen(engine.sync_engine, "connect", identity.on_connect)
            event.listen(engine.sync_engine, "begin", identity.on_begin)
    return engine
