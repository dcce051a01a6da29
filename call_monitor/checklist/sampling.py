"""The next call to score for a staff member: random, yet re-derivable by an auditor. Pure.

The algorithm, exactly (the README says the same):

1. The month is a calendar month in Asia/Seoul, written ``YYYY-MM``: calls whose
   ``started_at`` is in [the 1st 00:00 KST, the next month's 1st 00:00 KST).
2. The candidates are the staff member's calls in that month that are inbound, complete
   (not ``incomplete``), answered, answered by that staff member (``answered_by``, the
   extension) and not scored yet (no checklist revision for their ``linkedid``).
3. Each candidate's key is ``HMAC-SHA256(key = "YYYY-MM|extension", message = linkedid)``
   in hexadecimal (UTF-8 bytes); the pick is the candidate with the smallest key (ties, which
   take a SHA-256 collision, by linkedid).

So the order of a month's calls for a person is fixed by the seed (month, extension) and
the calls themselves, not by when they were stored or queried, and nobody chooses it: the
scored calls of a month are, call by call, the first unscored ones in that order among the
calls that existed when each was picked. An auditor recomputes the keys (``sample_key``,
or any HMAC tool) over the month's eligible calls and checks it. The target (N scored calls
a month per person, ``checklist.monthly_target``, 4 by default) says when a person is done;
the pick goes on past it if a supervisor asks.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime

from call_monitor.timefmt import SEOUL

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_of(when: datetime) -> str:
    """The Asia/Seoul month (``YYYY-MM``) of an aware datetime."""
    return when.astimezone(SEOUL).strftime("%Y-%m")


def month_window(month: str) -> tuple[datetime, datetime]:
    """[start, end) of ``month`` (``YYYY-MM``) in Asia/Seoul, as aware datetimes;
    ``ValueError`` for anything else."""
    match = _MONTH.match(month)
    if match is None:
        raise ValueError(f"month {month!r}: expected YYYY-MM")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=SEOUL)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=SEOUL)
    return start, end


def sample_key(month: str, staff: str, linkedid: str) -> str:
    """The candidate's place in the month's order for ``staff``: smaller is picked first."""
    seed = f"{month}|{staff}".encode()
    return hmac.new(seed, linkedid.encode(), hashlib.sha256).hexdigest()


def sampling_order(month: str, staff: str, linkedids: Iterable[str]) -> list[str]:
    """``linkedids`` in the order sampling takes them for ``staff`` in ``month``."""
    return sorted(
        set(linkedids), key=lambda linkedid: (sample_key(month, staff, linkedid), linkedid)
    )


def pick(month: str, staff: str, candidates: Iterable[str]) -> str | None:
    """The next call to score among the unscored ``candidates``; ``None`` if there is none."""
    return min(
        candidates,
        key=lambda linkedid: (sample_key(month, staff, linkedid), linkedid),
        default=None,
    )
