"""The AMI client against a real TCP server playing the recordings (no Asterisk here).

Every test talks over a loopback socket: PlaybackServer for recorded sessions, a small
scripted server (``FakeAmi``) for misbehaving PBXs. Waits are bounded by timeouts only;
nothing asserts on how fast something happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr

from call_monitor.ami.client import (
    MAX_EXTENDED_WAITS,
    AmiClient,
    AmiDisconnected,
    AmiTimeout,
    ClientStats,
)
from call_monitor.ami.framing import AmiFramer, AmiMessage, Frame, encode_action
from call_monitor.ami.stream import (
    LinkDown,
    LinkUp,
    PbxRestarted,
    Resync,
    StreamItem,
    transcript_items,
)
from call_monitor.config import AmiSettings
from call_monitor.demo.pbx import (
    RECORDINGS_DIR,
    PlaybackServer,
    Recording,
    chain,
    recording_path,
    script_for,
)
from tests.jitter import WindowsSeen

SECRET = "s3cr3t-Do-Not-Log-7f2e"
DEADLINE = 20.0  # generous bound for any single wait; tests finish far sooner

RECORDINGS = sorted(p for p in RECORDINGS_DIR.glob("*.ami") if ".part" not in p.name)
RECONNECT = [
    recording_path("s_ami_reconnect_midcall.part1.ami"),
    recording_path("s_ami_reconnect_midcall.part2.ami"),
]
BIG = 200_000  # bytes: above this, tiny chunks would only make the run slow
SIZES = {p: p.stat().st_size for p in RECORDINGS}


def settings(port: int, **overrides: float) -> AmiSettings:
    values: dict[str, float] = {
        "connect_timeout_seconds": 2.0,
        "action_timeout_seconds": 2.0,
        "ping_interval_seconds": 0.5,
        "ping_timeout_seconds": 2.0,
        "reconnect_initial_seconds": 0.01,
        "reconnect_max_seconds": 0.05,
        **overrides,
    }
    return AmiSettings(host="127.0.0.1", port=port, **values)


def expected(paths: Sequence[Path | bytes], ami: AmiSettings) -> list[StreamItem]:
    """What the offline transcript reader yields: one framer per recorded connection."""
    frames: list[Frame] = []
    for source in paths:
        data = source if isinstance(source, bytes) else source.read_bytes()
        frames += AmiFramer(ignore_events=ami.ignore_events).feed(data)
    items = list(transcript_items(frames))
    assert all(isinstance(i, (AmiMessage, LinkUp, LinkDown, Resync)) for i in items)
    return [i for i in items if isinstance(i, (AmiMessage, LinkUp, LinkDown, Resync))]


def normal(items: Sequence[StreamItem]) -> list[StreamItem]:
    """LinkDown reasons differ between a recording and a live link; nothing else may."""
    return [LinkDown("") if isinstance(i, LinkDown) else i for i in items]


@contextlib.asynccontextmanager
async def running(client: AmiClient) -> AsyncIterator[asyncio.Task[None]]:
    """Run the client; on exit stop it, and fail if it ended any other way."""
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        assert not task.done(), "the client's run() ended by itself"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not client.connected


async def until(predicate: Callable[[], bool]) -> None:
    """Poll a counter (plain ints: there is no event to wait on), bounded by DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def take(queue: asyncio.Queue[StreamItem], count: int) -> list[StreamItem]:
    async with asyncio.timeout(DEADLINE):
        return [await queue.get() for _ in range(count)]


def drain(queue: asyncio.Queue[StreamItem]) -> list[StreamItem]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def play_all(server: PlaybackServer, client: AmiClient) -> None:
    """Wait until the server has played everything and the client has taken it all in.

    A Ping sent afterwards is answered after every byte played before it, and the client
    reads in order: when the Pong is back, every event is on the queue.
    """
    async with asyncio.timeout(DEADLINE):
        await server.finished
        await until(lambda: client.connected)
        pong = await client.action("Ping")
    assert pong.response == "Success"
    assert pong.get("Ping") == "Pong"


# -- (a) every recording, through a socket, equals its offline transcript ------------------

CHUNKINGS = [(None, 512), (1, 512), (2, 61), (3, 4096)]


