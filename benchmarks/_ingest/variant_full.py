"""(c) call-monitor's full pipeline: the real ``Daemon`` of ``call_monitor.daemon.service``.

``AmiClient`` -> queue -> ``Pipeline`` (correlator + charter rules) -> ``CallMetrics`` ->
``StoreWriter`` batching to SQLite (or to PostgreSQL: ``variant_full_pg``), with the web app
up on a free port, exactly as wired by ``Daemon``. Three thin instruments, none of them in
``call_monitor/``:

- the client's framer is swapped (in this process only) for a subclass that notes when
  each chunk the client read arrived: the moment ``reader.read()`` handed it the bytes;
- the queue is a subclass that keeps, next to each item, the arrival time of its chunk;
- ``Daemon._handle`` (the pipeline, metrics and store step) is wrapped to measure each
  item's lag: from its chunk's arrival to the end of its handling. For an event that ends
  a call, that end is after ``CallMetrics.observe_call``: its metric update.

When the pipeline handles the ``LinkDown`` that follows the server's last byte, the
pipeline is done; the store may still hold judged calls not yet written. The run then
flushes the store (what ``Daemon`` does on shutdown) and stops: ``seconds`` runs from the
login to the last call written, ``pipeline_seconds`` to the last event handled.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import SecretStr

import call_monitor.ami.client as ami_client
from _ingest.common import (
    HOST,
    LINKUP_LINE,
    SECRET,
    USERNAME,
    ClientArgs,
    LagHistogram,
    current_rss_kib,
    free_port,
    peak_rss_kib,
)
from call_monitor.ami.framing import AmiFramer, AmiMessage, Frame
from call_monitor.ami.stream import LinkDown, LinkUp, StreamItem
from call_monitor.config import AmiSettings, Settings, StoreSettings, WebSettings
from call_monitor.daemon.service import QUEUE_SIZE, Daemon


class _Arrival:
    """When the chunk now being dispatched by the client arrived."""

    at = 0.0


class TimedFramer(AmiFramer):
    """``AmiFramer`` that notes the arrival of every chunk it is fed."""

    def feed(self, data: bytes) -> list[Frame]:
        _Arrival.at = time.perf_counter()
        return super().feed(data)


class TimedQueue(asyncio.Queue[StreamItem]):
    """The daemon's queue, with the arrival time of each item alongside, in order."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.arrivals: deque[float] = deque()

    def put_nowait(self, item: StreamItem) -> None:
        super().put_nowait(item)  # raises QueueFull before anything is noted
        # The client dispatches a chunk's frames right after framing it; link marks
        # (LinkUp, LinkDown) arrive when they are put.
        arrived = _Arrival.at if isinstance(item, AmiMessage) else time.perf_counter()
        self.arrivals.append(arrived)


