"""The demo as a newcomer watches it (issue 13): calls overlapping as in an office, stamped
now, and callbacks that fall due while one watches."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from call_monitor.charter.judged import call_report
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import replay
from call_monitor.demo.recording import overlap, recording_path, script_for, starting_at
from call_monitor.demo.runner import DEMO_SCENARIOS, START_EVERY_SECONDS, demo_settings
from tests.test_cli import clean_env, cli
from tests.test_cli_newcomer import free_port

# What a call's measurement is, apart from when it happened.
MEASURED = (
    "direction",
    "caller",
    "dialed",
    "department",
    "rang",
    "answered_by",
    "picked_up",
    "ring_seconds",
    "rings",
    "p1_met",
    "apology_expected",
    "missed",
    "missed_reason",
    "transfers",
    "hangup_first",
    "p7_met",
    "judged",
    "incomplete",
)


def _measured(paths: list[Path]) -> list[dict[str, object]]:
    reports = [
        call_report(call.record, call.verdict)
        for call in replay(paths, Settings())
        if hasattr(call, "record")
    ]
    return sorted(({key: report[key] for key in MEASURED} for report in reports), key=repr)


def test_overlapped_calls_are_measured_as_each_alone(tmp_path: Path) -> None:
    paths = [recording_path(f"{name}.ami") for name in DEMO_SCENARIOS]
    alone = [call for path in paths for call in _measured([path])]
    merged = overlap(script_for(paths), START_EVERY_SECONDS)
    stream = tmp_path / "overlapped.ami"
    stream.write_bytes(
        merged.banner
        + b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
        + b"".join(step.raw + b"\r\n\r\n" for step in merged.steps)  # type: ignore[union-attr]
    )
    assert _measured([stream]) == sorted(alone, key=repr)
    starts = sorted({min(r.timestamps()) for r in script_for(paths)})
    assert len(starts) == len(paths)  # the recordings did not overlap as recorded


def test_the_demo_stream_starts_now() -> None:
    paths = [recording_path(f"{name}.ami") for name in DEMO_SCENARIOS]
    now = time.time()
    stamps = starting_at(overlap(script_for(paths), START_EVERY_SECONDS), now).timestamps()
    assert min(stamps) == now
    # A new recorded scenario starts every few seconds: the first minute shows most of them.
    assert max(stamps) - now < len(paths) * START_EVERY_SECONDS + 60


def test_demo_settings_owe_callbacks_within_minutes_around_the_clock() -> None:
    settings = demo_settings(Settings(), datetime(2026, 12, 25, 3, 0, tzinfo=UTC))  # Christmas
    assert settings.callbacks.due_working_seconds == 180
    assert settings.callbacks.reminder_before_working_seconds == 60
    assert set(settings.working_hours.days) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    assert Settings().callbacks.due_working_seconds == 3600  # the real rule is untouched


def test_the_demos_callbacks_are_due_in_the_future(tmp_path: Path) -> None:
    database = tmp_path / "demo.sqlite3"
    started = datetime.now(UTC)
    result = cli(
        "demo",
        "--once",
        "--speed",
        "0",
        env=clean_env(
            CALLMON_STORE__URL=f"sqlite+aiosqlite:///{database}",
            CALLMON_WEB__PORT=str(free_port()),
        ),
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT id, created_at, due_at FROM obligations").fetchall()
    assert rows, "the demo's missed calls owe callbacks"
    for obligation_id, created_at, due_at in rows:
        created = datetime.fromisoformat(created_at).replace(tzinfo=UTC)
        due = datetime.fromisoformat(due_at).replace(tzinfo=UTC)
        assert created >= started.replace(microsecond=0), obligation_id
        assert (due - created).total_seconds() == 180, obligation_id


def _history(database: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT obligation_id, position, kind, state_after, cause, call_id, by"
            " FROM obligation_changes ORDER BY obligation_id, position"
        ).fetchall()


def test_the_demo_twice_on_one_database_leaves_the_callback_history_as_it_was(
    tmp_path: Path,
) -> None:
    database = tmp_path / "demo.sqlite3"
    env = clean_env(
        CALLMON_STORE__URL=f"sqlite+aiosqlite:///{database}",
        CALLMON_WEB__PORT=str(free_port()),
    )
    first = cli("demo", "--once", "--speed", "0", env=env)
    assert first.returncode == 0, first.stderr
    history = _history(database)
    assert [row for row in history if row[2] == "created"], "the demo owes callbacks"
    second = cli("demo", "--once", "--speed", "0", env=env)
    assert second.returncode == 0, second.stderr
    assert _history(database) == history


def test_the_demo_keeps_its_calls_out_of_the_monitors_own_store(tmp_path: Path) -> None:
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    default = Settings().store.url
    demo_store = demo_settings(Settings(), now).store.url
    assert demo_store.endswith("/call-monitor/demo.sqlite3")
    assert demo_store != default
    chosen = f"sqlite+aiosqlite:///{tmp_path / 'mine.sqlite3'}"
    settings = Settings.model_validate({"store": {"url": chosen}})
    assert demo_settings(settings, now).store.url == chosen  # given on purpose: kept
