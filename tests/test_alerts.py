"""Callback alerts: topics and payloads (pure), the outbox (SQLite and PostgreSQL), and the
publisher against a real Mosquitto started per test on a free port.

PostgreSQL is ``postgresql+asyncpg://postgres@127.0.0.1:5432/test`` (or ``$CALLMON_TEST_PG_URL``).
Outside CI an unreachable server skips its tests; with ``CI=true`` it fails them. A missing
``mosquitto`` binary is handled the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import json
import logging
import random
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiomqtt
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.alerts import (
    OutboxMessage,
    OutboxPublisher,
    alert_messages,
    backlog,
    department_topic,
    enqueue,
    escape_level,
    mark_delivered,
    mark_failed,
    messages_for,
    outbox_table,
    pending,
    staff_summary_topic,
    staff_topic,
    summary_message,
)
from call_monitor.alerts.messages import ALERT_EVENTS, check_topic, event_id, mask_number
from call_monitor.calls.model import CallRecord, Leg
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.obligations import Change, Obligation, ObligationChange
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import (
    DirectorySettings,
    MqttSettings,
    Settings,
    StaffEntry,
    StoreSettings,
)
from call_monitor.daemon.service import Daemon
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.store.models import Base
from call_monitor.timefmt import SEOUL
from tests.backends import unavailable

CUSTOMER = "01012345678"
DEPARTMENT = "민원여권과"
HOSTILE_DEPARTMENT = "민원/여권#과"
PREFIX = "callmon/v1"
# Directory names that must not add topic levels, wildcards or bytes a broker refuses.
HOSTILE_NAMES = [
    HOSTILE_DEPARTMENT,
    "+",
    "#",
    "a/b/c",
    "/",
    "민원\x00과",
    "line\nbreak",
    "del\x7f",
    "100%2F",  # already looks escaped: must stay distinguishable from "100/"
    "$SYS",
    "lone \ud800 surrogate",
    "non\ufffecharacter\ufdd0",
    " 공백 ",
]


def seoul(day: int, hh: int, mm: int = 0) -> datetime:
    """A time in November 2026, Asia/Seoul (the 30th is a Monday, an ordinary working day)."""
    return datetime(2026, 11, day, hh, mm, tzinfo=SEOUL)


# --------------------------------------------------------------------------- obligations


def tracker(department: str = DEPARTMENT) -> CallbackTracker:
    settings = Settings(
        directory=DirectorySettings(
            staff={
                "201": StaffEntry(name="김민원", department=department),
                "202": StaffEntry(name="이민원", department=department),
            },
            groups={"600": department},
        )
    )
    return CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )


def missed_call(
    linkedid: str, at: datetime, dialed: str = "201", caller: str = "+82 10-1234-5678"
) -> CallRecord:
    """A customer's call to ``dialed`` that rang 20 s unanswered and ended at ``at``."""
    start = at.timestamp() - 20
    return CallRecord(
        linkedid=linkedid,
        started_at=start,
        direction="inbound",
        caller=caller,
        caller_name="홍길동",
        dialed=dialed,
        ring_started_at=start,
        legs=[Leg(party="staff", extension=dialed, rang_at=start)],
        ended_at=start + 20,
        missed=True,
        missed_reason="no_answer",
    )


def life_of_an_obligation(callbacks: CallbackTracker) -> list[ObligationChange]:
    """A staff member's missed call: created 10:00, reminder 10:45, overdue 11:00, cancelled."""
    changes = list(callbacks.on_call(missed_call("1764464400.1", seoul(30, 10))))
    changes += callbacks.due_events(seoul(30, 10, 50))
    changes += callbacks.due_events(seoul(30, 11, 5))
    changes.append(callbacks.cancel("call-1764464400.1", "wrong number", "202", seoul(30, 11, 10)))
    assert [c.kind for c in changes] == ["created", "reminder", "overdue", "cancelled"]
    return changes


def payloads(messages: list[OutboxMessage]) -> list[dict[str, Any]]:
    return [json.loads(message.payload) for message in messages]


# --------------------------------------------------------------------------- topics


def test_topics() -> None:
    assert staff_topic("201") == "callmon/v1/staff/201/callbacks"
    assert staff_summary_topic("201") == "callmon/v1/staff/201/callbacks/summary"
    assert department_topic(DEPARTMENT) == "callmon/v1/departments/민원여권과/callbacks"
    assert staff_topic("201", "office/a") == "office/a/staff/201/callbacks"


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_a_hostile_name_is_exactly_one_safe_level(hostile: str) -> None:
    level = escape_level(hostile)
    assert not {"/", "+", "#", "\x00"} & set(level)
    assert all(ch.isprintable() or ch == " " for ch in level)
    level.encode("utf-8")  # valid UTF-8, whatever came in
    assert unquote(level, errors="surrogatepass") == hostile
    topic = department_topic(hostile)
    assert topic.split("/") == ["callmon", "v1", "departments", level, "callbacks"]
    assert check_topic(topic) == topic


