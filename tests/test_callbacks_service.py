"""Callbacks owed (P6, V4) outside the pure tracker: the store and the outbox in one
transaction, the service's retries, the API, the metrics, the daemon over real sockets, a
daemon killed with SIGKILL and restarted, and ``replay --json``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import call_monitor.store.obligations
from call_monitor.alerts.messages import (
    ALERT_EVENTS,
    messages_for,
    staff_summary_topic,
    staff_topic,
)
from call_monitor.calls.model import CallRecord
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.obligations import Obligation, ObligationChange, ObligationHistory
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import AmiSettings, MqttSettings, Settings, StoreSettings, WebSettings
from call_monitor.daemon import callbacks as callbacks_service
from call_monitor.daemon.callbacks import CallbackService
from call_monitor.daemon.pipeline import replay
from call_monitor.daemon.service import Daemon
from call_monitor.demo.pbx import PlaybackServer, recording_path, script_for
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.store import create_engine, upgrade
from call_monitor.store.models import UtcDateTime
from call_monitor.store.obligations import (
    change_row,
    list_obligations,
    load_histories,
    load_history,
    load_obligation,
    load_open,
    obligation_changes_table,
    obligation_row,
    obligations_table,
    save_changes,
)
from call_monitor.store.outbox import outbox_table
from call_monitor.store.schema import alembic_config
from call_monitor.timefmt import SEOUL
from call_monitor.web.app import create_app
from call_monitor.web.callbacks import MAX_NAME, callbacks_router
from tests.backends import Backend
from tests.test_callbacks import MON_10, answered_inbound, missed, outbound
from tests.webauth import ADMIN, access_as, admin_token, bearer

DEADLINE = 30.0
IN_CI = os.environ.get("CI", "").strip().lower() == "true"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883  # the shared Mosquitto of scripts/services
SECRET = "callbacks-test-secret-7a2e"
MINWON = "민원여권과"
CHONGMU = "총무과"
CUSTOMER = "01012345678"
DUE = "2026-11-30T10:00:00.000+09:00"  # Saturday's missed calls: Monday 09:00 + 1 h
D = recording_path("d_missed_then_callback.ami")
N = recording_path("n_missed_then_two_callback_attempts.ami")
M = recording_path("m_caller_abandons_while_ringing.ami")
# A PBX with no calls: the login reply, then FullyBooted.
IDLE_PBX = (
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Response: Success\r\nActionID: login\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 1\r\nLastReload: 1\r\n"
    b"Status: Fully Booted\r\n\r\n"
)
HOSTILE_NAME = (
    "<script>alert(1)</script>'\"; DROP TABLE obligations; -- "
    '=HYPERLINK("http://x.example/?q=1","click") 홍길동\n\t\u202e{{7*7}} %s %(x)s \\'
)
CALLBACK_FIELDS = {
    "kind",
    "owner",
    "owner_department",
    "number",
    "created_at",
    "due_at",
    "state",
    "attempts",
    "closed_at",
    "closed_by",
}


def seoul(y: int, m: int, d: int, hh: int = 0, mm: int = 0, *, ss: float = 0.0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SEOUL) + timedelta(seconds=ss)


class Clock:
    """The service's wall clock, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE):
            while not await condition():  # noqa: ASYNC110  (polling another process's store)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def replayed(paths: Sequence[Path], settings: Settings) -> dict[str, Obligation]:
    """Every obligation of the recordings, as the tracker leaves it (the reference)."""
    tracker = CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )
    latest: dict[str, Obligation] = {}
    for item in replay(paths, settings):
        if isinstance(item, JudgedCall):
            for change in tracker.on_call(item.record):
                latest[change.obligation.id] = change.obligation
    return latest


def scenario_id(path: Path) -> str:
    (obligation_id,) = replayed([path], Settings())
    return obligation_id


async def outbox(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(outbox_table).order_by(outbox_table.c.id))
        return [dict(row) for row in result.mappings()]


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def metric(text: str, name: str, **labels: str) -> float:
    found = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def alert_keys(obligation: Obligation, history: ObligationHistory) -> list[str]:
    """The outbox keys of an obligation's history: two audiences for a staff member's."""
    keys = []
    for change in history.changes:
        event = ALERT_EVENTS.get(change.kind)
        if event is not None:
            keys += [f"{obligation.id}:{event}:0@staff", f"{obligation.id}:{event}:0@department"]
    return keys


# --------------------------------------------------------------------------- the store


def tracker_changes() -> tuple[CallbackTracker, list[ObligationChange]]:
    """d, n and m, a memo with a NUL in its name, and m gone overdue on Monday."""
    settings = Settings()
    tracker = CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )
    changes: list[ObligationChange] = []
    for item in replay([D, N, M], settings):
        if isinstance(item, JudgedCall):
            changes += tracker.on_call(item.record)
    changes.append(
        tracker.memo(
            obligation_id="memo-1",
            at=seoul(2026, 11, 30, 9, 30),
            number="02-450-1435",
            owner=CHONGMU,
            taken_by="203",
            caller_name="a\x00b " + HOSTILE_NAME,
            matter="여권 재발급",
        )
    )
    changes += tracker.due_events(seoul(2026, 11, 30, 10, 0, ss=1))
    return tracker, changes


