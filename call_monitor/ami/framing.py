"""AMI framing without I/O: bytes in, messages out; messages out as bytes.

The Asterisk Manager Interface sends one banner line (``Asterisk Call Manager/x.y.z``),
then messages: ``Key: Value`` lines ending in CRLF, each message closed by an empty line.
Repaired rather than lost (and counted in ``FramerStats.repaired``): a lone LF or CR line end
(read as CRLF), a line without ``Key:`` inside a message (skipped, the message kept), the
banner sent again inside a connection (a :class:`Banner`, then the message after it).

The framer never raises on input. Whatever bytes arrive, in whatever chunks, it returns
the same sequence of :class:`Banner`, :class:`AmiMessage` and :class:`FramingError`
items, so a caller counts the errors and goes on. Text is decoded per whole message:
decoding per TCP chunk would break a Korean caller name whose UTF-8 bytes straddle
two chunks.

:func:`encode_message` is the one way out: the client's actions (:func:`encode_action`) and
the demo PBX's responses go through it, and it refuses a CR or LF in a key or a value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

BANNER_PREFIX = "Asterisk Call Manager/"
_TERMINATOR = b"\r\n\r\n"
_EOL = b"\r\n"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
_MAX_BANNER = 512
_ACTION_ID = b"\r\nActionID:"
_BANNER_BYTES = BANNER_PREFIX.encode()
# The first line end of a message: CRLF, or a lone LF (some proxies, older builds) or CR.
_FIRST_EOL = re.compile(rb"\r\n|\n|\r")


def _event_line(name: str) -> bytes:
    return f"Event: {name}".encode()


@dataclass(frozen=True, slots=True)
class Banner:
    """The first line the server sends; ``version`` is the AMI protocol version."""

    version: str


@dataclass(frozen=True, slots=True)
class FramingError:
    """Input that could not be framed as a message; it was skipped and should be counted."""

    reason: str
    size: int = field(default=0, compare=False)  # bytes skipped, as far as seen so far


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message.

    ``headers`` maps each key to its first value, in arrival order. Keys that occur more
    than once (``ChanVariable``, ``Output``) keep every value in ``repeated``.
    """

    headers: dict[str, str]
    repeated: dict[str, tuple[str, ...]] | None = None
    invalid_utf8: bool = False
    # Lines without ``Key:`` skipped inside the message (the rest of it is kept).
    skipped_lines: int = field(default=0, compare=False)
    # The message's bytes without its closing empty line, kept only by a framer made with
    # ``keep_raw`` (the demo PBX replays recordings byte for byte).
    raw: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def event(self) -> str | None:
        return self.headers.get("Event")

    @property
    def response(self) -> str | None:
        return self.headers.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.headers.get("ActionID")

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)

    def get_all(self, key: str) -> tuple[str, ...]:
        if self.repeated is not None and key in self.repeated:
            return self.repeated[key]
        value = self.headers.get(key)
        return () if value is None else (value,)


Frame = Banner | AmiMessage | FramingError


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The events a consumer reads; the framer drops every other one by its first line,
    before decoding it. ``markers`` keeps an event only if its bytes hold one of its markers
    (a ``CEL`` record only when it is a ``DTMF`` one, say). Responses and the events of an
    action's reply (they carry an ``ActionID``) are always kept."""

    keep: frozenset[str]
    markers: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)


def parse_message(raw: bytes) -> AmiMessage | FramingError:
    """Parse the bytes of one message (without its closing empty line)."""
    try:
        text = raw.decode("utf-8")
        invalid_utf8 = False
    except UnicodeDecodeError:
        # Keep the message (a Hangup must not be lost over a caller name), mark it.
        text = raw.decode("utf-8", errors="replace")
        invalid_utf8 = True
    if "\x00" in text:
        # The one place strangers' text (a caller name) enters: a NUL becomes U+FFFD here,
        # so every store keeps the same call (PostgreSQL text cannot hold NUL at all).
        text = text.replace("\x00", "\ufffd")
    lines = text.split("\r\n")
    # The common case in one comprehension (twice as fast as a loop): every line a
    # ``Key: value`` with a key of its own. Anything else takes the careful path.
    headers = {
        key: value.removeprefix(" ")
        for key, colon, value in [line.partition(":") for line in lines]
        if colon and key
    }
    if len(headers) == len(lines):
        return AmiMessage(headers, None, invalid_utf8)
    return _parse_lines(lines, len(raw), invalid_utf8)


def _parse_lines(lines: list[str], size: int, invalid_utf8: bool) -> AmiMessage | FramingError:
    """Repeated keys kept in order; a line with no key is skipped (and counted), the rest of
    the message kept: one garbled line must not lose a ``Hangup``. A message with no key at
    all is an error."""
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] | None = None
    skipped = 0
    for line in lines:
        key, colon, value = line.partition(":")
        if not colon or not key:
            skipped += 1
            continue
        value = value.removeprefix(" ")
        if key in headers:
            if repeated is None:
                repeated = {}
            repeated.setdefault(key, [headers[key]]).append(value)
        else:
            headers[key] = value
    if not headers:
        return FramingError("no 'Key:' line", size)
    frozen = None if repeated is None else {k: tuple(v) for k, v in repeated.items()}
    return AmiMessage(headers, frozen, invalid_utf8, skipped)


