"""Recorded AMI sessions, read by the real framer, ready for the playback PBX to play.

A recording (``recordings/*.ami``) is what one monitor connection received: the banner, the
reply to its ``Login``, the events, and the replies to its actions. :class:`Recording` keeps
what a PBX sends after the login: each event as its recorded bytes (played byte for byte,
never encoded again), and each recorded ``CoreShowChannels`` reply, held back until a
client asks for one.

:func:`script_for` makes a script of files, one connection each; :func:`chain` joins
recordings into one connection (timestamps moved so they follow each other);
:meth:`Recording.rewritten` makes a loop's next round of new calls, and
:func:`rewrite_values` is the byte-level rewrite of ids, channels and timestamps underneath
(the benchmarks' traffic generator puts markers in the same places with it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from call_monitor.ami.framing import (
    BANNER_PREFIX,
    AmiFramer,
    AmiMessage,
    Banner,
    FramingError,
    encode_header,
)

RECORDINGS_DIR = Path(__file__).resolve().parent / "recordings"
RESYNC_ID_PREFIX = "resync-"
TERMINATOR = b"\r\n\r\n"
_EOL = b"\r\n"
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

    def for_action(self, action_id: str) -> bytes:
        """The reply's recorded bytes with the client's ``ActionID`` in place of the recorded
        one (the new line made by the framing's encoder, which refuses CR and LF)."""
        line = encode_header("ActionID", action_id)
        return b"".join(
            b"".join(
                line if old.startswith(b"ActionID:") else old + _EOL for old in raw.split(_EOL)
            )
            + _EOL
            for raw in self.messages
        )


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
        """Read a recording with the client's own framer (no message size limit).

        A message the framer cannot parse (no ``Key:`` line at all) makes the recording
        invalid (``ValueError``), as does a missing banner. Empty lines between messages,
        which no client sees, are not kept.
        """
        # CRLF only: a lone CR or LF is replayed as it was recorded (a fault to play).
        framer = AmiFramer(keep_raw=True, max_message_bytes=max(1, len(data)), crlf_only=True)
        frames = framer.feed(data)
        banner = frames[0] if frames else None
        if not isinstance(banner, Banner):
            raise ValueError(f"{name}: a recording starts with the AMI banner line")
        messages: list[AmiMessage] = []
        for frame in frames[1:]:
            if isinstance(frame, FramingError):
                raise ValueError(f"{name}: message {len(messages) + 1}: {frame.reason}")
            if isinstance(frame, AmiMessage):
                messages.append(frame)
        banner_line = f"{BANNER_PREFIX}{banner.version}".encode() + _EOL
        return cls(name, banner_line, _steps(messages), framer.pending)

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
        renaming = _round_renaming(round_no, shift_seconds)
        steps: list[Step] = []
        for step in self.steps:
            if isinstance(step, RecordedMessage):
                steps.append(_shifted(step, renaming, shift_seconds))
            else:
                msgs = tuple(rewrite_values(m, renaming) for m in step.messages)
                steps.append(ResyncReply(step.action_id, msgs))
        return Recording(f"{self.name}#{round_no}", self.banner, tuple(steps), self.tail)


def _steps(messages: Iterable[AmiMessage]) -> tuple[Step, ...]:
    """What a PBX sends after the login reply: events as recorded, resync replies held.

    Everything up to the recorded login reply goes; the recorded client's other replies
    (``Goodbye`` ...) are not ours to send.
    """
    steps: list[Step] = []
    blocks: dict[str, list[bytes]] = {}
    logged_in = False
    for message in messages:
        assert message.raw is not None  # a keep_raw framer's message
        if not logged_in:
            logged_in = message.response is not None
            continue
        action_id = message.action_id or ""
        if action_id.startswith(RESYNC_ID_PREFIX):
            block = blocks.get(action_id)
            if block is None:
                blocks[action_id] = block = []
                steps.append(ResyncReply(action_id, ()))  # placeholder, filled below
            block.append(message.raw)
        elif message.response is None:
            steps.append(RecordedMessage(message.raw, _timestamp(message.get("Timestamp"))))
    return tuple(
        ResyncReply(s.action_id, tuple(blocks[s.action_id])) if isinstance(s, ResyncReply) else s
        for s in steps
    )


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
        renaming = Renaming(timestamp=partial(_shift_timestamp, shift=shift))
        for step in recording.steps:
            if isinstance(step, RecordedMessage) and shift:
                steps.append(_shifted(step, renaming, shift))
            else:
                steps.append(step)
        if stamps:
            end = max(stamps) + shift
    name = "+".join(r.name for r in recordings)
    return Recording(name, recordings[0].banner, tuple(steps), recordings[-1].tail)


def overlap(recordings: Sequence[Recording], every_seconds: float) -> Recording:
    """Recordings played over one connection, each starting ``every_seconds`` after the
    previous one started, their events interleaved by time: calls overlap as in an office.

    Only ``Timestamp`` values change. A message without one keeps its place after the
    message before it in its own recording. Recorded resync replies cannot be interleaved
    (``ValueError``).
    """
    if not recordings:
        raise ValueError("overlap() needs at least one recording")
    start: float | None = None
    timed: list[tuple[float, int, int, RecordedMessage]] = []
    for number, recording in enumerate(recordings):
        stamps = recording.timestamps()
        if not stamps:
            continue
        start = min(stamps) if start is None else start
        shift = start + number * every_seconds - min(stamps)
        renaming = Renaming(timestamp=partial(_shift_timestamp, shift=shift))
        at = min(stamps) + shift
        for position, step in enumerate(recording.steps):
            if not isinstance(step, RecordedMessage):
                raise ValueError(f"{recording.name}: a resync reply cannot be overlapped")
            moved = _shifted(step, renaming, shift)
            at = moved.timestamp if moved.timestamp is not None else at
            timed.append((at, number, position, moved))
    name = "|".join(r.name for r in recordings)
    steps = tuple(step for *_, step in sorted(timed, key=lambda item: item[:3]))
    return Recording(name, recordings[0].banner, steps, recordings[-1].tail)


def starting_at(recording: Recording, epoch: float) -> Recording:
    """``recording`` with its times moved so that its first event is stamped ``epoch``: the
    demo plays its calls as if they happened now (the callbacks they owe fall due while
    one watches, not long ago)."""
    stamps = recording.timestamps()
    if not stamps:
        return recording
    shift = epoch - min(stamps)
    renaming = Renaming(timestamp=partial(_shift_timestamp, shift=shift))
    steps = tuple(
        _shifted(step, renaming, shift) if isinstance(step, RecordedMessage) else step
        for step in recording.steps
    )
    return Recording(recording.name, recording.banner, steps, recording.tail)


def recording_path(name: str) -> Path:
    """A shipped recording by file name (``"a_answer_1ring.ami"``)."""
    return RECORDINGS_DIR / name


def loop_period(script: Sequence[Recording]) -> int:
    """Whole seconds between a loop's rounds: the script's recorded span, plus one."""
    stamps = [t for r in script for t in r.timestamps()]
    if not stamps:
        return 1
    return math.ceil(max(stamps) - min(stamps)) + 1


# -- rewriting recorded bytes ---------------------------------------------------------------


def _keep(value: bytes) -> bytes:
    return value


@dataclass(frozen=True, slots=True)
class Renaming:
    """How :func:`rewrite_values` changes a recorded message's values; each change must be
    one to one, so that what was equal stays equal.

    ``timestamp`` takes a ``Timestamp`` value; ``unique_id`` the ``(epoch, seq)`` of an
    ``epoch.seq`` unique, linked or bridge id; ``other_id_suffix`` goes after any other such
    id (a bridge UUID); ``channel_counter`` takes the eight hex digits of a channel name
    (``PJSIP/201-0000002a;1``), in a ``*Channel`` or ``Peer`` header.
    """

    timestamp: Callable[[bytes], bytes] = _keep
    unique_id: Callable[[bytes, bytes], bytes] | None = None
    other_id_suffix: bytes = b""
    channel_counter: Callable[[bytes], bytes] | None = None


def rewrite_values(raw: bytes, renaming: Renaming) -> bytes:
    """``raw`` with its timestamps, ids and channel names changed by ``renaming``; every
    other byte as recorded."""
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
            new = renaming.timestamp(value)
        elif key.endswith(_ID_SUFFIXES) and renaming.unique_id is not None:
            new = _rewrite_id(value, renaming.unique_id, renaming.other_id_suffix)
        elif (key.endswith(b"channel") or key == b"peer") and renaming.channel_counter:
            counter = renaming.channel_counter
            new = b",".join(_rewrite_channel(v, counter) for v in value.split(b","))
        else:
            continue
        lines[i] = line[: colon + 1] + space + new
    return _EOL.join(lines)


def _rewrite_id(value: bytes, unique_id: Callable[[bytes, bytes], bytes], suffix: bytes) -> bytes:
    if not value or value.startswith(b"<"):
        return value
    match = _UNIQUEID_RE.match(value)
    if match is None:
        return value + suffix
    return unique_id(match[1], match[2])


def _rewrite_channel(value: bytes, counter: Callable[[bytes], bytes]) -> bytes:
    match = _CHANNEL_RE.match(value)
    if match is None:
        return value
    return match[1] + counter(match[2]) + match[3]


def _round_renaming(round_no: int, shift: int) -> Renaming:
    def unique_id(epoch: bytes, seq: bytes) -> bytes:
        return f"{int(epoch) + shift}.{int(seq) + round_no * _SEQ_STRIDE}".encode()

    def channel_counter(counter: bytes) -> bytes:
        return f"{int(counter, 16) + round_no * _CHANNEL_STRIDE:08x}".encode()

    return Renaming(
        timestamp=partial(_shift_timestamp, shift=shift),
        unique_id=unique_id,
        other_id_suffix=f"-r{round_no}".encode(),
        channel_counter=channel_counter,
    )


def _shifted(step: RecordedMessage, renaming: Renaming, shift: float) -> RecordedMessage:
    timestamp = None if step.timestamp is None else step.timestamp + shift
    return RecordedMessage(rewrite_values(step.raw, renaming), timestamp)


def _shift_timestamp(value: bytes, shift: float) -> bytes:
    try:
        ts = float(value)
    except ValueError:
        return value
    dot = value.find(b".")
    decimals = 0 if dot < 0 else len(value) - dot - 1
    return f"{ts + shift:.{decimals}f}".encode()


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        ts = float(value)
    except ValueError:
        return None
    return ts if math.isfinite(ts) else None
