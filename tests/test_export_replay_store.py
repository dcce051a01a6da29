"""``call-monitor replay FILE... --store``: the calls and callbacks a replay concludes land
in the store as the daemon writes them, and replaying twice leaves the same rows (SQLite and
the real PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from call_monitor.charter.judged import JudgedCall
from call_monitor.cli import main as cli_main
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import replay
from call_monitor.store import create_engine
from call_monitor.store.models import Base
from tests.backends import postgres_database

RECORDINGS = sorted((Path(__file__).parent.parent / "call_monitor/demo/recordings").glob("*.ami"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
        return
    with postgres_database() as url:
        yield url


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: what a second replay must leave unchanged."""

    async def read() -> dict[str, list[tuple[Any, ...]]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return {
                    name: sorted((await conn.execute(select(table))).all(), key=repr)
                    for name, table in Base.metadata.tables.items()
                }
        finally:
            await engine.dispose()

    return asyncio.run(read())


def replay_store(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    monkeypatch.setenv("CALLMON_STORE__URL", url)
    assert cli_main(["replay", "--json", "--store", *map(str, RECORDINGS)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_replay_store_writes_what_the_replay_concludes_and_twice_changes_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = replay_store(store_url, monkeypatch, capsys)
    first = dump(store_url)
    judged = [r for r in replay(RECORDINGS, Settings()) if isinstance(r, JudgedCall)]
    assert sorted(row[0] for row in first["calls"]) == sorted(j.record.linkedid for j in judged)
    verdict_rows = sum(len(j.verdict.checks) for j in judged)
    assert len(first["verdicts"]) == verdict_rows > 0
    # The obligations are those replay --json reports, in the same states.
    reported = {o["number"]: o["state"] for o in printed if o["kind"] == "callback"}
    columns = list(Base.metadata.tables["obligations"].columns.keys())
    number, state = columns.index("number"), columns.index("state")
    assert {row[number]: row[state] for row in first["obligations"]} == reported
    assert len(first["obligation_changes"]) > len(first["obligations"]) > 0
    assert first["outbox"] == []  # a replay is the past: no alerts queued
    replay_store(store_url, monkeypatch, capsys)
    assert dump(store_url) == first
