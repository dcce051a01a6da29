"""The asyncio AMI client: the I/O edge between the PBX and the pure stream.

One :class:`AmiClient` keeps one logged-in connection to the Asterisk Manager Interface
alive for the life of the process and puts what it sees on an ``asyncio.Queue`` of
:class:`~call_monitor.ami.stream.StreamItem`, in exactly the order the offline transcript
reader (:func:`~call_monitor.ami.stream.transcript_items`) gives for a recording:

- ``LinkUp`` once a connection is logged in;
- every event, in arrival order (``await out.put``: a full queue slows the reader, which
  slows the PBX's TCP stream; nothing is ever dropped);
- ``Resync`` after a reconnect, with the channels ``CoreShowChannels`` reported (put by the
  reader at the moment the list completes, so it sits at its place among the events);
- ``LinkDown`` when the connection is lost.

Per connection a :class:`asyncio.TaskGroup` supervises the reader, the keep-alive pinger
and the resync request; whichever fails first ends the connection, the others are
cancelled, pending actions fail with :class:`AmiDisconnected`, and the client reconnects
with the daemon's backoff (:class:`~call_monitor.backoff.Backoff`: exponential, full jitter).

Replies are waited for with a twist: while the reader is blocked on a full queue it cannot
read the reply, so a wait that overlaps such a stall is extended rather than declared
timed out. A slow consumer never makes a healthy link look dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import SecretStr

from call_monitor.ami.framing import (
    AmiFramer,
    AmiMessage,
    Banner,
    EventFilter,
    Frame,
    FramerStats,
    FramingError,
    encode_action,
)
from call_monitor.ami.stream import (
    RESYNC_ACTION,
    RESYNC_ITEM_EVENT,
    LinkDown,
    LinkUp,
    PbxRestarted,
    Resync,
    StreamItem,
)
from call_monitor.backoff import Backoff, describe
from call_monitor.config import AmiSettings

log = logging.getLogger(__name__)

READ_CHUNK = 65536
LOGOFF_TIMEOUT_SECONDS = 1.0
# A reply waited for while the PBX keeps sending whole messages gets this many more
# timeouts at most (a Ping reply queued behind a backlog; the soak saw 6): then the link
# is dead, whatever else arrives.
MAX_EXTENDED_WAITS = 20

Headers = Iterable[tuple[str, str]]


class AmiError(Exception):
    """Base of the AMI client's errors."""


class AmiAuthError(AmiError):
    """The PBX refused the login (wrong username or secret, or a host not permitted)."""


class AmiProtocolError(AmiError):
    """The peer does not speak AMI (no banner) or broke the protocol."""


class AmiTimeout(AmiError):
    """No reply to an action in time."""


class AmiDisconnected(AmiError):
    """The link is down: the action was not sent, or its reply can no longer come."""


