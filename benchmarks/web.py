"""The supervisors' pages over a month of calls: how long the calls list and a call's page
take, and how late the event loop they share with the monitor runs meanwhile.

A store (PostgreSQL by default, in a schema of its own, dropped after; or ``--sqlite``) is
filled with ``--calls`` calls (default 300,000: a month of a large office) spread over one
month, 60 departments of 20 staff, each answered call with its P1 and P7 verdicts. The app is
served as the daemon serves it (uvicorn on a real socket, a real callback service, the
security middlewares), and ``--users`` simulated people (default 20, in another process, so
that their HTTP work does not run on the server's loop) log in and browse for ``--seconds``:
the calls list (page 1, then the next page by its keyset link) as a supervisor of one
department and as an admin over everything, a call's page, and a checklist submitted on a
call of their department (the form's unmeasured items answered, through ChecklistService
and the audit log as the pages do; a call scored before gets a correction). Meanwhile a probe on the
server's loop wakes every 5 ms and notes how late it woke: what an AMI event arriving then
would have waited.

    .venv/bin/python benchmarks/web.py                      # PostgreSQL, 300,000 calls
    .venv/bin/python benchmarks/web.py --sqlite --calls 50000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import cpu_model, load_average

from call_monitor.checklist.files import load_form
from call_monitor.config import (
    DepartmentEntry,
    DirectorySettings,
    Settings,
    StaffEntry,
    StoreSettings,
)
from call_monitor.daemon.callbacks import CallbackService
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.store import create_engine, upgrade
from call_monitor.store.accounts import add_user, hash_password
from call_monitor.store.checklist_service import ChecklistService
from call_monitor.store.models import calls_table, verdicts_table
from call_monitor.web.app import create_app, serve
from call_monitor.web.site import Site

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEPARTMENTS = [f"부서{d:02d}" for d in range(60)]
STAFF_PER_DEPARTMENT = 20
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=9)  # 11-01 00:00 Seoul
MONTH = timedelta(days=30)
PASSWORD = "benchmark password"
CHUNK = 5000
PROBE_SECONDS = 0.005
CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')
RANGE = "from=2026-11-01&to=2026-11-30"
ITEM = re.compile(r'name="answer-(\w+)" value="yes"')
CHECKED = re.compile(r'name="answer-(\w+)" value="(\w+)" checked')


def directory_settings() -> DirectorySettings:
    staff = {
        f"{1000 + d * STAFF_PER_DEPARTMENT + s}": StaffEntry(name=f"직원{d}-{s}", department=dept)
        for d, dept in enumerate(DEPARTMENTS)
        for s in range(STAFF_PER_DEPARTMENT)
    }
    return DirectorySettings(
        staff=staff,
        departments={d: DepartmentEntry(direct_number="02-450-0000") for d in DEPARTMENTS},
        public_endpoints=["pstn"],
    )


def call_rows(
    first: int, count: int, total: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls, verdicts = [], []
    spacing = MONTH / total
    for i in range(first, first + count):
        d = i % len(DEPARTMENTS)
        extension = str(
            1000 + d * STAFF_PER_DEPARTMENT + (i // len(DEPARTMENTS)) % STAFF_PER_DEPARTMENT
        )
        started = MONTH_START + spacing * i
        missed = i % 10 == 0
        rings = 1 + i % 4
        ring = 3.0 * (rings - 1) + 1.0
        linkedid = f"{1790000000 + i}.{i % 997}"
        calls.append(
            {
                "linkedid": linkedid,
                "direction": "inbound",
                "caller": f"010{i % 100_000_000:08d}",
                "caller_name": f"고객{i}",
                "dialed": extension,
                "staff": None,
                "department": DEPARTMENTS[d],
                "started_at": started,
                "ring_started_at": started,
                "answered_at": None if missed else started + timedelta(seconds=ring),
                "answered_by": None if missed else extension,
                "picked_up": False,
                "ended_at": started + timedelta(seconds=90),
                "missed": missed,
                "missed_reason": "no_answer" if missed else None,
                "hangup_first": "caller",
                "incomplete": False,
                "ring_seconds": ring,
                "definitions_version": "2026.1",
                "judged": not missed,
                "rings": rings,
                "p1_met": None if missed else rings <= 2,
                "apology_expected": None if missed else rings >= 3,
                "p7_met": None if missed else i % 7 != 0,
            }
        )
        if not missed:
            for clause, met in (("P1", rings <= 2), ("P7", i % 7 != 0)):
                verdicts.append(
                    {
                        "linkedid": linkedid,
                        "clause": clause,
                        "position": 0,
                        "definitions_version": "2026.1",
                        "met": met,
                        "staff": extension,
                        "department": DEPARTMENTS[d],
                    }
                )
    return calls, verdicts


async def fill(engine: AsyncEngine, total: int) -> float:
    started = time.perf_counter()
    for first in range(0, total, CHUNK):
        calls, verdicts = call_rows(first, min(CHUNK, total - first), total)
        async with engine.begin() as conn:
            await conn.execute(insert(calls_table), calls)
            if verdicts:
                await conn.execute(insert(verdicts_table), verdicts)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))  # the planner's statistics, as a live store has
    return time.perf_counter() - started


@asynccontextmanager
async def store(args: argparse.Namespace) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/web.sqlite3", {}
        return
    schema = f"callmon_bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(args.pg_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield args.pg_url, {"server_settings": {"search_path": schema}}
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


# --------------------------------------------------------------------------- the people


async def _person(
    base: str, login: str, linkedids: list[str], to_score: list[str], until: float
) -> list[tuple[str, float]]:
    timings: list[tuple[str, float]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        token = CSRF.search((await client.get("/login")).text)
        assert token is not None
        answer = await client.post(
            "/login",
            data={"login": login, "password": PASSWORD, "csrftoken": token.group(1)},
            headers={"Origin": base},
        )
        assert answer.status_code == 303, answer.text
        kind = "admin" if login == "admin" else "supervisor"
        pick = random.Random(login)
        while time.monotonic() < until:
            t0 = time.perf_counter()
            page = await client.get(f"/calls?{RANGE}")
            timings.append((f"calls list, {kind}, page 1", time.perf_counter() - t0))
            assert page.status_code == 200
            link = page.text.split('id="next-page" href="')
            if len(link) > 1:
                t0 = time.perf_counter()
                following = await client.get(link[1].split('"')[0].replace("&amp;", "&"))
                timings.append((f"calls list, {kind}, next page", time.perf_counter() - t0))
                assert following.status_code == 200
            t0 = time.perf_counter()
            call = await client.get(f"/calls/{pick.choice(linkedids)}")
            timings.append(("call page", time.perf_counter() - t0))
            assert call.status_code in (200, 403)
            timings.append(await _score(client, base, pick.choice(to_score)))
    return timings


async def _score(client: httpx.AsyncClient, base: str, linkedid: str) -> tuple[str, float]:
    """The checklist form of a call as a supervisor sends it: what it starts with (the
    PBX's measurements, or the latest revision's answers), every other item answered yes."""
    page = (await client.get(f"/calls/{linkedid}")).text
    token = CSRF.search(page)
    assert token is not None
    form = {f"answer-{item}": "yes" for item in ITEM.findall(page)}
    form |= {f"answer-{item}": answer for item, answer in CHECKED.findall(page)}
    form |= {"csrftoken": token.group(1), "reason": "benchmark"}
    t0 = time.perf_counter()
    answer = await client.post(f"/calls/{linkedid}/checklist", data=form, headers={"Origin": base})
    elapsed = time.perf_counter() - t0
    assert answer.status_code == 303, re.findall(r'class="error".*', answer.text)
    return "checklist submit", elapsed


def _people(
    base: str,
    logins: dict[str, list[str]],
    linkedids: list[str],
    seconds: float,
    out: Any,
) -> None:
    async def everyone() -> list[tuple[str, float]]:
        until = time.monotonic() + seconds
        found = await asyncio.gather(
            *(_person(base, who, linkedids, own, until) for who, own in logins.items())
        )
        return [t for timings in found for t in timings]

    out.put(asyncio.run(everyone()))


def answered_calls(login: str, total: int, count: int = 500) -> list[str]:
    """About ``count`` answered calls, spread over the month, that a login may score: its
    department's (call i is department i % 60, missed when i % 10 == 0), any for the admin."""
    department = None if login == "admin" else len(login) % len(DEPARTMENTS)
    found = [
        f"{1790000000 + i}.{i % 997}"
        for i in range(total)
        if i % 10 and (department is None or i % len(DEPARTMENTS) == department)
    ]
    return found[:: max(1, len(found) // count)]


# --------------------------------------------------------------------------- the server


async def probe(lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + PROBE_SECONDS
        await asyncio.sleep(PROBE_SECONDS)
        lags.append(max(0.0, loop.time() - due))


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


async def bench(args: argparse.Namespace) -> None:
    async with store(args) as (url, connect_args):
        await upgrade(url, connect_args=connect_args)
        engine = create_engine(url, connect_args=connect_args)
        fill_seconds = await fill(engine, args.calls)
        settings = Settings(store=StoreSettings(url=url), directory=directory_settings())
        directory = Directory(settings.directory)
        service = CallbackService(settings, engine, directory)
        await service.start()
        form = load_form(None)
        metrics = CallMetrics(directory, checklist_form=form)
        checklists = ChecklistService(
            engine, form, directory, on_submitted=metrics.observe_checklist
        )
        secret = "bench-secret-" + "x" * 40
        site = Site(engine, directory, service, settings.web, secret, checklists=checklists)
        app = create_app(metrics, lambda: None, site=site)
        password_hash = hash_password(PASSWORD)
        logins = ["admin"] + [f"sup{i}" for i in range(args.users - 1)]
        for login in logins:
            await add_user(
                engine,
                login=login,
                display_name=login,
                role="admin" if login == "admin" else "supervisor",
                password_hash=password_hash,
                departments=[] if login == "admin" else [DEPARTMENTS[len(login) % 60]],
            )
        linkedids = [
            f"{1790000000 + i}.{i % 997}" for i in range(0, args.calls, max(1, args.calls // 2000))
        ]
        to_score = {login: answered_calls(login, args.calls) for login in logins}
        port = args.port
        started = asyncio.Event()
        server = asyncio.create_task(serve(app, "127.0.0.1", port, started=started))
        await started.wait()
        lags: list[float] = []
        prober = asyncio.create_task(probe(lags))
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        people = context.Process(
            target=_people,
            args=(f"http://127.0.0.1:{port}", to_score, linkedids, args.seconds, out),
        )
        people.start()
        timings = await asyncio.to_thread(out.get)
        await asyncio.to_thread(people.join)
        prober.cancel()
        server.cancel()
        for task in (prober, server):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.close()
        await engine.dispose()
    report(args, fill_seconds, timings, lags)


def report(
    args: argparse.Namespace,
    fill_seconds: float,
    timings: list[tuple[str, float]],
    lags: list[float],
) -> None:
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"# web pages over a month of calls ({datetime.now(UTC):%Y-%m-%d})\n")
    print(f"- machine: {cpu_model()}, {multiprocessing.cpu_count()} cores, load {load_average()}")
    print(
        f"- Python {sys.version.split()[0]}; store {backend}, {args.calls:,} calls in one month "
        f"({len(DEPARTMENTS)} departments x {STAFF_PER_DEPARTMENT} staff), "
        f"filled in {fill_seconds:.0f} s"
    )
    print(f"- {args.users} people browsing for {args.seconds:.0f} s, from another process\n")
    print("| request | count | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    kinds: dict[str, list[float]] = {}
    for kind, seconds in timings:
        kinds.setdefault(kind, []).append(seconds * 1000)
    for kind in sorted(kinds):
        values = kinds[kind]
        print(
            f"| {kind} | {len(values)} | {statistics.median(values):.1f} | "
            f"{percentile(values, 95):.1f} | {max(values):.1f} |"
        )
    lag_ms = [lag * 1000 for lag in lags]
    print(
        f"\nEvent loop lateness meanwhile (probe every {PROBE_SECONDS * 1000:.0f} ms, "
        f"{len(lag_ms)} probes): p50 {statistics.median(lag_ms):.2f} ms, "
        f"p99 {percentile(lag_ms, 99):.2f} ms, max {max(lag_ms):.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the web pages over a month of calls")
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--port", type=int, default=18089)
    asyncio.run(bench(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