async def test_save_changes_round_trip_is_exact_and_idempotent(engine: AsyncEngine) -> None:
    tracker, changes = tracker_changes()
    messages = messages_for(changes, tracker.open_for_staff, seoul(2026, 11, 30, 10, 0, ss=1))
    await save_changes(engine, changes, messages)
    counts = [await count(engine, t) for t in (obligations_table, obligation_changes_table)]
    rows = await outbox(engine)
    await save_changes(engine, changes, messages)  # a retry after an unknown outcome
    assert [await count(engine, t) for t in (obligations_table, obligation_changes_table)] == (
        counts
    )
    assert await outbox(engine) == rows
    assert counts == [4, len(changes)]
    assert len(rows) == len(messages)

    loaded = await load_open(engine)
    expected = tracker.open_obligations()
    assert [o.id for o in loaded] == [o.id for o in expected]
    for got, want in zip(loaded, expected, strict=True):
        same = got
        if engine.dialect.name == "postgresql" and "\x00" in want.caller_name:
            # PostgreSQL text cannot hold NUL: that character alone is replaced.
            assert got.caller_name == want.caller_name.replace("\x00", "\ufffd")
            same = dataclasses.replace(got, caller_name=want.caller_name)
        assert same == want  # the counts of its history, times: all of it
        assert got.created_at.tzinfo == SEOUL
    # The history itself, as the tracker made it, comes from the change rows.
    histories = await load_histories(engine, loaded)
    for obligation in loaded:
        made = [c.change for c in changes if c.obligation.id == obligation.id]
        assert histories[obligation.id] == ObligationHistory(tuple(made))

    # A restarted tracker picks up where this one stopped: nothing due twice.
    settings = Settings()
    restarted = CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )
    assert restarted.restore(loaded) == 2
    assert restarted.due_events(seoul(2026, 11, 30, 10, 0, ss=2)) == []


async def test_list_filters(engine: AsyncEngine) -> None:
    _, changes = tracker_changes()
    await save_changes(engine, changes)
    d, n, m = scenario_id(D), scenario_id(N), scenario_id(M)
    everything = await list_obligations(engine)
    assert [o.id for o in everything] == [d, m, n, "memo-1"]  # oldest first
    assert [o.id for o in await list_obligations(engine, staff="201")] == [d, n]
    assert [o.id for o in await list_obligations(engine, staff=MINWON)] == []  # not staff
    assert [o.id for o in await list_obligations(engine, department=MINWON)] == [d, m, n]
    assert [o.id for o in await list_obligations(engine, department=CHONGMU)] == ["memo-1"]
    assert [o.id for o in await list_obligations(engine, state="overdue")] == [m]
    assert [o.id for o in await list_obligations(engine, state=["open", "overdue"])] == [
        m,
        "memo-1",
    ]
    assert [o.id for o in await list_obligations(engine, limit=2)] == [n, "memo-1"]
    stored_n = await load_obligation(engine, n)
    assert stored_n is not None
    history_n = await load_history(engine, n)
    assert [c.kind for c in history_n.changes] == ["created", "attempt", "fulfilled_on_time"]
    assert (stored_n.attempt_count, len(history_n.attempts)) == (1, 1)
    assert history_n.calls == (n.removeprefix("call-"),)
    assert await load_obligation(engine, "nope") is None


async def test_the_change_and_its_alerts_commit_together(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, changes = tracker_changes()
    messages = messages_for(changes, tracker.open_for_staff, seoul(2026, 11, 30, 10, 0, ss=1))

    async def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError("outbox unavailable")

    monkeypatch.setattr(call_monitor.store.obligations, "enqueue", broken)
    with pytest.raises(OSError, match="outbox unavailable"):
        await save_changes(engine, changes, messages)
    # The obligations were written before the outbox failed: rolled back with it.
    assert await count(engine, obligations_table) == 0
    assert await count(engine, obligation_changes_table) == 0


# --------------------------------------------------------------------------- restarts


Step = Callable[[CallbackTracker], list[ObligationChange]]


def call(record: CallRecord) -> Step:
    return lambda tracker: tracker.on_call(record)


def due(at: datetime) -> Step:
    return lambda tracker: tracker.due_events(at)


def memo_for_201(tracker: CallbackTracker) -> list[ObligationChange]:
    at = seoul(2026, 11, 30, 10, 20)
    return [
        tracker.memo(
            obligation_id="memo-1",
            at=at,
            number=CUSTOMER,
            owner="201",
            taken_by="202",
            caller_name="홍길동",
            matter="여권",
        )
    ]


def busy_day() -> tuple[list[Step], list[Step]]:
    """Monday's calls, in two parts: before a restart and after it (each step a batch).

    201 owes CUSTOMER a call, missed 32 times, attempted three times, with a memo; the
    department owes 02-1234-5678 one; 202 calls 010-9999-8888 back at once.
    """
    group = "0212345678"
    before = [
        call(missed("c0", MON_10)),
        call(missed("x1", MON_10, caller="01099998888", dialed="202")),
        *(call(missed(f"c{n}", MON_10 + 60 * n)) for n in range(1, 31)),
        call(outbound("o1", MON_10 + 300, answered=False)),
        call(missed("g1", MON_10 + 600, caller=group, dialed="600", rang=["201"])),
        call(outbound("o2", MON_10 + 720, staff="202", to="01099998888")),
        call(outbound("o3", MON_10 + 900, answered=False)),
        memo_for_201,
        due(seoul(2026, 11, 30, 10, 50)),  # 201's reminder
    ]
    after = [
        call(missed("c31", MON_10 + 52 * 60)),
        due(seoul(2026, 11, 30, 10, 56)),  # the department's reminder
        call(outbound("o4", MON_10 + 58 * 60, answered=False)),
        due(seoul(2026, 11, 30, 11, 1)),  # 201's deadline
        call(outbound("o5", MON_10 + 65 * 60)),
        call(answered_inbound("i1", MON_10 + 66 * 60, caller=group, dialed="600", by="202")),
    ]
    return before, after


def new_tracker() -> CallbackTracker:
    settings = Settings()
    return CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )


async def commit(
    engine: AsyncEngine, tracker: CallbackTracker, changes: list[ObligationChange]
) -> list[str]:
    """Store a batch with its alerts as the service does; their idempotency keys."""
    as_of = max((c.at for c in changes), default=seoul(2026, 11, 30, 12))
    messages = messages_for(changes, tracker.open_for_staff, as_of)
    await save_changes(engine, changes, messages)
    return [m.idempotency_key for m in messages]


