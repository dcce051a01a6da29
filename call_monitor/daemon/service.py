"""The daemon: one TaskGroup holding the AMI link, the pipeline, the store, the callbacks
(timer, and the MQTT alert publisher when ``mqtt.host`` is set) and the web app.

Shutdown (SIGTERM, SIGINT, or ``stop``) cancels the link first, then hands every item
already received to the pipeline, then flushes the store and the callback changes: nothing
received is lost.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sqlite3
import sys
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import prometheus_client
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from call_monitor import __version__
from call_monitor.alerts.publisher import OutboxPublisher
from call_monitor.ami.client import AmiClient
from call_monitor.ami.stream import StreamItem
from call_monitor.calls.correlator import EVENT_FILTER
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.lines import describe
from call_monitor.charter.obligations import ObligationChange
from call_monitor.checklist.files import load_form
from call_monitor.checklist.form import FormError
from call_monitor.config import Settings
from call_monitor.daemon.callbacks import CallbackService, wall_clock
from call_monitor.daemon.pipeline import (
    Consumer,
    Pipeline,
    StageFailed,
    deliver,
    log_failure,
)
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.store import spool
from call_monitor.store.checklist_service import ChecklistService
from call_monitor.store.engine import create_engine, create_reader
from call_monitor.store.schema import is_new, upgrade
from call_monitor.store.writer import StoreWriter
from call_monitor.web.app import bind, create_app, serve
from call_monitor.web.live import Live
from call_monitor.web.security import session_secret
from call_monitor.web.site import Site

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
CONSUME_BATCH = 500  # items handled between two turns of the other tasks (~5 ms)
WRITER_STOP_SECONDS = 5.0
LAG_PROBE_SECONDS = 1.0  # how often callmon_event_handling_lag_seconds is probed


class _Stop(Exception):
    """Raised inside the TaskGroup to end it on a signal."""


class StartupError(Exception):
    """The daemon cannot start; the message names the setting and says why, in one line."""


@dataclass
class Daemon:
    """The running parts, exposed for tests and the demo's summary."""

    settings: Settings
    secret: SecretStr
    # Each finished call, with the callback changes it made (for the call's line).
    on_call: Callable[[JudgedCall, Sequence[ObligationChange]], None] | None = None
    clock: Callable[[], datetime] = wall_clock  # the callbacks' "now" (tests pin it)
    config_source: str = "built-in defaults"  # where the settings came from, for the log
    queue: asyncio.Queue[StreamItem] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    web_started: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        try:  # a bad form refuses the start, not the first supervisor's page
            self.checklist_form = load_form(self.settings.checklist.form)
        except FormError as exc:
            raise StartupError(str(exc)) from exc
        self.pipeline = Pipeline(self.settings)
        self.client = AmiClient(
            self.settings.ami, self.secret, self.queue, event_filter=EVENT_FILTER
        )
        self.metrics = CallMetrics(
            self.pipeline.directory,
            definitions_version=self.settings.charter.definitions_version,
            checklist_form=self.checklist_form,
        )
        self.metrics.watch_link(lambda: _LinkView(self.client))
        self.metrics.watch_correlator(lambda: self.pipeline.correlator.stats)
        self.metrics.watch_calls_in_progress(lambda: self.pipeline.correlator.calls_in_progress)
        try:
            self.engine = create_engine(self.settings.store.url)
        except OSError as exc:  # a SQLite file's directory that cannot be made
            raise StartupError(f"store.url: cannot open {self._store}: {_reason(exc)}") from exc
        self.writer = StoreWriter(self.engine, self.settings.store)
        self.metrics.watch_store(self.writer.gauges)
        self.publisher = OutboxPublisher(self.engine, self.settings.mqtt)
        self.live = Live()  # the staff home's live updates, fed by committed callback changes
        self.callbacks = CallbackService(
            self.settings,
            self.engine,
            self.pipeline.directory,
            metrics=self.metrics,
            clock=self.clock,
            on_committed=self.publisher.wake,
            on_changes=self.live.changed,
        )
        self.metrics.watch_callbacks(self.callbacks.gauges)
        # What the checklist pages call; each submitted revision is counted in the metrics.
        self.reader = create_reader(self.engine)  # the pages' reads
        self.checklists = ChecklistService(
            self.engine,
            self.checklist_form,
            self.pipeline.directory,
            monthly_target=self.settings.checklist.monthly_target,
            clock=self.clock,
            on_submitted=self.metrics.observe_checklist,
            reader=self.reader,
        )
        if self.publisher.enabled:  # no broker configured: no alert path to show
            self.metrics.watch_alerts(self.publisher.gauges)
        # Each judged call goes to each of these in turn; one that raises misses that call
        # only (a metrics bug does not cost the call its row in the store).
        self._caused: list[ObligationChange] = []  # by the call being delivered
        self._handled = 0  # queue items handled so far
        self._lag_probes: deque[tuple[int, float]] = deque()  # (items handled then, loop time)
        self._consumers: list[Consumer] = [
            ("metrics", lambda c: self.metrics.observe_call(c.record, c.verdict)),
            ("store", lambda c: self.writer.submit(c.record, c.verdict)),
            ("callbacks", self._owe),
        ]
        if self.on_call is not None:
            self._consumers.append(("report", self._report))
        web = self.settings.web
        try:
            secret = session_secret(web, self.settings.store.url)
        except OSError as exc:
            raise StartupError(f"web.session_secret: cannot make one: {_reason(exc)}") from exc
        site = Site(
            self.engine,
            self.pipeline.directory,
            self.callbacks,
            web,
            secret,
            self.live,
            export_settings=self.settings,
            checklists=self.checklists,
            reader=self.reader,
        )
        self.app = create_app(self.metrics, ready=self._not_ready, site=site)

    def stop(self) -> None:
        self.stop_event.set()

    def _not_ready(self) -> str | None:
        """Why ``/readyz`` says not ready: the AMI link down, or the store failing (its last
        writes failed: calls and changes wait in memory)."""
        if not self.client.connected:
            return "AMI not connected"
        failures = max(
            self.writer.stats.consecutive_failures, self.callbacks.stats.consecutive_failures
        )
        if failures:
            return f"store failing ({failures} writes in a row failed; kept queued)"
        return None

    async def run(self, *extra: Coroutine[Any, Any, None]) -> None:
        """Run until stopped; ``extra`` coroutines run supervised alongside (the demo's)."""
        web_socket = await self._listen()
        try:
            await self._start()
        except BaseException:
            web_socket.close()
            raise
        log.info("%s", self._started_line())
        # What exists now (modules, the directory, every metric series, restored
        # obligations) lives as long as the process: out of the cyclic GC's reach, a full
        # collection no longer scans it (it stalled the event loop ~75 ms flat out).
        gc.freeze()
        # The store writers are supervised by the group but never cancelled with it: a
        # batch cut off mid-transaction can leave SQLite's write lock with the abandoned
        # connection, and the final flush then fails "database is locked" for seconds.
        # _shut_down() closes them: it waits for the batch in flight, then writes the rest.
        writers = (
            asyncio.create_task(self.writer.run(), name="store"),
            asyncio.create_task(self.callbacks.run_writer(), name="callbacks"),
        )
        try:
            await self._supervise(extra, web_socket, writers)
        except* _Stop:
            log.info("stopping")
        finally:
            await self._shut_down(writers)

    async def _listen(self) -> socket.socket:
        """The web port, bound before anything else starts (a second monitor stops here)."""
        web = self.settings.web
        try:
            return await bind(web.host, web.port)
        except OSError as exc:
            await self.engine.dispose()
            raise StartupError(
                f"web.port: cannot listen on {web.host}:{web.port}: "
                f"{exc.strerror or exc} (is another call-monitor running?)"
            ) from exc

    async def _supervise(
        self,
        extra: Sequence[Coroutine[Any, Any, None]],
        web_socket: socket.socket,
        writers: Sequence[asyncio.Task[None]],
    ) -> None:
        """Every part in one TaskGroup: one that fails ends them all, as a stop does."""
        web = self.settings.web
        async with asyncio.TaskGroup() as group:
            for coroutine in extra:
                group.create_task(coroutine)
            group.create_task(self._until_stopped(), name="stop")
            group.create_task(self.client.run(), name="ami")
            group.create_task(self._consume(), name="pipeline")
            group.create_task(self._probe_lag(), name="lag probe")
            for writer in writers:
                group.create_task(_watch(writer), name=f"{writer.get_name()} watch")
            group.create_task(self.callbacks.run_timer(), name="callbacks timer")
            if self.publisher.enabled:
                group.create_task(self.publisher.run(), name="alerts")
            group.create_task(
                serve(self.app, web.host, web.port, started=self.web_started, sock=web_socket),
                name="web",
            )

    async def _shut_down(self, writers: Sequence[asyncio.Task[None]]) -> None:
        """What was received reaches the pipeline, the store and the callback changes; what
        the store does not take in time goes to the spool file."""
        try:
            self._drain()
            seconds = self.settings.store.shutdown_write_seconds
            written = await _closed(self.writer.close(seconds))
            # The store just failed for as long: the changes get one more try, not as long.
            written &= await _closed(self.callbacks.close(seconds if written else 1.0))
            if not written:
                self._spool()
        finally:
            for writer in writers:
                await _finish(writer)
            await self.engine.dispose()
            await self.reader.dispose()
            gc.unfreeze()  # a process that goes on (a test, the demo) collects again

    @property
    def _store(self) -> str:
        """The store's URL as it may be shown: the password masked."""
        return make_url(self.settings.store.url).render_as_string(hide_password=True)

    def _started_line(self) -> str:
        """What an admin checks first: which version, configured from where, writing
        where (the password masked), serving where, watching which PBX."""
        settings = self.settings
        store = self._store
        host = settings.web.host
        web = f"http://{f'[{host}]' if ':' in host else host}:{settings.web.port}"
        ami = f"{settings.ami.username}@{settings.ami.host}:{settings.ami.port}"
        return (
            f"call-monitor {__version__} started: config {self.config_source}; "
            f"store {store}; web {web}; AMI {ami}"
        )

    async def _refuse_a_new_store(self) -> None:
        if self.settings.store.create_if_missing:
            return
        if await is_new(self.settings.store.url, self.engine):
            raise StartupError(
                f"store.url: {self._store} holds no call-monitor database and "
                "store.create_if_missing is false: was it deleted? Restore it, or set "
                "store.create_if_missing = true to start a new one"
            )

    def _spool(self) -> None:
        """The calls and changes the store did not take, kept for the next start."""
        spooled = spool.Spooled(self.writer.unwritten(), self.callbacks.unwritten())
        if not spooled:
            return
        path = self.settings.store.resolved_spool_file()
        spool.save(path, spooled)
        log.warning(
            "store down at the stop: %d calls and %d callback changes kept in %s; written at "
            "the next start",
            len(spooled.calls),
            sum(len(changes) for changes, _ in spooled.changes),
            path,
        )

    async def _replay_spool(self) -> None:
        """What the last stop could not write, written first (it raises if it cannot: the
        file stays for the next try)."""
        path = self.settings.store.resolved_spool_file()
        spooled = spool.load(path)
        if not spooled:
            return
        self.writer.requeue(spooled.calls)
        await self.writer.flush()
        await self.callbacks.write_spooled(spooled.changes)
        spool.remove(path)
        log.info(
            "store: %d calls and %d callback change batches from %s written",
            len(spooled.calls),
            len(spooled.changes),
            path,
        )

    async def _start(self) -> None:
        """The schema up to date, what the last stop spooled written, then the open
        obligations back from the store (and what fell due while we were down), before the
        first call or API request can touch them."""
        try:
            await self._refuse_a_new_store()
            await upgrade(self.settings.store.url)
            await self._replay_spool()
            await self.callbacks.start()
        except (OSError, SQLAlchemyError, sqlite3.Error) as exc:
            await self.engine.dispose()
            raise StartupError(f"store.url: cannot open {self._store}: {_reason(exc)}") from exc
        except BaseException:
            await self.engine.dispose()
            raise

    async def _until_stopped(self) -> None:
        await self.stop_event.wait()
        self.live.close()  # open pages' event streams end now, not at the web's timeout
        raise _Stop

    async def _consume(self) -> None:
        queue = self.queue
        while True:
            self._handle(await queue.get())
            handled = 1
            # ``get`` does not yield while items wait: take up to a batch of them, then
            # let the reader, the store and /metrics have the loop.
            while handled < CONSUME_BATCH and not queue.empty():
                self._handle(queue.get_nowait())
                handled += 1
            self._handled += handled
            self._lag_probes_done()
            await asyncio.sleep(0)

    async def _probe_lag(self) -> None:
        """Once a second, note the item queued last and when: its lag is known once it is
        handled (:meth:`_lag_probes_done`). With nothing queued, the lag is how late this
        task itself woke up: what an event arriving now would wait for the loop."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_PROBE_SECONDS
            await asyncio.sleep(LAG_PROBE_SECONDS)
            waiting = self.queue.qsize()
            if waiting:
                self._lag_probes.append((self._handled + waiting, loop.time()))
            else:
                self.metrics.observe_handling_lag(max(0.0, loop.time() - due))

    def _lag_probes_done(self) -> None:
        probes = self._lag_probes
        if probes and self._handled >= probes[0][0]:
            now = asyncio.get_running_loop().time()
            while probes and self._handled >= probes[0][0]:
                self.metrics.observe_handling_lag(now - probes.popleft()[1])

    def _drain(self) -> None:
        """Items the link received before the stop still reach the pipeline and the store."""
        while not self.queue.empty():
            self._handle(self.queue.get_nowait())

    def _handle(self, item: StreamItem) -> None:
        """One stream item through the pipeline to the consumers. Never raises for a bug one
        call triggers: that call pays (logged, counted), the daemon goes on."""
        for result in self.pipeline.process(item):
            if isinstance(result, JudgedCall):
                for failure in deliver(result, self._consumers):
                    self._failed(failure)
            elif isinstance(result, StageFailed):
                self._failed(result)
            else:
                log.debug("event %s not used: %s", result.event, result.reason)

    def _owe(self, judged: JudgedCall) -> None:
        self._caused = self.callbacks.on_call(judged)

    def _report(self, judged: JudgedCall) -> None:
        assert self.on_call is not None  # a consumer only when set
        caused, self._caused = self._caused, []
        self.on_call(judged, caused)

    def _failed(self, failure: StageFailed) -> None:
        log_failure(failure)
        self.metrics.observe_pipeline_error(failure.stage)


def _reason(exc: BaseException) -> str:
    """The driver's own words, on one line, without SQLAlchemy's wrapping and links."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}".rstrip(": ")


