#!/usr/bin/env python
"""The checklist's queries and writes over a month of calls, on PostgreSQL (or SQLite).

    .venv/bin/python benchmarks/checklist.py [--calls 300000] [--staff 1300]
                                             [--departments 60] [--scored-per-staff 2]
                                             [--repeat 200] [--backend pg|sqlite]

A benchmark, not a test: it prints a report (machine, versions, a markdown table).

A throwaway database (PostgreSQL: ``callmon_bench_<hex>`` on the server of
``$CALLMON_BENCH_PG_URL``, default ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``,
dropped at the end; SQLite: a temporary file), migrated by Alembic, filled with ``--calls``
calls of November 2026 (Asia/Seoul; 90 % inbound, 85 % of those answered, spread over the
month and over ``--staff`` extensions in ``--departments`` departments; PostgreSQL by COPY).
Not timed. Then, each through :class:`ChecklistService` as the pages will call it:

- submit: ``--scored-per-staff`` checklists per staff member, each on the call sampling picks
  (a next-to-score, the call opened for its items, and a submit per checklist);
- next to score: a random staff member's pick (the candidates in SQL, the keyed order in
  Python) with their month's progress;
- progress: a random department's month (two grouped statements);
- history: a scored call's revisions, answers, acknowledgements, disputes;
- latest revisions: of a page of 50 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from _machine import cpu_model, load_average
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.checklist.files import load_form
from call_monitor.checklist.scoring import Given
from call_monitor.config import DepartmentEntry, DirectorySettings, StaffEntry
from call_monitor.directory import Directory
from call_monitor.store import create_engine, upgrade
from call_monitor.store.checklist_service import ChecklistService
from call_monitor.store.checklists import latest_revisions
from call_monitor.store.models import calls_table
from call_monitor.timefmt import SEOUL

ADMIN_URL = os.environ.get(
    "CALLMON_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
MONTH = "2026-11"
MONTH_START = datetime(2026, 11, 1, tzinfo=SEOUL)
MONTH_SECONDS = 30 * 86_400
FIRST_EXTENSION = 2000


def directory(staff: int, departments: int) -> Directory:
    names = [f"부서{n:02d}" for n in range(departments)]
    return Directory(
        DirectorySettings(
            staff={
                str(FIRST_EXTENSION + n): StaffEntry(
                    name=f"직원{n}", department=names[n % departments]
                )
                for n in range(staff)
            },
            departments={name: DepartmentEntry(direct_number="02-450-0000") for name in names},
        )
    )


def call_rows(count: int, office: Directory, seed: int = 1) -> Iterator[dict[str, Any]]:
    """The month's calls as ``calls`` rows (no legs, transfers or verdicts: none is read)."""
    rng = random.Random(seed)
    extensions = office.extensions
    for n in range(count):
        started = MONTH_START + timedelta(seconds=rng.uniform(0, MONTH_SECONDS))
        staff = rng.choice(extensions)
        inbound = rng.random() < 0.9
        answered = rng.random() < 0.85
        ring = rng.uniform(0.5, 12.0)
        answered_at = started + timedelta(seconds=ring) if answered else None
        rings = int(ring // 3) + 1
        yield {
            "linkedid": f"{started.timestamp():.0f}.{n}",
            "direction": "inbound" if inbound else "outbound",
            "caller": f"010{rng.randrange(10**8):08d}",
            "caller_name": "",
            "dialed": staff,
            "staff": None if inbound else staff,
            "department": office.department_of(staff),
            "started_at": started.astimezone(UTC),
            "ring_started_at": started.astimezone(UTC),
            "answered_at": None if answered_at is None else answered_at.astimezone(UTC),
            "answered_by": staff if answered else None,
            "picked_up": False,
            "ended_at": (started + timedelta(seconds=ring + 90)).astimezone(UTC),
            "missed": not answered,
            "missed_reason": None if answered else "no_answer",
            "hangup_first": "caller",
            "incomplete": False,
            "ring_seconds": ring,
            "definitions_version": "2026.1",
            "judged": inbound,
            "rings": rings,
            "p1_met": answered and rings <= 2 if inbound else None,
            "apology_expected": answered and rings >= 3 if inbound else None,
            "p7_met": True if inbound and answered else None,
        }


async def fill(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert isinstance(raw, asyncpg.Connection)
            records = [tuple(row[c] for c in columns) for row in rows]
            await raw.copy_records_to_table("calls", records=records, columns=columns)
            await conn.execute(text("ANALYZE calls"))
        return
    for start in range(0, len(rows), 5000):
        async with engine.begin() as conn:
            await conn.execute(insert(calls_table), rows[start : start + 5000])


class Timings:
    def __init__(self) -> None:
        self.by_op: dict[str, list[float]] = {}

    async def time(self, op: str, work: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        result = await work()
        self.by_op.setdefault(op, []).append((time.perf_counter() - started) * 1000)
        return result


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(engine: AsyncEngine, args: argparse.Namespace, office: Directory) -> Timings:
    clock_now = datetime(2026, 11, 30, 17, 0, tzinfo=SEOUL)
    service = ChecklistService(engine, load_form(), office, clock=lambda: clock_now)
    timings = Timings()
    rng = random.Random(2)
    scored: list[str] = []
    for staff in office.extensions:
        for _ in range(args.scored_per_staff):
            pick = await timings.time(
                "next to score", lambda s=staff: service.next_to_score(s, MONTH)
            )
            if pick.linkedid is None:
                break
            linkedid = pick.linkedid
            prepared = await timings.time(
                "open the call (prepare)", lambda i=linkedid: service.prepare(i)
            )
            answers = {  # yes to what the PBX did not measure, as a supervisor fills it
                a.item.id: Given("yes") for a in prepared.asked if a.applicable and not a.prefilled
            }
            await timings.time(
                "submit", lambda i=linkedid, a=answers: service.submit(i, a, "bench")
            )
            scored.append(linkedid)
    departments = office.departments
    for _ in range(args.repeat):
        await timings.time(
            "progress (a department)",
            lambda: service.progress(rng.choice(departments), MONTH),
        )
        await timings.time("history", lambda: service.history(rng.choice(scored)))
        page = rng.sample(scored, min(50, len(scored)))
        await timings.time(
            "latest revisions (50 calls)", lambda p=page: latest_revisions(engine, p)
        )
    return timings


async def run(args: argparse.Namespace) -> tuple[Timings, float, str]:
    office = directory(args.staff, args.departments)
    rows = list(call_rows(args.calls, office))
    database = f"callmon_bench_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "pg":
            admin = await asyncpg.connect(
                make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(False)
            )
            await admin.execute(f'CREATE DATABASE "{database}"')
            url = make_url(ADMIN_URL).set(database=database).render_as_string(False)
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        try:
            await upgrade(url)
            engine = create_engine(url)
            try:
                started = time.perf_counter()
                await fill(engine, rows)
                filled = time.perf_counter() - started
                timings = await measure(engine, args, office)
                async with engine.connect() as conn:
                    version = str(
                        (
                            await conn.execute(
                                text(
                                    "SELECT version()"
                                    if args.backend == "pg"
                                    else "SELECT sqlite_version()"
                                )
                            )
                        ).scalar_one()
                    )
            finally:
                await engine.dispose()
        finally:
            if args.backend == "pg":
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                await admin.close()
    return timings, filled, version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--staff", type=int, default=1300)
    parser.add_argument("--departments", type=int, default=60)
    parser.add_argument("--scored-per-staff", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--backend", choices=("pg", "sqlite"), default="pg")
    args = parser.parse_args()
    timings, filled, version = asyncio.run(run(args))
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, load {load_average()}")
    print(
        f"- Python {platform.python_version()}, SQLAlchemy "
        f"{importlib.metadata.version('sqlalchemy')}; database: {version.split(',')[0]}"
    )
    print(
        f"- a month of {args.calls:,} calls, {args.staff:,} staff in {args.departments} "
        f"departments (filled in {filled:.1f} s, not timed)"
    )
    print()
    print("| operation | n | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    for op, values in timings.by_op.items():
        print(
            f"| {op} | {len(values):,} | {statistics.median(values):.1f} | "
            f"{quantile(values, 0.95):.1f} | {max(values):.1f} |"
        )
    submit = timings.by_op.get("submit", [])
    if submit:
        p95 = quantile(submit, 0.95)
        verdict = "met" if p95 < 100 else "NOT met"
        print(f"\n- target: checklist submit p95 < 100 ms (issue 10): {p95:.1f} ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