async def test_a_restart_through_the_store_gives_the_same_snapshots_and_keys(
    engine: AsyncEngine,
) -> None:
    before, after = busy_day()
    running = new_tracker()
    keys: list[str] = []
    made: list[ObligationChange] = []
    for step in before:
        changes = step(running)
        made += changes
        keys += await commit(engine, running, changes)

    # The compact snapshots come back exactly: the counts the keys and positions rest on.
    loaded = await load_open(engine)
    assert loaded == running.open_obligations()
    busy = running.get("call-c0")
    assert busy is not None
    assert (busy.missed_calls, busy.attempt_count, busy.count("memo")) == (31, 2, 1)
    assert busy.history_length == 1 + 30 + 2 + 1 + 1  # created, joined, attempts, memo, reminder
    restarted = new_tracker()
    assert restarted.restore(loaded) == 2
    assert restarted.next_event_at() == running.next_event_at()

    # The same calls to the tracker that ran on and to the restarted one: the same changes,
    # snapshots and alerts, idempotency keys included.
    for step in after:
        expected, got = step(running), step(restarted)
        assert got == expected
        as_of = seoul(2026, 11, 30, 12)
        assert messages_for(got, restarted.open_for_staff, as_of) == messages_for(
            expected, running.open_for_staff, as_of
        )
        made += got
        keys += await commit(engine, restarted, got)
    assert restarted.open_obligations() == running.open_obligations() == []

    # Every change has its row (no position taken twice), every key is new, and the stored
    # snapshots and histories are the tracker's.
    assert await count(engine, obligation_changes_table) == len(made)
    alerts = [k for k in keys if not k.startswith("summary:")]
    assert len(set(alerts)) == len(alerts)
    stored_keys = [r["idempotency_key"] for r in await outbox(engine)]
    assert sorted(k for k in stored_keys if not k.startswith("summary:")) == sorted(alerts)
    latest = {c.obligation.id: c.obligation for c in made}
    stored = {o.id: o for o in await list_obligations(engine)}
    assert stored == latest
    histories = await load_histories(engine, stored.values())
    for obligation_id, history in histories.items():
        assert history.changes == tuple(c.change for c in made if c.obligation.id == obligation_id)
    assert len(histories["call-c0"].calls) == 32
    assert [a.linkedid for a in histories["call-c0"].attempts] == ["o1", "o3", "o4"]
    assert [c.kind for c in histories["call-c0"].changes[-3:]] == [
        "attempt",
        "overdue",
        "fulfilled_late",
    ]


def _table_0003(name: str, columns: list[str]) -> sa.TableClause:
    times = {"at", "created_at", "due_at", "reminder_at", "reminded_at", "overdue_at", "closed_at"}
    return sa.table(name, *(sa.column(c, UtcDateTime() if c in times else None) for c in columns))


async def test_migration_0004_keeps_what_0003_stored(backend: Backend) -> None:
    """Obligations stored with their ``calls`` / ``attempts`` lists (0003) read back the same
    after 0004 dropped the lists, and a downgrade rebuilds the lists from the history."""
    before, _ = busy_day()
    tracker = new_tracker()
    made = [change for step in before for change in step(tracker)]
    latest: dict[str, ObligationChange] = {c.obligation.id: c for c in made}
    lists: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    for obligation_id in latest:
        history = ObligationHistory(
            tuple(c.change for c in made if c.obligation.id == obligation_id)
        )
        attempts = [
            {"at": a.at.isoformat(), "by": a.by, "linkedid": a.linkedid} for a in history.attempts
        ]
        lists[obligation_id] = (list(history.calls), attempts)

    await upgrade(backend.url, connect_args=backend.connect_args, revision="0003")
    engine = backend.engine()
    try:
        rows = []
        for c in latest.values():  # as 0003's code wrote them
            calls, attempts = lists[c.obligation.id]
            row = obligation_row(c.obligation, c.change.cause)
            rows.append({**row, "calls": json.dumps(calls), "attempts": json.dumps(attempts)})
        async with engine.begin() as conn:
            await conn.execute(sa.insert(_table_0003("obligations", list(rows[0]))), rows)
            history_rows = [change_row(c) for c in made]
            table = _table_0003("obligation_changes", list(history_rows[0]))
            await conn.execute(sa.insert(table), history_rows)

        await upgrade(backend.url, connect_args=backend.connect_args)
        assert await load_open(engine) == tracker.open_obligations()
        stored = {o.id: o for o in await list_obligations(engine)}
        assert stored == {i: c.obligation for i, c in latest.items()}
        histories = await load_histories(engine, stored.values())
        for obligation_id, (calls, attempts) in lists.items():
            history = histories[obligation_id]
            assert list(history.calls) == calls
            assert [
                {"at": a.at.isoformat(), "by": a.by, "linkedid": a.linkedid}
                for a in history.attempts
            ] == attempts
        assert len(lists["call-c0"][0]) == 31
        assert len(lists["call-c0"][1]) == 2

        config = alembic_config(backend.url, connect_args=backend.connect_args)
        await asyncio.to_thread(command.downgrade, config, "0003")
        async with engine.connect() as conn:
            table = _table_0003("obligations", ["id", "calls", "attempts"])
            back = {
                r.id: (json.loads(r.calls), json.loads(r.attempts))
                for r in await conn.execute(sa.select(table))
            }
        assert back == lists
        await upgrade(backend.url, connect_args=backend.connect_args)
        assert await load_open(engine) == tracker.open_obligations()
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- the service


@contextlib.asynccontextmanager
async def service_at(
    db: Path, clock: Clock, settings: Settings | None = None
) -> AsyncIterator[tuple[CallbackService, CallMetrics, httpx.AsyncClient]]:
    """A CallbackService on a SQLite file, its tasks running, and its API in process."""
    url = sqlite_url(db)
    await upgrade(url)
    settings = settings or Settings(store=StoreSettings(url=url))
    engine = create_engine(url)
    directory = Directory(settings.directory)
    metrics = CallMetrics(directory)
    service = CallbackService(
        settings, engine, directory, metrics=metrics, clock=clock, retry_initial_seconds=0.01
    )
    await service.start()
    metrics.watch_callbacks(service.gauges)
    app = create_app(metrics, lambda: None, routers=[callbacks_router(service, access_as())])
    writer = asyncio.create_task(service.run_writer())
    timer = asyncio.create_task(service.run_timer())
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield service, metrics, client
    finally:
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        await service.close()
        await writer
        await engine.dispose()


