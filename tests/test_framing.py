"""The AMI framer: real recordings, edge cases, and properties over any bytes and chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from call_monitor.ami.framing import (
    AmiFramer,
    AmiMessage,
    Banner,
    Frame,
    FramingError,
    UnsafeHeaderError,
    encode_action,
    encode_message,
    parse_message,
)
from call_monitor.calls.correlator import EVENT_FILTER
from tests.recordings import RECORDINGS

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
ALL_RECORDINGS = sorted(RECORDINGS.glob("*.ami"))


def frame_in_chunks(data: bytes, cuts: list[int], **kwargs: object) -> list[Frame]:
    return feed_in_chunks(AmiFramer(**kwargs), data, cuts)  # type: ignore[arg-type]


def feed_in_chunks(framer: AmiFramer, data: bytes, cuts: list[int]) -> list[Frame]:
    frames: list[Frame] = []
    last = 0
    for cut in sorted(set(cuts)):
        frames += framer.feed(data[last:cut])
        last = cut
    frames += framer.feed(data[last:])
    return frames


@pytest.mark.parametrize("path", ALL_RECORDINGS, ids=lambda p: p.name)
def test_recordings_frame_without_errors(path: object) -> None:
    data = RECORDINGS.joinpath(str(path)).read_bytes()
    framer = AmiFramer()
    frames = framer.feed(data)
    assert frames[0] == Banner("11.0.0")
    assert framer.stats.errors == 0
    assert framer.stats.messages == data.count(b"\r\n\r\n")
    assert all(isinstance(f, AmiMessage) for f in frames[1:])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_recording_is_chunking_invariant(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(ALL_RECORDINGS[:8]))
    raw = path.read_bytes()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=300))
    assert frame_in_chunks(raw, cuts) == AmiFramer().feed(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=40))
def test_any_bytes_frame_or_count_an_error_whatever_the_chunking(
    payload: bytes, cuts: list[int]
) -> None:
    data = BANNER + payload
    whole = AmiFramer(max_message_bytes=512)
    expected = whole.feed(data)
    assert frame_in_chunks(data, cuts, max_message_bytes=512) == expected
    for frame in expected:
        assert isinstance(frame, Banner | AmiMessage | FramingError)
    assert whole.stats.errors == sum(isinstance(f, FramingError) for f in expected)


def test_korean_name_split_across_chunks_survives() -> None:
    name = "홍길동 민원인"
    data = BANNER + f"Event: Newchannel\r\nCallerIDName: {name}\r\n\r\n".encode()
    split = data.index(name.encode()) + 1  # inside the first Hangul syllable's bytes
    frames = frame_in_chunks(data, [split])
    message = frames[1]
    assert isinstance(message, AmiMessage)
    assert message.get("CallerIDName") == name
    assert message.invalid_utf8 is False


def test_repeated_and_empty_headers_are_kept() -> None:
    data = BANNER + (
        b"Event: Newchannel\r\nAccountCode: \r\nChanVariable: a=1\r\n"
        b"ChanVariable: b=2\r\nExten:\r\n\r\n"
    )
    [_, message] = AmiFramer().feed(data)
    assert isinstance(message, AmiMessage)
    assert message.get("AccountCode", "missing") == ""
    assert message.get("Exten", "missing") == ""
    assert message.get_all("ChanVariable") == ("a=1", "b=2")
    assert message.get("ChanVariable") == "a=1"


def test_invalid_utf8_is_kept_and_marked() -> None:
    data = BANNER + b"Event: Hangup\r\nCallerIDName: \xff\xfe\r\nUniqueid: 1.1\r\n\r\n"
    [_, message] = AmiFramer().feed(data)
    assert isinstance(message, AmiMessage)
    assert message.invalid_utf8 is True
    assert message.get("Uniqueid") == "1.1"


def test_oversized_message_is_one_error_and_the_next_message_frames() -> None:
    big = b"Event: X\r\n" + b"Pad: " + b"x" * 5000 + b"\r\n\r\n"
    data = BANNER + big + b"Event: Ok\r\n\r\n"
    for cuts in ([], list(range(0, len(data), 7))):
        frames = frame_in_chunks(data, cuts, max_message_bytes=1024)
        assert [type(f) for f in frames] == [Banner, FramingError, AmiMessage]


def test_a_line_without_colon_is_skipped_and_counted_the_event_kept() -> None:
    """Issue 14, item 5: a garbled line inside the customer's Hangup lost the whole Hangup
    (the call then stayed up forever)."""
    framer = AmiFramer()
    frames = framer.feed(
        BANNER + b"Event: Hangup\r\ngarbage line\r\nUniqueid: 1.1\r\n\r\nEvent: Y\r\n\r\n"
    )
    assert [type(f) for f in frames] == [Banner, AmiMessage, AmiMessage]
    hangup = frames[1]
    assert isinstance(hangup, AmiMessage)
    assert (hangup.event, hangup.get("Uniqueid"), hangup.skipped_lines) == ("Hangup", "1.1", 1)
    assert (framer.stats.errors, framer.stats.repaired, framer.stats.messages) == (0, 1, 2)


def test_a_message_of_no_key_at_all_is_an_error_not_a_crash() -> None:
    frames = AmiFramer().feed(BANNER + b"garbage\r\nmore\r\n\r\nEvent: Y\r\n\r\n")
    assert isinstance(frames[1], FramingError)
    assert isinstance(frames[2], AmiMessage)
    assert frames[2].event == "Y"


@pytest.mark.parametrize("eol", [b"\n", b"\r"], ids=["LF", "CR"])
def test_lone_lf_or_cr_line_ends_frame_like_crlf_and_are_counted(eol: bytes) -> None:
    """Issue 14, item 5: one call sent with LF-only (or CR-only) line ends was lost without
    a count; it frames as the CRLF stream would, whatever the chunking."""
    call = b"Event: Newchannel\r\nUniqueid: 1.1\r\n\r\nEvent: Hangup\r\nUniqueid: 1.1\r\n\r\n"
    after = b"Event: Y\r\n\r\n"
    expected = AmiFramer().feed(BANNER + call + after)
    data = BANNER + call.replace(b"\r\n", eol) + after
    for cuts in ([], list(range(0, len(data), 3)), [len(BANNER) + 5]):
        framer = AmiFramer()
        assert feed_in_chunks(framer, data, cuts) == expected
        assert framer.stats.repaired == 2  # messages
        assert framer.stats.errors == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["Event: X", "A: 1", "B:", "no key", ""]), max_size=4),
            st.sampled_from([b"\r\n", b"\n", b"\r"]),
        ),
        max_size=6,
    ),
    st.lists(st.integers(0, 400), max_size=30),
)
def test_mixed_line_ends_frame_the_same_whatever_the_chunking(
    messages: list[tuple[list[str], bytes]], cuts: list[int]
) -> None:
    data = BANNER + b"".join(
        eol.join(line.encode() for line in lines) + eol * 2 for lines, eol in messages
    )
    whole = AmiFramer()
    expected = whole.feed(data)
    chunked = AmiFramer()
    assert feed_in_chunks(chunked, data, cuts) == expected
    assert chunked.stats == whole.stats


def test_a_caller_name_with_lone_lf_stays_in_its_crlf_message() -> None:
    """A CRLF message (its first line ends in CRLF) keeps lone LFs inside its values."""
    data = BANNER + b"Event: Newchannel\r\nCallerIDName: a\n\nb\r\nUniqueid: 1.1\r\n\r\n"
    [_, message] = AmiFramer().feed(data)
    assert isinstance(message, AmiMessage)
    assert message.get("CallerIDName") == "a\n\nb"
    assert message.get("Uniqueid") == "1.1"


def test_a_whole_lf_only_connection_frames() -> None:
    data = b"Asterisk Call Manager/2.10.0\nEvent: X\nA: 1\n\nEvent: Y\n\n"
    frames = AmiFramer().feed(data)
    assert frames == [
        Banner("2.10.0"),
        AmiMessage({"Event": "X", "A": "1"}),
        AmiMessage({"Event": "Y"}),
    ]


def test_a_banner_again_inside_the_connection_loses_no_event() -> None:
    """Issue 14, item 5: a proxy's reconnect sends the banner again; the event after it
    was lost (framed together with the banner line)."""
    data = BANNER + b"Event: A\r\n\r\n" + BANNER + b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
    for cuts in ([], list(range(0, len(data), 5))):
        framer = AmiFramer()
        frames = feed_in_chunks(framer, data, cuts)
        assert frames == [
            Banner("11.0.0"),
            AmiMessage({"Event": "A"}),
            Banner("11.0.0"),
            AmiMessage({"Event": "Hangup", "Uniqueid": "1.1"}),
        ]
        assert (framer.stats.errors, framer.stats.repaired) == (0, 1)


def test_missing_banner_is_an_error() -> None:
    frames = AmiFramer().feed(b"HTTP/1.1 200 OK\r\n\r\n")
    assert isinstance(frames[0], FramingError)


def test_ignored_events_are_dropped_unparsed() -> None:
    framer = AmiFramer(ignore_events=["VarSet"])
    frames = framer.feed(BANNER + b"Event: VarSet\r\nX: 1\r\n\r\nEvent: Hangup\r\n\r\n")
    assert [f.event for f in frames if isinstance(f, AmiMessage)] == ["Hangup"]
    assert framer.stats.dropped == 1


def test_encode_action_refuses_header_injection() -> None:
    assert encode_action("Ping", "p-1") == b"Action: Ping\r\nActionID: p-1\r\n\r\n"
    with pytest.raises(ValueError, match="break framing"):
        encode_action("Login", "l-1", [("Username", "x\r\nAction: Originate")])


@pytest.mark.parametrize(
    "pairs",
    [
        [("Response", "Success"), ("ActionID", "p-1\r\nEvent: Hangup")],
        [("Event", "Hangup"), ("Channel", "PJSIP/201\n")],
        [("Response", "Error"), ("Message", "a lone \r")],
        [("Event\r\nX", "Hangup")],
        [("Event: Hangup\r\nChannel", "x")],
        [("", "no key")],
    ],
)
def test_encode_message_refuses_header_injection_in_any_message(
    pairs: list[tuple[str, str]],
) -> None:
    with pytest.raises(UnsafeHeaderError, match="break framing"):
        encode_message(pairs)


_SAFE_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


@given(st.lists(st.tuples(_SAFE_TEXT, _SAFE_TEXT), min_size=1, max_size=6))
def test_encode_message_either_refuses_or_frames_back_to_its_pairs(
    pairs: list[tuple[str, str]],
) -> None:
    """Whatever the text: refused, or one message that the framer reads back pair for pair.
    Refused: CR, LF or NUL anywhere, a colon in a key, an empty key."""
    unsafe = any(
        not key or any(c in key for c in ":\r\n\x00") or any(c in value for c in "\r\n\x00")
        for key, value in pairs
    )
    try:
        data = encode_message(pairs)
    except UnsafeHeaderError:
        assert unsafe
        return
    assert not unsafe
    (message,) = AmiFramer(expect_banner=False).feed(data)
    assert isinstance(message, AmiMessage)
    keys = [key for key, _ in pairs]  # the framer groups a repeated key's values
    grouped = sorted(pairs, key=lambda pair: keys.index(pair[0]))
    assert [(k, v) for k in message.headers for v in message.get_all(k)] == grouped


def test_a_keep_raw_framer_keeps_each_message_bytes_and_the_unfinished_rest() -> None:
    first = b"Event: Newchannel\r\nCallerIDName: \xea\xb9\x80"  # split mid-character
    second = b"Event: Hangup\r\nX:no space"
    data = BANNER + first + b"\r\n\r\n" + second + b"\r\n\r\nEvent: Unfin"
    for cuts in ([], list(range(0, len(data), 3))):
        framer = AmiFramer(keep_raw=True)
        frames = feed_in_chunks(framer, data, cuts)
        messages = [f for f in frames if isinstance(f, AmiMessage)]
        assert [m.raw for m in messages] == [first, second]
        assert messages[0].get("CallerIDName") == "김"
        assert framer.pending == b"Event: Unfin"
    (plain,) = AmiFramer(expect_banner=False).feed(first + b"\r\n\r\n")
    assert isinstance(plain, AmiMessage)
    assert plain.raw is None  # only on request: the daemon's messages do not carry it
    assert plain == messages[0]  # the bytes are no part of a message's equality


def _reference_parse(raw: bytes) -> AmiMessage | FramingError:
    """The AMI message grammar read line by line, the obvious way: the fast parser's oracle."""
    text = raw.decode("utf-8", errors="replace")
    invalid_utf8 = text.encode("utf-8", errors="surrogatepass") != raw
    text = text.replace("\x00", "\ufffd")  # no AMI text holds a NUL
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    skipped = 0
    for line in text.split("\r\n"):
        if ":" not in line or line.startswith(":"):
            skipped += 1  # skipped, the rest of the message kept
            continue
        key, value = line.split(":", 1)
        value = value[1:] if value.startswith(" ") else value
        if key in headers:
            repeated.setdefault(key, [headers[key]]).append(value)
        else:
            headers[key] = value
    if not headers:
        return FramingError("no 'Key:' line", len(raw))
    frozen = {k: tuple(v) for k, v in repeated.items()} or None
    return AmiMessage(headers, frozen, invalid_utf8, skipped)