# Tiny chunks on the big burst recording would only repeat what the smaller ones show.
STREAM_CASES = [
    pytest.param(path, seed, size, id=f"{path.name}-{seed}-{size}")
    for path in RECORDINGS
    for seed, size in CHUNKINGS
    if size >= 100 or SIZES[path] <= BIG
]


@pytest.mark.parametrize(("path", "chunk_seed", "max_chunk"), STREAM_CASES)
async def test_recording_streams_like_its_transcript(
    path: Path, chunk_seed: int | None, max_chunk: int
) -> None:
    script = script_for([path])
    async with PlaybackServer(script, chunk_seed=chunk_seed, max_chunk=max_chunk) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue, ClientStats())
        async with running(client):
            await play_all(server, client)
            got = drain(queue)
    want = expected([path], ami)
    assert got == want
    assert client.stats.events == sum(isinstance(i, AmiMessage) for i in want)
    assert client.stats.framing_errors == 0
    assert client.stats.reconnects == 0
    assert client.stats.connects == 1


async def test_korean_text_split_across_chunks() -> None:
    """A caller name whose UTF-8 bytes straddle TCP chunks arrives whole."""
    original = recording_path("a_answer_1ring.ami").read_bytes()
    data = original.replace(b"CallerIDName: Customer", "CallerIDName: 구민 김민수".encode())
    assert data != original
    async with PlaybackServer([data], chunk_seed=7, max_chunk=3) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await play_all(server, client)
            got = drain(queue)
    assert got == expected([data], ami)
    names = {i.get("CallerIDName") for i in got if isinstance(i, AmiMessage)}
    assert "구민 김민수" in names
    assert not any(i.invalid_utf8 for i in got if isinstance(i, AmiMessage))


async def test_paced_playback_keeps_the_stream() -> None:
    path = recording_path("m_caller_abandons_while_ringing.ami")
    async with PlaybackServer(script_for([path]), speed=500.0) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await play_all(server, client)
            got = drain(queue)
    assert got == expected([path], ami)


# -- (b) a drop mid-call, the reconnect and the resync -------------------------------------


@pytest.mark.parametrize("chunk_seed", [None, 5, 6])
async def test_reconnect_mid_call_resyncs(chunk_seed: int | None) -> None:
    async with PlaybackServer(script_for(RECONNECT), chunk_seed=chunk_seed) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await play_all(server, client)
            got = drain(queue)
    assert normal(got) == normal(expected(RECONNECT, ami))

    kinds = [type(i).__name__ for i in got]
    down = kinds.index("LinkDown")
    assert kinds[0] == "LinkUp"
    assert "Resync" not in kinds[:down]  # the first connection does not resync
    assert kinds[down + 1] == "LinkUp"
    resyncs = [i for i in got if isinstance(i, Resync)]
    assert len(resyncs) == 1
    channels = resyncs[0].channels
    assert [c.get("Channel") for c in channels] == ["PJSIP/201-000000d6", "PJSIP/pstn-000000d5"]
    assert all(c.action_id == "resync-1" for c in channels)  # the client's own ActionID
    assert kinds.index("Resync") > down + 1
    assert "up after" not in str(got[down])
    assert client.stats.reconnects == 1
    assert client.stats.connects == 2
    assert server.connections == 2


async def test_resync_on_first_connect_gets_an_empty_list() -> None:
    path = recording_path("a_answer_1ring.ami")
    async with PlaybackServer(script_for([path])) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue, resync_on_first_connect=True)
        async with running(client):
            await play_all(server, client)
            got = drain(queue)
    assert Resync(()) in got
    got.remove(Resync(()))
    assert got == expected([path], ami)


# -- backpressure: a slow consumer loses nothing and does not look like a dead link --------


async def test_slow_consumer_bounded_queue() -> None:
    path = recording_path("j_burst_50.ami")
    async with PlaybackServer(script_for([path]), chunk_seed=9) as server:
        ami = settings(server.port, ping_interval_seconds=0.03, ping_timeout_seconds=0.15)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue(maxsize=1)
        client = AmiClient(ami, SecretStr(SECRET), queue)
        want = expected([path], ami)
        async with running(client):
            got = [await asyncio.wait_for(queue.get(), DEADLINE)]
            await asyncio.sleep(0.5)  # the consumer stalls well past the ping timeout
            got += await take(queue, len(want) - 1)
            await play_all(server, client)
            got += drain(queue)
    assert got == want
    assert client.stats.ping_timeouts == 0
    assert client.stats.reconnects == 0