async def test_api_memo_list_cancel_with_a_hostile_caller(tmp_path: Path) -> None:
    clock = Clock(seoul(2026, 11, 30, 10, 0))  # Monday morning
    async with service_at(tmp_path / "api.sqlite3", clock) as (service, metrics, api):
        memo = {
            "number": "+82 10-9876-5432",
            "owner": "201",
            "taken_by": "202",
            "caller_name": HOSTILE_NAME,
            "matter": "주민등록등본 <b>발급</b>\r\n" * 50,
        }
        response = await api.post("/api/callbacks/memo", json=memo)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["stored"], body["change"]) == (True, "created")
        created = body["obligation"]
        assert created["id"].startswith("memo-")
        assert created["number"] == "01098765432"
        assert created["number_raw"] == memo["number"]
        assert created["caller_name"] == HOSTILE_NAME
        assert created["matter"] == memo["matter"]
        assert (created["owner"], created["owner_kind"], created["owner_department"]) == (
            "201",
            "staff",
            MINWON,
        )
        assert created["source"] == "memo"
        assert created["taken_by"] == "202"
        assert created["created_at"] == "2026-11-30T10:00:00.000+09:00"
        assert created["due_at"] == "2026-11-30T11:00:00.000+09:00"
        assert (created["state"], created["attempts"], created["closed_at"]) == ("open", 0, None)
        assert [h["kind"] for h in created["history"]] == ["created"]

        # Listed exactly as given, by staff, department and state.
        listed = (await api.get("/api/callbacks", params={"staff": "201"})).json()
        assert [o["caller_name"] for o in listed["obligations"]] == [HOSTILE_NAME]
        by_department = await api.get(
            "/api/callbacks", params={"department": MINWON, "state": ["open", "overdue"]}
        )
        assert [o["id"] for o in by_department.json()["obligations"]] == [created["id"]]
        for params in ({"staff": "202"}, {"state": "cancelled"}, {"department": CHONGMU}):
            assert (await api.get("/api/callbacks", params=params)).json() == {"obligations": []}
        stored = await load_obligation(service.engine, created["id"])
        assert stored is not None
        assert (stored.caller_name, stored.matter) == (HOSTILE_NAME, memo["matter"])

        # The same caller written another way, for the same owner: one obligation.
        clock.at += timedelta(minutes=5)
        again = await api.post(
            "/api/callbacks/memo",
            json={"number": "010 9876 5432", "owner": "201", "taken_by": "203"},
        )
        assert again.status_code == 201, again.text
        assert again.json()["change"] == "memo"
        assert again.json()["obligation"]["id"] == created["id"]
        assert again.json()["obligation"]["due_at"] == created["due_at"]  # first due kept

        # A department may owe the call.
        department = await api.post(
            "/api/callbacks/memo",
            json={"number": "02-450-0000", "owner": CHONGMU, "taken_by": "민원실 김"},
        )
        assert department.status_code == 201, department.text
        assert department.json()["obligation"]["owner_kind"] == "department"

        gauges = metrics.render().decode()
        assert metric(gauges, "callmon_callbacks_open", department=MINWON) == 1
        assert metric(gauges, "callmon_callbacks_open", department=CHONGMU) == 1
        assert HOSTILE_NAME[:20] not in gauges

        # Cancelled by hand; a second cancel is a conflict, an unknown id is not found.
        url = f"/api/callbacks/{created['id']}/cancel"
        cancelled = await api.post(url, json={"reason": "잘못 건 전화", "by": "201"})
        assert cancelled.status_code == 200, cancelled.text
        closed = cancelled.json()["obligation"]
        assert (closed["state"], closed["closed_by"]) == ("cancelled", ADMIN.login)
        assert closed["closed_at"] == "2026-11-30T10:05:00.000+09:00"
        assert closed["history"][-1]["cause"] == "cancelled: 잘못 건 전화"
        assert (await api.post(url, json={"reason": "again"})).status_code == 409
        missing = await api.post("/api/callbacks/nope/cancel", json={"reason": "x"})
        assert missing.status_code == 404
        assert (await api.get(f"/api/callbacks/{created['id']}")).json()["state"] == "cancelled"
        assert (await api.get("/api/callbacks/nope")).status_code == 404

        closed_total = metrics.render().decode()
        assert (
            metric(
                closed_total,
                "callmon_callbacks_closed_total",
                department=MINWON,
                result="cancelled",
            )
            == 1
        )
        assert metric(closed_total, "callmon_callbacks_open", department=MINWON) == 0

        rows = await outbox(service.engine)
        keys = {row["idempotency_key"] for row in rows}
        assert {
            f"{created['id']}:created:0@staff",
            f"{created['id']}:created:0@department",
            f"{created['id']}:closed:0@staff",
            f"{created['id']}:closed:0@department",
        } <= keys
        (to_owner,) = [
            json.loads(row["payload"])
            for row in rows
            if row["idempotency_key"] == f"{created['id']}:created:0@staff"
        ]
        assert to_owner["caller_name"] == HOSTILE_NAME


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"owner": "999"}, "unknown owner"),
        ({"number": "no digits"}, "no callable number"),
        ({"caller_name": "가" * (MAX_NAME + 1)}, "caller_name"),
        ({"caller_name": "a\x00b"}, "NUL"),
        ({"taken_by": ""}, "taken_by"),
        ({"extra": "field"}, "extra"),
    ],
)
async def test_api_refuses_a_bad_memo(tmp_path: Path, change: dict[str, str], needle: str) -> None:
    memo = {"number": "010-1111-2222", "owner": "201", "taken_by": "202", **change}
    async with service_at(tmp_path / "bad.sqlite3", Clock(seoul(2026, 11, 30, 10))) as (
        service,
        _,
        api,
    ):
        response = await api.post("/api/callbacks/memo", json=memo)
        assert response.status_code == 422, response.text
        assert needle in response.text
        assert (await api.get("/api/callbacks")).json() == {"obligations": []}
        assert service.tracker.open_obligations() == []


