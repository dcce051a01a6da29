"""Callback alerts as MQTT messages: topics and JSON payloads, pure (no I/O, no clock).

Topics (``prefix`` is ``mqtt.topic_prefix``, ``callmon/v1`` by default):

- ``<prefix>/staff/<extension>/callbacks``: alerts of obligations a staff member owns;
- ``<prefix>/departments/<department>/callbacks``: alerts of obligations a department owns,
  and of the obligations its staff own;
- ``<prefix>/staff/<extension>/callbacks/summary``: retained, the staff member's open
  callbacks at a glance (a phone or a desk display shows it as soon as it subscribes).

Extensions and department names come from the directory, but a topic level must never be
able to add levels or wildcards: ``%``, ``/``, ``+``, ``#``, NUL and the other control
characters are percent-encoded (UTF-8 bytes, ``urllib.parse.unquote`` reverses it), so
``민원/여권#과`` becomes the single level ``민원%2F여권%23과``. Korean stays as it is (topics
are UTF-8).

Payloads are UTF-8 JSON (see :func:`alert_payload` and :func:`summary_message`), every one with
``schema_version`` and an ``idempotency_key``: delivery is at least once (QoS 1, and the outbox
may publish a message again after a crash), so a consumer drops a key it has already seen.

Privacy (*chosen*): the caller's number, name and matter go in full to whoever must call back:
the owner's staff topic, or the department topic when the department owns the obligation. A
department topic showing a staff member's obligation masks the number (``010****5678``) and
leaves out the name and the matter: the department sees the workload, not the customers.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from call_monitor.charter.obligations import (
    OPEN_STATES,
    ChangeKind,
    Obligation,
    ObligationChange,
    ObligationState,
)
from call_monitor.timefmt import SEOUL

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "callmon/v1"
QOS = 1
# The MQTT limit for a topic is 65535 bytes of UTF-8; nothing sensible comes near it.
MAX_TOPIC_BYTES = 65535

AlertEvent = Literal["created", "reminder", "overdue", "closed"]
Audience = Literal["staff", "department"]

# Which tracker changes are alerted. *Chosen*: "joined" (the customer called again),
# "memo" (a memo joined an open obligation) and "attempt" (an unanswered callback) change
# neither the deadline nor the state, so they would only be noise on a phone.
ALERT_EVENTS: Mapping[ChangeKind, AlertEvent] = {
    "created": "created",
    "reminder": "reminder",
    "overdue": "overdue",
    "fulfilled_on_time": "closed",
    "fulfilled_late": "closed",
    "resolved_by_inbound": "closed",
    "cancelled": "closed",
}

_ESCAPED = frozenset("%/+#")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One MQTT message, ready for the outbox: built here, published by the publisher."""

    idempotency_key: str
    topic: str
    payload: str  # JSON text; published as its UTF-8 bytes
    qos: int = QOS
    retain: bool = False

    def __post_init__(self) -> None:
        # Checked before the row exists: a topic the broker refuses would come back on every
        # retry and hold up every later alert behind it.
        check_topic(self.topic)
        if not self.idempotency_key:
            raise ValueError("an outbox message needs an idempotency key")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"QoS {self.qos} is not 0, 1 or 2")


# --------------------------------------------------------------------------- topics


def _unpublishable(char: str) -> bool:
    """A character a broker may refuse in a topic (Mosquitto drops the connection for it).

    Cc: NUL (forbidden by MQTT), the other C0/C1 controls and DEL, and the noncharacters
    (U+FDD0..U+FDEF, U+xxFFFE, U+xxFFFF), which MQTT says SHOULD NOT appear; Cs: lone
    surrogates, which are not UTF-8 at all.
    """
    code = ord(char)
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:
        return True
    return unicodedata.category(char) in ("Cc", "Cs")


def _needs_escape(char: str) -> bool:
    return char in _ESCAPED or _unpublishable(char)


def escape_level(value: str) -> str:
    """``value`` as exactly one topic level: no '/', no wildcard, no NUL or control character.

    Raises ``ValueError`` for an empty value (an empty level would be a different topic).
    """
    if not value:
        raise ValueError("an empty topic level")
    parts: list[str] = []
    for char in value:
        if _needs_escape(char):
            raw = char.encode("utf-8", errors="surrogatepass")
            parts.append("".join(f"%{byte:02X}" for byte in raw))
        else:
            parts.append(char)
    return "".join(parts)