# -- (c) a refused login is retried, logged clearly, and the secret is never logged --------


async def test_login_refused_is_retried_without_leaking_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = recording_path("a_answer_1ring.ami")
    async with PlaybackServer(script_for([path]), secret="the-right-one") as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await until(lambda: client.stats.auth_failures >= 3)
            assert not client.connected
            assert queue.empty()
            assert server.logins == 0
            server.secret = SECRET  # the operator fixes manager.conf: it logs in
            assert await take(queue, 1) == [LinkUp()]
            await play_all(server, client)
    assert server.auth_failures >= 3
    assert client.stats.connect_failures >= 3
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refusals
    assert all(r.levelno == logging.ERROR for r in refusals)
    assert "Authentication failed" in refusals[0].getMessage()
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in repr(record.args)


# -- a scripted misbehaving PBX ------------------------------------------------------------

Behaviour = Callable[["FakeSession"], Awaitable[None]]


class FakeSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = AmiFramer(expect_banner=False)
        self.pending: list[AmiMessage] = []

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def action(self) -> AmiMessage | None:
        while not self.pending:
            data = await self.reader.read(65536)
            if not data:
                return None
            self.pending += [f for f in self.framer.feed(data) if isinstance(f, AmiMessage)]
        return self.pending.pop(0)

    async def login(self) -> None:
        await self.send(b"Asterisk Call Manager/11.0.0\r\n")
        login = await self.action()
        assert login is not None
        assert login.get("Action") == "Login"
        await self.send(
            f"Response: Success\r\nActionID: {login.action_id}\r\n"
            "Message: Authentication accepted\r\n\r\n".encode()
        )

    async def ignore_everything(self, actions: list[AmiMessage]) -> None:
        while (message := await self.action()) is not None:
            actions.append(message)