def test_escaping_keeps_different_names_apart() -> None:
    names = ["100/", "100%2F", "100%252F", "민원/여권#과", "민원%2F여권%23과"]
    assert len({escape_level(name) for name in names}) == len(names)
    assert escape_level(HOSTILE_DEPARTMENT) == "민원%2F여권%23과"


@pytest.mark.parametrize("bad", ["", "a/+/b", "a/#", "a//b", "/a", "a/", "$SYS/x", "a\x00b"])
def test_check_topic_refuses(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several distinct messages
        check_topic(bad)


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        staff_topic("")


@pytest.mark.parametrize("prefix", ["callmon/+", "callmon/#", "callmon//v1", "/callmon", "$SYS"])
def test_a_topic_prefix_with_wildcards_is_a_configuration_error(prefix: str) -> None:
    with pytest.raises(ValidationError, match="topic_prefix"):
        MqttSettings(topic_prefix=prefix)


def test_outbox_message_checks_its_topic() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        OutboxMessage("k", "callmon/v1/staff/+/callbacks", "{}")


# --------------------------------------------------------------------------- payloads


def test_mask_number() -> None:
    assert mask_number(CUSTOMER) == "010****5678"
    assert mask_number("024501435") == "024**1435"
    assert mask_number("1234567") == "*****67"
    assert mask_number("201") == "***"


def test_a_staff_obligation_in_full_to_the_owner_masked_to_the_department() -> None:
    created, reminder, overdue, closed = life_of_an_obligation(tracker())
    staff, department = alert_messages(created)
    assert (staff.topic, department.topic) == (staff_topic("201"), department_topic(DEPARTMENT))
    assert (staff.qos, staff.retain) == (1, False)
    mine, theirs = payloads([staff, department])
    assert mine == {
        "schema_version": 1,
        "idempotency_key": "call-1764464400.1:created:0@staff",
        "event_id": "call-1764464400.1:created:0",
        "event": "created",
        "event_at": "2026-11-30T10:00:00+09:00",  # the end of the missed call
        "obligation_id": "call-1764464400.1",
        "source": "missed_call",
        "owner": "201",
        "owner_kind": "staff",
        "owner_department": DEPARTMENT,
        "number": CUSTOMER,
        "number_masked": False,
        "caller_name": "홍길동",
        "matter": "",
        "created_at": "2026-11-30T10:00:00+09:00",
        "due_at": "2026-11-30T11:00:00+09:00",
        "state": "open",
        "attempts": 0,
        "missed_calls": 1,
        "closed_at": None,
        "closed_by": None,
        "text": "부재중 전화 회신 기한 11:00 (01012345678)",
    }
    assert theirs["idempotency_key"] == "call-1764464400.1:created:0@department"
    assert theirs["event_id"] == mine["event_id"]
    assert (theirs["number"], theirs["number_masked"]) == ("010****5678", True)
    assert theirs["caller_name"] == ""
    assert CUSTOMER not in department.payload
    assert theirs["text"] == "부재중 전화 회신 기한 11:00 (010****5678)"

    texts = [payloads(alert_messages(change))[0] for change in (reminder, overdue, closed)]
    assert [(p["event"], p["state"], p["text"]) for p in texts] == [
        ("reminder", "reminded", "회신 기한 임박 11:00 (01012345678)"),
        ("overdue", "overdue", "회신 기한 초과 11:00 (01012345678)"),
        ("closed", "cancelled", "회신 요청 취소 (01012345678)"),
    ]
    assert texts[2]["closed_at"] == "2026-11-30T11:10:00+09:00"
    assert texts[2]["closed_by"] == "202"


def test_a_department_obligation_goes_to_the_department_in_full() -> None:
    callbacks = tracker()
    created = callbacks.memo(
        obligation_id="memo-7",
        at=seoul(30, 17, 30),
        number="010-1234-5678",
        owner=DEPARTMENT,
        taken_by="202",
        caller_name="홍길동",
        matter="여권 재발급",
    )
    (message,) = alert_messages(created, "office/a")
    assert message.topic == f"office/a/departments/{DEPARTMENT}/callbacks"
    payload = json.loads(message.payload)
    assert (payload["number"], payload["number_masked"]) == (CUSTOMER, False)
    assert payload["matter"] == "여권 재발급"
    # Due the next working day (17:30 + one working hour): the date is spelt out.
    assert payload["due_at"] == "2026-12-01T09:30:00+09:00"
    assert payload["text"] == "전화 메모 회신 기한 12월 1일 09:30 (01012345678)"


def test_changes_that_move_nothing_are_not_alerted() -> None:
    callbacks = tracker()
    callbacks.on_call(missed_call("1.1", seoul(30, 10)))
    joined = callbacks.on_call(missed_call("1.2", seoul(30, 10, 5)))
    assert [c.kind for c in joined] == ["joined"]
    assert alert_messages(joined[0]) == []


def test_keys_are_stable_and_distinct() -> None:
    changes = life_of_an_obligation(tracker())
    again = life_of_an_obligation(tracker())
    first = [m for change in changes for m in alert_messages(change)]
    assert first == [m for change in again for m in alert_messages(change)]
    keys = [m.idempotency_key for m in first]
    assert len(set(keys)) == len(keys) == 8


def test_a_hostile_department_cannot_reach_other_topics() -> None:
    created = life_of_an_obligation(tracker(HOSTILE_DEPARTMENT))[0]
    _staff, department = alert_messages(created)
    assert department.topic == "callmon/v1/departments/민원%2F여권%23과/callbacks"
    assert json.loads(department.payload)["owner_department"] == HOSTILE_DEPARTMENT


def test_summary() -> None:
    callbacks = tracker()
    callbacks.on_call(missed_call("1.1", seoul(30, 10)))  # due 11:00
    callbacks.on_call(missed_call("2.1", seoul(30, 10, 30), caller="0212345678"))  # due 11:30
    callbacks.on_call(missed_call("3.1", seoul(30, 10), dialed="202"))  # 202's, not 201's
    message = summary_message("201", callbacks.open_for_staff("201"), seoul(30, 11, 10))
    assert (message.topic, message.qos, message.retain) == (staff_summary_topic("201"), 1, True)
    payload = json.loads(message.payload)
    assert payload["idempotency_key"] == message.idempotency_key
    assert {k: v for k, v in payload.items() if k != "idempotency_key"} == {
        "schema_version": 1,
        "extension": "201",
        "open": 2,
        "overdue": 1,  # past due at 11:10, though due_events has not marked it yet
        "oldest_due_at": "2026-11-30T11:00:00+09:00",
        "as_of": "2026-11-30T11:10:00.000000+09:00",
    }
    # All open obligations give the same summary: the others are left out.
    assert message == summary_message("201", callbacks.open_obligations(), seoul(30, 11, 10))
    nobody = json.loads(summary_message("203", [], seoul(30, 11, 10)).payload)
    assert (nobody["open"], nobody["overdue"], nobody["oldest_due_at"]) == (0, 0, None)


def test_messages_for_a_transaction() -> None:
    callbacks = tracker()
    changes = callbacks.on_call(missed_call("1.1", seoul(30, 10)))
    changes += callbacks.on_call(missed_call("2.1", seoul(30, 10), dialed="600"))  # department
    asked: list[str] = []

    def open_for_staff(extension: str) -> list[Obligation]:
        asked.append(extension)
        return callbacks.open_for_staff(extension)

    messages = messages_for(changes, open_for_staff, seoul(30, 10, 1))
    assert [m.topic for m in messages] == [
        staff_topic("201"),
        department_topic(DEPARTMENT),
        department_topic(DEPARTMENT),
        staff_summary_topic("201"),  # after the alerts, one per staff member
    ]
    assert json.loads(messages[-1].payload)["open"] == 1
    assert asked == ["201"]  # only the staff member with an alert: no scan of everything


def old_event_id(change: ObligationChange, history: list[Change]) -> str | None:
    """``event_id`` as it was when snapshots held their history: counted in it."""
    event = ALERT_EVENTS.get(change.kind)
    if event is None:
        return None
    position = max(i for i, entry in enumerate(history) if entry == change.change)
    n = sum(1 for earlier in history[:position] if ALERT_EVENTS.get(earlier.kind) == event)
    return f"{change.obligation.id}:{event}:{n}"


def test_keys_from_the_counts_are_the_keys_from_the_history() -> None:
    """A long life (joins, attempts, memos, reminder, overdue, close) gives the keys the
    history-counting ``event_id`` gave, and a reloaded snapshot keeps giving them."""
    callbacks = tracker()
    changes = list(callbacks.on_call(missed_call("1.0", seoul(30, 10))))
    for n in range(1, 40):
        changes += callbacks.on_call(missed_call(f"1.{n}", seoul(30, 10, n)))
        changes.append(
            callbacks.memo(
                obligation_id=f"memo-{n}",
                at=seoul(30, 10, n),
                number=CUSTOMER,
                owner="201",
                taken_by="202",
            )
        )
        if n % 10 == 0:  # an unanswered callback
            placed = seoul(30, 10, n).timestamp() + 30
            changes += callbacks.on_call(
                CallRecord(
                    linkedid=f"2.{n}",
                    started_at=placed,
                    direction="outbound",
                    caller="201",
                    dialed=CUSTOMER,
                    staff="201",
                    ring_started_at=placed,
                    ended_at=placed + 30,
                )
            )
    changes += callbacks.due_events(seoul(30, 10, 50))
    restarted = tracker()
    assert restarted.restore(callbacks.open_obligations()) == 1
    changes += restarted.due_events(seoul(30, 11, 5))
    changes += restarted.on_call(missed_call("1.99", seoul(30, 11, 6)))
    changes.append(restarted.cancel("call-1.0", "done", "202", seoul(30, 11, 10)))
    history: list[Change] = []
    for change in changes:
        history.append(change.change)
        assert change.obligation.history_length == len(history)
        assert event_id(change) == old_event_id(change, history)
    alerted = [event_id(c) for c in changes if event_id(c) is not None]
    assert alerted == [f"call-1.0:{e}:0" for e in ("created", "reminder", "overdue", "closed")]
    (created, *_) = changes
    assert (created.obligation.missed_calls, changes[-1].obligation.missed_calls) == (1, 41)
    last = payloads(alert_messages(changes[-1]))[0]
    assert (last["missed_calls"], last["attempts"]) == (41, 3)
    assert [c.kind for c in changes].count("attempt") == 3


# --------------------------------------------------------------------------- the outbox

# The ``backend`` and ``engine`` fixtures (SQLite, PostgreSQL) are in tests/conftest.py.


def message(n: int, topic: str = "callmon/v1/staff/201/callbacks") -> OutboxMessage:
    return OutboxMessage(f"test:{n}", topic, json.dumps({"n": n, "text": f"알림 {n}"}))


def _outbox_differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [d for d in compare_metadata(context, Base.metadata) if "outbox" in repr(d)]


async def test_the_migration_matches_the_model(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_outbox_differences) == []


async def test_enqueue_commits_and_rolls_back_with_the_callers_transaction(
    engine: AsyncEngine,
) -> None:
    class Boom(Exception):
        pass

    async def change_that_fails() -> None:
        async with engine.begin() as conn:
            assert await enqueue(conn, [message(1), message(2)]) == 2
            raise Boom

    with pytest.raises(Boom):
        await change_that_fails()
    assert await pending(engine) == []
    async with engine.begin() as conn:
        assert await enqueue(conn, [message(1), message(2), message(1)]) == 2
    async with engine.begin() as conn:
        # The same change enqueued again (a replay after a restart) is one message.
        assert await enqueue(conn, [message(2), message(3)]) == 1
        assert await enqueue(conn, []) == 0
    rows = await pending(engine)
    assert [row.idempotency_key for row in rows] == ["test:1", "test:2", "test:3"]
    assert json.loads(rows[0].payload)["text"] == "알림 1"


async def test_pending_delivered_and_failed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await enqueue(conn, [message(n) for n in range(5)])
    rows = await pending(engine, limit=3)
    assert [row.idempotency_key for row in rows] == ["test:0", "test:1", "test:2"]
    await mark_failed(engine, [rows[0].id], "MqttError: gone" * 1000)
    await mark_delivered(engine, [rows[0].id, rows[1].id], datetime.now(UTC))
    await mark_failed(engine, [rows[1].id], "too late: delivered rows are left alone")
    assert [row.idempotency_key for row in await pending(engine)] == ["test:2", "test:3", "test:4"]
    assert await backlog(engine) == 3
    async with engine.connect() as conn:
        stored = (
            (await conn.execute(select(outbox_table).order_by(outbox_table.c.id))).mappings().all()
        )
    assert [(row["attempts"], row["delivered_at"] is not None) for row in stored[:3]] == [
        (2, True),
        (1, True),
        (0, False),
    ]
    assert len(stored[0]["last_error"]) == 2000
    assert stored[1]["last_error"] is None


# --------------------------------------------------------------------------- the broker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary on PATH")
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca.key"
    cert, key, csr = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "server.csr"
    extensions = tmp_path / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    for command in (
        f"req -x509 -newkey rsa:2048 -nodes -keyout {ca_key} -out {ca} -days 2 -subj /CN=ca",
        f"req -newkey rsa:2048 -nodes -keyout {key} -out {csr} -subj /CN=127.0.0.1",
        f"x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -out {cert} -days 2"
        f" -extfile {extensions}",
    ):
        # tmp_path has no spaces in it (pytest makes it), so a split is safe here.
        subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
    key.chmod(0o644)  # mosquitto may run as another user and must read it
    return Certificates(ca, cert, key)


class Broker:
    """A ``mosquitto`` of our own on a free port; ``stop`` and ``start`` keep the port."""

    def __init__(
        self, directory: Path, *, persistence: bool, tls: Certificates | None = None
    ) -> None:
        self.port = free_port()
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # Run as root, mosquitto would switch to its own user, which cannot read or write
            # in pytest's private tmp_path: stay who we are.
            f"user {getpass.getuser()}",
        ]
        if tls is not None:
            lines += [f"certfile {tls.server_cert}", f"keyfile {tls.server_key}"]
        if persistence:
            # Only the outage test: the subscriber's session and its queued QoS 1 messages
            # must outlive the restart, as on a production broker.
            lines += ["persistence true", f"persistence_location {directory}/"]
        else:
            lines.append("persistence false")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            unavailable("no mosquitto binary on PATH")
            return
        with (self.directory / "mosquitto.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                binary, "-c", str(self.config), stdout=log, stderr=subprocess.STDOUT
            )
        async with asyncio.timeout(10):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log_text()}")
                try:
                    _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    def log_text(self) -> str:
        return (self.directory / "mosquitto.log").read_text(encoding="utf-8", errors="replace")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()  # SIGTERM: mosquitto saves its persistence file and exits
        async with asyncio.timeout(10):
            await process.wait()


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    server = Broker(tmp_path, persistence=False)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def mqtt_settings(broker: Broker, **overrides: Any) -> MqttSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "client_id": f"callmon-test-{uuid.uuid4().hex[:8]}",
        "poll_seconds": 0.5,
        "timeout_seconds": 2.0,
        "reconnect_initial_seconds": 0.05,
        "reconnect_max_seconds": 0.3,
    }
    values.update(overrides)
    return MqttSettings(**values)


