"""A real TCP AMI server that plays recorded ``.ami`` sessions (no Asterisk needed).

Used by ``call-monitor demo`` and by the tests. A *script* is a list of recordings, one
per TCP connection: ``[part1, part2]`` plays a monitor whose link dropped and came back,
``[a_answer_1ring]`` a single connection. For each connection the server

1. sends the recording's banner line;
2. waits for the client's ``Login`` and accepts it (checking the secret when one is
   given), echoing the client's ``ActionID``;
3. plays the recording's messages that follow the recording's own login reply, byte for
   byte, paced by their ``Timestamp`` divided by ``speed`` (``speed <= 0`` or ``inf``:
   flat out). Recorded responses (the login reply, ``Goodbye``) are not played. The
   recorded ``CoreShowChannels`` reply (``ActionID: resync-*``) is held back until the
   client asks ``CoreShowChannels``, then sent with the client's ``ActionID``;
4. meanwhile answers ``Ping``, ``CoreShowChannels`` (an empty list when the recording
   has no reply to give), ``Logoff``, and ``Response: Error`` to anything else;
5. at the end of the recording: closes the connection without a goodbye if more
   recordings follow (the drop), else stays connected and idle (answering pings) until
   the client leaves or the server stops. With ``loop``, the script starts again on the
   open connection, its channel names, unique ids and timestamps rewritten so that each
   round's calls are new calls.

The recordings (:mod:`.recording`) and the client's actions are read by the client's own
framer; recorded events go out as their recorded bytes, and every reply the server makes up
is written by the framing's encoder (:mod:`.replies`), which refuses CR and LF in a value.
An action with a value that could not be echoed safely is answered ``Response: Error``
without its ``ActionID``. Header names are matched as the framer gives them (``Action``,
``ActionID``), case and all.

A dropped connection is closed with a FIN after every byte was flushed (no ``Goodbye``):
an RST could make the client's kernel discard recorded bytes it had not read yet.

With ``chunk_seed`` the bytes go out in random-sized pieces (1..``max_chunk`` bytes, the
event loop turning between them), so a reader meets every kind of TCP chunk boundary,
including the middle of a multi-byte UTF-8 character.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

from call_monitor.ami.framing import BANNER_PREFIX, AmiFramer, AmiMessage
from call_monitor.ami.stream import RESYNC_ACTION
from call_monitor.demo import replies
from call_monitor.demo.recording import (
    RECORDINGS_DIR,
    TERMINATOR,
    RecordedMessage,
    Recording,
    ResyncReply,
    chain,
    loop_period,
    recording_path,
    script_for,
)

# The recordings' names are re-exported: the demo and the tests know this module as the
# playback PBX's one entry point.
__all__ = [
    "RECORDINGS_DIR",
    "PlaybackServer",
    "RecordedMessage",
    "Recording",
    "ResyncReply",
    "chain",
    "recording_path",
    "script_for",
]

log = logging.getLogger(__name__)

DEFAULT_BANNER = f"{BANNER_PREFIX}11.0.0\r\n".encode()
_READ_CHUNK = 65536


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    rng: random.Random | None
    max_chunk: int
    framer: AmiFramer = field(
        default_factory=lambda: AmiFramer(expect_banner=False, crlf_only=True)
    )
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closing: bool = False
    resync_requests: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    resync_replies_left: int = 0
    pace_base: tuple[float, float] | None = None  # (loop time, recorded timestamp)
    actions: deque[AmiMessage] = field(default_factory=deque)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # the client closed its side

    async def send(self, data: bytes) -> None:
        async with self.lock:
            if self.closing:
                return
            if self.rng is None:
                self.writer.write(data)
                await self.writer.drain()
                return
            pos = 0
            while pos < len(data):
                size = self.rng.randint(1, self.max_chunk)
                self.writer.write(data[pos : pos + size])
                pos += size
                await self.writer.drain()
                await asyncio.sleep(0)  # let the reader take this piece on its own

    async def hang_up(self) -> None:
        """Close our side after everything sent (the peer reads it all, then EOF)."""
        async with self.lock:
            if self.closing:
                return
            self.closing = True
            with contextlib.suppress(OSError, RuntimeError):
                await self.writer.drain()
                if self.writer.can_write_eof():
                    self.writer.write_eof()


class PlaybackServer:
    """Serve a script of recordings on a real TCP port (``async with``; see the module)."""

    def __init__(
        self,
        script: Sequence[Recording | bytes],
        speed: float = math.inf,
        chunk_seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        loop: bool = False,
        max_chunk: int = 512,
        username: str | None = None,
        secret: str | None = None,
        resync_wait_seconds: float = 10.0,
        linger_seconds: float = 5.0,
    ) -> None:
        self.script = [r if isinstance(r, Recording) else Recording.from_bytes(r) for r in script]
        self.speed = speed
        self.chunk_seed = chunk_seed
        self.host = host
        self.port = port
        self.loop = loop
        self.max_chunk = max(1, max_chunk)
        self.username = username
        self.secret = secret
        self.resync_wait_seconds = resync_wait_seconds
        self.linger_seconds = linger_seconds
        # what happened, for tests and the demo
        self.connections = 0
        self.logins = 0
        self.auth_failures = 0
        self.rounds_started = 0
        self._position = 0  # next recording to play, counted over rounds
        self._seeds = random.Random(chunk_seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: asyncio.Future[None] | None = None
        self._period = loop_period(self.script)
        self._cache: dict[int, Recording] = {}
        self._stopping = False

    @property
    def flat_out(self) -> bool:
        return self.speed <= 0 or math.isinf(self.speed)

    @property
    def finished(self) -> asyncio.Future[None]:
        """Done once every recording of the script has been played (the first round)."""
        if self._finished is None:
            raise RuntimeError("the server is not started")
        return self._finished

    async def start(self) -> None:
        self._finished = asyncio.get_running_loop().create_future()
        if not self.script:
            self._finished.set_result(None)
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._finished is not None and not self._finished.done():
            self._finished.cancel()

    async def __aenter__(self) -> PlaybackServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- script position ----------------------------------------------------------------

    def _available(self, position: int) -> bool:
        return bool(self.script) and (self.loop or position < len(self.script))

    def _recording(self, position: int) -> Recording:
        round_no, index = divmod(position, len(self.script))
        if round_no == 0:
            return self.script[index]
        cached = self._cache.get(position)
        if cached is None:
            self._cache.clear()  # only the one being played is worth keeping
            cached = self.script[index].rewritten(round_no, round_no * self._period)
            self._cache[position] = cached
        return cached

    def _take(self) -> int | None:
        position = self._position
        if not self._available(position):
            return None
        self._position += 1
        if position % len(self.script) == 0:
            self.rounds_started += 1
        return position

    # -- one connection -----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        rng = None if self.chunk_seed is None else random.Random(self._seeds.random())
        conn = _Connection(reader, writer, rng, self.max_chunk)
        try:
            try:
                await self._session(conn)
            except* (OSError, RuntimeError) as group:  # the client went away mid-write
                log.debug("playback connection ended: %s", group.exceptions[0])
        except asyncio.CancelledError:
            # Only stop() cancels this task, and it ends here: finish it normally, as
            # asyncio.start_server's done-callback logs a cancelled handler as an error.
            if not self._stopping:
                raise
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _session(self, conn: _Connection) -> None:
        position = self._position
        banner = (
            self._recording(position).banner
            if self._available(position)
            else (self.script[-1].banner if self.script else DEFAULT_BANNER)
        )
        await conn.send(banner)
        if not await self._login(conn):
            return
        self.logins += 1
        taken = self._take()
        if taken is not None:
            conn.resync_replies_left = self._recording(taken).resync_replies
        async with asyncio.TaskGroup() as tg:
            player = None if taken is None else tg.create_task(self._play(conn, taken))
            await self._serve_actions(conn)  # until the client leaves
            if player is not None:
                player.cancel()  # nobody left to play to

    async def _login(self, conn: _Connection) -> bool:
        while True:
            message = await self._next_action(conn)
            if message is None:
                return False
            name = message.get("Action").lower()
            action_id = message.action_id
            if name == "login":
                if (self.secret is not None and message.get("Secret") != self.secret) or (
                    self.username is not None and message.get("Username") != self.username
                ):
                    self.auth_failures += 1
                    await conn.send(replies.error(action_id, "Authentication failed"))
                    await conn.hang_up()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.linger_seconds):
                            while await self._next_action(conn) is not None:
                                pass
                    return False
                await conn.send(replies.login_accepted(action_id))
                return True
            if name == "ping":
                await conn.send(replies.pong(action_id, time.time()))
            else:
                await conn.send(replies.error(action_id, "Permission denied"))

    async def _play(self, conn: _Connection, position: int) -> None:
        while True:
            recording = self._recording(position)
            await self._play_recording(conn, recording)
            index = position % len(self.script)
            if position == len(self.script) - 1 and not self.finished.done():
                self.finished.set_result(None)
            if index < len(self.script) - 1:
                log.debug("playback: %s done, dropping the connection", recording.name)
                await conn.hang_up()  # no Goodbye: the monitor sees its link drop
                await self._wait_gone(conn)
                return
            if not self.loop:
                return  # the last recording: stay up, idle, answering pings
            taken = self._take()
            if taken is None:  # pragma: no cover - a loop always has a next round
                return
            position = taken
            conn.resync_replies_left = self._recording(position).resync_replies

    async def _play_recording(self, conn: _Connection, recording: Recording) -> None:
        loop = asyncio.get_running_loop()
        for step in recording.steps:
            if isinstance(step, ResyncReply):
                await self._play_resync(conn, step)
                continue
            if step.timestamp is not None and not self.flat_out:
                if conn.pace_base is None:
                    conn.pace_base = (loop.time(), step.timestamp)
                else:
                    wall, recorded = conn.pace_base
                    delay = wall + (step.timestamp - recorded) / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
            await conn.send(step.raw + TERMINATOR)
        if recording.tail:
            await conn.send(recording.tail)
        while conn.resync_requests.qsize():  # asked for more replies than recorded
            await conn.send(replies.empty_resync(conn.resync_requests.get_nowait()))

    async def _play_resync(self, conn: _Connection, reply: ResyncReply) -> None:
        try:
            async with asyncio.timeout(self.resync_wait_seconds):
                action_id = await conn.resync_requests.get()
        except TimeoutError:
            log.debug("playback: the client did not ask %s; its reply skipped", RESYNC_ACTION)
            conn.resync_replies_left -= 1
            while conn.resync_requests.qsize() > conn.resync_replies_left:
                await conn.send(replies.empty_resync(conn.resync_requests.get_nowait()))
            return
        conn.resync_replies_left -= 1
        await conn.send(reply.for_action(action_id))

    async def _serve_actions(self, conn: _Connection) -> None:
        while True:
            message = await self._next_action(conn)
            if message is None:
                return
            if conn.closing:
                continue  # hanging up: nothing more goes out
            name = message.get("Action").lower()
            action_id = message.action_id
            if name == "ping":
                await conn.send(replies.pong(action_id, time.time()))
            elif name == RESYNC_ACTION.lower():
                if conn.resync_replies_left > conn.resync_requests.qsize():
                    conn.resync_requests.put_nowait(action_id or "")
                else:
                    await conn.send(replies.empty_resync(action_id))
            elif name == "logoff":
                await conn.send(replies.goodbye(action_id))
                await conn.hang_up()
            elif name == "login":
                await conn.send(
                    replies.reply("Success", action_id, [("Message", "Already logged in")])
                )
            elif not name:
                await conn.send(replies.error(action_id, "Missing action in request"))
            else:
                text = (
                    f"Invalid/unknown command: {message.get('Action')}. "
                    "Use Action: ListCommands to show available commands."
                )
                await conn.send(replies.error(action_id, text))

    async def _next_action(self, conn: _Connection) -> AmiMessage | None:
        """The client's next action, as the framer read it; None once the client has gone.

        An action with a key or value the encoder would refuse to echo (a lone CR or LF
        inside a line) is answered ``Response: Error``, without its ``ActionID``, and
        skipped: whatever the server sends back is safe to frame.
        """
        while True:
            while not conn.actions:
                try:
                    data = await conn.reader.read(_READ_CHUNK)
                except (OSError, RuntimeError):
                    data = b""
                if not data:
                    conn.gone.set()
                    return None
                frames = conn.framer.feed(data)
                conn.actions.extend(f for f in frames if isinstance(f, AmiMessage))
            message = conn.actions.popleft()
            refused = replies.refusal(message)
            if refused is None:
                return message
            log.debug("playback: action refused, a CR or LF inside a line")
            await conn.send(refused)

    async def _wait_gone(self, conn: _Connection) -> None:
        """After hanging up: give the client time to read everything and close its side."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.linger_seconds):
                await conn.gone.wait()
        conn.writer.close()