class FakeAmi:
    """A TCP server running ``behaviour`` for each connection."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.behaviour(FakeSession(reader, writer))
        except (OSError, asyncio.CancelledError):
            pass  # ends the handler task: the server is stopping or the client left
        finally:
            self._tasks.discard(task)
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeAmi]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()


# -- (d) a PBX that stops answering: the ping notices, the client reconnects ---------------


async def test_ping_timeout_reconnects() -> None:
    actions: list[AmiMessage] = []

    async def silent(session: FakeSession) -> None:
        await session.login()
        await session.ignore_everything(actions)

    async with FakeAmi(silent).serving() as fake:
        ami = settings(fake.port, ping_interval_seconds=0.05, ping_timeout_seconds=0.1)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            first = await take(queue, 3)
            assert isinstance(first[1], LinkDown)
            assert "Ping" in first[1].reason
            assert first[0] == first[2] == LinkUp()
            await until(lambda: client.stats.reconnects >= 1)
    assert client.stats.ping_timeouts >= 1
    assert fake.connections >= 2
    assert any(a.get("Action") == "Ping" for a in actions)


async def test_reconnect_backoff_widens_and_starts_anew_after_a_login() -> None:
    async def third_logs_in(session: FakeSession) -> None:
        # Every connection is closed at once: before the banner (a failed attempt), or
        # just after the login on the third.
        if fake.connections == 3:
            await session.login()

    rng = WindowsSeen()
    async with FakeAmi(third_logs_in).serving() as fake:
        client = AmiClient(settings(fake.port), SecretStr(SECRET), asyncio.Queue(), rng=rng)
        async with running(client):
            await until(lambda: len(rng.windows) >= 5)
    # settings(): 0.01 s doubling up to 0.05 s; the login starts the windows again.
    assert rng.windows[:5] == [0.01, 0.02, 0.01, 0.02, 0.04]
    assert client.stats.connects == 1


async def test_a_pbx_still_sending_is_alive_though_its_ping_reply_is_late() -> None:
    """A busy PBX queues the Ping reply behind its events: the data it sends is liveness."""
    actions: list[AmiMessage] = []
    streaming = True

    async def busy(session: FakeSession) -> None:
        await session.login()
        reader = asyncio.create_task(session.ignore_everything(actions))
        n = 0
        while streaming:
            n += 1
            await session.send(f"Event: VarSet\r\nUniqueid: 1.{n}\r\n\r\n".encode())
            await asyncio.sleep(0.01)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        # Only now the reply to the Ping sent meanwhile (late by far), then prompt replies.
        for earlier in actions:
            await session.send(
                f"Response: Success\r\nActionID: {earlier.action_id}\r\n\r\n".encode()
            )
        while (action := await session.action()) is not None:
            actions.append(action)
            await session.send(
                f"Response: Success\r\nActionID: {action.action_id}\r\n\r\n".encode()
            )

    async with FakeAmi(busy).serving() as fake:
        ami = settings(fake.port, ping_interval_seconds=0.05, ping_timeout_seconds=0.1)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await until(lambda: sum(a.get("Action") == "Ping" for a in actions) >= 1)
            await asyncio.sleep(0.6)  # six ping timeouts with no reply, events flowing
            assert sum(a.get("Action") == "Ping" for a in actions) == 1  # still waiting
            streaming = False
            await until(lambda: sum(a.get("Action") == "Ping" for a in actions) >= 3)
            assert client.connected
    assert client.stats.ping_timeouts == 0
    assert fake.connections == 1


async def test_a_trickle_of_bytes_is_no_liveness() -> None:
    """A PBX that answers no Ping but sends a byte now and then, never completing a
    message, kept the link "alive" forever (issue 14, item 4): now the Ping times out."""
    actions: list[AmiMessage] = []

    async def trickling(session: FakeSession) -> None:
        await session.login()
        reader = asyncio.create_task(session.ignore_everything(actions))
        try:
            for byte in itertools.cycle(b"Event: Varset\r\nUniqueid: 1.1\r\n"):  # never ends
                await session.send(bytes([byte]))
                await asyncio.sleep(0.02)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async with FakeAmi(trickling).serving() as fake:
        ami = settings(fake.port, ping_interval_seconds=0.05, ping_timeout_seconds=0.1)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            first = await take(queue, 2)
            assert first[0] == LinkUp()
            assert isinstance(first[1], LinkDown)
            assert "Ping" in first[1].reason
    assert client.stats.ping_timeouts >= 1


async def test_a_pbx_that_streams_but_never_answers_is_dead_all_the_same() -> None:
    """Whole messages extend a reply's wait, but not for ever: after MAX_EXTENDED_WAITS
    more timeouts the link is dropped."""
    actions: list[AmiMessage] = []

    async def streaming_only(session: FakeSession) -> None:
        await session.login()
        reader = asyncio.create_task(session.ignore_everything(actions))
        try:
            for n in itertools.count():
                await session.send(f"Event: VarSet\r\nUniqueid: 1.{n}\r\n\r\n".encode())
                await asyncio.sleep(0.005)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async with FakeAmi(streaming_only).serving() as fake:
        ami = settings(fake.port, ping_interval_seconds=0.02, ping_timeout_seconds=0.02)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        started = asyncio.get_running_loop().time()
        async with running(client):
            first = await take(queue, 2)
            assert isinstance(first[1], LinkDown)
            assert "Ping" in first[1].reason
            held = asyncio.get_running_loop().time() - started
    # At least the extended waits (21 windows of 0.02 s), and not for ever.
    assert held >= (MAX_EXTENDED_WAITS + 1) * 0.02


# -- (e) actions: timeouts, replies, a link that drops under a pending action -------------


async def test_action_timeout_keeps_the_link() -> None:
    actions: list[AmiMessage] = []

    async def silent(session: FakeSession) -> None:
        await session.login()
        await session.ignore_everything(actions)

    async with FakeAmi(silent).serving() as fake:
        ami = settings(fake.port, action_timeout_seconds=0.1, ping_interval_seconds=60.0)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        with pytest.raises(AmiDisconnected):
            await client.action("Ping")  # not connected yet
        async with running(client):
            assert await take(queue, 1) == [LinkUp()]
            with pytest.raises(AmiTimeout):
                await client.action("Status", [("Channel", "PJSIP/201-00000001")])
            with pytest.raises(AmiTimeout):
                await client.event_list("CoreShowChannels")
            assert client.connected
            assert queue.empty()
    status = next(a for a in actions if a.get("Action") == "Status")
    assert status.get("Channel") == "PJSIP/201-00000001"


async def test_pending_action_fails_when_the_link_drops() -> None:
    async def hang_up_on_status(session: FakeSession) -> None:
        await session.login()
        while (message := await session.action()) is not None:
            if message.get("Action") == "Status":
                session.writer.close()
                return

    async with FakeAmi(hang_up_on_status).serving() as fake:
        ami = settings(fake.port, ping_interval_seconds=60.0)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            assert await take(queue, 1) == [LinkUp()]
            with pytest.raises(AmiDisconnected):
                await client.action("Status")
            down, up = await take(queue, 2)
            assert isinstance(down, LinkDown)
            assert up == LinkUp()


async def test_actions_answered_by_the_playback_server() -> None:
    path = recording_path("a_answer_1ring.ami")
    async with PlaybackServer(script_for([path])) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await play_all(server, client)
            assert await client.event_list("CoreShowChannels") == []
            reply = await client.action("QueueStatus")
            assert reply.response == "Error"
            assert "QueueStatus" in reply.get("Message")
            got = drain(queue)
    assert got == expected([path], ami)  # no reply leaked into the stream


async def test_shutdown_logs_off() -> None:
    actions: list[AmiMessage] = []

    async def record(session: FakeSession) -> None:
        await session.login()
        await session.ignore_everything(actions)

    async with FakeAmi(record).serving() as fake:
        ami = settings(fake.port, ping_interval_seconds=60.0)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            assert await take(queue, 1) == [LinkUp()]
            assert client.connected
        await until(lambda: any(a.get("Action") == "Logoff" for a in actions))
    assert queue.empty()  # a stop is not a lost link


# -- (f) garbage on the wire: counted, skipped, the link goes on ---------------------------


async def test_garbage_is_counted_and_skipped() -> None:
    event_a = b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/201-00000001\r\n\r\n"
    event_b = b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/201-00000001\r\n\r\n"

    async def garbage(session: FakeSession) -> None:
        await session.login()
        await session.send(b"this line has no key\r\n\r\n")
        await session.send(event_a)
        await session.send(b"\x00\xff\xfe binary junk\r\n\r\n")
        await session.send(b"x" * 300_000 + b"\r\n\r\n")  # larger than the framer's limit
        await session.send(event_b)
        while (message := await session.action()) is not None:
            if message.get("Action") == "Ping":
                await session.send(
                    f"Response: Success\r\nActionID: {message.action_id}\r\n"
                    "Ping: Pong\r\n\r\n".encode()
                )

    async with FakeAmi(garbage).serving() as fake:
        ami = settings(fake.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            up, a, b = await take(queue, 3)
            assert (await client.action("Ping")).get("Ping") == "Pong"
            assert client.connected
    assert up == LinkUp()
    assert isinstance(a, AmiMessage)
    assert isinstance(b, AmiMessage)
    assert (a.event, b.event) == ("Newchannel", "Hangup")
    assert client.stats.framing_errors >= 3
    assert client.stats.reconnects == 0
    assert fake.connections == 1


async def test_not_an_ami_port_is_retried() -> None:
    async def http(session: FakeSession) -> None:
        await session.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await session.action()

    async with FakeAmi(http).serving() as fake:
        ami = settings(fake.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await until(lambda: client.stats.connect_failures >= 3)
            assert not client.connected
    assert queue.empty()
    assert fake.connections >= 3


async def test_connection_refused_is_retried() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    queue: asyncio.Queue[StreamItem] = asyncio.Queue()
    client = AmiClient(settings(port), SecretStr(SECRET), queue)
    async with running(client):
        await until(lambda: client.stats.connect_failures >= 3)
    assert queue.empty()


# -- the playback server itself ------------------------------------------------------------


async def raw_session(port: int, send: bytes, length: int | None) -> bytes:
    """A bare TCP client: send ``send``, read ``length`` bytes (None: until EOF)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(send)
        async with asyncio.timeout(DEADLINE):
            if length is None:
                return await reader.read()
            return await reader.readexactly(length)
    finally:
        writer.close()


