"""Times as users read them: Asia/Seoul, ISO 8601 with the +09:00 offset."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")


def iso_seoul(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, SEOUL).isoformat(timespec="milliseconds")