@dataclass(slots=True)
class FramerStats:
    messages: int = 0
    errors: int = 0
    dropped: int = 0
    # Repairs that kept a message: lines without ``Key:`` skipped, lone CR or LF line ends
    # read as CRLF, a banner sent again inside the connection.
    repaired: int = 0
    banners_again: int = 0  # of which: banners inside the connection


@dataclass(slots=True)
class AmiFramer:
    """Incremental AMI framer.

    ``ignore_events`` names events dropped by their first line, before they are decoded
    (``VarSet``, ``Newexten``, ``CEL`` ... carry nothing a monitor needs on a ``read=all``
    connection). ``expect_banner`` is true for a fresh connection. ``keep_raw`` puts each
    message's bytes in :attr:`AmiMessage.raw`. ``crlf_only`` reads only CRLF as a line end.
    """

    expect_banner: bool = True
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ignore_events: Collection[str] = ()
    event_filter: EventFilter | None = None
    keep_raw: bool = False
    # Lone CR and LF left inside values (the demo PBX refuses such an action, rather than
    # reading it as more lines than its client meant).
    crlf_only: bool = False
    stats: FramerStats = field(default_factory=FramerStats)
    _buffer: bytearray = field(default_factory=bytearray)
    _scan_from: int = 0
    _skipping: bool = False
    _ignored_lines: frozenset[bytes] = frozenset()
    _kept_lines: frozenset[bytes] | None = None
    _markers: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    _terminator: bytes = _TERMINATOR  # b"\n\n" once the banner came with a lone LF

    def __post_init__(self) -> None:
        self._ignored_lines = frozenset(_event_line(name) for name in self.ignore_events)
        if self.event_filter is not None:
            self._kept_lines = frozenset(_event_line(name) for name in self.event_filter.keep)
            self._markers = {
                _event_line(name): marker for name, marker in self.event_filter.markers.items()
            }

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every frame completed by them."""
        self._buffer += data
        frames: list[Frame] = []
        if self.expect_banner and not self._take_banner(frames):
            return frames
        buf = self._buffer
        terminator = self._terminator
        if buf.find(terminator, self._scan_from) >= 0:
            # One copy and one split in C per chunk: a chunk holds ~100 messages.
            parts = bytes(buf).split(terminator)
            rest = parts.pop()
            if self._skipping:
                self._skipping = False
                del parts[0]  # the end of the oversized message
            if terminator is not _TERMINATOR:  # a connection with lone LF line ends
                parts = [part.replace(b"\r\n", b"\n").replace(b"\n", _EOL) for part in parts]
            self._frame_all(parts, frames)
            buf[:] = rest
        # Resume the next search where a terminator could still begin.
        self._scan_from = max(0, len(buf) - 3)
        if len(buf) > self.max_message_bytes:
            if not self._skipping:
                self._error(frames, "message larger than the limit", len(buf))
                self._skipping = True
            del buf[: len(buf) - 3]
            self._scan_from = 0
        return frames

    def _unbare(self, parts: list[bytes]) -> list[bytes]:
        """``parts`` with the messages framed by lone LF or CR line ends at the start of
        each split off, their line ends made CRLF (counted as repairs). A message with CRLF
        line ends keeps its lone LF and CR in its values: its first line (``Event: ...``)
        ends in CRLF, so no caller name decides how it is read. Only whole parts (ended by
        a CRLFCRLF) are read so: the same bytes, whatever the chunking, give the same
        messages (such messages wait for the next CRLF message, a Ping's reply at worst)."""
        out: list[bytes] = []
        for part in parts:
            rest = part
            while (first := _FIRST_EOL.search(rest)) is not None and first[0] != _EOL:
                eol = first[0]
                end = rest.find(eol + eol)
                if end < 0:
                    break
                if not end:
                    rest = rest.lstrip(eol)  # blank lines, however many came so far
                    continue
                out.append(rest[:end].replace(eol, _EOL))
                self.stats.repaired += 1
                rest = rest[end + 2 :]
            out.append(rest)
        return out

    @property
    def pending(self) -> bytes:
        """The bytes received after the last whole message: an unfinished one."""
        return bytes(self._buffer)

    def _take_banner(self, frames: list[Frame]) -> bool:
        eol = self._buffer.find(b"\n", 0, _MAX_BANNER + 2)  # CRLF, or a lone LF
        if eol < 0:
            if len(self._buffer) <= _MAX_BANNER:
                return False  # the banner may still come
            self.expect_banner = False
            self._error(frames, "no AMI banner", len(self._buffer))
            return True  # framed as messages from here, in this call as in a later one
        line_bytes = bytes(self._buffer[:eol])
        if not line_bytes.endswith(b"\r") and not self.crlf_only:
            self._terminator = b"\n\n"  # a whole connection with lone LF line ends
            self.stats.repaired += 1  # (counted once, here)
        line = line_bytes.removesuffix(b"\r").decode("utf-8", errors="replace")
        del self._buffer[: eol + 1]
        self.expect_banner = False
        if line.startswith(BANNER_PREFIX):
            frames.append(Banner(line[len(BANNER_PREFIX) :]))
        else:
            self._error(frames, "no AMI banner", eol)
        return True

    def _frame_all(self, parts: list[bytes], frames: list[Frame]) -> None:
        # The hot loop of the daemon: one pass, locals only, the filter inlined.
        ignored = self._ignored_lines
        kept = self._kept_lines
        markers = self._markers
        filtering = bool(ignored) or kept is not None
        limit = self.max_message_bytes
        parse = _parse_keeping_raw if self.keep_raw else parse_message
        append = frames.append
        bare_too = not self.crlf_only
        dropped = messages = errors = 0
        for part in parts:
            raw = part
            if not raw:
                continue  # stray empty line between messages: harmless
            eol = raw.find(_EOL)
            first = raw if eol < 0 else raw[:eol]
            # Messages framed with lone LF or CR line ends lead a part whose first line holds
            # one: split off (``_expand``) wherever such a first line can reach. It cannot
            # be in the filter's sets ("Event: Name"), so the usual events skip the check.
            if len(raw) > limit:  # skipped whole, as a chunked read skips it
                errors += 1
                append(FramingError("message larger than the limit", len(raw)))
                continue
            if filtering:
                if first in ignored:
                    dropped += 1
                    continue
                if kept is not None and first in kept:
                    marker = markers.get(first)
                    unwanted = marker is not None and not any(m in raw for m in marker)
                else:
                    if (
                        bare_too
                        and (b"\n" in first or b"\r" in first)
                        and self._expand(raw, frames)
                    ):
                        continue
                    unwanted = kept is not None and first.startswith(b"Event: ")
                # The events of an action's reply carry its ActionID: always kept.
                if unwanted and _ACTION_ID not in raw:
                    dropped += 1
                    continue
            elif bare_too and (b"\n" in first or b"\r" in first) and self._expand(raw, frames):
                continue
            if raw.startswith(_BANNER_BYTES):
                # The banner again inside a connection (a proxy reconnected upstream, the
                # PBX restarted behind it): said as a Banner, the message after it kept.
                banner, _, raw = raw.partition(_EOL)
                append(Banner(banner[len(_BANNER_BYTES) :].decode("utf-8", errors="replace")))
                self.stats.repaired += 1
                self.stats.banners_again += 1
                if not raw:
                    continue
            parsed = parse(raw)
            if isinstance(parsed, FramingError):
                errors += 1
            else:
                messages += 1
                if parsed.skipped_lines:
                    self.stats.repaired += parsed.skipped_lines
            append(parsed)
        stats = self.stats
        stats.dropped += dropped
        stats.messages += messages
        stats.errors += errors

    def _expand(self, raw: bytes, frames: list[Frame]) -> bool:
        """Frame the messages with lone LF or CR line ends that lead ``raw`` (its first line
        holds such a line end), then the rest of it; False when there are none."""
        pieces = self._unbare([raw])
        if len(pieces) == 1:
            return False
        self._frame_all(pieces, frames)
        return True

    def _error(self, frames: list[Frame], reason: str, size: int) -> None:
        self.stats.errors += 1
        frames.append(FramingError(reason, size))


def _parse_keeping_raw(raw: bytes) -> AmiMessage | FramingError:
    parsed = parse_message(raw)
    if isinstance(parsed, FramingError):
        return parsed
    return AmiMessage(
        parsed.headers, parsed.repeated, parsed.invalid_utf8, parsed.skipped_lines, raw
    )


class UnsafeHeaderError(ValueError):
    """A key or value that would break the framing (CR, LF; a colon in a key)."""


def encode_header(key: str, value: str) -> bytes:
    """One ``Key: value`` line with its CRLF.

    A CR or LF in the key or the value, or a colon in the key, is refused: it would inject
    headers (or a whole message) into the peer's stream. So is a NUL, which no AMI text
    holds (the framer reads one as U+FFFD).
    """
    if not key or any(c in key for c in ":\r\n\x00") or any(c in value for c in "\r\n\x00"):
        raise UnsafeHeaderError(f"AMI header {key!r} has a character that would break framing")
    return f"{key}: {value}\r\n".encode()


def encode_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """Serialise one AMI message (an action, a response or an event), its pairs in order,
    through :func:`encode_header`."""
    return b"".join(encode_header(key, value) for key, value in headers) + _EOL


def encode_action(action: str, action_id: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """Serialise an action: ``Action`` and ``ActionID`` first (see :func:`encode_message`)."""
    return encode_message([("Action", action), ("ActionID", action_id), *headers])