LOGIN_AS_RECORDED = encode_action("Login", "login", [("Username", "callmon"), ("Secret", "x")])
GOODBYE = b"Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n\r\n"


@pytest.mark.parametrize("chunk_seed", [None, 4])
async def test_playback_is_byte_identical(chunk_seed: int | None) -> None:
    """A client that uses the recorded ActionIDs gets the recording's very bytes."""
    part1, part2 = (p.read_bytes() for p in RECONNECT)
    assert part2.endswith(GOODBYE)
    async with PlaybackServer(script_for(RECONNECT), chunk_seed=chunk_seed) as server:
        assert await raw_session(server.port, LOGIN_AS_RECORDED, None) == part1
        resync = encode_action("CoreShowChannels", "resync-1")
        want = part2[: -len(GOODBYE)]
        assert await raw_session(server.port, LOGIN_AS_RECORDED + resync, len(want)) == want
        await asyncio.wait_for(server.finished, DEADLINE)

    for path in RECORDINGS[:3]:
        data = path.read_bytes()
        async with PlaybackServer(script_for([path]), chunk_seed=chunk_seed) as server:
            want = data[: -len(GOODBYE)]
            assert await raw_session(server.port, LOGIN_AS_RECORDED, len(want)) == want


def test_recordings_parse() -> None:
    for path in [*RECORDINGS, *RECONNECT]:
        data = path.read_bytes()
        recording = Recording.load(path)
        assert recording.banner == data[: data.index(b"\r\n") + 2]
        assert recording.tail == b""
        assert recording.steps
    assert Recording.load(RECONNECT[1]).resync_replies == 1
    assert Recording.load(RECONNECT[0]).resync_replies == 0
    with pytest.raises(ValueError, match="banner"):
        Recording.from_bytes(b"HTTP/1.1 200 OK\r\n\r\n")


