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

:func:`script_for` makes a script of files, one connection each; :func:`chain` joins
recordings into one connection (timestamps moved so they follow each other).

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
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from call_monitor.ami.framing import BANNER_PREFIX, AmiFramer, AmiMessage
from call_monitor.ami.stream import RESYNC_ACTION, RESYNC_COMPLETE_EVENT

log = logging.getLogger(__name__)

RECORDINGS_DIR = Path(__file__).resolve().parent / "recordings"
DEFAULT_BANNER = f"{BANNER_PREFIX}11.0.0\r\n".encode()
RESYNC_ID_PREFIX = "resync-"
_TERMINATOR = b"\r\n\r\n"
_EOL = b"\r\n"
_READ_CHUNK = 65536
_SEQ_STRIDE = 1_000_000  # unique id sequence numbers of round r are shifted by r * this
_CHANNEL_STRIDE = 0x100000  # channel name counters of round r are shifted by r * this
_CHANNEL_RE = re.compile(rb"^(.+-)([0-9a-f]{8})((?:;\d+)?)$")
_UNIQUEID_RE = re.compile(rb"^(\d+)\.(\d+)$")
_ID_SUFFIXES = (b"uniqueid", b"linkedid", b"bridgeid")


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One recorded message, without its closing empty line."""

    raw: bytes
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class ResyncReply:
    """A recorded ``CoreShowChannels`` reply, played when the client asks for one."""

    action_id: str
    messages: tuple[bytes, ...]


Step = RecordedMessage | ResyncReply


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded connection, ready to play: its banner and what follows its login."""

    name: str
    banner: bytes  # the banner line with its CRLF
    steps: tuple[Step, ...]
    tail: bytes = b""  # an unterminated last message, sent as is

    @classmethod
    def load(cls, path: Path | str) -> Recording:
        path = Path(path)
        return cls.from_bytes(path.read_bytes(), path.name)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> Recording:
        eol = data.find(_EOL)
        if eol < 0 or not data.startswith(BANNER_PREFIX.encode()):
            raise ValueError(f"{name}: a recording starts with the AMI banner line")
        banner, body = data[: eol + 2], data[eol + 2 :]
        pieces = body.split(_TERMINATOR)
        tail = pieces.pop()  # b"" when the recording ends with a complete message
        steps: list[Step] = []
        blocks: dict[str, list[bytes]] = {}
        logged_in = False
        for raw in pieces:
            headers = _peek_headers(raw)
            if not logged_in:
                logged_in = "Response" in headers  # everything up to the login reply goes
                continue
            action_id = headers.get("ActionID", "")
            if action_id.startswith(RESYNC_ID_PREFIX):
                block = blocks.get(action_id)
                if block is None:
                    blocks[action_id] = block = []
                    steps.append(ResyncReply(action_id, ()))  # placeholder, filled below
                block.append(raw)
            elif "Response" in headers:
                continue  # the recorded client's replies (Goodbye ...): not ours to send
            else:
                steps.append(RecordedMessage(raw, _timestamp(headers.get("Timestamp"))))
        filled = tuple(
            ResyncReply(s.action_id, tuple(blocks[s.action_id]))
            if isinstance(s, ResyncReply)
            else s
            for s in steps
        )
        return cls(name, banner, filled, tail)

    @property
    def resync_replies(self) -> int:
        return sum(1 for s in self.steps if isinstance(s, ResyncReply))

    def timestamps(self) -> list[float]:
        return [s.timestamp for s in self.steps if isinstance(s, RecordedMessage) and s.timestamp]

    def rewritten(self, round_no: int, shift_seconds: int) -> Recording:
        """This recording as round ``round_no`` of a loop: new ids, names and times.

        Unique ids ``epoch.seq`` become ``(epoch + shift).(seq + round * 1e6)``, other
        unique ids get a ``-r<round>`` suffix; channel name counters move by
        ``round * 0x100000``; timestamps move by ``shift_seconds``. Each mapping is one to
        one, so what was equal stays equal and nothing collides with another round.
        """
        if round_no == 0:
            return self
        steps: list[Step] = []
        for step in self.steps:
            if isinstance(step, RecordedMessage):
                raw = _rewrite(step.raw, round_no, shift_seconds)
                ts = None if step.timestamp is None else step.timestamp + shift_seconds
                steps.append(RecordedMessage(raw, ts))
            else:
                msgs = tuple(_rewrite(m, round_no, shift_seconds) for m in step.messages)
                steps.append(ResyncReply(step.action_id, msgs))
        return Recording(f"{self.name}#{round_no}", self.banner, tuple(steps), self.tail)


