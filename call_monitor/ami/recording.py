"""Recorded AMI sessions on disk: read whole (plain, or gzip-compressed), and refused with a
reason a person reads when the file is not one.

A recording is what the PBX sent over one or more connections, byte for byte: each connection
starts with the AMI banner (``Asterisk Call Manager/<version>``). A file that does not start
with it is not a recording (a ``truth.json``, a binary, an empty file), and replaying it would
silently conclude nothing.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from call_monitor.ami.framing import BANNER_PREFIX

GZIP_MAGIC = b"\x1f\x8b"
BANNER = BANNER_PREFIX.encode("ascii")
EVENT_LINE = b"\nEvent:"  # an event's first line, after the previous message's end


class NotARecording(ValueError):
    """The file cannot be replayed; the message says what it is not."""


def read_recording_bytes(path: Path) -> bytes:
    """The bytes of the recording at ``path`` (decompressed when gzip), checked to begin with
    the AMI banner and to hold at least one event.

    Raises :class:`NotARecording` otherwise, ``OSError`` when the file cannot be read.
    """
    if path.is_dir():
        raise NotARecording(f"{path}: is a directory, not an AMI recording")
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise NotARecording(f"{path}: a damaged gzip file ({exc})") from exc
    if not data:
        raise NotARecording(f"{path}: is empty, not an AMI recording")
    if not data.startswith(BANNER):
        raise NotARecording(
            f"{path}: not an AMI recording (it does not begin with the AMI banner "
            f"{BANNER_PREFIX!r})"
        )
    if EVENT_LINE not in data:
        raise NotARecording(f"{path}: an AMI banner but no event: nothing to replay")
    return data