class Subscriber:
    """Collects every message under ``topic``; reconnects (persistent session) on its own."""

    def __init__(
        self, broker: Broker, topic: str = f"{PREFIX}/#", retry_seconds: float = 0.05
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.retry_seconds = retry_seconds
        self.client_id = f"subscriber-{uuid.uuid4().hex[:8]}"
        self.messages: list[aiomqtt.Message] = []
        self.subscribed = asyncio.Event()
        self.disconnects = 0

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.broker.port,
                    identifier=self.client_id,
                    clean_session=False,
                    timeout=2,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for received in client.messages:
                        self.messages.append(received)
            except aiomqtt.MqttError:
                self.subscribed.clear()
                self.disconnects += 1
                await asyncio.sleep(self.retry_seconds)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(bytes(m.payload)) for m in self.messages]

    def keys(self) -> list[str]:
        return [p.get("idempotency_key") or f"test:{p['n']}" for p in self.payloads()]


@contextlib.asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``coroutines`` supervised while the block runs; a failing one fails the test."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(coroutine) for coroutine in coroutines]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    # Polling: the conditions read counters and lists of several tasks, no one event.
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def enqueue_now(engine: AsyncEngine, messages: list[OutboxMessage]) -> None:
    async with engine.begin() as conn:
        await enqueue(conn, messages)


