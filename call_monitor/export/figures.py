"""The month's charter figures, counted by the database: per department, per staff member
and for the whole office.

Every count is a conditional count in one ``GROUP BY`` query (no call row comes to Python
to be counted); the transfer waits' median and 90th percentile are picked by window
functions (nearest rank: the value at rank ``ceil(p * n)``), on SQLite and PostgreSQL alike.

Attribution, as the rules and the metrics attribute (``charter/rules.py``):

- the call counts (``inbound_calls`` ... ``incomplete``) and P1/P2 go to the call's
  department and, for a staff row, to the staff member who answered (a missed or incomplete
  call: the extension dialled, when it is a staff member's);
- P4/P5 go to the staff member who transferred, and to that staff member's department (the
  call's when the extension is not in the directory);
- P7 goes to whom the stored verdict attributes it (the last staff member on the line);
- P6 to the obligation's owner (a staff member, or a department for a ring group's call).

Only directory staff get staff rows; every directory department gets a department row, and
calls of no known department one with ``department`` null. The office row is the sum of the
department rows (its wait percentiles are the office's own).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import pairwise
from typing import Any, get_args

from sqlalchemy import (
    Text,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
    values,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from call_monitor.calls.model import MissedReason
from call_monitor.directory import Directory
from call_monitor.export.judgement import RING_BUCKETS, Expression, Judgement, count_if
from call_monitor.export.month import Month
from call_monitor.store.checklists import answers_table, revisions_table
from call_monitor.store.models import calls_table, transfers_table, verdicts_table
from call_monitor.store.obligations import obligation_changes_table, obligations_table

MISSED_REASONS: tuple[str, ...] = get_args(MissedReason)
CALL_KEYS: tuple[str, ...] = (
    "inbound_calls",
    "answered",
    "missed",
    *(f"missed_{reason}" for reason in MISSED_REASONS),
    "incomplete",
    "p1_checked",
    "p1_met",
    *(f"rings_{ring}" for ring in RING_BUCKETS),
    f"rings_{RING_BUCKETS[-1] + 1}_plus",
    "apology_expected",
)
TRANSFER_KEYS: tuple[str, ...] = (
    "transfers",
    "p4_met",
    "transfers_attended",
    "transfers_blind",
    "transfers_park",
    "transfers_external",
    "transfers_never_connected",
    "p5_transfers",
    "p5_met",
)
P7_KEYS: tuple[str, ...] = ("p7_checked", "p7_met")
CALLBACK_KEYS: tuple[str, ...] = (
    "callbacks_owed",
    "callbacks_on_time",
    "callbacks_late",
    "callbacks_open",
    "callbacks_resolved_by_inbound",
    "callbacks_cancelled",
)
CHECKLIST_KEYS: tuple[str, ...] = ("scored_calls",)
# The counts of a figures object, in the order the JSON and the sheets give them.
COUNT_KEYS: tuple[str, ...] = (
    *CALL_KEYS,
    *TRANSFER_KEYS,
    *CALLBACK_KEYS,
    *P7_KEYS,
    *CHECKLIST_KEYS,
)
WAIT_KEYS: tuple[str, ...] = ("p4_wait_median_seconds", "p4_wait_p90_seconds")

Key = tuple[str | None, str | None]  # (department, staff extension or None)


@dataclass(frozen=True, slots=True)
class Scope:
    """What an export covers: a month, one department or all, the verdicts as stored or
    re-judged."""

    month: Month
    judgement: Judgement
    department: str | None = None
    # A stretch of the month, [start, end): the calls sheet is read in parts (build.py).
    part: tuple[datetime, datetime] | None = None

    def span(self) -> tuple[datetime, datetime]:
        return self.part or (self.month.start, self.month.end)

    def parts(self, count: int) -> list[Scope]:
        """The month in ``count`` consecutive stretches of equal length."""
        start, end = self.month.start, self.month.end
        bounds = [start + (end - start) * i / count for i in range(count)] + [end]
        return [replace(self, part=span) for span in pairwise(bounds)]


@dataclass(slots=True)
class MonthFigures:
    office: dict[str, Any]
    departments: list[dict[str, Any]] = field(default_factory=list)
    staff: list[dict[str, Any]] = field(default_factory=list)


def in_month(scope: Scope) -> Expression:
    started = calls_table.c.started_at
    start, end = scope.span()
    return and_(started >= start, started < end)


def directory_cte(directory: Directory) -> Any:
    """``(extension, department)`` of every staff member and group, as a CTE (VALUES)."""
    pairs = [(ext, entry.department) for ext, entry in directory.settings.staff.items()]
    pairs += list(directory.settings.groups.items())
    table = values(column("extension", Text), column("department", Text), name="directory")
    return table.data(pairs or [("", "")]).cte("directory")


def staff_names(directory: Directory) -> Any:
    """``(extension, name)`` of every staff member, as a CTE (VALUES)."""
    pairs = [(ext, entry.name) for ext, entry in directory.settings.staff.items()]
    table = values(column("extension", Text), column("name", Text), name="staff_names")
    return table.data(pairs or [("", "")]).cte("staff_names")


# The shipped form's items whose "yes" share the summary shows on its own (an office's own
# form keeps these ids for them: ids are stable across versions, ``checklist/form.py``).
APOLOGY_ITEM = "p2_apology"  # applies only to calls answered on ring >= 3 (P2)
DIRECT_NUMBER_ITEM = "p5_direct_number"  # applies only to transfers to another department


@dataclass(slots=True)
class _Scored:
    """One row's checklist sums: calls scored (latest revisions), their scores, and per
    item (in the form's order) how many answered yes or no, and how many yes."""

    calls: int = 0
    score_sum: float = 0.0
    scores: int = 0
    items: dict[str, list[int]] = field(default_factory=dict)  # item -> [position, answered, yes]

    def add(self, other: _Scored) -> None:
        self.calls += other.calls
        self.score_sum += other.score_sum
        self.scores += other.scores
        for item, (position, answered, yes) in other.items.items():
            mine = self.items.setdefault(item, [position, 0, 0])
            mine[0] = min(mine[0], position)
            mine[1] += answered
            mine[2] += yes

    def figures(self) -> dict[str, Any]:
        """The row's checklist figures; ``None`` (not scored) where nothing was answered."""
        ordered = sorted(self.items.items(), key=lambda pair: (pair[1][0], pair[0]))
        items = {item: {"answered": answered, "yes": yes} for item, (_, answered, yes) in ordered}
        answered = sum(item["answered"] for item in items.values())
        return {
            "scored_calls": self.calls,
            "checklist_mean_score": round(self.score_sum / self.scores, 2) if self.scores else None,
            "checklist_yes_share": share(answered, sum(i["yes"] for i in items.values())),
            "checklist_items": items,
            "apology_given_share": _item_share(items, APOLOGY_ITEM),
            "p5_direct_number_share": _item_share(items, DIRECT_NUMBER_ITEM),
        }


def share(whole: int, part: int) -> float | None:
    return part / whole if whole else None


def _item_share(items: Mapping[str, Mapping[str, int]], item: str) -> float | None:
    counts = items.get(item)
    return None if counts is None else share(counts["answered"], counts["yes"])


def _latest_revisions(scope: Scope) -> Any:
    """The latest revision of each call of the month that was scored (the call's score)."""
    r = revisions_table.c
    return (
        select(r.linkedid, func.max(r.revision).label("revision"))
        .where(r.call_started_at >= scope.month.start, r.call_started_at < scope.month.end)
        .group_by(r.linkedid)
        .subquery()
    )


def _of_latest(table: Any, latest: Any) -> Expression:
    return and_(table.c.linkedid == latest.c.linkedid, table.c.revision == latest.c.revision)


async def checklist_figures(
    conn: AsyncConnection, scope: Scope, directory: Directory, keys: Iterable[Key]
) -> dict[Key, dict[str, Any]]:
    """The supervisors' checklist figures of each row of ``keys`` (and the office's, key
    ``(None, "")``): calls scored in the month (their latest revision), mean score, the
    share of "yes" per item and over all items, and the P2 apology and P5 direct-number
    shares (of the calls where the item applied: answered yes or no). Counted by the
    database, grouped by the revision's department and staff member (who answered);
    ``None`` (not scored) where nothing was scored."""
    r, a = revisions_table.c, answers_table.c
    latest = _latest_revisions(scope)
    scored_query = (
        select(r.department, r.staff, func.count(), func.sum(r.score), func.count(r.score))
        .join(latest, _of_latest(revisions_table, latest))
        .group_by(r.department, r.staff)
    )
    items_query = (
        select(
            r.department,
            r.staff,
            a.item_id,
            func.min(a.position),
            count_if(a.answer != "na"),
            count_if(a.answer == "yes"),
        )
        .select_from(
            answers_table.join(latest, _of_latest(answers_table, latest)).join(
                revisions_table, _of_latest(revisions_table, answers_table)
            )
        )
        .group_by(r.department, r.staff, a.item_id)
    )
    sums: dict[Key, _Scored] = defaultdict(_Scored)
    for department, staff, calls, score_sum, scores in await conn.execute(scored_query):
        part = _Scored(int(calls), float(score_sum or 0.0), int(scores))
        _add_scored(sums, directory, department, staff, part)
    for department, staff, item, position, answered, yes in await conn.execute(items_query):
        part = _Scored(items={item: [int(position), int(answered), int(yes)]})
        _add_scored(sums, directory, department, staff, part)
    office = _Scored()
    for (department, staff), part in list(sums.items()):
        if staff is None and scope.department in (None, department):
            office.add(part)
    sums[(None, "")] = office
    return {key: sums[key].figures() for key in keys}


def _add_scored(
    sums: dict[Key, _Scored],
    directory: Directory,
    department: str | None,
    staff: str | None,
    part: _Scored,
) -> None:
    """One group's sums into its department's row and, if a staff member's, theirs."""
    sums[(department, None)].add(part)
    if directory.is_staff(staff):
        sums[(directory.department_of(staff), staff)].add(part)


async def month_figures(conn: AsyncConnection, scope: Scope, directory: Directory) -> MonthFigures:
    """The figures of ``scope``: every department and staff row, and the office's."""
    rows: dict[Key, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(COUNT_KEYS, 0))
    for department in directory.departments:
        rows[(department, None)]
    for extension in directory.extensions:
        rows[(directory.department_of(extension), extension)]
    grouped = (
        (await _call_counts(conn, scope, directory), CALL_KEYS),
        (await _transfer_counts(conn, scope, directory), TRANSFER_KEYS),
        (await _p7_counts(conn, scope), P7_KEYS),
        (await _callback_counts(conn, scope), CALLBACK_KEYS),
    )
    for result, keys in grouped:
        for department, staff, *counts in result:
            _add(rows, directory, department, staff, dict(zip(keys, counts, strict=True)))
    waits = await _waits(conn, scope, directory)
    checklist = await checklist_figures(conn, scope, directory, [*rows, (None, "")])
    figures = MonthFigures(office=_office(rows, scope, waits, checklist))
    for key in sorted(rows, key=_order):
        if scope.department is not None and key[0] != scope.department:
            continue
        row = _row(key, rows[key], waits.get(key), checklist[key], directory)
        (figures.departments if key[1] is None else figures.staff).append(row)
    return figures


def _order(key: Key) -> tuple[bool, str, bool, str]:
    department, staff = key
    return (department is None, department or "", staff is not None, staff or "")


def _add(
    rows: dict[Key, dict[str, Any]],
    directory: Directory,
    department: str | None,
    staff: str | None,
    counts: Mapping[str, int],
) -> None:
    """Counts of one group, into its department's row and, if a staff member's, theirs."""
    targets: list[Key] = [(department, None)]
    if directory.is_staff(staff):
        targets.append((directory.department_of(staff), staff))
    for key in targets:
        row = rows[key]
        for name, count in counts.items():
            row[name] += int(count)


def _row(
    key: Key,
    counts: Mapping[str, int],
    waits: tuple[float | None, float | None] | None,
    checklist: Mapping[str, Any],
    directory: Directory,
) -> dict[str, Any]:
    department, staff = key
    median, p90 = waits or (None, None)
    return {
        "department": department,
        "staff": staff,
        "staff_name": directory.staff_name(staff),
        **counts,
        **checklist,
        "p4_wait_median_seconds": median,
        "p4_wait_p90_seconds": p90,
    }


def _office(
    rows: Mapping[Key, Mapping[str, int]],
    scope: Scope,
    waits: Mapping[Key, tuple[float | None, float | None]],
    checklist: Mapping[Key, Mapping[str, Any]],
) -> dict[str, Any]:
    totals = dict.fromkeys(COUNT_KEYS, 0)
    for (department, staff), counts in rows.items():
        if staff is None and scope.department in (None, department):
            for name in COUNT_KEYS:
                totals[name] += counts[name]
    key: Key = (scope.department, None) if scope.department is not None else (None, "")
    median, p90 = waits.get(key, (None, None))
    return {
        "department": scope.department,
        "staff": None,
        "staff_name": None,
        **totals,
        **checklist[(None, "")],
        "p4_wait_median_seconds": median,
        "p4_wait_p90_seconds": p90,
    }


# --------------------------------------------------------------------------- the queries


async def _call_counts(conn: AsyncConnection, scope: Scope, directory: Directory) -> Sequence[Any]:
    c = calls_table.c
    judge = scope.judgement
    inbound = c.direction == "inbound"
    complete = and_(inbound, c.incomplete.is_(False))
    p1 = judge.p1_met()
    p1_checked = and_(c.judged.is_(True), p1.is_not(None))
    # A staff row: who answered; a call nobody answered, the extension it was dialled to;
    # only directory staff (an outbound call's answerer is the customer's number: grouped
    # by it, the result would have a row per customer).
    names = staff_names(directory)
    staff = names.c.extension
    counts = [
        count_if(inbound),
        count_if(and_(complete, c.answered_at.is_not(None))),
        count_if(and_(complete, c.missed.is_(True))),
        *(
            count_if(and_(complete, c.missed.is_(True), c.missed_reason == reason))
            for reason in MISSED_REASONS
        ),
        count_if(and_(inbound, c.incomplete.is_(True))),
        count_if(p1_checked),
        count_if(and_(p1_checked, p1.is_(True))),
        *(
            count_if(and_(p1_checked, judge.on_ring(ring)))
            for ring in (*RING_BUCKETS, RING_BUCKETS[-1] + 1)
        ),
        count_if(and_(c.judged.is_(True), judge.apology_expected().is_(True))),
    ]
    query = (
        select(c.department, staff, *counts)
        .select_from(
            calls_table.outerjoin(
                names, names.c.extension == func.coalesce(c.answered_by, c.dialed)
            )
        )
        .where(in_month(scope))
        .group_by(c.department, staff)
    )
    return (await conn.execute(query)).all()


def _transfer_facts(scope: Scope, directory: Directory) -> Select[Any]:
    """The judged calls' transfers of the month, with the department a P4/P5 verdict goes
    to (the transferring staff member's, else the call's) and the verdict itself."""
    t = transfers_table.c
    staff_departments = directory_cte(directory)
    department = func.coalesce(staff_departments.c.department, calls_table.c.department)
    return (
        select(
            department.label("department"),
            t.from_ext.label("staff"),
            t.kind,
            t.external,
            t.wait_seconds,
            t.other_department,
            scope.judgement.p4_met().label("p4_met"),
        )
        .select_from(
            transfers_table.join(calls_table, calls_table.c.linkedid == t.linkedid).outerjoin(
                staff_departments, staff_departments.c.extension == t.from_ext
            )
        )
        .where(in_month(scope), calls_table.c.judged.is_(True))
    )


async def _transfer_counts(
    conn: AsyncConnection, scope: Scope, directory: Directory
) -> Sequence[Any]:
    facts = _transfer_facts(scope, directory).subquery()
    f = facts.c
    judged = f.p4_met.is_not(None)
    p5 = and_(judged, f.other_department.is_(True))
    query = select(
        f.department,
        f.staff,
        count_if(judged),
        count_if(f.p4_met.is_(True)),
        count_if(and_(judged, f.kind == "attended")),
        count_if(and_(judged, f.kind == "blind")),
        count_if(and_(judged, f.kind == "park")),
        count_if(and_(judged, f.external.is_(True))),
        count_if(and_(judged, f.wait_seconds.is_(None))),
        count_if(p5),
        count_if(and_(p5, f.p4_met.is_(True))),
    ).group_by(f.department, f.staff)
    return (await conn.execute(query)).all()


async def _p7_counts(conn: AsyncConnection, scope: Scope) -> Sequence[Any]:
    v = verdicts_table.c
    query = (
        select(v.department, v.staff, func.count(), count_if(v.met.is_(True)))
        .select_from(verdicts_table.join(calls_table, calls_table.c.linkedid == v.linkedid))
        # "clause || ''": not by the clause's index, which SQLite would otherwise walk
        # for every P7 verdict ever stored; the month's calls lead (their time index).
        .where(in_month(scope), v.clause.concat("") == "P7")
        .group_by(v.department, v.staff)
    )
    return (await conn.execute(query)).all()


def _created_in(scope: Scope) -> Select[Any]:
    """The obligations created in the month, found by their ``created`` change's time (the
    history's time index; the snapshots have none on ``created_at``)."""
    h = obligation_changes_table.c
    return select(h.obligation_id).where(
        h.kind == "created", h.at >= scope.month.start, h.at < scope.month.end
    )


async def _callback_counts(conn: AsyncConnection, scope: Scope) -> Sequence[Any]:
    """Obligations created in the month, by their state at the month's end: closed before
    it (on time, late, resolved by the customer calling again, cancelled) or still open."""
    o = obligations_table.c
    end = scope.month.end
    # A staff member's obligation has a staff row; a department's own has none.
    owned = (
        select(
            o.owner_department.label("department"),
            case((o.owner_kind == "staff", o.owner)).label("staff"),
            o.state,
            o.closed_at,
        )
        .where(o.id.in_(_created_in(scope)))
        .subquery()
    )
    f = owned.c
    closed_by_end = and_(f.closed_at.is_not(None), f.closed_at < end)

    def closed_as(state: str) -> Expression:
        return and_(closed_by_end, f.state == state)

    query = select(
        f.department,
        f.staff,
        func.count(),
        count_if(closed_as("fulfilled_on_time")),
        count_if(closed_as("fulfilled_late")),
        count_if(or_(f.closed_at.is_(None), f.closed_at >= end)),
        count_if(closed_as("resolved_by_inbound")),
        count_if(closed_as("cancelled")),
    ).group_by(f.department, f.staff)
    return (await conn.execute(query)).all()


async def _waits(
    conn: AsyncConnection, scope: Scope, directory: Directory
) -> dict[Key, tuple[float | None, float | None]]:
    """The median and 90th percentile of the customers' transfer waits, by department, by
    staff member and for the office (key ``(None, "")``; with a department chosen, that
    department's), nearest rank, picked by the database: one statement, the waits ranked
    once per level by window functions."""
    waits: dict[Key, tuple[float | None, float | None]] = {}
    for level, department, staff, median, p90 in await conn.execute(_percentiles(scope, directory)):
        if level == "office":
            key: Key = (None, "")
        elif level == "department":
            key = (department, None)
        elif directory.is_staff(staff):
            key = (directory.department_of(staff), staff)
        else:
            continue
        waits[key] = (median, p90)
    if scope.department is not None:
        waits[(None, "")] = waits.get((scope.department, None), (None, None))
    return waits


def _percentiles(scope: Scope, directory: Directory) -> Any:
    facts = _transfer_facts(scope, directory).subquery()
    f = facts.c
    wait = f.wait_seconds
    levels: dict[str, list[Any]] = {
        "office": [],
        "department": [f.department],
        "staff": [f.department, f.staff],
    }
    windows = []
    for level, partition in levels.items():
        by = partition or None
        windows.append(
            func.row_number().over(partition_by=by, order_by=wait).label(f"rank_{level}")
        )
        windows.append(func.count().over(partition_by=by).label(f"n_{level}"))
    ranked = (
        select(f.department, f.staff, wait.label("wait"), *windows)
        .where(wait.is_not(None), f.p4_met.is_not(None))
        .cte("ranked")
    )
    r = ranked.c
    parts = []
    for level, partition in levels.items():
        rank, n = r[f"rank_{level}"], r[f"n_{level}"]
        names = [r[column.name] for column in partition]
        department = names[0] if names else cast(null(), Text)
        staff = names[1] if len(names) > 1 else cast(null(), Text)
        # Nearest rank: ceil(n / 2) and ceil(9 n / 10), in integer arithmetic.
        part = select(
            literal(level, Text).label("level"),
            department.label("department"),
            staff.label("staff"),
            func.max(case((rank == (n + 1) // 2, r.wait))).label("median"),
            func.max(case((rank == (n * 9 + 9) // 10, r.wait))).label("p90"),
        )
        parts.append(part.group_by(*names) if names else part)
    return union_all(*parts)