async def test_an_answer_not_yet_stored_shows_the_history_with_its_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 202: the rows stored so far, then the change still queued (from memory)."""
    real = callbacks_service.save_changes
    down = {"store": False}

    async def maybe(*args: Any, **kwargs: Any) -> None:
        if down["store"]:
            raise ConnectionError("database went away")
        await real(*args, **kwargs)

    monkeypatch.setattr(callbacks_service, "save_changes", maybe)
    clock = Clock(seoul(2026, 11, 30, 10, 0))
    async with service_at(tmp_path / "lagging.sqlite3", clock) as (service, _, api):
        body = {"number": "010-3000-0000", "owner": "201", "taken_by": "202"}
        created = await api.post("/api/callbacks/memo", json=body)
        assert created.status_code == 201, created.text
        down["store"] = True
        clock.at += timedelta(minutes=1)
        joined = await service.memo(**body, wait_seconds=0)
        assert not joined.stored
        history = await service.history_until(joined.change)
        assert [c.kind for c in history.changes] == ["created", "memo"]
        assert history.changes[-1] == joined.change.change
        down["store"] = False
        assert await service.settle()
        stored = await load_history(service.engine, joined.obligation.id)
        assert stored == history


async def test_a_failing_store_is_retried_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = callbacks_service.save_changes
    failures = {"left": 3}

    async def flaky(*args: Any, **kwargs: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database went away")
        await real(*args, **kwargs)

    monkeypatch.setattr(callbacks_service, "save_changes", flaky)
    clock = Clock(seoul(2026, 11, 30, 10, 0))
    async with service_at(tmp_path / "flaky.sqlite3", clock) as (service, metrics, api):
        for number in ("010-1000-0001", "010-1000-0002"):
            await service.memo(number=number, owner="201", taken_by="202", wait_seconds=0)
            clock.at += timedelta(seconds=1)
        assert service.pending == 2
        await eventually(lambda: _true(service.pending == 0), "the retried write")
        assert service.stats.failures == 3
        listed = (await api.get("/api/callbacks")).json()["obligations"]
        assert [o["number"] for o in listed] == ["01010000001", "01010000002"]
        text = metrics.render().decode()
        assert metric(text, "callmon_callbacks_write_failures_total") == 3
    assert "database went away" in caplog.text
    assert "Traceback" in caplog.text  # logged with its traceback


async def _true(value: bool) -> bool:
    return value


async def test_the_timer_emits_reminder_then_overdue_from_the_wall_clock(tmp_path: Path) -> None:
    clock = Clock(seoul(2026, 11, 30, 10, 0))
    async with service_at(tmp_path / "timer.sqlite3", clock) as (service, metrics, api):
        outcome = await service.memo(number="010-2000-0000", owner="201", taken_by="202")
        obligation = outcome.obligation
        assert service.tracker.next_event_at() == seoul(2026, 11, 30, 10, 45)
        clock.at = seoul(2026, 11, 30, 10, 50)
        service.rearm()  # the test moved the wall clock: look again now
        await eventually(lambda: _state(service.engine, obligation.id, "reminded"), "the reminder")
        assert (
            metric(metrics.render().decode(), "callmon_callbacks_overdue", department=MINWON) == 0
        )
        clock.at = seoul(2026, 11, 30, 11, 0, ss=0.5)
        # Past due at scrape time already, before the timer has looked.
        assert (
            metric(metrics.render().decode(), "callmon_callbacks_overdue", department=MINWON) == 1
        )
        service.rearm()
        await eventually(lambda: _state(service.engine, obligation.id, "overdue"), "overdue")
        history = await load_history(service.engine, obligation.id)
        assert [(c.kind, c.at) for c in history.changes] == [
            ("created", seoul(2026, 11, 30, 10)),
            ("reminder", seoul(2026, 11, 30, 10, 45)),
            ("overdue", seoul(2026, 11, 30, 11)),
        ]
        keys = [row["idempotency_key"] for row in await outbox(service.engine)]
        for event in ("created", "reminder", "overdue"):
            assert keys.count(f"{obligation.id}:{event}:0@staff") == 1
        listed = await api.get("/api/callbacks", params={"state": "overdue"})
        assert [o["id"] for o in listed.json()["obligations"]] == [obligation.id]


async def _state(engine: AsyncEngine, obligation_id: str, state: str) -> bool:
    stored = await load_obligation(engine, obligation_id)
    return stored is not None and stored.state == state


# --------------------------------------------------------------------------- the daemon


def daemon_settings(ami_port: int, db: Path, mqtt: MqttSettings | None = None) -> Settings:
    return Settings(
        mqtt=mqtt or MqttSettings(),
        ami=AmiSettings(
            host="127.0.0.1",
            port=ami_port,
            reconnect_initial_seconds=0.01,
            reconnect_max_seconds=0.05,
        ),
        store=StoreSettings(url=sqlite_url(db), flush_interval_seconds=0.05),
        web=WebSettings(host="127.0.0.1", port=free_port()),
    )


@contextlib.asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    token = await admin_token(daemon.settings.store.url)
    task = asyncio.create_task(daemon.run(), name="daemon")
    web = daemon.settings.web
    try:
        async with asyncio.timeout(DEADLINE):
            started = asyncio.create_task(daemon.web_started.wait())
            await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                started.cancel()
                await task
                pytest.fail("the daemon ended before its web server started")
        base = f"http://{web.host}:{web.port}"
        async with httpx.AsyncClient(base_url=base, headers=bearer(token)) as client:
            yield client
        assert not task.done(), "the daemon ended by itself"
    finally:
        daemon.stop()
        async with asyncio.timeout(DEADLINE):
            await task
    assert daemon.callbacks.pending == 0
    assert daemon.callbacks.stats.failures == 0, daemon.callbacks.stats.last_error


async def consumed(daemon: Daemon, server: PlaybackServer) -> None:
    """Every byte played has been through the pipeline (see tests/test_daemon.py)."""
    async with asyncio.timeout(DEADLINE):
        await server.finished
        while not daemon.client.connected:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert (await daemon.client.action("Ping")).get("Ping") == "Pong"
        while not daemon.queue.empty():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert await daemon.callbacks.settle()


async def test_recordings_through_the_daemon(tmp_path: Path) -> None:
    db = tmp_path / "calls.sqlite3"
    clock = Clock(seoul(2026, 11, 28, 18, 0))  # Saturday evening, after the recordings
    d, n, m = scenario_id(D), scenario_id(N), scenario_id(M)
    async with PlaybackServer(script_for([D, N, M]), secret=SECRET) as server:
        daemon = Daemon(daemon_settings(server.port, db), SecretStr(SECRET), clock=clock)
        async with running(daemon) as web:
            await consumed(daemon, server)
            stored = {o.id: o for o in await list_obligations(daemon.engine)}
            histories = await load_histories(daemon.engine, stored.values())
            rows = await outbox(daemon.engine)

            # The API serves the history, the joined calls and the attempts from the store.
            api_n = (await web.get(f"/api/callbacks/{n}")).json()
            assert [h["kind"] for h in api_n["history"]] == [
                "created",
                "attempt",
                "fulfilled_on_time",
            ]
            assert api_n["calls"] == [n.removeprefix("call-")] == list(histories[n].calls)
            assert api_n["attempts"] == 1
            assert api_n["history"][1]["call_id"] == histories[n].attempts[0].linkedid
            listed = (await web.get("/api/callbacks")).json()["obligations"]
            assert [o["calls"] for o in listed] == [list(histories[o["id"]].calls) for o in listed]

            # (e) the metrics, as a scrape sees them
            text = (await web.get("/metrics")).text
            assert metric(text, "callmon_callbacks_open", department=MINWON) == 1
            assert metric(text, "callmon_callbacks_overdue", department=MINWON) == 0
            closed = "callmon_callbacks_closed_total"
            assert metric(text, closed, department=MINWON, result="fulfilled_on_time") == 2
            assert metric(text, closed, department=MINWON, result="fulfilled_late") == 0
            fulfilment = "callmon_callback_fulfilment_working_seconds"
            assert metric(text, f"{fulfilment}_count", department=MINWON) == 2
            # Missed and called back on a Saturday afternoon: no working time went by.
            assert metric(text, f"{fulfilment}_sum", department=MINWON) == 0

            # Monday 10:00:01: m is past due at once for a scrape, then the timer marks it.
            clock.at = seoul(2026, 11, 30, 10, 0, ss=1)
            text = (await web.get("/metrics")).text
            assert metric(text, "callmon_callbacks_overdue", department=MINWON) == 1
            daemon.callbacks.rearm()
            await eventually(lambda: _state(daemon.engine, m, "overdue"), "m overdue")
            api = (await web.get("/api/callbacks", params={"state": "overdue"})).json()
            assert [o["id"] for o in api["obligations"]] == [m]

        # (a) what the store holds is exactly what the tracker concluded from the recordings
        assert stored == replayed([D, N, M], daemon.settings)
        assert [(stored[i].owner, stored[i].state, stored[i].attempt_count) for i in (d, n, m)] == [
            ("201", "fulfilled_on_time", 0),
            ("201", "fulfilled_on_time", 1),
            ("202", "open", 0),
        ]
        for obligation in stored.values():
            assert obligation.due_at == seoul(2026, 11, 30, 10)
            assert obligation.number == CUSTOMER
            assert obligation.owner_department == MINWON
        # ... and every alerted change has its outbox rows, an attempt none.
        keys = [row["idempotency_key"] for row in rows]
        alerts = [key for key in keys if not key.startswith("summary:")]
        assert sorted(alerts) == sorted(
            k for o in stored.values() for k in alert_keys(o, histories[o.id])
        )
        assert [len(histories[i].attempts) for i in (d, n, m)] == [0, 1, 0]
        assert not [key for key in keys if ":attempt" in key]
        assert {row["topic"] for row in rows if row["retain"]} == {
            staff_summary_topic("201"),
            staff_summary_topic("202"),
        }
        created_m = json.loads(
            next(r["payload"] for r in rows if r["idempotency_key"] == f"{m}:created:0@staff")
        )
        assert (created_m["number"], created_m["due_at"]) == (CUSTOMER, "2026-11-30T10:00:00+09:00")

    # A restart (in process) reloads m as overdue and alerts nothing again.
    async with PlaybackServer([IDLE_PBX], secret=SECRET) as server:
        settings = daemon.settings.model_copy(
            update={"ami": daemon.settings.ami.model_copy(update={"port": server.port})}
        )
        again = Daemon(settings, SecretStr(SECRET), clock=Clock(seoul(2026, 11, 30, 12)))
        async with running(again) as web:
            assert [o.id for o in again.callbacks.tracker.open_obligations()] == [m]
            text = (await web.get("/metrics")).text
            assert metric(text, "callmon_callbacks_overdue", department=MINWON) == 1
        engine = create_engine(sqlite_url(db))
        try:
            after = await outbox(engine)
            reloaded = await load_history(engine, m)
        finally:
            await engine.dispose()
    assert [c.kind for c in reloaded.changes] == ["created", "overdue"]
    alerts_after = [r["idempotency_key"] for r in after if not r["retain"]]
    assert alerts_after.count(f"{m}:overdue:0@staff") == 1
    assert len(after) == len(rows) + 3  # m's overdue (2 audiences) and 202's summary, once


@pytest.mark.mqtt
async def test_the_daemon_publishes_its_alerts_to_the_broker(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    prefix = f"callmon-test-{token}/v1"  # nobody else's messages, and none of ours linger
    subscriber = aiomqtt.Client(MQTT_HOST, MQTT_PORT, identifier=f"callmon-test-sub-{token}")
    try:
        await subscriber.__aenter__()
    except aiomqtt.MqttError as exc:
        reason = f"no MQTT broker at {MQTT_HOST}:{MQTT_PORT}: {exc}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: required)")
        pytest.skip(reason)
    try:
        await subscriber.subscribe(f"{prefix}/#", qos=1)
        mqtt = MqttSettings(
            host=MQTT_HOST, port=MQTT_PORT, topic_prefix=prefix, client_id=f"callmon-{token}"
        )
        m = scenario_id(M)
        async with PlaybackServer(script_for([M]), secret=SECRET) as server:
            settings = daemon_settings(server.port, tmp_path / "mqtt.sqlite3", mqtt)
            daemon = Daemon(settings, SecretStr(SECRET), clock=Clock(seoul(2026, 11, 28, 18)))
            async with running(daemon):
                async with asyncio.timeout(DEADLINE):
                    async for message in subscriber.messages:
                        if str(message.topic) == staff_topic("202", prefix):
                            assert isinstance(message.payload, bytes)
                            alert = json.loads(message.payload)
                            break
                assert (alert["event"], alert["obligation_id"]) == ("created", m)
                assert alert["due_at"] == "2026-11-30T10:00:00+09:00"

                async def delivered() -> bool:
                    rows = await outbox(daemon.engine)
                    return bool(rows) and all(r["delivered_at"] is not None for r in rows)

                await eventually(delivered, "the outbox marked delivered")
    finally:
        await subscriber.__aexit__(None, None, None)


# --------------------------------------------------------------------------- kill -9


def _env(db: Path, web_port: int, ami_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMON_")}
    env.update(
        CALLMON_STORE__URL=sqlite_url(db),
        CALLMON_WEB__HOST="127.0.0.1",
        CALLMON_WEB__PORT=str(web_port),
        CALLMON_AMI__HOST="127.0.0.1",
        CALLMON_AMI__PORT=str(ami_port),
        CALLMON_AMI__SECRET=SECRET,
        CALLMON_AMI__RECONNECT_MAX_SECONDS="0.5",
    )
    return env


def _config(path: Path, due_seconds: float, reminder_seconds: float) -> Path:
    """Working time all day, every day, today and tomorrow too (even on a holiday)."""
    today = datetime.now(SEOUL).date()
    days = "\n".join(
        f"{day} = {{ start = 00:00:00, end = 23:59:59.999999 }}"
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )
    path.write_text(
        "[callbacks]\n"
        f"due_working_seconds = {due_seconds}\n"
        f"reminder_before_working_seconds = {reminder_seconds}\n\n"
        "[working_hours]\n"
        f"extra_open = [{today}, {today + timedelta(days=1)}]\n\n"
        f"[working_hours.days]\n{days}\n",
        encoding="utf-8",
    )
    return path


class Process:
    """``call-monitor run`` as a real process, against an idle playback PBX."""

    def __init__(self, tmp_path: Path, db: Path, config: Path, web_port: int) -> None:
        self.tmp_path, self.db, self.config, self.web_port = tmp_path, db, config, web_port
        self.base = f"http://127.0.0.1:{web_port}"
        self.runs = 0

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[asyncio.subprocess.Process]:
        self.runs += 1
        log = self.tmp_path / f"run{self.runs}.log"
        async with PlaybackServer([IDLE_PBX], secret=SECRET) as pbx:
            with log.open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "call_monitor",
                    "--config",
                    str(self.config),
                    "run",
                    stdout=out,
                    stderr=out,
                    env=_env(self.db, self.web_port, pbx.port),
                )
            try:
                await self._until_up(proc, log)
                yield proc
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        self.log = log.read_text(encoding="utf-8")

    async def _until_up(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as client:
            async with asyncio.timeout(DEADLINE):
                while True:
                    if proc.returncode is not None:
                        pytest.fail(f"the daemon exited, see {log}")
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get("/healthz")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)

    async def cli(self, *args: str) -> tuple[int, str, str]:
        token = await admin_token(sqlite_url(self.db))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "call_monitor",
            "--config",
            str(self.config),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(self.db, self.web_port, 1) | {"CALLMON_API_TOKEN": token},
        )
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


async def _stored(
    db: Path, obligation_id: str
) -> tuple[Obligation | None, ObligationHistory, list[dict[str, Any]]]:
    engine = create_engine(sqlite_url(db))
    try:
        obligation = await load_obligation(engine, obligation_id)
        history = await load_history(engine, obligation_id)
        rows = [r for r in await outbox(engine) if r["idempotency_key"].startswith(obligation_id)]
        return obligation, history, rows
    finally:
        await engine.dispose()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_kill_9_before_the_deadline_then_restart_alerts_overdue_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "kill.sqlite3"
    config = _config(tmp_path / "callmon.toml", due_seconds=12, reminder_seconds=4)
    daemon = Process(tmp_path, db, config, free_port())

    async with daemon.run() as proc:
        code, out, err = await daemon.cli(
            "memo", "--number", "010-5555-1234", "--owner", "201", "--taken-by", "202",
            "--name", "홍길동", "--matter", "전입신고 서류",
        )  # fmt: skip
        assert code == 0, err
        killed_at = datetime.now(SEOUL)
        proc.kill()  # SIGKILL: no shutdown, no flush
        await proc.wait()
    answer = json.loads(out)
    assert answer["stored"] is True
    created = answer["obligation"]
    obligation_id = created["id"]
    due_at = datetime.fromisoformat(created["due_at"])
    reminder_at = datetime.fromisoformat(created["reminder_at"])
    assert killed_at < reminder_at, "too slow to kill the daemon before its reminder"
    assert proc.returncode == -signal.SIGKILL

    obligation, history, rows = await _stored(db, obligation_id)
    assert obligation is not None
    assert [c.kind for c in history.changes] == ["created"]  # committed before the answer
    assert obligation.caller_name == "홍길동"

    # Down past the deadline, then back: reloaded, overdue alerted once; no reminder after
    # the fact.
    await asyncio.sleep((due_at - datetime.now(SEOUL)).total_seconds() + 0.5)

    async def overdue_stored() -> bool:
        found, _, _ = await _stored(db, obligation_id)
        return found is not None and found.state == "overdue"

    async with daemon.run() as proc:
        await eventually(overdue_stored, "the overdue change after the restart")
        async with httpx.AsyncClient(base_url=daemon.base) as client:
            text = (await client.get("/metrics")).text
        assert metric(text, "callmon_callbacks_overdue", department=MINWON) == 1
        proc.kill()
        await proc.wait()
    obligation, history, rows = await _stored(db, obligation_id)
    assert obligation is not None
    assert [(c.kind, c.at) for c in history.changes] == [
        ("created", obligation.created_at),
        ("overdue", obligation.due_at),  # the deadline, not the restart
    ]
    assert abs(obligation.due_at - due_at) < timedelta(milliseconds=1)  # the API shows ms
    keys = sorted(row["idempotency_key"] for row in rows)
    assert keys == sorted(
        f"{obligation_id}:{event}:0@{audience}"
        for event in ("created", "overdue")
        for audience in ("staff", "department")
    )

    # A second restart, stopped the polite way this time: nothing new, nothing twice.
    async with daemon.run() as proc:
        token = await admin_token(sqlite_url(db))
        async with httpx.AsyncClient(base_url=daemon.base, headers=bearer(token)) as client:
            listed = (await client.get("/api/callbacks", params={"state": "overdue"})).json()
        assert [o["id"] for o in listed["obligations"]] == [obligation_id]
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            assert await proc.wait() == 0
    again, history_again, rows_again = await _stored(db, obligation_id)
    assert again == obligation
    assert history_again == history
    assert rows_again == rows
    assert "Traceback" not in daemon.log


async def test_memo_cli_without_a_daemon(tmp_path: Path) -> None:
    daemon = Process(tmp_path, tmp_path / "none.sqlite3", _config(tmp_path / "c.toml", 60, 0), 0)
    daemon.web_port = free_port()  # nothing listens there
    code, out, err = await daemon.cli(
        "memo", "--number", "010", "--owner", "201", "--taken-by", "x"
    )
    assert code == 1
    assert out == ""
    assert err.startswith("call-monitor: the daemon is not running")
    assert "Traceback" not in err


# --------------------------------------------------------------------------- replay --json


async def test_replay_json_prints_the_callbacks_after_the_calls(tmp_path: Path) -> None:
    daemon = Process(tmp_path, tmp_path / "x.sqlite3", tmp_path / "none.toml", free_port())
    daemon.config.write_text("", encoding="utf-8")  # the defaults
    code, out, err = await daemon.cli("replay", "--json", str(D), str(N), str(M))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds == ["call"] * (len(lines) - 3) + ["callback"] * 3
    callbacks = lines[-3:]
    for line in callbacks:
        assert set(line) == CALLBACK_FIELDS
        assert (line["owner_department"], line["number"], line["due_at"]) == (
            MINWON,
            CUSTOMER,
            DUE,
        )
        assert line["created_at"].startswith("2026-11-28T15:")
        assert line["created_at"].endswith("+09:00")
    assert [(c["owner"], c["state"], c["attempts"]) for c in callbacks] == [
        ("201", "fulfilled_on_time", 0),  # d
        ("201", "fulfilled_on_time", 1),  # n
        ("202", "open", 0),  # m: still open when the recording ends
    ]
    assert [c["closed_at"] is None for c in callbacks] == [False, False, True]
    assert all(c["closed_at"].endswith("+09:00") for c in callbacks[:2])


async def test_a_memo_sent_twice_with_its_id_is_one_memo(tmp_path: Path) -> None:
    """A client that lost the answer sends the memo again with the same id: nothing
    changes, and it gets the first answer again (issue 13, item 4)."""
    clock = Clock(seoul(2026, 11, 30, 10, 0))
    async with service_at(tmp_path / "api.sqlite3", clock) as (_service, _, api):
        memo = {"number": "010-2222-3333", "owner": "201", "taken_by": "202", "memo_id": "m-1"}
        first = await api.post("/api/callbacks/memo", json=memo)
        assert first.status_code == 201, first.text
        clock.at += timedelta(minutes=1)
        again = await api.post("/api/callbacks/memo", json=memo)
        assert again.status_code == 201, again.text
        assert again.json()["repeated"] is True
        assert first.json()["repeated"] is False
        assert again.json()["obligation"] == first.json()["obligation"]
        [obligation] = (await api.get("/api/callbacks")).json()["obligations"]
        assert [h["kind"] for h in obligation["history"]] == ["created"]
        assert obligation["id"] == "memo-m-1"
        # Another id for the same caller and owner is another memo: it joins.
        other = await api.post("/api/callbacks/memo", json={**memo, "memo_id": "m-2"})
        assert other.json()["change"] == "memo"
        assert other.json()["repeated"] is False


async def test_a_memo_id_that_is_not_an_id_is_refused(tmp_path: Path) -> None:
    clock = Clock(seoul(2026, 11, 30, 10, 0))
    async with service_at(tmp_path / "api.sqlite3", clock) as (_, _, api):
        memo = {"number": "010-2222-3333", "owner": "201", "taken_by": "202"}
        for bad in ("", "a/b", "x" * 65, "a\nb"):
            response = await api.post("/api/callbacks/memo", json={**memo, "memo_id": bad})
            assert response.status_code == 422, (bad, response.text)


async def test_the_daemons_web_wants_credentials_and_its_own_host(tmp_path: Path) -> None:
    db = tmp_path / "web.sqlite3"
    async with PlaybackServer([IDLE_PBX], secret=SECRET) as server:
        daemon = Daemon(daemon_settings(server.port, db), SecretStr(SECRET))
        secret = tmp_path / "web-secret"  # made once, beside the SQLite store
        assert secret.stat().st_mode & 0o777 == 0o600
        made = secret.read_text(encoding="ascii")
        async with running(daemon) as web:
            base = str(web.base_url).rstrip("/")
            async with httpx.AsyncClient(base_url=base) as anonymous:
                assert (await anonymous.get("/api/callbacks")).status_code == 401
                evil = await web.get("/api/callbacks", headers={"Host": "evil.example"})
                assert evil.status_code == 400
                assert (await anonymous.get("/login")).status_code == 200
                assert (await anonymous.get("/static/htmx.min.js")).status_code == 200
                assert (await anonymous.get("/metrics")).status_code == 200
            assert (await web.get("/api/callbacks")).status_code == 200
    again = Daemon(daemon_settings(1, db), SecretStr(SECRET))  # a restart: the same secret
    await again.engine.dispose()
    assert secret.read_text(encoding="ascii") == made