# --------------------------------------------------------------------------- publishing


async def test_created_reminder_overdue_closed_reach_a_subscriber(
    engine: AsyncEngine, broker: Broker
) -> None:
    callbacks = tracker(HOSTILE_DEPARTMENT)
    changes = life_of_an_obligation(callbacks)
    messages = messages_for(changes, callbacks.open_for_staff, seoul(30, 11, 10))
    staff_sub = Subscriber(broker, staff_topic("201"))
    # A wildcard for one level: the hostile department name must arrive within it.
    department_sub = Subscriber(broker, f"{PREFIX}/departments/+/callbacks")
    publisher = OutboxPublisher(engine, mqtt_settings(broker))
    async with running(staff_sub.run(), department_sub.run(), publisher.run()):
        await until(lambda: staff_sub.subscribed.is_set() and department_sub.subscribed.is_set())
        await enqueue_now(engine, messages)
        publisher.wake()
        await until(lambda: len(staff_sub.messages) >= 4 and len(department_sub.messages) >= 4)
        await until(lambda: publisher.stats.outbox_backlog == 0)
    mine = staff_sub.payloads()
    assert [p["event"] for p in mine] == ["created", "reminder", "overdue", "closed"]
    assert all(p["number"] == CUSTOMER for p in mine)
    assert all(m.qos == 1 and not m.retain for m in staff_sub.messages)
    theirs = department_sub.payloads()
    assert [p["event"] for p in theirs] == ["created", "reminder", "overdue", "closed"]
    assert {str(m.topic) for m in department_sub.messages} == {department_topic(HOSTILE_DEPARTMENT)}
    assert all(p["owner_department"] == HOSTILE_DEPARTMENT for p in theirs)
    assert all(p["number"] == "010****5678" for p in theirs)
    assert publisher.stats.published == len(messages) == 9  # 4 + 4 alerts and a summary
    assert publisher.stats.failures == 0
    assert await pending(engine) == []


