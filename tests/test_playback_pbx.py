"""The playback PBX speaks AMI through the framer: it reads recordings and actions with it,
and what it makes up goes out through the framing's encoder (no header injection)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from call_monitor.ami.framing import (
    AmiFramer,
    AmiMessage,
    Banner,
    UnsafeHeaderError,
    encode_action,
)
from call_monitor.demo import replies
from call_monitor.demo.pbx import PlaybackServer, Recording, recording_path, script_for
from call_monitor.demo.recording import RecordedMessage, ResyncReply

DEADLINE = 20.0
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LOGIN_REPLY = b"Response: Success\r\nActionID: login\r\nMessage: Authentication accepted\r\n\r\n"
LOGIN = encode_action("Login", "l-1", [("Username", "callmon"), ("Secret", "x")])


class Client:
    """A bare AMI client on a socket: raw bytes out, the framer's messages in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = AmiFramer(keep_raw=True)
        self.messages: list[AmiMessage] = []

    async def send(self, data: bytes, *, byte_by_byte: bool = False) -> None:
        for piece in [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]:
            self.writer.write(piece)
            await self.writer.drain()

    async def reply(self) -> AmiMessage:
        """The next response (events are set aside)."""
        async with asyncio.timeout(DEADLINE):
            while True:
                for i, message in enumerate(self.messages):
                    if message.response is not None:
                        return self.messages.pop(i)
                await self.read_more()

    async def read_more(self) -> None:
        data = await self.reader.read(65536)
        assert data, "the server closed the connection"
        frames = self.framer.feed(data)
        assert all(isinstance(f, (AmiMessage, Banner)) for f in frames), frames
        self.messages += [f for f in frames if isinstance(f, AmiMessage)]


@contextlib.asynccontextmanager
async def logged_in(server: PlaybackServer) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    client = Client(reader, writer)
    try:
        await client.send(LOGIN)
        assert (await client.reply()).get("Message") == "Authentication accepted"
        yield client
    finally:
        writer.close()


def an_idle_server() -> PlaybackServer:
    """A recording with nothing after its login: every message the client reads is a reply."""
    return PlaybackServer([BANNER + LOGIN_REPLY])


# -- what the PBX sends is safe to frame ---------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        b"Action: Ping\r\nActionID: p-1\nEvent: Hangup\r\n\r\n",  # a bare LF in the ActionID
        b"Action: Ping\rEvent: Hangup\r\nActionID: p-2\r\n\r\n",  # a bare CR in the name
        b"Action: Status\r\nActionID: s-1\r\nChannel: x\nResponse: Success\r\n\r\n",
    ],
)
async def test_an_action_it_cannot_echo_safely_is_refused(action: bytes) -> None:
    async with an_idle_server() as server, logged_in(server) as client:
        await client.send(action)
        refused = await client.reply()
        await client.send(encode_action("Ping", "after"))
        pong = await client.reply()
    assert refused.response == "Error"
    assert refused.get("Message") == replies.UNSAFE_ACTION
    assert refused.action_id is None  # the ActionID may be the very value refused
    assert refused.raw is not None
    assert b"\r" not in refused.raw.replace(b"\r\n", b"")
    assert b"\n" not in refused.raw.replace(b"\r\n", b"")
    assert (pong.action_id, pong.get("Ping")) == ("after", "Pong")  # the link goes on


async def test_a_login_it_cannot_echo_is_refused_and_a_good_one_then_accepted() -> None:
    async with an_idle_server() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = Client(reader, writer)
        try:
            await client.send(b"Action: Login\r\nActionID: l\nEvent: X\r\n\r\n" + LOGIN)
            refused, accepted = await client.reply(), await client.reply()
        finally:
            writer.close()
    assert (refused.response, refused.action_id) == ("Error", None)
    assert (accepted.response, accepted.action_id) == ("Success", "l-1")
    assert server.logins == 1


def test_replies_refuse_what_would_break_framing() -> None:
    with pytest.raises(UnsafeHeaderError):
        replies.pong("p-1\r\nEvent: Hangup", 0.0)
    with pytest.raises(UnsafeHeaderError):
        replies.empty_resync("r-1\n")
    reply = ResyncReply("resync-1", (b"Event: CoreShowChannel\r\nActionID: resync-1",))
    with pytest.raises(UnsafeHeaderError):
        reply.for_action("resync-2\r\nEvent: Hangup")


# -- the client's actions, as the framer reads them ----------------------------------------


async def test_a_repeated_header_and_odd_bytes_are_read_as_the_framer_reads_them() -> None:
    odd = (
        b"Action:Ping\r\n"  # no space after the colon
        b"ActionID: first\r\nActionID: second\r\n"  # repeated: the first one counts
        b"Note: \xff\xfe not UTF-8\r\n\r\n"
        b"this line has no key\r\n\r\n"  # a framing error: skipped, never answered
        b"Action: Ping\r\nActionID: next\r\n\r\n"
    )
    async with an_idle_server() as server, logged_in(server) as client:
        await client.send(odd, byte_by_byte=True)
        first, second = await client.reply(), await client.reply()
        await client.send(encode_action("Bogus", "b-1"))
        unknown = await client.reply()
    assert (first.action_id, first.get("Ping")) == ("first", "Pong")
    assert (second.action_id, second.get("Ping")) == ("next", "Pong")
    assert unknown.response == "Error"
    assert unknown.get("Message").startswith("Invalid/unknown command: Bogus.")


async def test_a_resync_reply_carries_the_clients_action_id() -> None:
    part2 = recording_path("s_ami_reconnect_midcall.part2.ami")
    async with PlaybackServer(script_for([part2])) as server, logged_in(server) as client:
        await client.send(encode_action("CoreShowChannels", "mine-7"))
        start = await client.reply()
        async with asyncio.timeout(DEADLINE):
            while not any(m.event == "CoreShowChannelsComplete" for m in client.messages):
                await client.read_more()
    listing = [m for m in client.messages if m.action_id is not None]
    assert start.action_id == "mine-7"
    assert [m.event for m in listing] == [
        "CoreShowChannel",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    ]
    assert {m.action_id for m in listing} == {"mine-7"}


# -- recordings, read by the framer --------------------------------------------------------


def test_a_recording_keeps_its_bytes_and_its_unfinished_tail() -> None:
    event = "Event: Newchannel\r\nTimestamp: 1700000000.5\r\nCallerIDName: 구민".encode()
    data = BANNER + LOGIN_REPLY + event + b"\r\n\r\nEvent: Hangu"
    recording = Recording.from_bytes(data)
    assert recording.banner == BANNER
    assert recording.steps == (RecordedMessage(event, 1700000000.5),)
    assert recording.tail == b"Event: Hangu"


def test_a_recording_with_a_message_the_framer_cannot_read_is_refused() -> None:
    with pytest.raises(ValueError, match="message 2: no 'Key:' line"):
        Recording.from_bytes(BANNER + LOGIN_REPLY + b"no key here\r\n\r\n")
    # A garbled line, or a lone LF, inside a message: kept, to be replayed byte for byte.
    garbled = b"Event: X\r\nno key here\r\nA: 1\nB: 2\r\n\r\n"
    recording = Recording.from_bytes(BANNER + LOGIN_REPLY + garbled)
    assert recording.steps[-1].raw + b"\r\n\r\n" == garbled  # type: ignore[union-attr]
