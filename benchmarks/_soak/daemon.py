"""The soak's daemon: the real ``Daemon`` of ``call_monitor.daemon.service``, in its own process.

``AmiClient`` over TCP -> queue -> ``Pipeline`` (framing, correlator, charter rules) ->
``CallMetrics`` -> ``StoreWriter`` batching to SQLite, web app up (the orchestrator scrapes
it), exactly as ``Daemon`` wires them, ``_created`` series off as ``call-monitor run`` sets.
Instruments, none in ``call_monitor/``:

- ``_consume`` (the daemon's loop over the queue) is replaced by one that, every
  ``drain_every`` calls, stops consuming until the store (and the callback service, where
  the daemon has one) has written its backlog (the queue
  fills, the client stops reading, TCP holds the server back), and every ``every`` calls
  (at the first moment after that with no call in progress, so that samples compare alike
  states) takes a sample: the process's ``VmRSS``, the correlator's state (calls
  in progress, tombstones, channels, bridges), the store's backlog, the queue, the Python
  objects alive (and the most numerous types of them), the callback service's open
  obligations and queued changes. Samples go
  to stdout as ``SAMPLE {json}`` lines as they are taken;
- the store writer's ``_write`` is timed, batches during the stream apart from those of the
  drains.

At the ``LinkDown`` that follows the server's last byte the store is flushed, a last sample
taken, and the daemon stopped; then one ``RESULT {json}`` line.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prometheus_client
from _ingest.common import HOST, SECRET, USERNAME, current_rss_kib, peak_rss_kib
from pydantic import SecretStr

from _soak.traffic import bench_directory
from call_monitor.ami.stream import LinkDown, LinkUp, StreamItem
from call_monitor.config import AmiSettings, Settings, StoreSettings, WebSettings
from call_monitor.daemon.service import Daemon

SAMPLE_PREFIX = "SAMPLE "
TYPES_KEPT = 300  # the most numerous types of objects the gc tracks, per sample
RESULT_PREFIX = "RESULT "


@dataclass(frozen=True)
class DaemonArgs:
    ami_port: int
    web_port: int
    workdir: str
    every: int  # calls between two samples
    drain_every: int  # calls between two drains of the store; 0: never
    timeout: float
    staff: int
    departments: int
    first_extension: int
    switch_interval: float = 0.0  # sys.setswitchinterval; 0: Python's default (5 ms)
    callbacks_off: bool = False  # the callback service is given no calls


def emit(prefix: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(prefix + json.dumps(payload) + "\n")
    sys.stdout.flush()


@dataclass
class _Phase:
    count: int = 0
    seconds: float = 0.0
    longest: float = 0.0
    calls: int = 0


class BatchTimes:
    """Wall time of the store's batches (``StoreWriter._write``) since the last sample, apart
    for batches written while the stream runs and during the soak's drains."""

    def __init__(self) -> None:
        self.draining = False
        self.phases = {"stream": _Phase(), "drain": _Phase()}

    def wrap(self, writer: Any) -> None:
        write = writer._write

        async def timed(engine: Any, calls: Any) -> None:
            phase = self.phases["drain" if self.draining else "stream"]
            started = time.perf_counter()
            try:
                await write(engine, calls)
            finally:
                elapsed = time.perf_counter() - started
                phase.count += 1
                phase.calls += len(calls)
                phase.seconds += elapsed
                phase.longest = max(phase.longest, elapsed)

        writer._write = timed  # this instance, this process only

    def take(self) -> dict[str, Any]:
        taken: dict[str, Any] = {}
        for name, phase in self.phases.items():
            taken[f"{name}_batches"] = phase.count
            taken[f"{name}_batch_calls"] = phase.calls
            taken[f"{name}_batch_seconds"] = phase.seconds
            taken[f"{name}_batch_max_seconds"] = phase.longest
            self.phases[name] = _Phase()
        return taken