_LINE = st.one_of(
    st.sampled_from(["Event: Hangup", "Key:", "Key:  two spaces", ": no key", "no colon", ""]),
    st.builds(
        lambda k, sep, v: f"{k}{sep}{v}",
        st.sampled_from(["Event", "ChanVariable", "Uniqueid", "CallerIDName", "k"]),
        st.sampled_from([": ", ":", ":: "]),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
    ),
)


@given(st.lists(_LINE, min_size=1, max_size=8), st.booleans())
def test_parse_message_matches_the_line_by_line_reading(lines: list[str], bad: bool) -> None:
    raw = "\r\n".join(lines).encode("utf-8") + (b"\xff" if bad else b"")
    parsed = parse_message(raw)
    expected = _reference_parse(raw)
    if isinstance(expected, FramingError):
        assert isinstance(parsed, FramingError)
    else:
        assert parsed == expected
        assert isinstance(parsed, AmiMessage)
        assert parsed.skipped_lines == expected.skipped_lines


@given(st.data())
@settings(max_examples=30, deadline=None)
def test_event_filter_drops_only_what_the_correlator_never_reads(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(RECORDINGS.glob("*.full.ami"))))
    raw = path.read_bytes()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=30))
    everything = frame_in_chunks(raw, cuts)
    filtered = frame_in_chunks(raw, cuts, event_filter=EVENT_FILTER)
    wanted = [
        f
        for f in everything
        if not isinstance(f, AmiMessage)
        or f.event is None
        or f.action_id is not None
        or (
            f.event in EVENT_FILTER.keep
            and (
                f.event != "CEL"
                or f.get("EventName") == "DTMF"
                or f.get("Application") in ("VoiceMail", "Playback", "BackGround")
            )
        )
    ]
    assert filtered == wanted
    assert len(filtered) < len(everything)
