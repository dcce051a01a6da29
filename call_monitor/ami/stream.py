"""What flows from the AMI link to the correlator: events, and marks of the link's life.

The live client and the offline transcript reader both produce this same sequence, so a
recording replays exactly as the live connection was seen:

- ``LinkUp`` after each successful login (a new connection);
- ``AmiMessage`` for each event;
- ``LinkDown`` when a connection is lost (events may have been missed from here);
- ``Resync`` with the channels the PBX reported up after a reconnect
  (``CoreShowChannels``): the correlator closes calls that ended during the gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from call_monitor.ami.framing import AmiMessage, Banner, Frame, FramingError

RESYNC_ACTION = "CoreShowChannels"
RESYNC_ITEM_EVENT = "CoreShowChannel"
RESYNC_COMPLETE_EVENT = "CoreShowChannelsComplete"


@dataclass(frozen=True, slots=True)
class LinkUp:
    """A connection was established and logged in."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The connection was lost; events may be missing until the next ``Resync``."""

    reason: str


@dataclass(frozen=True, slots=True)
class Resync:
    """The channels up on the PBX right after a (re)connect."""

    channels: tuple[AmiMessage, ...]


@dataclass(frozen=True, slots=True)
class PbxRestarted:
    """The PBX restarted while the link was down (its uptime at the new login is shorter
    than the gap): every call in flight was hung up by it."""


StreamItem = AmiMessage | LinkUp | LinkDown | Resync | PbxRestarted


def transcript_items(frames: Iterable[Frame]) -> Iterator[StreamItem | FramingError]:
    """Turn the frames of recorded connections into the items the live client yields.

    A recording holds one or more connections, each starting with a banner. Responses are
    dropped; a ``CoreShowChannels`` event list (the resync the client asks for) becomes a
    single ``Resync``.
    """
    seen_link = False
    listing: dict[str, list[AmiMessage]] = {}
    for frame in frames:
        if isinstance(frame, Banner):
            if seen_link:
                yield LinkDown("recording: new connection")
            seen_link = True
            yield LinkUp()
        elif isinstance(frame, FramingError):
            yield frame
        elif frame.event is None:
            continue  # a response to an action: the live client consumes these itself
        elif frame.event == RESYNC_ITEM_EVENT:
            listing.setdefault(frame.get("ActionID"), []).append(frame)
        elif frame.event == RESYNC_COMPLETE_EVENT:
            yield Resync(tuple(listing.pop(frame.get("ActionID"), ())))
        else:
            yield frame