class SoakDaemon(Daemon):
    """The real daemon, sampled every ``every`` calls; stops itself at the end of the stream."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.every = 100_000
        self.next_mark = self.every
        self.drain_every = 0  # 0: never
        self.next_drain = 0
        self.drain_seconds = 0.0
        self.drains = 0
        self.backlog_before_drain = 0  # the largest since the last sample
        self.started_at: float | None = None
        self.done_at: float | None = None
        self.samples: list[dict[str, Any]] = []
        self.finishing: asyncio.Task[None] | None = None
        self.batches = BatchTimes()
        self.batches.wrap(self.writer)

    async def _consume(self) -> None:
        while True:
            item = await self.queue.get()
            self._handle(item)
            ended = self.pipeline.correlator.stats.calls_ended
            if self.drain_every and ended >= self.next_drain:
                while ended >= self.next_drain:
                    self.next_drain += self.drain_every
                await self._drain_store()
            # Samples compare alike moments: the first after the mark with no call up.
            if ended >= self.next_mark and self.pipeline.correlator.calls_in_progress == 0:
                while ended >= self.next_mark:
                    self.next_mark += self.every
                self.sample("every")

    async def _drain_store(self) -> None:
        """Stop consuming until the store has written its backlog: the queue fills, the
        client stops reading, TCP holds the server back. A quiet moment of a real day."""
        self.backlog_before_drain = max(self.backlog_before_drain, self.writer.pending)
        self.batches.draining = True
        started = time.perf_counter()
        try:
            await self.writer.flush()
            callbacks = getattr(self, "callbacks", None)  # trees with the callback service
            if callbacks is not None:
                await callbacks.flush()
        finally:
            self.batches.draining = False
            self.drain_seconds += time.perf_counter() - started
            self.drains += 1

    def _handle(self, item: StreamItem) -> None:
        super()._handle(item)
        if isinstance(item, LinkUp) and self.started_at is None:
            self.started_at = time.perf_counter()
            self.sample("start")
        elif isinstance(item, LinkDown) and self.done_at is None:
            self.done_at = time.perf_counter()
            self.finishing = asyncio.get_running_loop().create_task(self._store_then_stop())

    async def _store_then_stop(self) -> None:
        self.batches.draining = True  # the last flush: the stream is over
        try:
            await self.writer.flush()
            callbacks = getattr(self, "callbacks", None)
            if callbacks is not None:
                await callbacks.flush()
            gc.collect()
            self.sample("end, store flushed, gc.collect()")
        finally:
            self.stop()

    def sample(self, when: str) -> None:
        correlator = self.pipeline.correlator
        stats = self.client.stats
        started = time.perf_counter()
        alive = gc.get_objects()
        objects = len(alive)
        types = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in alive)
        del alive
        callbacks = getattr(self, "callbacks", None)
        payload = {
            "when": when,
            "calls": correlator.stats.calls_ended,
            "events": stats.events + stats.dropped_events,
            "seconds": 0.0 if self.started_at is None else started - self.started_at,
            "rss_kib": current_rss_kib(),
            "hwm_kib": peak_rss_kib(),
            "in_progress": correlator.calls_in_progress,
            # Private state, read for the soak only: what a leak would grow.
            "tombstones": len(correlator._gone),
            "channels": len(correlator._channels),
            "channel_names": len(correlator._by_name),
            "bridges": len(correlator._bridges),
            "store_pending": self.writer.pending,
            "stored": self.writer.stats.written,
            "queue": self.queue.qsize(),
            "callbacks_open": (
                None if callbacks is None else len(callbacks.tracker.open_obligations())
            ),
            "callbacks_pending": None if callbacks is None else callbacks.pending,
            "gc_objects": objects,
            "types": dict(types.most_common(TYPES_KEPT)),
            "sample_seconds": time.perf_counter() - started,
            "drains": self.drains,
            "drain_seconds": self.drain_seconds,
            "backlog_before_drain": self.backlog_before_drain,
            **self.batches.take(),
        }
        self.backlog_before_drain = 0
        self.samples.append(payload)
        emit(SAMPLE_PREFIX, payload)


async def _run(args: DaemonArgs) -> dict[str, Any]:
    database = Path(args.workdir) / "soak.sqlite3"
    settings = Settings(
        ami=AmiSettings(host=HOST, port=args.ami_port, username=USERNAME),
        store=StoreSettings(url=f"sqlite+aiosqlite:///{database}"),
        web=WebSettings(host=HOST, port=args.web_port),
        directory=bench_directory(args.staff, args.departments, args.first_extension),
    )
    daemon = SoakDaemon(settings, SecretStr(SECRET))
    callbacks = getattr(daemon, "callbacks", None)
    if args.callbacks_off and callbacks is not None:
        # A diagnostic, in this process only: no call reaches the callback tracker, so no
        # obligation is made or joined; everything else runs as it does.
        callbacks.on_call = lambda judged: None
    daemon.every = daemon.next_mark = args.every
    daemon.drain_every = daemon.next_drain = args.drain_every
    try:
        async with asyncio.timeout(args.timeout):
            await daemon.run()
    except TimeoutError:
        return {"error": f"no end of stream within {args.timeout:g} s", **_counts(daemon)}
    if daemon.started_at is None or daemon.done_at is None:
        return {"error": "the daemon stopped before the end of the stream", **_counts(daemon)}
    size = database.stat().st_size if database.exists() else 0
    return {
        **_counts(daemon),
        "seconds": daemon.done_at - daemon.started_at,
        "database_bytes": size,
        "peak_rss_kib": peak_rss_kib(),
    }


def _counts(daemon: SoakDaemon) -> dict[str, Any]:
    stats = daemon.client.stats
    correlator = daemon.pipeline.correlator.stats
    writer = daemon.writer.stats
    return {
        "events": stats.events + stats.dropped_events,
        "framing_errors": stats.framing_errors,
        "reconnects": stats.reconnects,
        "ping_timeouts": stats.ping_timeouts,
        "correlator_events": correlator.events,
        "rejected": correlator.rejected,
        "calls": correlator.calls_ended,
        "incomplete": correlator.incomplete_closed,
        "stored": writer.written,
        "store_flushes": writer.flushes,
        "store_failures": writer.failures,
        "store_dropped": writer.dropped,
    }


def run(args: DaemonArgs) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    # As ``call-monitor run`` does (service._process_setup): no ``_created`` series.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    if args.switch_interval > 0:  # a diagnostic: how the store's thread gets the GIL
        sys.setswitchinterval(args.switch_interval)
    try:
        result = asyncio.run(_run(args))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    emit(RESULT_PREFIX, result)
    return 0
