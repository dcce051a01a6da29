"""Where a call's recording is (the PBX's MixMonitor files), from ``web.recording_template``.

The template is a path (``/var/spool/asterisk/monitor/{date:%Y/%m/%d}/{uniqueid}.wav``) or a
URL (``https://pbx.example/monitor/{linkedid}.wav``) with these fields:

- ``linkedid``: the call's linkedid; ``uniqueid``: the caller's channel's uniqueid, which
  Asterisk makes the call's linkedid (MixMonitor's default file name uses ``${UNIQUEID}``);
- ``date``: when the call started, Asia/Seoul, a datetime (``{date:%Y%m%d-%H%M%S}``);
- ``extension``: the staff extension that answered (empty if none); ``department``.

A path is served by the app (``/calls/{linkedid}/recording``, HTTP range requests answered
by Starlette's ``FileResponse``) to those who may see the call; a URL goes to the browser as
it is (the server behind it decides who may fetch it). A field value with a path separator or
that starts with a dot finds no recording: the PBX's values are trusted, not blindly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from call_monitor.timefmt import SEOUL

_SAFE = re.compile(r"^[^/\\\x00]*$")


@dataclass(frozen=True, slots=True)
class Found:
    """A recording: a local ``path`` the app serves, or a ``url`` the browser fetches."""

    path: Path | None = None
    url: str | None = None


@dataclass(frozen=True)
class Recordings:
    template: str | None = None

    @property
    def media_origin(self) -> str | None:
        """The origin a URL template's recordings come from (the pages' CSP allows it)."""
        if self.template is None or "://" not in self.template:
            return None
        parts = urlsplit(self.template)
        return f"{parts.scheme}://{parts.netloc}"

    def find(self, call: dict[str, Any]) -> Found | None:
        """The call's recording, or ``None`` (no template, an unsafe field, no such file)."""
        if self.template is None:
            return None
        values = _fields(call)
        if not all(_SAFE.match(v) and not v.startswith(".") for v in _texts(values)):
            return None
        if "://" in self.template:
            quoted = {k: quote(v) if isinstance(v, str) else v for k, v in values.items()}
            return Found(url=self.template.format(**quoted))
        path = Path(self.template.format(**values))
        return Found(path=path) if path.is_file() else None


def _fields(call: dict[str, Any]) -> dict[str, Any]:
    started: datetime = call["started_at"]
    return {
        "linkedid": call["linkedid"],
        "uniqueid": call["linkedid"],
        "date": started.astimezone(SEOUL),
        "extension": call["answered_by"] or "",
        "department": call["department"] or "",
    }


def _texts(values: dict[str, Any]) -> list[str]:
    return [value for value in values.values() if isinstance(value, str)]
