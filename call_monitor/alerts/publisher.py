"""Outbox -> MQTT: publish every undelivered outbox row, in order, at least once.

:meth:`OutboxPublisher.run` connects, drains the outbox (QoS as stored, 1 for alerts: each
publish waits for the broker's PUBACK before the row is marked delivered), then sleeps until
:meth:`OutboxPublisher.wake` or ``mqtt.poll_seconds``. A lost or refused connection, a
PUBACK that does not come within ``mqtt.timeout_seconds``, or a database error ends the
session: it is counted, logged once per outage, and retried after the daemon's backoff
(:class:`~call_monitor.backoff.Backoff`: a window of ``reconnect_initial_seconds`` doubling
up to ``reconnect_max_seconds``, full jitter). No row
is ever dropped; a row published just before a failure may be published again (consumers
drop it by its ``idempotency_key``).

With no broker configured (``mqtt.host`` empty) ``run`` logs that and returns: the alerts
stay in the outbox, and go out once a broker is configured and the daemon restarted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.backoff import Backoff, describe
from call_monitor.config import MqttSettings
from call_monitor.store.outbox import backlog_summary, mark_delivered, mark_failed, pending
from call_monitor.store.retry import wait_for_event

log = logging.getLogger(__name__)

BATCH_SIZE = 100
KEEPALIVE_SECONDS = 30


@dataclass(slots=True)
class PublisherStats:
    """What the metrics show about the alert path."""

    published: int = 0  # messages the broker acknowledged
    failures: int = 0  # failed connection attempts, lost connections, publish timeouts
    database_errors: int = 0
    outages: int = 0  # times the broker went from reachable (or never tried) to unreachable
    connected: bool = False
    outbox_backlog: int = 0  # undelivered rows, as last counted
    oldest_pending_at: datetime | None = None  # created_at of the oldest of them
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class PublisherGauges:
    """The alert path on /metrics (``metrics.families.AlertPathView``)."""

    connected: bool
    outbox_pending: int
    oldest_pending_age_seconds: float
    publish_failures: int
    published: int


class OutboxPublisher:
    """Publishes the outbox to the broker of ``settings``; run :meth:`run` as a task."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: MqttSettings,
        stats: PublisherStats | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.stats = stats if stats is not None else PublisherStats()
        self._batch_size = batch_size
        self._clock = clock
        # Reset by _healthy only: a session that failed at once (refused, dropped straight
        # after CONNACK, no PUBACK) keeps widening the window.
        self._backoff = Backoff(
            settings.reconnect_initial_seconds, settings.reconnect_max_seconds, rng=rng
        )
        self._wake = asyncio.Event()
        self._outage_since: float | None = None  # monotonic; None while the broker is fine
        self._in_flight: int | None = None  # the row being published, for mark_failed
        self._acked: list[int] = []  # PUBACK received, delivered_at not yet written
        self._cancelled = False  # cancelled inside a session (see _session)
        self._session_started = 0.0  # monotonic

    @property
    def enabled(self) -> bool:
        return bool(self.settings.host)

    def gauges(self) -> PublisherGauges:
        """The stats as /metrics shows them, at scrape time. The outbox is as the publisher
        last counted it (after each batch, each idle poll and each failed session), so a
        scrape reads no database; only the oldest row's age is taken from the clock now,
        so it keeps growing while the broker is away."""
        stats = self.stats
        oldest = stats.oldest_pending_at
        age = 0.0
        if oldest is not None and stats.outbox_backlog:
            age = max(0.0, (self._clock() - oldest).total_seconds())
        return PublisherGauges(
            connected=stats.connected,
            outbox_pending=stats.outbox_backlog,
            oldest_pending_age_seconds=age,
            publish_failures=stats.failures,
            published=stats.published,
        )

    def wake(self) -> None:
        """New rows are committed: publish them now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Publish forever (until cancelled); returns at once when no broker is configured."""
        if not self.enabled:
            log.info("no MQTT broker configured (mqtt.host): callback alerts stay in the outbox")
            return
        try:
            await self._run()
        finally:
            # Cancelled (the daemon stops) after PUBACKs not yet marked: mark them, or they
            # go out again after the restart (harmless, but avoidable).
            if self._acked:
                try:
                    await self._mark_acked()
                except SQLAlchemyError:
                    log.exception("alerts: %d published alerts not marked", len(self._acked))

    async def _run(self) -> None:
        while True:
            error: BaseException | None = None
            try:
                await self._session()
            except* (aiomqtt.MqttError, OSError) as group:
                error = group.exceptions[0]
                self._broker_failed(error)
            except* SQLAlchemyError as group:
                error = group.exceptions[0]
                self.stats.database_errors += 1
                self.stats.last_error = describe(error)
                # A database error is not an outage of the broker: log every one, in full.
                log.error("alerts: outbox database error; retrying", exc_info=error)
            finally:
                self.stats.connected = False
            if self._cancelled:
                raise asyncio.CancelledError  # the stop, whatever the client raised after it
            if error is not None:
                await self._after_failure(error)
            await asyncio.sleep(self._backoff.next_delay())

    # -- one connection ---------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        settings = self.settings
        if settings.host is None:  # pragma: no cover - run() checked it
            raise RuntimeError("no MQTT host")
        tls: aiomqtt.TLSParameters | None = None
        if settings.tls:
            # Applied by aiomqtt in its connect thread (reading the CA file does not block the
            # loop); paho's defaults verify the certificate and the host name.
            tls = aiomqtt.TLSParameters(
                ca_certs=str(settings.ca_file) if settings.ca_file is not None else None
            )
        password = settings.password.get_secret_value() if settings.password else None
        return aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=password,
            identifier=settings.client_id,
            # The outbox is our session state: a persistent broker session would hold
            # nothing we need (we never subscribe) and a duplicate id would fight over it.
            clean_session=True,
            timeout=settings.timeout_seconds,
            keepalive=KEEPALIVE_SECONDS,
            tls_params=tls,
        )

    async def _session(self) -> None:
        async with self._client() as client:
            self.stats.connected = True
            self._session_started = time.monotonic()
            if self._outage_since is None:
                log.info(
                    "alerts: connected to MQTT broker %s:%d", self.settings.host, self.settings.port
                )
            else:
                # Not over yet: a broker that takes the connection and then fails every
                # publish (or drops us at once) is still out; see _healthy.
                log.debug("alerts: reconnected to MQTT broker, on probation")
            try:
                async with asyncio.TaskGroup() as tasks:
                    # The watcher ends the session as soon as the connection drops, even
                    # while the drain is idle or waiting for a PUBACK that will never come.
                    tasks.create_task(self._watch(client), name="mqtt-watch")
                    tasks.create_task(self._drain(client), name="mqtt-drain")
            except asyncio.CancelledError:
                # The client's __aexit__ may now raise an MqttError (the broker gone while
                # it disconnects) in the CancelledError's place: caught as a broker failure,
                # the loop went on and the daemon's stop waited for ever. Remembered here.
                self._cancelled = True
                raise

    def _healthy(self) -> None:
        """The session works (a PUBACK came, or it lasted): the outage, if any, is over."""
        self._backoff.reset()
        if self._outage_since is not None:
            log.info(
                "alerts: MQTT broker %s:%d reachable again after %.1f s",
                self.settings.host,
                self.settings.port,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        # We subscribe to nothing: the iterator only ever raises MqttError on disconnection.
        async for _message in client.messages:
            pass
        raise aiomqtt.MqttError("message iterator ended")  # pragma: no cover

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            if time.monotonic() - self._session_started >= self.settings.reconnect_max_seconds:
                self._healthy()
            # Cleared before reading: a wake() during the drain means "read again", not lost.
            self._wake.clear()
            rows = await pending(self.engine, self._batch_size)
            if not rows:
                self.stats.outbox_backlog = 0
                self.stats.oldest_pending_at = None
                await wait_for_event(self._wake, self.settings.poll_seconds)
                continue
            for row in rows:
                self._in_flight = row.id
                await client.publish(
                    row.topic, row.payload.encode("utf-8"), qos=row.qos, retain=row.retain
                )
                # No await between the PUBACK and this: a cancelled session cannot lose it.
                self._in_flight = None
                self._acked.append(row.id)
                self.stats.published += 1
                self._healthy()
            await self._mark_acked()
            await self._count_backlog()

    async def _mark_acked(self) -> None:
        """Mark the rows the broker acknowledged; kept for a retry if the database fails."""
        if not self._acked:
            return
        ids = list(self._acked)
        await mark_delivered(self.engine, ids, self._clock())
        del self._acked[: len(ids)]

    async def _count_backlog(self) -> None:
        """Count the outbox for the metrics (:meth:`gauges`)."""
        summary = await backlog_summary(self.engine)
        self.stats.outbox_backlog = summary.count
        self.stats.oldest_pending_at = summary.oldest_created_at

    # -- failures ---------------------------------------------------------------------

    def _broker_failed(self, error: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = describe(error)
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.stats.outages += 1
            # Once per outage; the retries that follow log at debug level only.
            log.warning(
                "alerts: MQTT broker %s:%d unavailable (%s); alerts kept in the outbox, retrying",
                self.settings.host,
                self.settings.port,
                self.stats.last_error,
            )
        else:
            log.debug("alerts: MQTT still unavailable: %s", self.stats.last_error)

    async def _after_failure(self, error: BaseException) -> None:
        in_flight, self._in_flight = self._in_flight, None
        try:
            # The session may have ended between the last PUBACKs and their marking (a
            # cancelled drain cannot await the database): mark them here, outside it.
            await self._mark_acked()
            if in_flight is not None:
                await mark_failed(self.engine, [in_flight], describe(error))
            await self._count_backlog()
        except SQLAlchemyError:
            self.stats.database_errors += 1
            log.exception("alerts: cannot update the outbox after a failure")
