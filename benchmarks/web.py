"""The supervisors' pages over a month of calls, served by the daemon while it ingests a live
AMI stream: how long the pages take, and how late the AMI events are handled meanwhile.

A store (PostgreSQL by default: a throwaway database, dropped after; or ``--sqlite``) is
filled with ``--calls`` calls (default 300,000: a month of a large office) over one month,
60 departments of 20 staff, each answered call with its P1 and P7 verdicts. Then, phase by
phase, the real daemon runs in a process of its own (``_web_server.py``: AMI client,
pipeline, store writer, callbacks and web app in one event loop, as ``call-monitor run``
has them) reading the playback AMI server (``_ingest/server.py``) that sends the recordings'
events at ``--rate`` events/s (default 2,000), while ``--users`` people (default 20: one
admin, the rest supervisors of one department each; in a third process) log in and browse
for ``--seconds``: the calls list (page 1 with the month's totals, then the next page by its
keyset link), a call's page, and a checklist submit (the daemon's ``ChecklistService``
behind the site's middlewares and session: ``POST /bench/checklist/{id}``).

Phases: ``idle`` (nobody browsing: the ingest lag of the machine alone), ``think`` (each
person pauses ``--think`` seconds, uniformly drawn, between requests: people reading pages;
the issue's targets are judged on this one) and ``flat out`` (no pause: a saturation test,
where latency is mostly queueing). With ``--before REV``, each phase runs first on that
git revision's ``call_monitor`` and then on the working tree's, interleaved, in the same run
on the same store: the machine is shared, so figures of different runs do not compare.

Ingest lag: from the arrival of an AMI event's bytes to the end of its handling (pipeline,
metrics, store queue), every event, as ``benchmarks/ingest.py`` measures it.

    .venv/bin/python benchmarks/web.py --before main       # PostgreSQL, 300,000 calls
    .venv/bin/python benchmarks/web.py --sqlite --calls 50000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _ingest.common import free_port
from _ingest.stream import Stream, build_stream
from _machine import cpu_model, load_average
from _web_server import DEPARTMENTS, STAFF_PER_DEPARTMENT

from call_monitor.store import create_engine, upgrade
from call_monitor.store.accounts import add_user, hash_password
from call_monitor.store.models import calls_table, verdicts_table

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
ADMIN_URL = os.environ.get(
    "CALLMON_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=9)  # 11-01 00:00 Seoul
MONTH = timedelta(days=30)
PASSWORD = "benchmark password"
CHUNK = 5000
CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')
RANGE = "from=2026-11-01&to=2026-11-30"
MODES = ("idle", "think", "flat out")
SERVER_START_SECONDS = 120.0
TARGETS = {  # the (issue 10, item 5): p95 of each request kind, p99 of the lag
    "calls list": 150.0,
    "call page": 100.0,
    "checklist submit": 100.0,
}
LAG_TARGET_MS = 50.0


def linkedid_of(i: int) -> str:
    return f"{1790000000 + i}.{i % 997}"


def extension_of(i: int) -> str:
    d = i % len(DEPARTMENTS)
    return str(1000 + d * STAFF_PER_DEPARTMENT + (i // len(DEPARTMENTS)) % STAFF_PER_DEPARTMENT)


def call_rows(
    first: int, count: int, total: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls, verdicts = [], []
    spacing = MONTH / total
    for i in range(first, first + count):
        department = DEPARTMENTS[i % len(DEPARTMENTS)]
        extension = extension_of(i)
        started = MONTH_START + spacing * i
        missed = i % 10 == 0
        rings = 1 + i % 4
        ring = 3.0 * (rings - 1) + 1.0
        linkedid = linkedid_of(i)
        calls.append(
            {
                "linkedid": linkedid,
                "direction": "inbound",
                "caller": f"010{i % 100_000_000:08d}",
                "caller_name": f"고객{i}",
                "dialed": extension,
                "staff": None,
                "department": department,
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
                        "department": department,
                    }
                )
    return calls, verdicts


async def _copy(engine: AsyncEngine, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert isinstance(raw, asyncpg.Connection)
        await raw.copy_records_to_table(
            table, records=[tuple(row[c] for c in columns) for row in rows], columns=columns
        )


async def fill(engine: AsyncEngine, total: int) -> float:
    started = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    for first in range(0, total, CHUNK):
        calls, verdicts = call_rows(first, min(CHUNK, total - first), total)
        if postgres:
            await _copy(engine, "calls", calls)
            await _copy(engine, "verdicts", verdicts)
            continue
        async with engine.begin() as conn:
            await conn.execute(insert(calls_table), calls)
            if verdicts:
                await conn.execute(insert(verdicts_table), verdicts)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))  # the planner's statistics, as a live store has
    return time.perf_counter() - started


async def add_people(engine: AsyncEngine, users: int) -> list[str]:
    """``admin`` and ``users - 1`` supervisors, each of one department."""
    password_hash = hash_password(PASSWORD)
    logins = ["admin"] + [f"sup{i}" for i in range(users - 1)]
    for n, login in enumerate(logins):
        await add_user(
            engine,
            login=login,
            display_name=login,
            role="admin" if login == "admin" else "supervisor",
            password_hash=password_hash,
            departments=[] if login == "admin" else [DEPARTMENTS[n % len(DEPARTMENTS)]],
        )
    return logins


def _driver_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(_driver_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def store(args: argparse.Namespace) -> Iterator[str]:
    """A throwaway database's URL (PostgreSQL: created and dropped on the admin URL's
    server; SQLite: a file in a temporary directory)."""
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/web.sqlite3"
        return
    database = f"callmon_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(args.pg_url, f'CREATE DATABASE "{database}"'))
    try:
        yield make_url(args.pg_url).set(database=database).render_as_string(False)
    finally:
        asyncio.run(_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


# --------------------------------------------------------------------------- the people


class Person:
    """One browser: logs in, then pages, calls and checklists in turn."""

    def __init__(self, client: httpx.AsyncClient, login: str, linkedids: list[str]) -> None:
        self.client = client
        self.login = login
        self.kind = "admin" if login == "admin" else "supervisor"
        self.linkedids = linkedids
        self.pick = random.Random(login)
        self.csrf = ""
        self.timings: list[tuple[str, float]] = []
        self.following: str | None = None  # the next page's link of the last page 1

    async def log_in(self, base: str) -> None:
        token = CSRF.search((await self.client.get("/login")).text)
        assert token is not None
        self.csrf = token.group(1)
        answer = await self.client.post(
            "/login",
            data={"login": self.login, "password": PASSWORD, "csrftoken": self.csrf},
            headers={"Origin": base},
        )
        assert answer.status_code == 303, answer.text

    async def timed(self, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        t0 = time.perf_counter()
        answer = await self.client.request(method, url, **kwargs)
        self.timings.append((kind, time.perf_counter() - t0))
        assert answer.status_code in (200, 403), (url, answer.status_code, answer.text[:300])
        return answer

    def steps(self, base: str) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """(kind, method, url, options) forever: what this person does next."""
        post = {"headers": {"Origin": base, "x-csrftoken": self.csrf}}
        while True:
            yield f"calls list, {self.kind}, page 1", "GET", f"/calls?{RANGE}", {}
            if self.following is not None:
                yield f"calls list, {self.kind}, next page", "GET", self.following, {}
            linkedid = self.pick.choice(self.linkedids)
            yield "call page", "GET", f"/calls/{linkedid}", {}
            yield "checklist submit", "POST", f"/bench/checklist/{linkedid}", post

    async def browse(self, base: str, until: float, think: tuple[float, float]) -> None:
        # People reading pages come in at their own moments, not all in the same ms.
        await asyncio.sleep(self.pick.uniform(0.0, think[1]))
        for kind, method, url, options in self.steps(base):
            if time.monotonic() >= until:
                return
            answer = await self.timed(kind, method, url, **options)
            if kind.endswith("page 1"):
                link = answer.text.split('id="next-page" href="')
                self.following = (
                    link[1].split('"')[0].replace("&amp;", "&") if len(link) > 1 else None
                )
            if think[1] > 0:
                await asyncio.sleep(self.pick.uniform(*think))


def people(
    base: str,
    *,
    logins: list[str],
    linkedids: dict[str, list[str]],
    seconds: float,
    think: tuple[float, float],
    out: Any,
) -> None:
    """The browsing process: everyone logged in, then ``seconds`` of browsing."""

    async def everyone() -> list[tuple[str, float]]:
        async with contextlib.AsyncExitStack() as stack:
            crowd = []
            for login in logins:
                limits = httpx.Limits(max_connections=1)
                client = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=base, timeout=60, limits=limits)
                )
                crowd.append(Person(client, login, linkedids[login]))
            await asyncio.gather(*(p.log_in(base) for p in crowd))
            out.put("logged in")
            until = time.monotonic() + seconds
            await asyncio.gather(*(p.browse(base, until, think) for p in crowd))
            return [t for p in crowd for t in p.timings]

    out.put(asyncio.run(everyone()))


# --------------------------------------------------------------------------- a phase


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)
    proc.wait()


def _start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=BENCHMARKS,
        env=env,
    )


def _expect(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        raise RuntimeError(f"expected {prefix!r} from {proc.args!r}, got {line!r}")
    return line[len(prefix) :].strip()


def run_phase(
    args: argparse.Namespace,
    stream: Stream,
    *,
    tree: Path,
    mode: str,
    store_url: str,
    logins: list[str],
    linkedids: dict[str, list[str]],
) -> dict[str, Any]:
    """One phase: the AMI server, the daemon of ``tree``, the people of ``mode``."""
    _, end = stream.prefix(stream.events)
    ami = _start(
        [
            *(sys.executable, "-m", "_ingest.child", "serve", "--stream", str(stream.path)),
            *("--banner", stream.banner, "--end", str(end), "--rate", str(args.rate)),
        ]
    )
    daemon = None
    try:
        ami_port = int(_expect(ami, "PORT "))
        web_port = free_port()
        config = {
            "ami_port": ami_port,
            "web_port": web_port,
            "store_url": store_url,
            "secret": "bench-secret-" + "x" * 40,
        }
        env = {**os.environ, "PYTHONPATH": str(tree)}
        daemon = _start([sys.executable, "_web_server.py", json.dumps(config)], env)
        served_from = _expect(daemon, "READY ")
        time.sleep(args.warmup)
        base = f"http://127.0.0.1:{web_port}"
        timings = browse(args, daemon, mode=mode, base=base, logins=logins, linkedids=linkedids)
        result: dict[str, Any] = json.loads(_expect(daemon, "RESULT "))
        daemon.wait(timeout=60)
    finally:
        for proc in (daemon, ami):
            if proc is not None and proc.poll() is None:
                _kill(proc)
    result.update(timings=timings, load=load_average(), served_from=served_from)
    return result


def browse(
    args: argparse.Namespace,
    daemon: subprocess.Popen[str],
    *,
    mode: str,
    base: str,
    logins: list[str],
    linkedids: dict[str, list[str]],
) -> list[tuple[str, float]]:
    """The people of ``mode`` for ``--seconds``, the daemon told when they start and stop."""
    assert daemon.stdin is not None
    if mode == "idle":
        daemon.stdin.write("START\n")
        daemon.stdin.flush()
        time.sleep(args.seconds)
        daemon.stdin.write("STOP\n")
        daemon.stdin.flush()
        return []
    think = tuple(args.think) if mode == "think" else (0.0, 0.0)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    crowd = context.Process(
        target=people,
        args=(base,),
        kwargs={
            "logins": logins,
            "linkedids": linkedids,
            "seconds": args.seconds,
            "think": think,
            "out": out,
        },
    )
    crowd.start()
    try:
        assert out.get(timeout=120) == "logged in"
        daemon.stdin.write("START\n")
        daemon.stdin.flush()
        timings: list[tuple[str, float]] = out.get(timeout=args.seconds + 300)
        daemon.stdin.write("STOP\n")
        daemon.stdin.flush()
    finally:
        crowd.join(timeout=30)
        if crowd.is_alive():
            crowd.kill()
    return timings


def export_tree(revision: str, into: Path) -> Path:
    """``call_monitor`` as it is at ``revision`` (``git archive``), under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "call_monitor"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def describe(revision: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or revision


async def prepare(args: argparse.Namespace, url: str) -> tuple[float, list[str]]:
    await upgrade(url)
    engine = create_engine(url)
    try:
        fill_seconds = await fill(engine, args.calls)
        logins = await add_people(engine, args.users)
    finally:
        await engine.dispose()
    return fill_seconds, logins


def calls_seen(logins: list[str], total: int) -> dict[str, list[str]]:
    """Per person, the answered calls they may score (a supervisor: their department's)."""
    sample = random.Random(0).sample(range(total), min(total, 6000))
    answered = [i for i in sample if i % 10 != 0]
    seen: dict[str, list[str]] = {}
    for n, login in enumerate(logins):
        department = n % len(DEPARTMENTS)
        mine = [i for i in answered if login == "admin" or i % len(DEPARTMENTS) == department]
        seen[login] = [linkedid_of(i) for i in mine or answered]
    return seen


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="callmon-web-"))
    try:
        trees = [("working tree", ROOT)]
        if args.after:
            after = export_tree(args.after, workdir / "after")
            trees = [(f"{args.after} ({describe(args.after)})", after)]
        if args.before:
            before = export_tree(args.before, workdir / "before")
            trees.insert(0, (f"{args.before} ({describe(args.before)})", before))
        events = int(args.rate * (args.seconds + args.warmup + 60))
        stream = build_stream(events, workdir / "stream.ami")

        results: list[tuple[str, str, dict[str, Any]]] = []
        with store(args) as url:
            fill_seconds, logins = asyncio.run(prepare(args, url))
            linkedids = calls_seen(logins, args.calls)
            for _ in range(args.rounds):
                for mode in args.modes:
                    for name, tree in trees:
                        print(f"... {mode} on {name} (load {load_average()})", file=sys.stderr)
                        result = run_phase(
                            args,
                            stream,
                            tree=tree,
                            mode=mode,
                            store_url=url,
                            logins=logins,
                            linkedids=linkedids,
                        )
                        results.append((mode, name, result))
        report(args, fill_seconds, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- the report


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _target(kind: str) -> float | None:
    for prefix, limit in TARGETS.items():
        if kind.startswith(prefix):
            return limit
    return None


def report(
    args: argparse.Namespace, fill_seconds: float, results: list[tuple[str, str, dict[str, Any]]]
) -> None:
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"# web pages while the daemon ingests ({datetime.now(UTC):%Y-%m-%d})\n")
    print(f"- machine: {cpu_model()}, {multiprocessing.cpu_count()} cores")
    print(
        f"- Python {sys.version.split()[0]}; store {backend}, {args.calls:,} calls in one month "
        f"({len(DEPARTMENTS)} departments x {STAFF_PER_DEPARTMENT} staff), "
        f"filled in {fill_seconds:.0f} s"
    )
    print(
        f"- the daemon ingesting {args.rate:,.0f} AMI events/s; {args.users} people browsing "
        f"for {args.seconds:.0f} s a phase (think: {args.think[0]:g}-{args.think[1]:g} s "
        "between requests; flat out: none), from another process\n"
    )
    print("| phase | tree | load | request | count | p50 ms | p95 ms | max ms | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, tree, result in results:
        kinds: dict[str, list[float]] = {}
        for kind, seconds in result["timings"]:
            kinds.setdefault(kind, []).append(seconds * 1000)
        rows = [(kind, kinds[kind]) for kind in sorted(kinds)]
        lags = [lag * 1000 for lag in result["lags"]] or [0.0]
        lead = f"| {mode} | {tree} | {result['load']} |"
        for kind, values in rows:
            p95 = percentile(values, 95)
            limit = _target(kind)
            verdict = "" if limit is None else f"< {limit:g}: {'met' if p95 < limit else 'NOT met'}"
            print(
                f"{lead} {kind} | {len(values)} | {statistics.median(values):.1f} | "
                f"{p95:.1f} | {max(values):.1f} | {verdict} |"
            )
        p99 = percentile(lags, 99)
        verdict = f"p99 < {LAG_TARGET_MS:g}: {'met' if p99 < LAG_TARGET_MS else 'NOT met'}"
        print(
            f"{lead} ingest lag p50 / p99 ({len(result['lags'])} events) | "
            f"{len(result['lags'])} | {statistics.median(lags):.2f} | "
            f"p99 {p99:.2f} | {max(lags):.1f} | {verdict} |"
        )
        late = [x * 1000 for x in result["lateness"]] or [0.0]
        print(
            f"{lead} loop lateness (5 ms probe) | {len(late)} | {statistics.median(late):.2f} | "
            f"p99 {percentile(late, 99):.2f} | {max(late):.1f} | |"
        )
    print(
        "\nTargets (issue 10, item 5) judged on the think phase; flat out is a saturation "
        "test. The ingest lag: arrival of an event's bytes to the end of its handling."
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="the web pages while the daemon ingests")
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="of browsing, a phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="ingest before a phase")
    parser.add_argument("--rate", type=float, default=2000.0, help="AMI events/s")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 2.5), metavar=("MIN", "MAX"))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", default="", help="a git revision to compare with")
    parser.add_argument("--after", default="", help="a git revision instead of the work tree")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--pg-url", default=ADMIN_URL)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