def script_for(paths: Iterable[Path | str]) -> list[Recording]:
    """A script from recording files, one connection each, in order.

    Between two recordings the connection drops (and the client reconnects); use
    :func:`chain` to play several recordings over one connection instead.
    """
    return [Recording.load(p) for p in paths]


def chain(recordings: Sequence[Recording], gap_seconds: float = 2.0) -> Recording:
    """Recordings played back to back over one connection.

    Each recording's timestamps are moved to start ``gap_seconds`` after the previous one
    ended (only ``Timestamp`` values change), so paced playback has no long pauses.
    """
    if not recordings:
        raise ValueError("chain() needs at least one recording")
    steps: list[Step] = []
    end: float | None = None
    for recording in recordings:
        stamps = recording.timestamps()
        shift = 0.0 if end is None or not stamps else end + gap_seconds - min(stamps)
        for step in recording.steps:
            if isinstance(step, RecordedMessage) and shift:
                raw = _rewrite(step.raw, 0, shift)
                ts = None if step.timestamp is None else step.timestamp + shift
                steps.append(RecordedMessage(raw, ts))
            else:
                steps.append(step)
        if stamps:
            end = max(stamps) + shift
    name = "+".join(r.name for r in recordings)
    return Recording(name, recordings[0].banner, tuple(steps), recordings[-1].tail)


def recording_path(name: str) -> Path:
    """A shipped recording by file name (``"a_answer_1ring.ami"``)."""
    return RECORDINGS_DIR / name


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    rng: random.Random | None
    max_chunk: int
    framer: AmiFramer = field(default_factory=lambda: AmiFramer(expect_banner=False))
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
        self._period = _loop_period(self.script)
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
                    await conn.send(
                        _reply("Error", action_id, [("Message", "Authentication failed")])
                    )
                    await conn.hang_up()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.linger_seconds):
                            while await self._next_action(conn) is not None:
                                pass
                    return False
                await conn.send(
                    _reply("Success", action_id, [("Message", "Authentication accepted")])
                )
                return True
            if name == "ping":
                await conn.send(_pong(action_id))
            else:
                await conn.send(_reply("Error", action_id, [("Message", "Permission denied")]))

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
            await conn.send(step.raw + _TERMINATOR)
        if recording.tail:
            await conn.send(recording.tail)
        while conn.resync_requests.qsize():  # asked for more replies than recorded
            await conn.send(_empty_resync(conn.resync_requests.get_nowait()))

    async def _play_resync(self, conn: _Connection, reply: ResyncReply) -> None:
        try:
            async with asyncio.timeout(self.resync_wait_seconds):
                action_id = await conn.resync_requests.get()
        except TimeoutError:
            log.debug("playback: the client did not ask %s; its reply skipped", RESYNC_ACTION)
            conn.resync_replies_left -= 1
            while conn.resync_requests.qsize() > conn.resync_replies_left:
                await conn.send(_empty_resync(conn.resync_requests.get_nowait()))
            return
        conn.resync_replies_left -= 1
        new_line = b"ActionID: " + action_id.encode()
        data = b"".join(_replace_action_id(m, new_line) + _TERMINATOR for m in reply.messages)
        await conn.send(data)

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
                await conn.send(_pong(action_id))
            elif name == RESYNC_ACTION.lower():
                if conn.resync_replies_left > conn.resync_requests.qsize():
                    conn.resync_requests.put_nowait(action_id or "")
                else:
                    await conn.send(_empty_resync(action_id))
            elif name == "logoff":
                await conn.send(
                    _reply("Goodbye", action_id, [("Message", "Thanks for all the fish.")])
                )
                await conn.hang_up()
            elif name == "login":
                await conn.send(_reply("Success", action_id, [("Message", "Already logged in")]))
            elif not name:
                await conn.send(
                    _reply("Error", action_id, [("Message", "Missing action in request")])
                )
            else:
                text = (
                    f"Invalid/unknown command: {message.get('Action')}. "
                    "Use Action: ListCommands to show available commands."
                )
                await conn.send(_reply("Error", action_id, [("Message", text)]))

    async def _next_action(self, conn: _Connection) -> AmiMessage | None:
        """The client's next action; None once it has gone."""
        while not conn.actions:
            try:
                data = await conn.reader.read(_READ_CHUNK)
            except (OSError, RuntimeError):
                data = b""
            if not data:
                conn.gone.set()
                return None
            conn.actions.extend(f for f in conn.framer.feed(data) if isinstance(f, AmiMessage))
        return conn.actions.popleft()

    async def _wait_gone(self, conn: _Connection) -> None:
        """After hanging up: give the client time to read everything and close its side."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.linger_seconds):
                await conn.gone.wait()
        conn.writer.close()


# -- bytes ----------------------------------------------------------------------------------


def _peek_headers(raw: bytes) -> dict[str, str]:
    """The first value of each header, enough to classify a recorded message."""
    headers: dict[str, str] = {}
    for line in raw.split(_EOL):
        key, sep, value = line.partition(b":")
        if sep and key:
            headers.setdefault(
                key.decode("ascii", "replace"), value.strip().decode("utf-8", "replace")
            )
    return headers


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        ts = float(value)
    except ValueError:
        return None
    return ts if math.isfinite(ts) else None


def _loop_period(script: Sequence[Recording]) -> int:
    """Whole seconds between rounds: the script's recorded span, plus one."""
    stamps = [t for r in script for t in r.timestamps()]
    if not stamps:
        return 1
    return math.ceil(max(stamps) - min(stamps)) + 1


