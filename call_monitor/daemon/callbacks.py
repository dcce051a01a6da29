"""Callbacks owed (P6, V4): the I/O shell around the pure :class:`CallbackTracker`.

The tracker decides; this module reads the wall clock, persists and wakes things up:

- :meth:`CallbackService.start` reloads every open obligation from the store (its deadline
  and history as stored) and at once emits what fell due while the daemon was down. An
  obligation whose overdue change was committed before a crash comes back ``overdue`` and is
  not alerted again; one whose change was not committed is alerted now, once (and the outbox
  skips an alert whose idempotency key it already holds).
- :meth:`CallbackService.on_call` (every finished call, from the daemon's pipeline) and
  :meth:`memo` / :meth:`cancel` (the API) apply the tracker and queue its changes, each
  batch with its outbox messages (:func:`call_monitor.alerts.messages.messages_for`).
- :meth:`run_writer` writes the queue in order, each write one transaction holding the
  obligation rows, their history rows and their outbox rows
  (:func:`call_monitor.store.obligations.save_changes`), then wakes the MQTT publisher. A
  failed write is logged with its traceback, counted and retried with backoff; nothing is
  dropped. Only a batch the database refuses for its data (retrying cannot help) is set
  aside, logged and counted, so that it does not hold back every later change.
- :meth:`run_timer` sleeps until the tracker's next reminder or deadline (re-armed whenever
  a change is queued; at most ``MAX_TIMER_SLEEP`` at a time, so a wall clock that jumps is
  caught up with) and calls ``due_events(now)``.

The pure tracker never reads a clock: ``now`` is read here, from ``clock``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.alerts.messages import OutboxMessage, messages_for
from call_monitor.backoff import Backoff
from call_monitor.charter.callbacks import APPLIED_CALLS_KEPT, CallbackTracker
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.obligations import (
    OPEN_STATES,
    Obligation,
    ObligationChange,
    ObligationHistory,
    Outcome,
)
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import Settings
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.store.engine import STORE_DOWN
from call_monitor.store.obligations import (
    list_obligations,
    load_applied_calls,
    load_histories,
    load_history,
    load_obligation,
    load_open,
    save_changes,
)
from call_monitor.store.retry import (
    WriteQueue,
    write_or_set_aside,
    write_until_stopped,
    write_until_written,
)
from call_monitor.store.retry import wait_for_event as _wait
from call_monitor.timefmt import SEOUL

log = logging.getLogger(__name__)

MAX_TIMER_SLEEP = 30.0  # seconds; the wall clock is read again at least this often
TIMER_ERROR_SLEEP = 5.0
WRITER_POLL_SECONDS = 1.0
# One batch is what one call or memo changed; a transaction's cost is mostly its round trips
# to the database, not its rows (SQLite: a few multi-row statements), so a writer that fell
# behind catches up in large ones (100 a transaction fell ever further behind flat out).
BATCHES_PER_TRANSACTION = 1000
STORED_WAIT_SECONDS = 5.0  # how long the API waits for its change to be committed
MEMO_IDS_KEPT = 10_000  # memos whose id a repeat is recognised by (oldest forgotten first)


def wall_clock() -> datetime:
    return datetime.now(SEOUL)


@dataclass(slots=True)
class CallbackStats:
    changes: int = 0  # tracker changes queued
    written: int = 0  # changes committed
    failures: int = 0  # failed writes (each retried)
    consecutive_failures: int = 0
    rejected: int = 0  # changes the database refused for their data: set aside, logged
    errors: int = 0  # tracker or message failures on a call or a timer (a bug): logged
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackGauges:
    """What the metrics read at scrape time (``metrics.families.CallbacksView``)."""

    open_obligations: Sequence[tuple[str | None, bool]]  # (owner department, past due now)
    write_failures: int
    pending_changes: int
    # Owner department -> the earliest deadline among its open obligations (epoch seconds).
    oldest_due: Mapping[str | None, float] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Batch:
    changes: list[ObligationChange]
    messages: list[OutboxMessage]
    done: asyncio.Event = field(default_factory=asyncio.Event)  # committed or set aside
    stored: bool = False


class CallbackService:
    """Open obligations in memory, every change in the store; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        directory: Directory,
        *,
        metrics: CallMetrics | None = None,
        clock: Callable[[], datetime] = wall_clock,
        on_committed: Callable[[], None] | None = None,
        on_changes: Callable[[Sequence[ObligationChange]], None] | None = None,
        retry_initial_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.on_committed = on_committed  # e.g. OutboxPublisher.wake
        self.on_changes = on_changes  # the committed changes (the web's live pages)
        self.tracker = CallbackTracker(
            settings.callbacks, WorkingHours(settings.working_hours), directory
        )
        self.stats = CallbackStats()
        self._prefix = settings.mqtt.topic_prefix
        self._backoff = Backoff(
            retry_initial_seconds, max(retry_max_seconds, retry_initial_seconds)
        )
        self._queue = WriteQueue(log, "callbacks", "changes", lambda: self.pending)
        self._pending: deque[_Batch] = deque()
        self._memos: dict[str, Outcome] = {}  # memo id -> what it did, oldest first
        self._lock = asyncio.Lock()  # one write at a time, in queue order
        self._wake = asyncio.Event()  # changes queued
        self._rearm = asyncio.Event()  # the timer's next event may have moved
        self._stop = asyncio.Event()
        self._closed = False

    # -- state ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Changes queued and not yet committed."""
        return sum(len(batch.changes) for batch in self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    def unwritten(self) -> list[tuple[list[ObligationChange], list[OutboxMessage]]]:
        """The changes queued and not committed, with their alerts, in order (for the spool
        file at a stop)."""
        return [(batch.changes, batch.messages) for batch in self._pending]

    async def write_spooled(
        self, batches: Sequence[tuple[list[ObligationChange], list[OutboxMessage]]]
    ) -> None:
        """Commit what :meth:`unwritten` gave at the last stop, before :meth:`start` reads
        the open obligations back (so they include it)."""
        await save_changes(
            self.engine,
            [change for changes, _ in batches for change in changes],
            [message for _, messages in batches for message in messages],
        )

    def gauges(self) -> CallbackGauges:
        """Open obligations by department and whether each is past due now (scrape time)."""
        open_obligations: list[tuple[str | None, bool]] = []
        for department, counts in self.tracker.counts_by_department(self.clock()).items():
            open_obligations += [(department, True)] * counts.overdue
            open_obligations += [(department, False)] * (counts.open - counts.overdue)
        oldest_due: dict[str | None, float] = {}
        for obligation in self.tracker.open_obligations():
            due = obligation.due_at.timestamp()
            department = obligation.owner_department
            oldest_due[department] = min(due, oldest_due.get(department, due))
        return CallbackGauges(
            open_obligations=open_obligations,
            write_failures=self.stats.failures,
            pending_changes=self.pending,
            oldest_due=oldest_due,
        )

    # -- inputs -----------------------------------------------------------------------

    async def start(self) -> int:
        """Reload the open obligations and emit what fell due meanwhile; how many loaded."""
        # The first holiday lookup builds the `holidays` package's tables (~40 ms): in a
        # thread before any call, not on the event loop in the middle of the first ones.
        await asyncio.to_thread(self.tracker.working_hours.public_holidays, self.clock().year)
        loaded = self.tracker.restore(await load_open(self.engine))
        self.tracker.restore_applied(await load_applied_calls(self.engine, APPLIED_CALLS_KEPT))
        if loaded:
            log.info("callbacks: %d open obligations reloaded from the store", loaded)
        self._due(self.clock())
        return loaded

    def on_call(self, judged: JudgedCall) -> list[ObligationChange]:
        """A finished call: create, join, attempt, fulfil or resolve; the changes it made
        (queued for the store). Never raises."""
        try:
            changes = self.tracker.on_call(judged.record)
        except Exception:
            self.stats.errors += 1
            log.exception("callbacks: call %r not applied", judged.record.linkedid)
            return []
        self._submit(changes)
        return changes

    async def memo(
        self,
        *,
        number: str,
        owner: str,
        taken_by: str | None,
        caller_name: str = "",
        matter: str = "",
        memo_id: str | None = None,
        wait_seconds: float = STORED_WAIT_SECONDS,
    ) -> Outcome:
        """A colleague's memo: the owner owes a call. ``ValueError`` for an unknown owner or
        a number with no digits. Waits up to ``wait_seconds`` for the commit.

        ``memo_id``: the sender's id for this memo. The same id sent again (a client's
        retry after a lost answer) changes nothing and answers what the first did, as long
        as this process runs and has seen fewer than ``MEMO_IDS_KEPT`` memos since.
        """
        self._check_open()
        if memo_id is not None and memo_id in self._memos:
            first = self._memos[memo_id]
            return Outcome(first.change, await self.settle(wait_seconds), repeated=True)
        change = self.tracker.memo(
            obligation_id=f"memo-{memo_id or uuid.uuid4().hex}",
            at=self.clock(),
            number=number,
            owner=owner,
            taken_by=taken_by,
            caller_name=caller_name,
            matter=matter,
        )
        outcome = Outcome(change, await self._stored(self._submit([change]), wait_seconds))
        if memo_id is not None:
            self._memos[memo_id] = outcome
            if len(self._memos) > MEMO_IDS_KEPT:
                del self._memos[next(iter(self._memos))]
        return outcome

    async def cancel(
        self,
        obligation_id: str,
        reason: str,
        by: str | None,
        *,
        wait_seconds: float = STORED_WAIT_SECONDS,
    ) -> Outcome:
        """Close an open obligation by hand; ``KeyError`` if it is not open."""
        self._check_open()
        change = self.tracker.cancel(obligation_id, reason, by, self.clock())
        return Outcome(change, await self._stored(self._submit([change]), wait_seconds))

    def rearm(self) -> None:
        """Have the timer read the clock again now (the wall clock was set; tests)."""
        self._rearm.set()

    # -- reading ----------------------------------------------------------------------

    async def query(
        self,
        *,
        staff: str | None = None,
        department: str | None = None,
        state: Sequence[str] | None = None,
        limit: int | None = 1000,
    ) -> list[Obligation]:
        """Stored obligations (see :func:`list_obligations`), after the changes queued so
        far are committed (waited for a moment at most)."""
        await self.settle()
        return await list_obligations(
            self.engine, staff=staff, department=department, state=state, limit=limit
        )

    async def get(self, obligation_id: str) -> Obligation | None:
        await self.settle()
        return await load_obligation(self.engine, obligation_id)

    async def histories(self, obligations: Sequence[Obligation]) -> dict[str, ObligationHistory]:
        """The stored history of each of ``obligations``, by id."""
        return await load_histories(self.engine, obligations)

    async def history_until(self, change: ObligationChange) -> ObligationHistory:
        """The history up to and including ``change``: the stored rows before it, then it.

        The rows before it are committed when ``change`` is (changes are written in order);
        when it is not yet (a 202 answer), those still queued with it are not shown.
        """
        try:
            earlier = await load_history(self.engine, change.obligation.id, change.position)
        except STORE_DOWN:
            log.warning("callbacks: history of %r not read", change.obligation.id, exc_info=True)
            earlier = ObligationHistory()
        return ObligationHistory((*earlier.changes, change.change))

    async def settle(self, seconds: float = STORED_WAIT_SECONDS) -> bool:
        """Wait until every change queued so far is committed; whether it was in time."""
        if not self._pending:
            return True
        return await self._stored(self._pending[-1], seconds)

    # -- the tasks --------------------------------------------------------------------

    async def run_timer(self) -> None:
        """Emit reminders and overdue transitions when they fall due; run as a task."""
        while True:
            self._rearm.clear()
            now = self.clock()
            delay = MAX_TIMER_SLEEP
            if self._due(now):
                next_at = self.tracker.next_event_at()
                if next_at is not None:
                    delay = (next_at - now).total_seconds()
            else:
                delay = TIMER_ERROR_SLEEP
            await _wait(self._rearm, min(max(delay, 0.0), MAX_TIMER_SLEEP))

    async def run_writer(self) -> None:
        """Write the queue until :meth:`close`; failures are retried with backoff.

        Cancelling it is safe: an interrupted write is rolled back and stays queued.
        """
        await write_until_stopped(
            self.flush,
            self._queue,
            self._backoff,
            stop=self._stop,
            wake=self._wake,
            due=lambda: bool(self._pending),
            interval=WRITER_POLL_SECONDS,
        )

    async def flush(self) -> None:
        """Write everything queued, in order; on failure it stays queued and this raises."""
        async with self._lock:
            while self._pending:
                await self._write(list(islice(self._pending, BATCHES_PER_TRANSACTION)))

    async def close(self, give_up_after: float | None = 30.0) -> None:
        """Stop :meth:`run_writer` and write what is queued, retrying for ``give_up_after``
        seconds; if the store stays down the last error propagates (changes stay queued)."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        await write_until_written(
            self.flush, self._queue, self._backoff, give_up_after=give_up_after
        )

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the callback service is shutting down")

    def _due(self, now: datetime) -> bool:
        try:
            changes = self.tracker.due_events(now)
        except Exception:
            self.stats.errors += 1
            log.exception("callbacks: reminders and deadlines not checked")
            return False
        self._submit(changes)
        return True

    def _submit(self, changes: Sequence[ObligationChange]) -> _Batch | None:
        if not changes:
            return None
        messages: list[OutboxMessage] = []
        try:
            messages = messages_for(
                changes, self.tracker.open_for_staff, self.clock(), self._prefix
            )
        except Exception:
            # A bug in building an alert must not cost the change itself.
            self.stats.errors += 1
            log.exception(
                "callbacks: alerts of %s not built; the changes are stored without them",
                [f"{c.obligation.id}:{c.kind}" for c in changes],
            )
        batch = _Batch(list(changes), messages)
        self._pending.append(batch)
        self.stats.changes += len(changes)
        self._wake.set()
        self._rearm.set()
        return batch

    async def _stored(self, batch: _Batch | None, seconds: float) -> bool:
        if batch is None:
            return True
        try:
            async with asyncio.timeout(seconds):
                await batch.done.wait()
        except TimeoutError:
            return False
        return batch.stored

    async def _write(self, batches: list[_Batch]) -> None:
        await write_or_set_aside(
            batches,
            self._save,
            self._queue,
            written=self._committed,
            refused=self._reject,
            failed=self._count_failure,
        )

    async def _save(self, batches: Sequence[_Batch]) -> None:
        await save_changes(
            self.engine,
            [c for batch in batches for c in batch.changes],
            [m for batch in batches for m in batch.messages],
        )

    def _committed(self, batches: Sequence[_Batch]) -> None:
        for batch in batches:
            if self._pending and self._pending[0] is batch:
                self._pending.popleft()
            batch.stored = True
            batch.done.set()
            self.stats.written += len(batch.changes)
            for change in batch.changes:
                self._observe(change)
        self.stats.consecutive_failures = 0
        if self.on_committed is not None:
            self.on_committed()
        if self.on_changes is not None:
            self.on_changes([change for batch in batches for change in batch.changes])

    def _observe(self, change: ObligationChange) -> None:
        obligation = change.obligation
        if self.metrics is None or obligation.state in OPEN_STATES:
            return
        if obligation.closed_at is None or change.kind != obligation.state:
            return
        working = self.tracker.working_hours.between(obligation.created_at, obligation.closed_at)
        self.metrics.observe_callback_closed(obligation.owner_department, obligation.state, working)

    def _count_failure(self, exc: Exception, batches: Sequence[_Batch]) -> None:
        self.stats.failures += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.error(
            "callbacks: writing %d changes failed (attempt %d in a row); %d changes kept queued",
            sum(len(batch.changes) for batch in batches),
            self.stats.consecutive_failures,
            self.pending,
            exc_info=exc,
        )

    def _reject(self, batch: _Batch, exc: Exception) -> None:
        self.stats.rejected += len(batch.changes)
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self._pending and self._pending[0] is batch:
            self._pending.popleft()
        batch.done.set()
        log.error(
            "callbacks: the store refused changes %s and their %d alerts: set aside, not retried",
            [f"{c.obligation.id}:{c.kind}" for c in batch.changes],
            len(batch.messages),
            exc_info=exc,
        )