async def test_no_alert_is_lost_when_the_broker_goes_away(
    engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="call_monitor.alerts.publisher")
    broker = Broker(tmp_path, persistence=True)
    await broker.start()
    # Slower back than the publisher (0.3 s at most), so the restarted broker usually gets
    # messages before the subscriber returns: its persistent session must hold them.
    subscriber = Subscriber(broker, retry_seconds=0.6)
    publisher = OutboxPublisher(engine, mqtt_settings(broker))
    # Enough that the broker stops while the first batches are still going out.
    before = [message(n) for n in range(300)]
    during = [message(n) for n in range(300, 350)]
    try:
        async with running(subscriber.run(), publisher.run()):
            await until(subscriber.subscribed.is_set)
            await until(lambda: publisher.stats.connected)
            await enqueue_now(engine, before)
            publisher.wake()
            # Stop the broker in the middle of the first batch.
            await until(lambda: len(subscriber.messages) >= 3)
            await broker.stop()
            await enqueue_now(engine, during)
            publisher.wake()
            await until(lambda: publisher.stats.failures >= 3 and not publisher.stats.connected)
            assert len(await pending(engine)) >= len(during)
            await until(lambda: publisher.stats.outbox_backlog >= len(during))
            await broker.start()
            wanted = {m.idempotency_key for m in before + during}
            await until(lambda: wanted <= set(subscriber.keys()), 15)
            await until(lambda: publisher.stats.outbox_backlog == 0)
    finally:
        await broker.stop()
    keys = subscriber.keys()
    assert set(keys) == wanted  # every one; a duplicate is allowed, a loss is not
    # Each row acknowledged once: what the broker acked before the outage was marked even
    # though the session ended in the middle of its batch.
    assert publisher.stats.published == len(wanted)
    assert subscriber.disconnects >= 1
    assert publisher.stats.outages == 1
    assert "Error" not in broker.log_text()  # its persistence file was saved and read back
    assert await pending(engine) == []
    # Logged once for the outage, not once per retry.
    outage_logs = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage_logs) == 1
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_the_broker_takes_every_escaped_name(engine: AsyncEngine, broker: Broker) -> None:
    subscriber = Subscriber(broker, f"{PREFIX}/departments/+/callbacks")
    publisher = OutboxPublisher(engine, mqtt_settings(broker))
    topics = [department_topic(name) for name in HOSTILE_NAMES]
    async with running(subscriber.run(), publisher.run()):
        await until(subscriber.subscribed.is_set)
        await enqueue_now(engine, [message(n, topic) for n, topic in enumerate(topics)])
        publisher.wake()
        await until(lambda: len(subscriber.messages) == len(topics))
    # Mosquitto drops a client that sends a topic it refuses: none was refused.
    assert publisher.stats.failures == 0
    assert [str(m.topic) for m in subscriber.messages] == topics