async def test_loop_rounds_are_new_calls() -> None:
    path = recording_path("a_answer_1ring.ami")
    async with PlaybackServer(script_for([path]), loop=True) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        one = expected([path], ami)
        async with running(client):
            got = await take(queue, 2 * len(one) - 1)
    assert got[: len(one)] == one
    first = [i for i in got[1 : len(one)] if isinstance(i, AmiMessage)]
    second = [i for i in got[len(one) :] if isinstance(i, AmiMessage)]
    assert [m.event for m in first] == [m.event for m in second]
    ids = {m.get("Linkedid") for m in first} - {""}
    ids2 = {m.get("Linkedid") for m in second} - {""}
    assert ids
    assert ids2
    assert not ids & ids2
    channels = {m.get("Channel") for m in first} - {""}
    channels2 = {m.get("Channel") for m in second} - {""}
    assert channels
    assert not channels & channels2
    for a, b in zip(first, second, strict=True):
        if a.get("Timestamp"):
            assert float(b.get("Timestamp")) > float(a.get("Timestamp"))
        assert (a.get("Uniqueid") == a.get("Linkedid")) == (b.get("Uniqueid") == b.get("Linkedid"))
    assert server.rounds_started >= 2


def test_encode_roundtrip_of_playback_replies() -> None:
    """The server understands what the client encodes (ActionID echo)."""
    framer = AmiFramer(expect_banner=False)
    (message,) = framer.feed(encode_action("Ping", "cm-9"))
    assert isinstance(message, AmiMessage)
    assert message.action_id == "cm-9"


async def test_loop_of_the_reconnect_script() -> None:
    async with PlaybackServer(script_for(RECONNECT), loop=True) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        resyncs: list[Resync] = []
        async with running(client), asyncio.timeout(DEADLINE):
            while len(resyncs) < 2:
                item = await queue.get()
                if isinstance(item, Resync):
                    resyncs.append(item)
    first, second = ({c.get("Channel") for c in r.channels} for r in resyncs)
    assert len(first) == len(second) == 2
    assert not first & second
    assert [c.action_id for c in resyncs[1].channels] == ["resync-2", "resync-2"]
    assert client.stats.reconnects == 2


async def test_late_list_events_stay_out_of_the_stream() -> None:
    """A list that comes after its action timed out is dropped, not streamed as events."""

    async def late(session: FakeSession) -> None:
        await session.login()
        late_id = None
        while (message := await session.action()) is not None:
            if message.get("Action") == "CoreShowChannels":
                late_id = message.action_id  # not answered now
            elif message.get("Action") == "Status" and late_id is not None:
                await session.send(
                    f"Response: Success\r\nActionID: {late_id}\r\nEventList: start\r\n\r\n"
                    f"Event: CoreShowChannel\r\nActionID: {late_id}\r\n"
                    "Channel: PJSIP/201-00000001\r\n\r\n"
                    f"Event: CoreShowChannelsComplete\r\nActionID: {late_id}\r\n"
                    "EventList: Complete\r\nListItems: 1\r\n\r\n"
                    "Event: Hangup\r\nChannel: PJSIP/201-00000001\r\n\r\n"
                    f"Response: Success\r\nActionID: {message.action_id}\r\n\r\n".encode()
                )

    async with FakeAmi(late).serving() as fake:
        ami = settings(fake.port, action_timeout_seconds=0.1, ping_interval_seconds=60.0)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            assert await take(queue, 1) == [LinkUp()]
            with pytest.raises(AmiTimeout):
                await client.event_list("CoreShowChannels")
            assert (await client.action("Status")).response == "Success"
            got = drain(queue)
    assert [i.event for i in got if isinstance(i, AmiMessage)] == ["Hangup"]
    assert len(got) == 1
    assert client.stats.stale_replies == 3


