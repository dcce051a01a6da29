"""``call-monitor replay FILE... --store``: the calls and callbacks a replay concludes, written
into the configured store exactly as the daemon writes them.

The same writers as the daemon's: every judged call goes to a :class:`StoreWriter` (upserts
by ``linkedid``), every call to a :class:`CallbackTracker` restored from the store first (its
open obligations and the calls that already changed one, as ``CallbackService.start`` does),
whose changes :func:`save_changes` writes. So replaying the same recordings twice leaves the
same rows: the calls are rewritten as they were, and a call the history already holds
changes no obligation again.

Two differences from the daemon, both because a replay is the past: the callbacks' clock is
the recording's (reminders and deadlines are settled as of the last call's end, as ``replay``
reports them), and no MQTT alert is queued (the outbox would publish months-old reminders).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.charter.callbacks import APPLIED_CALLS_KEPT, CallbackTracker
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.obligations import ObligationChange
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import Settings
from call_monitor.directory import Directory
from call_monitor.store.engine import create_engine
from call_monitor.store.obligations import load_applied_calls, load_open, save_changes
from call_monitor.store.schema import upgrade
from call_monitor.store.writer import StoreWriter
from call_monitor.timefmt import SEOUL

CHANGES_PER_WRITE = 1000


class ReplayStore:
    """The store side of a replay: :meth:`open`, then :meth:`take` each judged call (and
    :meth:`write_due` now and then), then :meth:`close`."""

    def __init__(self, settings: Settings, engine: AsyncEngine, directory: Directory) -> None:
        self.settings = settings
        self.engine = engine
        self.writer = StoreWriter(engine, settings.store)
        self.tracker = CallbackTracker(
            settings.callbacks, WorkingHours(settings.working_hours), directory
        )
        self.changes: list[ObligationChange] = []
        self.calls = 0
        self.changes_written = 0
        self.last_end: float | None = None

    @classmethod
    async def open(cls, settings: Settings, directory: Directory) -> ReplayStore:
        """The store migrated, its callbacks restored as the daemon's at start."""
        await upgrade(settings.store.url)
        sink = cls(settings, create_engine(settings.store.url), directory)
        sink.tracker.restore(await load_open(sink.engine))
        sink.tracker.restore_applied(await load_applied_calls(sink.engine, APPLIED_CALLS_KEPT))
        return sink

    def take(self, judged: JudgedCall) -> None:
        """One judged call: queued for the store, applied to the callbacks."""
        record = judged.record
        self.writer.submit(record, judged.verdict)
        self.calls += 1
        self.changes += self.tracker.on_call(record)
        end = record.ended_at if record.ended_at is not None else record.started_at
        self.last_end = end if self.last_end is None else max(self.last_end, end)

    async def write_due(self) -> None:
        """Write what is queued once a batch's worth is (memory stays bounded)."""
        if self.writer.pending >= self.settings.store.max_batch_size:
            await self.writer.flush()
        if len(self.changes) >= CHANGES_PER_WRITE:
            await self._write_changes()

    async def close(self) -> None:
        """Settle the deadlines as of the recording's end, write everything, let go."""
        try:
            if self.last_end is not None:
                self.changes += self.tracker.due_events(
                    datetime.fromtimestamp(self.last_end, SEOUL)
                )
            await self.writer.flush()
            await self._write_changes()
        finally:
            await self.engine.dispose()

    async def _write_changes(self) -> None:
        if self.changes:
            await save_changes(self.engine, self.changes)
            self.changes_written += len(self.changes)
            self.changes = []