class BenchDaemon(Daemon):
    """The real daemon, its handle step timed; stops itself at the end of the stream."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lags = LagHistogram()
        self.call_end_lags = LagHistogram()
        self.started_at: float | None = None
        self.done_at: float | None = None
        self.rss_start_kib: int | None = None
        self.rss_marks: dict[int, int] = {}
        self.pending_marks: dict[int, int] = {}  # calls queued in the store writer
        self.open_marks: dict[int, int] = {}  # open callback obligations (owed work)
        self.callback_marks: dict[int, int] = {}  # callback changes queued for the store
        self.stored_at: float | None = None
        # CPU time of this process (every thread: the loop, aiosqlite's) over the same span:
        # on a shared, loaded machine the wall clock also counts the waits for a core.
        self.cpu_started_at: float | None = None
        self.cpu_stored_at: float | None = None
        self.pending_at_end = 0
        self._finishing: asyncio.Task[None] | None = None
        self.announce = False
        self._marks: list[int] = []

    def sample_rss_at(self, marks: tuple[int, ...]) -> None:
        self._marks = sorted(set(marks))

    def _handle(self, item: StreamItem) -> None:
        queue = self.queue
        assert isinstance(queue, TimedQueue)
        arrived = queue.arrivals.popleft()
        correlator_stats = self.pipeline.correlator.stats
        ended_before = correlator_stats.calls_ended
        super()._handle(item)
        now = time.perf_counter()
        lag = now - arrived
        self.lags.add(lag)
        if correlator_stats.calls_ended != ended_before:
            self.call_end_lags.add(lag)
        if self._marks:
            seen = self.client.stats.events + self.client.stats.dropped_events
            while self._marks and seen >= self._marks[0]:
                mark = self._marks.pop(0)
                self.rss_marks[mark] = current_rss_kib()
                self.pending_marks[mark] = self.writer.pending
                self.open_marks[mark] = len(self.callbacks.tracker.open_obligations())
                self.callback_marks[mark] = self.callbacks.pending
        if isinstance(item, LinkUp) and self.started_at is None:
            self.started_at = arrived
            self.cpu_started_at = time.process_time()
            self.rss_start_kib = current_rss_kib()
            if self.announce:
                print(LINKUP_LINE, file=sys.stderr, flush=True)
        elif isinstance(item, LinkDown) and self.done_at is None:
            self.done_at = now
            self.pending_at_end = self.writer.pending
            self._finishing = asyncio.get_running_loop().create_task(self._store_then_stop())

    async def _store_then_stop(self) -> None:
        """Write what the store still holds (the writer's own lock keeps this safe), then
        stop: the time until every judged call is in the store."""
        try:
            await self.writer.flush()
            self.stored_at = time.perf_counter()
            self.cpu_stored_at = time.process_time()
        finally:
            self.stop()


async def run_daemon(args: ClientArgs, store_url: str) -> dict[str, Any]:
    """The daemon on the benchmark's server, its store at ``store_url``, until the last call
    is stored; its figures."""
    settings = Settings(
        ami=AmiSettings(host=HOST, port=args.port, username=USERNAME),
        store=StoreSettings(url=store_url),
        web=WebSettings(host=HOST, port=free_port()),
    )
    daemon = BenchDaemon(settings, SecretStr(SECRET), queue=TimedQueue(QUEUE_SIZE))
    daemon.sample_rss_at(args.rss_marks)
    daemon.announce = args.announce
    try:
        async with asyncio.timeout(args.timeout):
            await daemon.run()
    except TimeoutError:
        return {"error": f"no end of stream within {args.timeout:g} s", **_counts(daemon)}
    closed_at = time.perf_counter()
    if daemon.started_at is None or daemon.done_at is None:
        return {"error": "the daemon stopped before the end of the stream", **_counts(daemon)}
    return {
        **_counts(daemon),
        # The headline: from the login to the last judged call written to the store.
        "seconds": (daemon.stored_at or closed_at) - daemon.started_at,
        "pipeline_seconds": daemon.done_at - daemon.started_at,
        "cpu_seconds": _cpu_seconds(daemon),
        "store_backlog_seconds": (daemon.stored_at or closed_at) - daemon.done_at,
        "store_pending_at_end": daemon.pending_at_end,
        "store_pending_marks": {str(k): v for k, v in daemon.pending_marks.items()},
        "open_obligation_marks": {str(k): v for k, v in daemon.open_marks.items()},
        "callback_pending_marks": {str(k): v for k, v in daemon.callback_marks.items()},
        "shutdown_seconds": closed_at - (daemon.stored_at or daemon.done_at),
        "rss_start_kib": daemon.rss_start_kib,
        "rss_marks_kib": {str(k): v for k, v in daemon.rss_marks.items()},
        "rss_end_kib": current_rss_kib(),
        "peak_rss_kib": peak_rss_kib(),
        "lag": daemon.lags.summary(),
        "call_end_lag": daemon.call_end_lags.summary(),
    }


def _cpu_seconds(daemon: BenchDaemon) -> float | None:
    if daemon.cpu_started_at is None or daemon.cpu_stored_at is None:
        return None
    return daemon.cpu_stored_at - daemon.cpu_started_at


def _counts(daemon: BenchDaemon) -> dict[str, Any]:
    stats = daemon.client.stats
    correlator = daemon.pipeline.correlator.stats
    return {
        "events": stats.events + stats.dropped_events,
        "queued": stats.events,
        "dropped_by_name": stats.dropped_events,
        "framing_errors": stats.framing_errors,
        "correlator_events": correlator.events,
        "rejected": correlator.rejected,
        "calls": correlator.calls_ended,
        "stored": daemon.writer.stats.written,
        "store_flushes": daemon.writer.stats.flushes,
    }


def instrument() -> None:
    """Errors only in the log, and the client's framer timed (in this process only)."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    ami_client.AmiFramer = TimedFramer  # type: ignore[misc]


def run(args: ClientArgs) -> dict[str, Any]:
    instrument()
    database = Path(args.workdir) / "bench.sqlite3"
    return asyncio.run(run_daemon(args, f"sqlite+aiosqlite:///{database}"))
