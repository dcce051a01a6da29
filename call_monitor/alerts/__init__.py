"""Callback alerts (P6, V4) over MQTT, through a transactional outbox.

- :mod:`.messages`: topics and JSON payloads of the tracker's changes, pure.
- :mod:`.outbox`: the ``outbox`` table (migration ``0002``); :func:`enqueue` inserts messages
  in the caller's transaction, next to the obligation change they report.
- :mod:`.publisher`: :class:`OutboxPublisher` publishes the outbox with QoS 1, in order,
  through broker outages and restarts.
"""

from __future__ import annotations

from call_monitor.alerts.messages import (
    ALERT_EVENTS,
    SCHEMA_VERSION,
    OutboxMessage,
    alert_messages,
    department_topic,
    escape_level,
    messages_for,
    staff_summary_topic,
    staff_topic,
    summary_message,
)
from call_monitor.alerts.publisher import OutboxPublisher, PublisherStats
from call_monitor.store.outbox import (
    OutboxRow,
    PendingMessage,
    backlog,
    enqueue,
    mark_delivered,
    mark_failed,
    outbox_rows,
    outbox_table,
    pending,
    purge_delivered,
)

__all__ = [
    "ALERT_EVENTS",
    "SCHEMA_VERSION",
    "OutboxMessage",
    "OutboxPublisher",
    "OutboxRow",
    "PendingMessage",
    "PublisherStats",
    "alert_messages",
    "backlog",
    "department_topic",
    "enqueue",
    "escape_level",
    "mark_delivered",
    "mark_failed",
    "messages_for",
    "outbox_rows",
    "outbox_table",
    "pending",
    "purge_delivered",
    "staff_summary_topic",
    "staff_topic",
    "summary_message",
]