async def test_the_retained_summary_greets_a_late_subscriber(
    engine: AsyncEngine, broker: Broker
) -> None:
    callbacks = tracker()
    callbacks.on_call(missed_call("1.1", seoul(30, 10)))
    first = summary_message("201", callbacks.open_obligations(), seoul(30, 10, 1))
    callbacks.on_call(missed_call("2.1", seoul(30, 10, 30), caller="0212345678"))
    second = summary_message("201", callbacks.open_obligations(), seoul(30, 10, 31))
    publisher = OutboxPublisher(engine, mqtt_settings(broker))
    async with running(publisher.run()):
        await enqueue_now(engine, [first, second])
        publisher.wake()
        await until(lambda: publisher.stats.published == 2)
    # Nobody was subscribed while it was published; the broker kept the newest.
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="late") as client:
        await client.subscribe(staff_summary_topic("201"), qos=1)
        async with asyncio.timeout(2):
            received = await anext(aiter(client.messages))
    assert received.retain
    assert str(received.topic) == staff_summary_topic("201")
    payload = json.loads(bytes(received.payload))
    assert (payload["open"], payload["overdue"]) == (2, 0)
    assert payload["oldest_due_at"] == "2026-11-30T11:00:00+09:00"


async def test_without_a_broker_the_alerts_stay_in_the_outbox(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="call_monitor.alerts.publisher")
    await enqueue_now(engine, [message(1)])
    publisher = OutboxPublisher(engine, MqttSettings())
    async with asyncio.timeout(1):
        await publisher.run()  # returns at once
    assert [row.idempotency_key for row in await pending(engine)] == ["test:1"]
    assert "no MQTT broker configured" in caplog.text


