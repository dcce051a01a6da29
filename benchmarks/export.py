#!/usr/bin/env python
"""Export speed: ``call-monitor export`` of a month of calls, each format, on SQLite and on
PostgreSQL.

    .venv/bin/python benchmarks/export.py [--calls 30000,300000] [--backends sqlite,postgresql]
                                          [--formats xlsx,csv,json,html] [--departments 20]
                                          [--staff-per-department 10]

A benchmark, not a test: it prints a report (machine, versions, a markdown table).

The month (November 2026, Asia/Seoul) is bulk-inserted, not replayed: ``--calls`` calls
spread over the month (85 % inbound, a quarter of those missed, each missed call owing a
callback; one answered call in ten transferred to a random colleague, most in another department),
with their legs, transfers, P1/P4/P7 verdict rows and obligations, written with ``executemany``
(SQLite) or ``COPY`` (PostgreSQL) into a store Alembic migrated. Then each format is exported
by a fresh child process (``export_month_sync``, as the command runs it), which reports its
wall time, its CPU time (user + system, with its SQLite reader processes':
PostgreSQL's work is the server's, not in it; on a loaded host the wall time grows, the CPU
time much less), its peak RSS (``VmHWM``) and, on SQLite, the reader's. Every size in
``--calls`` is a separate month (a separate database): RSS that stays flat from the smaller
to the larger shows the rows are streamed and the figures counted by the database. The
PostgreSQL database is created on
``$CALLMON_TEST_PG_URL`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
from _machine import cpu_model, load_average

from call_monitor import __version__
from call_monitor.config import DirectorySettings, Settings, StaffEntry, StoreSettings
from call_monitor.export.build import ExportRequest
from call_monitor.export.month import Month
from call_monitor.export.run import export_month_sync
from call_monitor.store.models import Base
from call_monitor.store.schema import upgrade_sync

PG_URL = os.environ.get("CALLMON_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MONTH = Month(2026, 11)
SUFFIX = {"xlsx": "xlsx", "csv": "zip", "json": "json", "html": "html"}
UTC = dt.UTC


def directory(departments: int, per_department: int) -> DirectorySettings:
    staff = {
        str(2000 + d * per_department + s): StaffEntry(
            name=f"직원{d}-{s}", department=f"부서{d:02d}"
        )
        for d in range(departments)
        for s in range(per_department)
    }
    return DirectorySettings(staff=staff, public_endpoints=["pstn"], public_contexts=["from-pstn"])


# --------------------------------------------------------------------------- the month


def month_rows(
    calls: int, extensions: list[str], departments: dict[str, str]
) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """The rows of ``calls`` calls, a chunk of tables at a time (aware UTC datetimes)."""
    rng = random.Random(11)
    start = MONTH.start.timestamp()
    span = MONTH.end.timestamp() - start
    chunk: dict[str, list[tuple[Any, ...]]] = {k: [] for k in TABLES}
    for n in range(calls):
        linkedid = f"{1790000000 + n}.{n}"
        at = start + span * n / calls
        ext = rng.choice(extensions)
        dept = departments[ext]
        inbound = rng.random() < 0.85
        when = dt.datetime.fromtimestamp(at, UTC)
        ring = round(rng.uniform(0.5, 15.0), 6)
        answered = not inbound or rng.random() > 0.25
        answered_at = when + dt.timedelta(seconds=ring) if answered else None
        ended = (answered_at or when) + dt.timedelta(seconds=rng.uniform(10, 300))
        rings = int(ring // 3.0) + 1
        judged = inbound
        p1 = (rings <= 2) if inbound and answered else None
        hangup = rng.choice(("caller", "caller", "staff"))
        p7 = (hangup == "caller") if inbound and answered else None
        number = f"010{rng.randrange(10**8):08d}"
        caller, dialed = (number, ext) if inbound else (ext, number)
        chunk["calls"].append(
            (
                linkedid,
                "inbound" if inbound else "outbound",
                caller,
                "고객" if inbound else "",
                dialed,
                None if inbound else ext,
                dept,
                when,
                when,
                answered_at,
                (ext if inbound else number) if answered else None,
                False,
                ended,
                not answered,
                None if answered else "no_answer",
                hangup,
                False,
                ring,
                "2026.1",
                judged,
                rings,
                p1,
                None if p1 is None else rings >= 3,
                p7,
            )
        )
        chunk["call_legs"].append(
            (linkedid, 0, "customer", None, None, answered_at, ended, None, False)
        )
        chunk["call_legs"].append(
            (linkedid, 1, "staff", ext, when, answered_at, ended, None, False)
        )
        if p1 is not None:
            chunk["verdicts"].append((linkedid, "P1", 0, "2026.1", p1, ext, dept))
        if p7 is not None:
            chunk["verdicts"].append((linkedid, "P7", 0, "2026.1", p7, ext, dept))
        if inbound and answered and rng.random() < 0.1:
            to = rng.choice(extensions)
            wait = round(rng.uniform(1.0, 20.0), 6)
            begun = answered_at + dt.timedelta(seconds=30)  # type: ignore[operator]
            other = departments[to] != dept
            chunk["transfers"].append(
                (
                    linkedid,
                    0,
                    rng.choice(("blind", "attended")),
                    ext,
                    to,
                    True,
                    begun,
                    begun,
                    begun + dt.timedelta(seconds=wait),
                    begun + dt.timedelta(seconds=wait),
                    wait,
                    1.0,
                    other,
                    wait < 10.0,
                )
            )
            chunk["verdicts"].append((linkedid, "P4", 0, "2026.1", wait < 10.0, ext, dept))
        if inbound and not answered:
            oid = f"call-{linkedid}"
            due = ended + dt.timedelta(hours=1)
            closed = rng.random() < 0.7
            state = (
                ("fulfilled_on_time" if rng.random() < 0.8 else "fulfilled_late")
                if closed
                else "open"
            )
            closed_at = due - dt.timedelta(minutes=10) if closed else None
            chunk["obligations"].append(
                (
                    oid,
                    "missed_call",
                    ext,
                    "staff",
                    dept,
                    number,
                    number,
                    "고객",
                    "",
                    None,
                    ended,
                    due,
                    due - dt.timedelta(minutes=15),
                    state,
                    0,
                    None,
                    None,
                    closed_at,
                    "answered" if closed else None,
                    ext if closed else None,
                    None,
                )
            )
            chunk["obligation_changes"].append(
                (oid, 0, ended, "created", "open", "missed call", linkedid, None)
            )
        if len(chunk["calls"]) >= 20000:
            yield chunk
            chunk = {k: [] for k in TABLES}
    yield chunk


TABLES = ("calls", "call_legs", "transfers", "verdicts", "obligations", "obligation_changes")
# The columns month_rows gives, in its tuples' order; the others get complete()'s defaults.
GIVEN = {
    "calls": "linkedid direction caller caller_name dialed staff department started_at "
    "ring_started_at answered_at answered_by picked_up ended_at missed missed_reason "
    "hangup_first incomplete ring_seconds definitions_version judged rings p1_met "
    "apology_expected p7_met",
    "call_legs": "linkedid position party extension rang_at answered_at ended_at hangup_cause "
    "after_answer",
    "transfers": "linkedid position kind from_ext to_ext completed started_at target_rang_at "
    "target_answered_at connected_at wait_seconds target_ring_seconds other_department p4_met",
}
FALSE_BY_DEFAULT = {"voicemail_left", "conference", "external"}


def complete(table: str, values: list[tuple[Any, ...]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``values`` as full rows of ``table`` and their column names (a migrated table's
    order is not the model's: the names go in the INSERT): a column added since the tuples
    were written takes its default (false, none; ``talked``: answered)."""
    columns = [column.name for column in Base.metadata.tables[table].columns]
    if table not in GIVEN:
        return columns, values
    names = GIVEN[table].split()
    rows = []
    for value in values:
        given = dict(zip(names, value, strict=True))
        given.setdefault("talked", given.get("answered_at") is not None)
        rows.append(
            tuple(given.get(name, False if name in FALSE_BY_DEFAULT else None) for name in columns)
        )
    return columns, rows