async def test_chain_plays_recordings_over_one_connection() -> None:
    paths = [recording_path("a_answer_1ring.ami"), recording_path("c_answer_3rings_breach.ami")]
    chained = chain(script_for(paths), gap_seconds=2.0)
    async with PlaybackServer([chained], speed=1000.0) as server:
        ami = settings(server.port)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(ami, SecretStr(SECRET), queue)
        async with running(client):
            await play_all(server, client)
            got = drain(queue)
    first, second = expected(paths[:1], ami), expected(paths[1:], ami)
    want = first + second[1:]  # one connection: one LinkUp

    def without_time(items: Sequence[StreamItem]) -> list[object]:
        return [
            {k: v for k, v in i.headers.items() if k != "Timestamp"}
            if isinstance(i, AmiMessage)
            else i
            for i in items
        ]

    assert without_time(got) == without_time(want)
    assert got[: len(first)] == first  # the first recording is untouched
    stamps = [
        float(i.get("Timestamp")) for i in got if isinstance(i, AmiMessage) and i.get("Timestamp")
    ]
    junction = sum(1 for i in first if isinstance(i, AmiMessage) and i.get("Timestamp"))
    assert stamps[junction] - max(stamps[:junction]) == pytest.approx(2.0, abs=1e-3)
    assert client.stats.reconnects == 0


async def first_items(fake: FakeAmi, count: int) -> tuple[AmiClient, list[StreamItem]]:
    """The first ``count`` items a client of ``fake`` puts on its queue."""
    async with fake.serving():
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        client = AmiClient(settings(fake.port), SecretStr(SECRET), queue)
        async with running(client):
            return client, await take(queue, count)


async def test_a_banner_again_delivers_the_event_after_it_then_renews_the_link() -> None:
    """Issue 14, item 5: a proxy that reconnects upstream sends the banner again; the event
    after it reaches the stream, and the link is renewed (login and resync) since events
    may be missing and the upstream login may be gone."""

    async def banner_again(session: FakeSession) -> None:
        await session.login()
        if fake.connections == 1:
            await session.send(
                b"Asterisk Call Manager/11.0.0\r\nEvent: Hangup\r\nUniqueid: 1.1\r\ngarbage\r\n\r\n"
            )
        await session.ignore_everything([])

    fake = FakeAmi(banner_again)
    client, items = await first_items(fake, 4)
    assert items[0] == LinkUp()
    assert isinstance(items[1], AmiMessage)
    assert items[1].get("Uniqueid") == "1.1"
    assert isinstance(items[2], LinkDown)
    assert "banner" in items[2].reason
    assert items[3] == LinkUp()
    assert (client.stats.banners_again, client.stats.framing_repairs) == (1, 2)


async def test_a_login_to_a_pbx_up_for_less_than_the_gap_says_it_restarted() -> None:
    """Issue 14, item 11: the Shutdown of a restart may never reach us; FullyBooted's
    uptime shorter than the time the link was down says the PBX restarted meanwhile."""

    async def restarting(session: FakeSession) -> None:
        await session.login()
        if fake.connections == 1:
            await session.send(b"Event: FullyBooted\r\nUptime: 5000\r\n\r\n")
            return  # the link drops
        await asyncio.sleep(0.1)  # the gap is longer than the new uptime
        await session.send(b"Event: FullyBooted\r\nUptime: 0\r\n\r\n")
        await session.ignore_everything([])

    fake = FakeAmi(restarting)
    _, items = await first_items(fake, 5)
    assert items[0] == LinkUp()
    assert isinstance(items[1], AmiMessage)  # the first FullyBooted: no gap before it
    assert isinstance(items[2], LinkDown)
    assert items[3:] == [LinkUp(), PbxRestarted()]