async def test_a_puback_that_never_comes_fails_the_row_and_keeps_it(engine: AsyncEngine) -> None:
    """A broker that accepts the connection and then swallows every PUBLISH (half-open)."""
    connections = 0

    async def silent_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read(1024)  # the CONNECT
        writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
        await writer.drain()
        while await reader.read(1024):  # PUBLISH, PINGREQ: never answered
            pass
        writer.close()

    server = await asyncio.start_server(silent_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await enqueue_now(engine, [message(1), message(2)])
    settings = MqttSettings(
        host="127.0.0.1",
        port=port,
        timeout_seconds=0.2,
        reconnect_initial_seconds=0.05,
        reconnect_max_seconds=0.1,
    )
    publisher = OutboxPublisher(engine, settings)
    async with server, running(publisher.run()):
        await until(lambda: publisher.stats.failures >= 2)
        await until(lambda: connections >= 2)
    server.close()
    rows = await pending(engine)
    assert [row.idempotency_key for row in rows] == ["test:1", "test:2"]
    assert rows[0].attempts >= 1  # the first row was in flight each time
    assert rows[1].attempts == 0  # never sent: order is kept
    async with engine.connect() as conn:
        error = (
            await conn.execute(
                select(outbox_table.c.last_error).where(outbox_table.c.id == rows[0].id)
            )
        ).scalar_one()
    assert "timed out" in error
    assert publisher.stats.published == 0
    assert publisher.stats.outages == 1


# paho-mqtt 2.2 leaves the socket of a failed TLS handshake open (Client._ssl_wrap_socket has
# no close on error); the garbage collector closes it, with a ResourceWarning.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
async def test_tls_verifies_the_broker(
    engine: AsyncEngine, tmp_path: Path, certificates: Certificates
) -> None:
    broker = Broker(tmp_path, persistence=False, tls=certificates)
    await broker.start()
    await enqueue_now(engine, [message(1)])
    try:
        # The system's CAs do not know our test CA: refused, and the row stays.
        untrusting = OutboxPublisher(engine, mqtt_settings(broker, tls=True))
        async with running(untrusting.run()):
            await until(lambda: untrusting.stats.failures >= 1)
        assert "CERTIFICATE_VERIFY_FAILED" in (untrusting.stats.last_error or "")
        gc.collect()  # those sockets, here, under this test's warning filter
        assert len(await pending(engine)) == 1
        trusting = OutboxPublisher(engine, mqtt_settings(broker, tls=True, ca_file=certificates.ca))
        async with running(trusting.run()):
            await until(lambda: trusting.stats.published == 1)
    finally:
        await broker.stop()
    assert await pending(engine) == []


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    settings = MqttSettings(host="x", reconnect_initial_seconds=0.5, reconnect_max_seconds=30)
    publisher = OutboxPublisher(None, settings, rng=random.Random(1))  # type: ignore[arg-type]
    runs = []  # 200 runs of 9 failures in a row, each run after a healthy session
    for _ in range(200):
        publisher._healthy()
        runs.append([publisher._backoff.next_delay() for _ in range(9)])
    delays = [(min(samples), max(samples)) for samples in zip(*runs, strict=True)]
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(9)]
    for (low, high), ceiling in zip(delays, ceilings, strict=True):
        assert 0 <= low <= high <= ceiling  # full jitter: anywhere in the window ...
        assert low < ceiling / 4  # ... from its bottom, not only its upper half
        assert high - low > ceiling / 10  # jittered, not one fixed value


# --------------------------------------------------------------------------- on /metrics

ALERT_SERIES = (
    "callmon_alerts_broker_connected",
    "callmon_alerts_outbox_pending_messages",
    "callmon_alerts_outbox_oldest_pending_age_seconds",
    "callmon_alerts_publish_failures_total",
    "callmon_alerts_published_messages_total",
)


def scrape(metrics: CallMetrics) -> dict[str, float]:
    """The alert path as /metrics shows it (the same render the endpoint serves)."""
    families = text_string_to_metric_families(metrics.render().decode())
    found = {s.name: s.value for f in families for s in f.samples if s.name in ALERT_SERIES}
    assert found.keys() == set(ALERT_SERIES)
    return found