def check_topic(topic: str) -> str:
    """``topic`` if it can be published to as it is; ``ValueError`` otherwise."""
    if not topic:
        raise ValueError("an empty topic")
    if topic.startswith("$"):
        raise ValueError(f"topic {topic!r}: '$' topics belong to the broker")
    bad = sorted({c for c in topic if c in "+#" or _unpublishable(c)})
    if bad:
        raise ValueError(f"topic {topic!r}: wildcard or control characters {bad!r}")
    if "" in topic.split("/"):
        raise ValueError(f"topic {topic!r}: an empty level")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise ValueError("topic longer than MQTT allows")
    return topic


def staff_topic(extension: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>/staff/<extension>/callbacks``."""
    return check_topic(f"{prefix}/staff/{escape_level(extension)}/callbacks")


def staff_summary_topic(extension: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>/staff/<extension>/callbacks/summary`` (retained)."""
    return check_topic(f"{prefix}/staff/{escape_level(extension)}/callbacks/summary")


def department_topic(department: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>/departments/<department>/callbacks``."""
    return check_topic(f"{prefix}/departments/{escape_level(department)}/callbacks")


# --------------------------------------------------------------------------- payloads


def mask_number(number: str) -> str:
    """``01012345678`` -> ``010****5678``: enough to recognise, not enough to dial."""
    if len(number) >= 9:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    if len(number) >= 5:
        return "*" * (len(number) - 2) + number[-2:]
    return "*" * len(number)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(SEOUL).isoformat(timespec="seconds")


def _clock(at: datetime, today: datetime) -> str:
    """``10:00`` on the same Seoul day as ``today``, ``12월 1일 10:00`` on another."""
    local, reference = at.astimezone(SEOUL), today.astimezone(SEOUL)
    if local.date() == reference.date():
        return f"{local:%H:%M}"
    return f"{local.month}월 {local.day}일 {local:%H:%M}"


_CLOSED_TEXT: Mapping[ObligationState, str] = {
    "fulfilled_on_time": "회신 완료",
    "fulfilled_late": "회신 완료(기한 초과)",
    "resolved_by_inbound": "고객 재통화로 해결",
    "cancelled": "회신 요청 취소",
}


def alert_text(event: AlertEvent, obligation: Obligation, at: datetime, number: str) -> str:
    """The one Korean line a phone or a chat shows, e.g. ``부재중 전화 회신 기한 10:00 (010…)``."""
    due = _clock(obligation.due_at, at)
    if event == "created":
        what = "전화 메모 회신" if obligation.source == "memo" else "부재중 전화 회신"
        return f"{what} 기한 {due} ({number})"
    if event == "reminder":
        return f"회신 기한 임박 {due} ({number})"
    if event == "overdue":
        return f"회신 기한 초과 {due} ({number})"
    return f"{_CLOSED_TEXT.get(obligation.state, '회신 종료')} ({number})"


# The change kinds that give each alert event (what ``event_id`` counts).
_KINDS_OF_EVENT: Mapping[AlertEvent, tuple[ChangeKind, ...]] = {
    event: tuple(kind for kind, of in ALERT_EVENTS.items() if of == event)
    for event in dict.fromkeys(ALERT_EVENTS.values())
}


def event_id(change: ObligationChange) -> str | None:
    """``<obligation id>:<event>:<n>``, or ``None`` when the change is not alerted.

    ``n`` counts the obligation's earlier changes that gave the same event: 0 in practice
    (each event happens at most once per obligation), and it stays stable when a restart
    reloads the obligation, whatever other history (joined calls, attempts) it kept. It is
    read from the snapshot's counts of its history, which include ``change`` itself.
    """
    event = ALERT_EVENTS.get(change.kind)
    if event is None:
        return None
    n = max(change.obligation.count(*_KINDS_OF_EVENT[event]) - 1, 0)
    return f"{change.obligation.id}:{event}:{n}"


def alert_payload(change: ObligationChange, audience: Audience, *, mask: bool) -> dict[str, Any]:
    """The JSON object of one alert (``idempotency_key`` is ``<event_id>@<audience>``)."""
    key = event_id(change)
    event = ALERT_EVENTS.get(change.kind)
    if key is None or event is None:
        raise ValueError(f"change {change.kind!r} is not alerted")
    obligation = change.obligation
    number = mask_number(obligation.number) if mask else obligation.number
    return {
        "schema_version": SCHEMA_VERSION,
        "idempotency_key": f"{key}@{audience}",
        "event_id": key,
        "event": event,
        "event_at": _iso(change.at),
        "obligation_id": obligation.id,
        "source": obligation.source,
        "owner": obligation.owner,
        "owner_kind": obligation.owner_kind,
        "owner_department": obligation.owner_department,
        "number": number,
        "number_masked": mask,
        "caller_name": "" if mask else obligation.caller_name,
        "matter": "" if mask else obligation.matter,
        "created_at": _iso(obligation.created_at),
        "due_at": _iso(obligation.due_at),
        "state": obligation.state,
        "attempts": obligation.attempt_count,  # unanswered callback attempts
        "missed_calls": obligation.missed_calls,
        "closed_at": _iso(obligation.closed_at),
        "closed_by": obligation.closed_by,
        "text": alert_text(event, obligation, change.at, number),
    }


def _json(payload: Mapping[str, Any]) -> str:
    # ensure_ascii=False: Korean as UTF-8, a third of the size of \\uXXXX escapes.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def alert_messages(change: ObligationChange, prefix: str = DEFAULT_PREFIX) -> list[OutboxMessage]:
    """The messages of one tracker change: none, or one per topic that should hear of it.

    A staff member's obligation goes to the staff topic (number in full) and, when the
    department is known, to the department topic (number masked); a department's obligation
    goes to the department topic (number in full: any member may call back).
    """
    if event_id(change) is None:
        return []
    obligation = change.obligation
    targets: list[tuple[str, Audience, bool]] = []
    if obligation.owner_kind == "staff":
        targets.append((staff_topic(obligation.owner, prefix), "staff", False))
        if obligation.owner_department:
            targets.append(
                (department_topic(obligation.owner_department, prefix), "department", True)
            )
    else:
        targets.append((department_topic(obligation.owner, prefix), "department", False))
    messages = []
    for topic, audience, mask in targets:
        payload = alert_payload(change, audience, mask=mask)
        messages.append(OutboxMessage(payload["idempotency_key"], topic, _json(payload)))
    return messages


def summary_message(
    extension: str,
    obligations: Iterable[Obligation],
    as_of: datetime,
    prefix: str = DEFAULT_PREFIX,
) -> OutboxMessage:
    """The retained summary of ``extension``'s open callbacks as of ``as_of``.

    ``obligations``: the extension's own (``CallbackTracker.open_for_staff``); any others
    given are left out, so all open obligations would do too, at the cost of a scan.
    Payload: ``open`` (all open, overdue included), ``overdue`` (past due, whether or not
    ``due_events`` has marked them yet), ``oldest_due_at`` (the earliest deadline, ``null``
    with none open) and ``as_of``. Build it from the state after a transaction's last change
    and enqueue it in that transaction: the outbox publishes in order, so the broker keeps
    the newest.
    """
    mine = [
        o
        for o in obligations
        if o.owner_kind == "staff" and o.owner == extension and o.state in OPEN_STATES
    ]
    overdue = sum(1 for o in mine if o.state == "overdue" or o.due_at <= as_of)
    oldest = min((o.due_at for o in mine), default=None)
    content: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "extension": extension,
        "open": len(mine),
        "overdue": overdue,
        "oldest_due_at": _iso(oldest),
        "as_of": as_of.astimezone(SEOUL).isoformat(timespec="microseconds"),
    }
    # The time alone could repeat (two summaries in one transaction); the digest keeps two
    # different summaries apart, and makes the same summary enqueued twice one message.
    digest = hashlib.sha256(_json(content).encode("utf-8")).hexdigest()[:16]
    payload = {"idempotency_key": f"summary:{extension}:{content['as_of']}:{digest}", **content}
    return OutboxMessage(
        payload["idempotency_key"],
        staff_summary_topic(extension, prefix),
        _json(payload),
        retain=True,
    )


def messages_for(
    changes: Iterable[ObligationChange],
    open_for_staff: Callable[[str], Iterable[Obligation]],
    as_of: datetime,
    prefix: str = DEFAULT_PREFIX,
) -> list[OutboxMessage]:
    """Everything one transaction of tracker changes publishes, in order.

    The alerts of ``changes``, then one summary per staff member with an alerted change,
    computed from ``open_for_staff(extension)``: that staff member's open obligations after
    the changes (``CallbackTracker.open_for_staff``).
    """
    messages: list[OutboxMessage] = []
    extensions: dict[str, None] = {}
    for change in changes:
        alerts = alert_messages(change, prefix)
        messages += alerts
        if alerts and change.obligation.owner_kind == "staff":
            extensions[change.obligation.owner] = None
    messages += [summary_message(ext, open_for_staff(ext), as_of, prefix) for ext in extensions]
    return messages
