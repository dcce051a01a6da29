"""Writing a queue to the store until it is written: the retry loops, written once.

Both writers of the daemon (:class:`~call_monitor.store.writer.StoreWriter` for calls,
:class:`~call_monitor.daemon.callbacks.CallbackService` for obligation changes) keep what
they could not write queued and try again; they differ only in when a write is due, what
``flush`` writes and what the log calls the rows. Here:

- :func:`write_until_stopped`: the background loop (``run``): wait for work, flush, and on a
  failure wait the next delay of the writer's :class:`~call_monitor.backoff.Backoff` (a
  logged warning) before trying again; back to normal, and the backoff reset, after a
  success;
- :func:`write_until_written`: the last flush (``close``): retried with backoff until it
  succeeds or ``give_up_after`` seconds have passed, then logged and re-raised;
- :func:`write_or_set_aside`: one transaction of a flush, and what to do when the database
  refuses the data itself (:func:`is_data_error`): retrying cannot help, and the refused
  rows must not hold back the others, so the parts are written in halves, halved again
  while refused, and a part refused alone is set aside.

``flush`` itself logs and counts each failure (with its traceback) and keeps the rows queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from call_monitor.backoff import Backoff

Part = TypeVar("Part")


@dataclass(frozen=True, slots=True)
class WriteQueue:
    """What a writer's log calls its queue: ``"store"`` with ``"calls"``, say."""

    log: logging.Logger
    name: str
    rows: str
    pending: Callable[[], int]


async def write_until_stopped(
    flush: Callable[[], Awaitable[None]],
    queue: WriteQueue,
    backoff: Backoff,
    *,
    stop: asyncio.Event,
    wake: asyncio.Event,
    due: Callable[[], bool],
    interval: float,
) -> None:
    """Flush until ``stop`` is set; a failed flush is retried after the next backoff delay.

    Between flushes it waits for ``wake`` at most ``interval`` seconds, unless ``due()``
    says a write is due already; it flushes only when rows are queued. Returns once ``stop``
    is set (even during a backoff wait), leaving the rest to :func:`write_until_written`.
    """
    delay: float | None = None  # while failing: the wait before the next attempt
    while not stop.is_set():
        if delay is not None:
            await wait_for_event(stop, delay)
        elif not due():
            await wait_for_event(wake, interval)
        wake.clear()
        if stop.is_set():
            break
        if not queue.pending():
            continue
        try:
            await flush()
        except Exception:
            delay = backoff.next_delay()
            queue.log.warning(
                "%s: retrying in %.1f s (%d %s queued)",
                queue.name,
                delay,
                queue.pending(),
                queue.rows,
            )
        else:
            backoff.reset()
            delay = None


async def write_until_written(
    flush: Callable[[], Awaitable[None]],
    queue: WriteQueue,
    backoff: Backoff,
    *,
    give_up_after: float | None,
) -> None:
    """Flush, retrying with backoff; after ``give_up_after`` seconds (``None``: never) of
    failures, log what stays queued and re-raise the last error."""
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    backoff.reset()  # a run of failures of its own, not the tail of the loop's
    while True:
        try:
            await flush()
        except Exception:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                queue.log.error(
                    "%s: closed with %d %s NOT written", queue.name, queue.pending(), queue.rows
                )
                raise
            delay = backoff.next_delay()
            await asyncio.sleep(delay if remaining is None else min(delay, remaining))
        else:
            return


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` at most ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


async def write_or_set_aside(
    parts: Sequence[Part],
    write: Callable[[Sequence[Part]], Awaitable[None]],
    queue: WriteQueue,
    *,
    written: Callable[[Sequence[Part]], None],
    refused: Callable[[Part, Exception], None],
    failed: Callable[[Exception, Sequence[Part]], None],
) -> None:
    """Write ``parts`` in one transaction (``write``), then ``written(parts)``.

    A failure retrying can help (a lost connection, say) goes to ``failed`` and is re-raised:
    the caller keeps the parts queued. Data the database refuses (:func:`is_data_error`)
    would fail every retry and hold back every later write, so the parts are written in
    halves, each its own transaction, halved again while refused: a part refused alone goes
    to ``refused`` (to be set aside, not retried) while the others are written. One bad part
    among 2,000 costs about 22 transactions, not 2,000.
    """
    try:
        await write(parts)
    except Exception as exc:
        if not is_data_error(exc):
            failed(exc, parts)
            raise
        if len(parts) == 1:
            refused(parts[0], exc)
            return
        queue.log.warning(
            "%s: the store refused a transaction of %d parts (%s); writing them in halves",
            queue.name,
            len(parts),
            type(exc).__name__,
        )
        middle = len(parts) // 2
        for half in (parts[:middle], parts[middle:]):
            await write_or_set_aside(
                half, write, queue, written=written, refused=refused, failed=failed
            )
        return
    written(parts)


def is_data_error(exc: BaseException) -> bool:
    """Whether the database refused the data itself (retrying the same rows cannot help).

    Integrity and data errors (SQLSTATE classes 22 and 23, for example a NUL character in
    PostgreSQL text) and failures to bind a value; not lost connections or missing tables.
    """
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(code, str) and code[:2] in ("22", "23")
    return isinstance(exc, StatementError)