async def _watch(task: asyncio.Task[None]) -> None:
    """Fail with ``task``, but leave it running when cancelled."""
    await asyncio.shield(task)


async def _closed(closing: Coroutine[Any, Any, None]) -> bool:
    """Whether a writer's close wrote everything (its failure is logged by it)."""
    try:
        await closing
    except Exception:
        return False
    return True


async def _finish(task: asyncio.Task[None]) -> None:
    """End the writer's loop after ``close()``: it returns at once unless a batch of its own
    is still being written, which is given a moment, then cancelled."""
    await asyncio.wait({task}, timeout=WRITER_STOP_SECONDS)
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: a failure already ended the group, through _watch


@dataclass(frozen=True)
class _LinkView:
    client: AmiClient

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def events(self) -> int:
        # Every event received, the ones dropped unparsed by the filter included.
        return self.client.stats.events + self.client.stats.dropped_events

    @property
    def framing_errors(self) -> int:
        return self.client.stats.framing_errors

    @property
    def framing_repairs(self) -> int:
        return self.client.stats.framing_repairs

    @property
    def reconnects(self) -> int:
        return self.client.stats.reconnects


def process_setup() -> None:
    # The daemon owns its process: drop the *_created series, which double the series
    # count and that no board uses.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


def install_signals(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)


async def run(settings: Settings, *, lang: str = "ko", config_source: str | None = None) -> int:
    if not settings.ami.host:
        print(
            "call-monitor: no PBX configured (ami.host / CALLMON_AMI__HOST); "
            "try `call-monitor demo`",
            file=sys.stderr,
        )
        return 2
    try:
        secret = settings.ami.resolved_secret()
    except OSError as exc:  # the secret_file: name what it is, not just the errno
        print(f"call-monitor: cannot read the AMI secret file: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"call-monitor: {exc}", file=sys.stderr)
        return 2
    process_setup()
    directory = Directory(settings.directory)
    daemon = Daemon(
        settings,
        secret,
        on_call=lambda c, caused: log.info(
            "%s", describe(c, lang, directory=directory, changes=caused)
        ),
        config_source=config_source or "built-in defaults",
    )
    install_signals(daemon)
    await daemon.run()
    return 0