def _rewrite(raw: bytes, round_no: int, shift: float) -> bytes:
    """Move timestamps by ``shift``; for ``round_no`` > 0 also rename ids and channels."""
    lines = raw.split(_EOL)
    for i, line in enumerate(lines):
        colon = line.find(b":")
        if colon <= 0:
            continue
        key = line[:colon].lower()
        value = line[colon + 1 :]
        space = b" " if value.startswith(b" ") else b""
        value = value[len(space) :]
        if key == b"timestamp":
            new = _shift_timestamp(value, shift)
        elif round_no == 0:
            continue
        elif key.endswith(_ID_SUFFIXES):
            new = _rewrite_id(value, round_no, round(shift))
        elif key.endswith(b"channel") or key == b"peer":
            new = b",".join(_rewrite_channel(v, round_no) for v in value.split(b","))
        else:
            continue
        lines[i] = line[: colon + 1] + space + new
    return _EOL.join(lines)


def _shift_timestamp(value: bytes, shift: float) -> bytes:
    try:
        ts = float(value)
    except ValueError:
        return value
    dot = value.find(b".")
    decimals = 0 if dot < 0 else len(value) - dot - 1
    return f"{ts + shift:.{decimals}f}".encode()


def _rewrite_id(value: bytes, round_no: int, shift: int) -> bytes:
    if not value or value.startswith(b"<"):
        return value
    match = _UNIQUEID_RE.match(value)
    if match is None:
        return value + f"-r{round_no}".encode()
    epoch, seq = int(match[1]), int(match[2])
    return f"{epoch + shift}.{seq + round_no * _SEQ_STRIDE}".encode()


def _rewrite_channel(value: bytes, round_no: int) -> bytes:
    match = _CHANNEL_RE.match(value)
    if match is None:
        return value
    counter = int(match[2], 16) + round_no * _CHANNEL_STRIDE
    return match[1] + f"{counter:08x}".encode() + match[3]


def _replace_action_id(raw: bytes, new_line: bytes) -> bytes:
    lines = raw.split(_EOL)
    return _EOL.join(new_line if line.startswith(b"ActionID:") else line for line in lines)


def _reply(response: str, action_id: str | None, headers: Iterable[tuple[str, str]]) -> bytes:
    pairs = [("Response", response)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs.extend(headers)
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode() + _EOL


def _pong(action_id: str | None) -> bytes:
    return _reply("Success", action_id, [("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])


def _empty_resync(action_id: str | None) -> bytes:
    start = _reply(
        "Success", action_id, [("EventList", "start"), ("Message", "Channels will follow")]
    )
    complete = [("Event", RESYNC_COMPLETE_EVENT)]
    if action_id is not None:
        complete.append(("ActionID", action_id))
    complete += [("EventList", "Complete"), ("ListItems", "0")]
    return start + "".join(f"{k}: {v}\r\n" for k, v in complete).encode() + _EOL