def fill_sqlite(path: Path, rows: Iterator[dict[str, list[tuple[Any, ...]]]]) -> None:
    def plain(value: Any) -> Any:  # SQLAlchemy's SQLite DateTime: naive UTC text
        return (
            value.replace(tzinfo=None).isoformat(sep=" ")
            if isinstance(value, dt.datetime)
            else value
        )

    db = sqlite3.connect(path)
    try:
        for chunk in rows:
            for table, values in chunk.items():
                if values:
                    columns, full = complete(table, values)
                    marks = ",".join("?" * len(columns))
                    db.executemany(
                        f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",
                        [tuple(map(plain, v)) for v in full],
                    )
        db.commit()
    finally:
        db.close()


async def fill_postgres(dsn: str, rows: Iterator[dict[str, list[tuple[Any, ...]]]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for chunk in rows:
            for table, values in chunk.items():
                if values:
                    columns, full = complete(table, values)
                    await conn.copy_records_to_table(table, records=full, columns=columns)
        await conn.execute("ANALYZE")  # the planner's statistics, as a live store has them
    finally:
        await conn.close()


# --------------------------------------------------------------------------- measuring


def child(args: argparse.Namespace) -> None:
    """One export in this fresh process: print its seconds, peak RSS and size as JSON."""
    settings = Settings(
        store=StoreSettings(url=args.url),
        directory=directory(args.departments, args.staff_per_department),
    )
    out = Path(args.out)
    cpu_before = _cpu()  # imports and settings not counted
    readers = _ReaderPeak()
    readers.start()
    begun = time.perf_counter()
    export_month_sync(settings, ExportRequest(MONTH, args.format, out))
    seconds = time.perf_counter() - begun
    readers.done.set()
    readers.join()
    child_rss_kib = readers.peak_kib
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": _cpu() - cpu_before,
                "rss_kib": _vmhwm(),
                "child_rss_kib": child_rss_kib,
                "bytes": out.stat().st_size,
            }
        )
    )


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _child_rss(result: dict[str, Any]) -> str:
    """The reader process's peak RSS (SQLite's streamed sheets), or a dash."""
    kib = int(result.get("child_rss_kib", 0))
    return f"{kib / 1024:.0f} MiB" if kib else "-"