class AmiActionError(AmiError):
    """The PBX answered an event-list action with ``Response: Error``."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class _LinkLost(Exception):
    """A connection ended; ``str()`` is the reason given in ``LinkDown``."""


@dataclass(slots=True)
class ClientStats:
    """Cumulative counters over the life of the client (never reset on reconnect).

    Satisfies :class:`call_monitor.metrics.families.LinkStatsView`.
    """

    connected: bool = False
    connects: int = 0  # connections that logged in (LinkUp)
    reconnects: int = 0  # logins that followed a lost link (LinkUp after a LinkDown)
    connect_failures: int = 0  # attempts that ended before login (refused, timeout, auth)
    auth_failures: int = 0
    events: int = 0  # events put on the queue
    framing_errors: int = 0
    # Messages kept by a repair (a line without ``Key:`` skipped, lone CR/LF line ends).
    framing_repairs: int = 0
    banners_again: int = 0  # banners inside a connection: the link is then renewed
    dropped_events: int = 0  # events dropped by name (``ignore_events``) before decoding
    stale_replies: int = 0  # replies to actions already timed out
    ping_timeouts: int = 0


@dataclass(slots=True)
class _Pending:
    action: str
    future: asyncio.Future[list[AmiMessage]]
    is_list: bool
    resync: bool = False
    items: list[AmiMessage] = field(default_factory=list)


class AmiClient:
    """Keeps one AMI connection up and streams what it sees to ``out``.

    ``resync_on_first_connect`` also asks ``CoreShowChannels`` on the very first
    connection (a monitor started while calls are up); by default only reconnects resync,
    which is what the recordings show and what the transcript reader reproduces. ``rng``
    jitters the reconnect delays (seed one for reproducible delays).
    """

    def __init__(
        self,
        settings: AmiSettings,
        secret: SecretStr,
        out: asyncio.Queue[StreamItem],
        stats: ClientStats | None = None,
        *,
        resync_on_first_connect: bool = False,
        event_filter: EventFilter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._backoff = Backoff(
            settings.reconnect_initial_seconds, settings.reconnect_max_seconds, rng=rng
        )
        self._event_filter = event_filter
        self._secret = secret
        self._out = out
        self.stats = stats if stats is not None else ClientStats()
        self._resync_first = resync_on_first_connect
        self._ids = itertools.count(1)
        self._resyncs = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._stale: set[str] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._connected = False
        self._ever_up = False
        self._stalled = False  # the reader is blocked on a full queue
        self._stalls = 0  # how many times it was
        # Liveness: whole messages read on this connection (a trickle of bytes that never
        # completes one is not a PBX that is alive).
        self._framer_stats = FramerStats()
        self._down_since: float | None = None  # monotonic time of the last LinkDown

    # -- public -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between ``LinkUp`` and ``LinkDown`` (for ``/readyz``)."""
        return self._connected

    async def run(self) -> None:
        """Connect, stream, reconnect; forever, until cancelled."""
        settings = self._settings
        if not settings.host:
            raise ValueError("no AMI host configured (ami.host)")
        while True:
            logged_in = False
            try:
                logged_in = await self._connection()
            except AmiAuthError as exc:
                self.stats.auth_failures += 1
                log.error(
                    "AMI login as %r at %s:%s refused by the PBX: %s "
                    "(check ami.username, the secret and manager.conf permit/deny)",
                    settings.username,
                    settings.host,
                    settings.port,
                    exc,
                )
            except (OSError, TimeoutError, AmiError, _LinkLost) as exc:
                log.warning(
                    "AMI connection to %s:%s failed: %s",
                    settings.host,
                    settings.port,
                    _reason(exc),
                )
            except Exception:
                log.exception("AMI connection to %s:%s failed", settings.host, settings.port)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A stop requested while a connection failed for another reason.
                raise asyncio.CancelledError
            if logged_in:
                self._backoff.reset()  # a link that came up: the next wait starts small
            else:
                self.stats.connect_failures += 1
            wait = self._backoff.next_delay()
            log.info("AMI: reconnecting in %.2f s", wait)
            await asyncio.sleep(wait)

    async def action(self, name: str, headers: Headers = ()) -> AmiMessage:
        """Send an action and return its ``Response`` (``Success`` or ``Error``)."""
        action_id, pending = self._register(name, is_list=False)
        try:
            await self._write(encode_action(name, action_id, headers))
            replies = await self._wait(pending, self._settings.action_timeout_seconds)
        finally:
            self._forget(action_id)
        return replies[0]

    async def event_list(self, name: str, headers: Headers = ()) -> list[AmiMessage]:
        """Send an action whose reply is an event list; return the list's events.

        The ``Response`` (``EventList: start``) and the closing event (``EventList:
        Complete``) are not included. ``Response: Error`` raises :class:`AmiActionError`.
        """
        return await self._event_list(name, headers, resync=False)

    # -- one connection -----------------------------------------------------------------

    async def _connection(self) -> bool:
        """Run one connection to its end; return whether it got logged in.

        Failures before the login raise; a logged-in link that is lost returns True after
        putting ``LinkDown`` on the queue.
        """
        settings = self._settings
        assert settings.host is not None
        async with asyncio.timeout(settings.connect_timeout_seconds):
            reader, writer = await asyncio.open_connection(settings.host, settings.port)
        framer = AmiFramer(ignore_events=settings.ignore_events, event_filter=self._event_filter)
        self._framer_stats = framer.stats
        try:
            async with asyncio.timeout(settings.action_timeout_seconds):
                leftover = await self._handshake(reader, writer, framer)
        except BaseException:
            writer.close()
            raise
        reason = await self._serve(reader, writer, framer, leftover)
        log.warning("AMI link to %s:%s lost: %s", settings.host, settings.port, reason)
        await self._out.put(LinkDown(reason))
        self._down_since = time.monotonic()
        return True

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framer: AmiFramer,
        leftover: list[Frame],
    ) -> str:
        """Stream a logged-in connection until it is lost; return why it was."""
        settings = self._settings
        self._stale.clear()
        self._writer = writer
        self._connected = self.stats.connected = True
        self.stats.connects += 1
        resync = self._ever_up or self._resync_first
        if self._ever_up:
            self.stats.reconnects += 1
        self._ever_up = True
        log.info("AMI: logged in to %s:%s as %r", settings.host, settings.port, settings.username)
        reason = "connection closed"
        try:
            await self._out.put(LinkUp())
            # Awaited at once (cancelling us cancels it). Its own task because on Python
            # 3.11 a TaskGroup whose child fails while the body waits in __aexit__ leaves
            # its task's cancel count raised (fixed in 3.12); that task then just ends.
            await asyncio.create_task(self._supervise(reader, framer, leftover, resync))
        except ExceptionGroup as group:
            first = _first_leaf(group)
            if not isinstance(first, (_LinkLost, OSError, AmiError)):
                log.error("AMI connection failed unexpectedly", exc_info=first)
            reason = _reason(first)
        except asyncio.CancelledError:
            reason = "client stopped"
            await self._logoff(writer)
            raise
        finally:
            self._writer = None
            self._connected = self.stats.connected = False
            self._fail_pending(reason)
            # Not awaiting wait_closed(): a peer that stopped reading could hold it; the
            # transport flushes what it can (the Logoff) and closes either way.
            writer.close()
        return reason

    async def _supervise(
        self, reader: asyncio.StreamReader, framer: AmiFramer, leftover: list[Frame], resync: bool
    ) -> None:
        """The tasks of one logged-in connection; the first to fail ends them all."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._reader(reader, framer, leftover))
            tg.create_task(self._pinger())
            if resync:
                tg.create_task(self._resync())

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framer: AmiFramer
    ) -> list[Frame]:
        """Check the banner and log in; return the frames that came after the login reply."""
        frames: list[Frame] = []
        while not frames:
            frames = await _read_frames(reader, framer, "before the AMI banner")
        first = frames.pop(0)
        if not isinstance(first, Banner):
            raise AmiProtocolError("the peer sent no AMI banner (is this the AMI port?)")
        log.debug("AMI banner: %s", first.version)
        login_id = f"login-{next(self._ids)}"
        writer.write(
            encode_action(
                "Login",
                login_id,
                [
                    ("Username", self._settings.username),
                    ("Secret", self._secret.get_secret_value()),
                    ("Events", "on"),
                ],
            )
        )
        await writer.drain()
        before: list[Frame] = []
        while True:
            for index, frame in enumerate(frames):
                if (
                    isinstance(frame, AmiMessage)
                    and frame.event is None
                    and frame.action_id == login_id
                ):
                    if frame.response != "Success":
                        raise AmiAuthError(frame.get("Message", "login refused"))
                    return before + frames[index + 1 :]
                before.append(frame)
            frames = await _read_frames(reader, framer, "before the login reply")

    async def _reader(
        self, reader: asyncio.StreamReader, framer: AmiFramer, leftover: list[Frame]
    ) -> None:
        dropped, repaired = framer.stats.dropped, framer.stats.repaired
        self.stats.dropped_events += dropped
        self.stats.framing_repairs += repaired
        await self._deliver(leftover)
        self._renew_after_banner(framer)
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                raise _LinkLost("connection closed by the PBX")
            frames = framer.feed(data)
            if framer.stats.dropped != dropped:
                self.stats.dropped_events += framer.stats.dropped - dropped
                dropped = framer.stats.dropped
            if framer.stats.repaired != repaired:
                self.stats.framing_repairs += framer.stats.repaired - repaired
                repaired = framer.stats.repaired
            await self._deliver(frames)
            self._renew_after_banner(framer)
            # Let the consumer, the store and /metrics run between chunks: a fast PBX
            # keeps the socket readable and this loop would otherwise hold the loop.
            await asyncio.sleep(0)

    def _renew_after_banner(self, framer: AmiFramer) -> None:
        """The banner again (the framer's first one is the handshake's): the PBX restarted
        behind a proxy, or the proxy reconnected. Events may be missing and our login may
        be gone: the events before and after it delivered, the link is renewed (login,
        resync)."""
        if framer.stats.banners_again:
            self.stats.banners_again += framer.stats.banners_again
            raise _LinkLost("the PBX sent its banner again inside the connection")

    async def _deliver(self, frames: list[Frame]) -> None:
        """Route a chunk's frames; events go to the queue, waiting only when it is full."""
        out = self._out
        for frame in frames:
            item = self._route(frame)
            if item is None:
                continue
            if out.full():
                await self._put(item)
            else:
                out.put_nowait(item)

    def _route(self, frame: Frame) -> StreamItem | None:
        """Replies resolve their actions; what the consumer should get is returned."""
        if isinstance(frame, FramingError):
            self.stats.framing_errors += 1
            log.debug("AMI framing error (%d bytes skipped): %s", frame.size, frame.reason)
            return None
        if isinstance(frame, Banner):  # inside a connection: see _reader
            return None
        action_id = frame.action_id
        if frame.event is None:
            self._on_response(frame, action_id)
            return None
        if action_id is not None:
            pending = self._pending.get(action_id)
            if pending is not None and pending.is_list:
                return self._on_list_event(frame, action_id, pending)
            if action_id in self._stale:
                self.stats.stale_replies += 1
                if frame.get("EventList").lower() == "complete":
                    self._stale.discard(action_id)
                return None
        self.stats.events += 1
        if frame.event == "FullyBooted":
            return self._booted(frame)
        return frame

    def _booted(self, frame: AmiMessage) -> StreamItem:
        """A PBX up for less time than our link was down restarted meanwhile: every call in
        flight was hung up by it (``PbxRestarted``); its ``Shutdown`` may never have
        reached us."""
        try:
            uptime = float(frame.get("Uptime"))
        except ValueError:
            return frame
        if self._down_since is None or not uptime < time.monotonic() - self._down_since:
            return frame
        log.warning("AMI: the PBX restarted while the link was down (up %.0f s)", uptime)
        return PbxRestarted()

    def _on_response(self, frame: AmiMessage, action_id: str | None) -> None:
        pending = None if action_id is None else self._pending.get(action_id)
        if pending is None or action_id is None:
            self.stats.stale_replies += 1
            log.debug("AMI: reply to no pending action: %s", frame.response)
            return
        if not pending.is_list:
            _resolve(pending.future, [frame])
            self._pending.pop(action_id, None)
            if frame.get("EventList").lower() == "start":
                self._stale.add(action_id)  # action() on a list action: keep its list out
        elif frame.response != "Success":
            if not pending.future.done():
                pending.future.set_exception(
                    AmiActionError(pending.action, frame.get("Message", "error"))
                )
            self._pending.pop(action_id, None)
        elif frame.get("EventList").lower() != "start":
            _resolve(pending.future, [])  # a Success that announces no list: empty
            self._pending.pop(action_id, None)

    def _on_list_event(
        self, frame: AmiMessage, action_id: str, pending: _Pending
    ) -> StreamItem | None:
        if frame.get("EventList").lower() != "complete":
            pending.items.append(frame)
            return None
        self._pending.pop(action_id, None)
        _resolve(pending.future, pending.items)
        if pending.resync:
            return Resync(tuple(m for m in pending.items if m.event == RESYNC_ITEM_EVENT))
        return None

    async def _put(self, item: StreamItem) -> None:
        self._stalled = True
        self._stalls += 1
        try:
            await self._out.put(item)
        finally:
            self._stalled = False

    async def _pinger(self) -> None:
        settings = self._settings
        while True:
            await asyncio.sleep(settings.ping_interval_seconds)
            action_id, pending = self._register("Ping", is_list=False)
            try:
                await self._write(encode_action("Ping", action_id))
                await self._wait(pending, settings.ping_timeout_seconds)
            except AmiTimeout:
                self.stats.ping_timeouts += 1
                raise _LinkLost(
                    f"no reply to Ping within {settings.ping_timeout_seconds:g} s"
                ) from None
            finally:
                self._forget(action_id)

    async def _resync(self) -> None:
        try:
            channels = await self._event_list(RESYNC_ACTION, (), resync=True)
        except AmiTimeout:
            raise _LinkLost(f"no reply to {RESYNC_ACTION}") from None
        except AmiActionError as exc:
            log.warning(
                "AMI: %s refused (%s); calls that ended while the link was down stay open "
                "until their next event (grant read=system or reporting)",
                RESYNC_ACTION,
                exc.message,
            )
            return
        log.info("AMI: resync, %d channels up", len(channels))

    # -- actions ------------------------------------------------------------------------

    async def _event_list(self, name: str, headers: Headers, *, resync: bool) -> list[AmiMessage]:
        if resync:
            action_id = f"resync-{next(self._resyncs)}"
            pending = self._register_id(action_id, name, is_list=True, resync=True)
        else:
            action_id, pending = self._register(name, is_list=True)
        try:
            await self._write(encode_action(name, action_id, headers))
            return await self._wait(pending, self._settings.action_timeout_seconds)
        finally:
            self._forget(action_id)

    def _register(self, name: str, *, is_list: bool) -> tuple[str, _Pending]:
        action_id = f"cm-{next(self._ids)}"
        return action_id, self._register_id(action_id, name, is_list=is_list)

    def _register_id(
        self, action_id: str, name: str, *, is_list: bool, resync: bool = False
    ) -> _Pending:
        if self._writer is None:
            raise AmiDisconnected(f"{name}: the AMI link is down")
        future: asyncio.Future[list[AmiMessage]] = asyncio.get_running_loop().create_future()
        pending = _Pending(name, future, is_list, resync)
        self._pending[action_id] = pending
        return pending

    def _forget(self, action_id: str) -> None:
        """Stop waiting for a reply (answered, timed out or abandoned)."""
        pending = self._pending.pop(action_id, None)
        if pending is None:
            return
        if pending.is_list:
            self._stale.add(action_id)  # its late list events are not to reach the stream
        if not pending.future.done():
            pending.future.cancel()

    async def _write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None:
            raise AmiDisconnected("the AMI link is down")
        seconds = self._settings.action_timeout_seconds
        async with self._write_lock:
            writer.write(data)
            try:
                async with asyncio.timeout(seconds):
                    await writer.drain()
            except TimeoutError:
                raise AmiTimeout(f"the PBX took no data for {seconds:g} s") from None
            except (OSError, RuntimeError) as exc:
                raise AmiDisconnected(f"write failed: {exc}") from exc

    async def _wait(self, pending: _Pending, seconds: float) -> list[AmiMessage]:
        """Wait for a reply; a window in which the reader was stalled, or in which the PBX
        sent whole messages (a reply queued behind a backlog in the socket buffers), does
        not count, up to ``MAX_EXTENDED_WAITS`` such windows: a PBX that streams but never
        answers is dead all the same. Bytes that complete no message are no liveness."""
        future = pending.future
        for _ in range(MAX_EXTENDED_WAITS + 1):
            stalls, seen = self._stalls, self._whole_messages()
            done, _ = await asyncio.wait({future}, timeout=seconds)
            if done:
                return future.result()
            if self._stalled or self._stalls != stalls:
                continue  # the reply may be queued behind events the consumer has not taken
            if self._whole_messages() != seen:
                continue  # the PBX is sending: the reply is behind data not yet read
            break
        raise AmiTimeout(f"no reply to {pending.action} within {seconds:g} s")

    def _whole_messages(self) -> int:
        stats = self._framer_stats
        return stats.messages + stats.dropped

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(AmiDisconnected(f"{item.action}: link lost ({reason})"))
                item.future.exception()  # retrieved: no "never retrieved" warning if unawaited

    async def _logoff(self, writer: asyncio.StreamWriter) -> None:
        """Best effort: a PBX that does not take the bytes in time is not waited for."""
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            writer.write(encode_action("Logoff", f"logoff-{next(self._ids)}"))
            async with asyncio.timeout(LOGOFF_TIMEOUT_SECONDS):
                await writer.drain()


def _resolve(future: asyncio.Future[list[AmiMessage]], value: list[AmiMessage]) -> None:
    if not future.done():
        future.set_result(value)


async def _read_frames(reader: asyncio.StreamReader, framer: AmiFramer, where: str) -> list[Frame]:
    data = await reader.read(READ_CHUNK)
    if not data:
        raise _LinkLost("connection closed by the PBX" + (f" {where}" if where else ""))
    return framer.feed(data)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _reason(exc: BaseException) -> str:
    """Why a connection ended: a lost link says it in its own words."""
    return str(exc) if isinstance(exc, _LinkLost) else describe(exc)