def watched(publisher: OutboxPublisher) -> CallMetrics:
    metrics = CallMetrics(Directory(DirectorySettings()))
    metrics.watch_alerts(publisher.gauges)
    return metrics


async def test_the_alert_path_on_metrics_when_delivered(
    engine: AsyncEngine, broker: Broker
) -> None:
    publisher = OutboxPublisher(engine, mqtt_settings(broker))
    metrics = watched(publisher)
    async with running(publisher.run()):
        await until(lambda: publisher.stats.connected)
        await enqueue_now(engine, [message(n) for n in range(5)])
        publisher.wake()
        await until(lambda: publisher.stats.published == 5)
        await until(lambda: scrape(metrics)["callmon_alerts_outbox_pending_messages"] == 0)
        shown = scrape(metrics)
    assert shown == {
        "callmon_alerts_broker_connected": 1.0,
        "callmon_alerts_outbox_pending_messages": 0.0,
        "callmon_alerts_outbox_oldest_pending_age_seconds": 0.0,
        "callmon_alerts_publish_failures_total": 0.0,
        "callmon_alerts_published_messages_total": 5.0,
    }
    assert await pending(engine) == []


async def test_the_alert_path_on_metrics_when_the_broker_is_unreachable(
    engine: AsyncEngine,
) -> None:
    nobody = MqttSettings(
        host="127.0.0.1",
        port=free_port(),  # nothing listens there: every connection is refused
        reconnect_initial_seconds=0.05,
        reconnect_max_seconds=0.2,
    )
    publisher = OutboxPublisher(engine, nobody)
    metrics = watched(publisher)
    await enqueue_now(engine, [message(n) for n in range(3)])
    async with running(publisher.run()):
        await until(lambda: scrape(metrics)["callmon_alerts_outbox_pending_messages"] == 3)
        first = scrape(metrics)
        await asyncio.sleep(0.3)
        second = scrape(metrics)
    for shown in (first, second):
        assert shown["callmon_alerts_broker_connected"] == 0.0
        assert shown["callmon_alerts_outbox_pending_messages"] == 3.0
        assert shown["callmon_alerts_published_messages_total"] == 0.0
        assert shown["callmon_alerts_publish_failures_total"] >= 1.0
    # The oldest alert waits on: its age grows from scrape to scrape.
    first_age = first["callmon_alerts_outbox_oldest_pending_age_seconds"]
    second_age = second["callmon_alerts_outbox_oldest_pending_age_seconds"]
    assert first_age > 0.0
    assert second_age >= first_age + 0.3
    assert len(await pending(engine)) == 3


async def test_the_daemon_shows_the_alert_path_when_a_broker_is_configured(
    tmp_path: Path,
) -> None:
    for host in (None, "127.0.0.1"):
        settings = Settings(
            store=StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'calls.sqlite3'}"),
            mqtt=MqttSettings(host=host),
        )
        daemon = Daemon(settings, SecretStr("unused"))
        try:
            text = daemon.metrics.render().decode()
        finally:
            await daemon.engine.dispose()
        # No broker configured: no alert path, and no zeros pretending one is idle.
        for name in ALERT_SERIES:
            assert (name in text) == (host is not None), (host, name)


async def test_a_cancel_turned_into_a_broker_error_still_stops_the_publisher(
    engine: AsyncEngine, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled inside a session, the MQTT client's ``__aexit__`` may raise an MqttError in
    place of the CancelledError (seen: a daemon's stop that never ended, the broker just
    gone). The publisher stops all the same."""
    publisher = OutboxPublisher(engine, mqtt_settings(broker))
    entered = asyncio.Event()

    class Client:
        async def __aenter__(self) -> Client:
            return self

        async def __aexit__(self, *exc: object) -> None:
            raise aiomqtt.MqttError("Disconnected during message iteration")

    async def idle(_client: object) -> None:
        entered.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(publisher, "_client", Client)
    monkeypatch.setattr(publisher, "_watch", idle)
    monkeypatch.setattr(publisher, "_drain", idle)
    task = asyncio.create_task(publisher.run())
    await entered.wait()
    task.cancel()
    # Not wait_for: on its timeout it cancels again and waits, for ever if the cancel is lost.
    done, _ = await asyncio.wait({task}, timeout=5)
    if task not in done:

        class Stopped(Client):
            async def __aenter__(self) -> Client:
                raise asyncio.CancelledError  # ends the loop, so that the test can fail

        monkeypatch.setattr(publisher, "_client", Stopped)
        task.cancel()  # out of the session it went on to: the next one is Stopped
        await asyncio.wait({task}, timeout=30)
        pytest.fail("the publisher went on after it was cancelled")
    with pytest.raises(asyncio.CancelledError):
        await task