def _vmhwm(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class _ReaderPeak(threading.Thread):
    """The largest peak RSS of this process's SQLite readers (``store/sqlite_child.py``),
    sampled every 20 ms: ``getrusage``'s children figure counts the parent's pages the
    child had between fork and exec."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.peak_kib = 0

    def run(self) -> None:
        tasks = Path(f"/proc/{os.getpid()}/task")
        while not self.done.wait(0.02):
            for task in tasks.iterdir():
                with contextlib.suppress(OSError):
                    for pid in (task / "children").read_text().split():
                        if b"sqlite_child.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                            self.peak_kib = max(self.peak_kib, _vmhwm(pid))


def measure(url: str, fmt: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = workdir / f"export.{SUFFIX[fmt]}"
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--url",
            url,
            "--format",
            fmt,
            "--out",
            str(out),
            "--departments",
            str(args.departments),
            "--staff-per-department",
            str(args.staff_per_department),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def build(
    backend: str, calls: int, workdir: Path, args: argparse.Namespace
) -> tuple[str, float, Any]:
    """A migrated store holding the month; (URL, seconds to fill, cleanup)."""
    settings_dir = directory(args.departments, args.staff_per_department)
    extensions = sorted(settings_dir.staff)
    departments = {ext: entry.department for ext, entry in settings_dir.staff.items()}
    rows = month_rows(calls, extensions, departments)
    if backend == "sqlite":
        path = workdir / f"month-{calls}.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade_sync(url)
        begun = time.perf_counter()
        fill_sqlite(path, rows)
        return url, time.perf_counter() - begun, lambda: None
    name = f"callmon_bench_{uuid.uuid4().hex[:12]}"
    admin_dsn = PG_URL.replace("+asyncpg", "")

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade_sync(url)
    begun = time.perf_counter()
    asyncio.run(fill_postgres(url.replace("+asyncpg", ""), rows))
    return (
        url,
        time.perf_counter() - begun,
        lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="30000,300000", help="month sizes, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--formats", default="xlsx,csv,json,html")
    parser.add_argument("--departments", type=int, default=20)
    parser.add_argument("--staff-per-department", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"# export benchmark — call-monitor {__version__}\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, load {load_average()}")
    print(f"- Python {platform.python_version()}, {dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"- month {MONTH}, {args.departments} departments × {args.staff_per_department} staff\n")
    print(
        "| backend | calls | format | seconds | CPU seconds | peak RSS (VmHWM) "
        "| reader's peak RSS | file |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    notes = []
    with tempfile.TemporaryDirectory(prefix="callmon-export-bench-") as tmp:
        workdir = Path(tmp)
        for backend in args.backends.split(","):
            for calls in (int(c) for c in args.calls.split(",")):
                url, fill_seconds, cleanup = build(backend, calls, workdir, args)
                notes.append(f"- {backend}, {calls:,} calls: bulk-inserted in {fill_seconds:.1f} s")
                try:
                    for fmt in args.formats.split(","):
                        r = measure(url, fmt, workdir, args)
                        if "error" in r:
                            print(
                                f"| {backend} | {calls:,} | {fmt} | failed: {r['error']} | | | | |"
                            )
                            continue
                        print(
                            f"| {backend} | {calls:,} | {fmt} | {r['seconds']:.2f} | "
                            f"{r['cpu']:.2f} | {r['rss_kib'] / 1024:.0f} MiB | "
                            f"{_child_rss(r)} | {r['bytes'] / 1024:,.0f} KiB |",
                            flush=True,
                        )
                finally:
                    cleanup()
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
