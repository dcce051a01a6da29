"""The sheets of an export: their columns (with a type each) and their rows.

The summary is built from the month's figures (a few hundred rows at most); the calls and
the missed calls are streamed from the database (a server-side cursor on PostgreSQL,
``yield_per`` batches), one row at a time to the writer, so memory does not grow with the
month.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Select, and_, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.charter.rules import rings_heard
from call_monitor.directory import Directory
from call_monitor.export.figures import MISSED_REASONS, MonthFigures, Scope, in_month
from call_monitor.export.headers import WORDS, Lang, word, yes_no
from call_monitor.export.judgement import Expression, count_if
from call_monitor.export.text import mask_number
from call_monitor.store.models import calls_table, transfers_table
from call_monitor.store.obligations import obligation_changes_table, obligations_table

# text: the program's own words; name: text from the directory or the store (department,
# staff, ids); stranger: a caller's text.
Kind = Literal["text", "name", "stranger", "int", "seconds", "rate", "datetime", "not_scored"]
STREAM_BATCH = 2000  # rows fetched per round trip
EXCEL_EPOCH_SERIAL = 25569  # the Excel date serial of 1970-01-01
JULIAN_DAY_OF_EXCEL_EPOCH = 2415018.5  # the Julian day of Excel's day 0 (1899-12-30)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    kind: Kind = "text"
    width: int = 10


def _columns(spec: str) -> tuple[Column, ...]:
    """``"key:kind:width key ..."`` as columns (kind and width optional)."""
    columns = []
    for item in spec.split():
        key, kind, width = (*item.split(":"), "", "")[:3]
        columns.append(Column(key, cast("Kind", kind or "text"), int(width or 10)))
    return tuple(columns)


SUMMARY_COLUMNS = _columns(
    "level::8 department:name:16 staff:name:8 staff_name:name:12 inbound_calls:int answered:int "
    "missed:int "
    + " ".join(f"missed_{reason}:int" for reason in MISSED_REASONS)
    + " incomplete:int:12 p1_checked:int p1_met:int p1_rate:rate rings_1:int rings_2:int "
    "rings_3:int rings_4:int rings_5_plus:int apology_expected:int "
    "apology_given_share:not_scored:12 transfers:int p4_met:int p4_rate:rate "
    "p4_wait_median_seconds:seconds:12 p4_wait_p90_seconds:seconds:12 "
    "transfers_attended:int transfers_blind:int transfers_never_connected:int "
    "p5_transfers:int p5_met:int p5_rate:rate p5_direct_number_share:not_scored:12 "
    "callbacks_owed:int callbacks_on_time:int callbacks_late:int callbacks_open:int "
    "callbacks_resolved_by_inbound:int callbacks_cancelled:int p6_rate:rate "
    "p7_checked:int p7_met:int p7_rate:rate scored_calls:int "
    "checklist_mean_score:not_scored:12 checklist_yes_share:not_scored:12"
)
CALL_COLUMNS = _columns(
    "started_at:datetime:20 linkedid:name:18 direction::8 department:name:16 staff:name:8 "
    "staff_name:name:12 number::15 caller_name:stranger:16 outcome::9 missed_reason::12 "
    "ring_seconds:seconds rings:int p1::8 p2::8 transfer_count:int wait_max_seconds:seconds "
    "p4::8 p5::8 hangup_first::10 p7::8 incomplete::8 judged::8 definitions_version:name:10"
)
MISSED_COLUMNS = _columns(
    "started_at:datetime:20 linkedid:name:18 department:name:16 dialed:name:10 number::15 "
    "caller_name:stranger:16 missed_reason::12 ring_seconds:seconds obligation:name:24 "
    "owner:name:12 due_at:datetime:20 state::18 closed_by:name:12 closed_at:datetime:20 "
    "on_time::8"
)
DEFINITION_COLUMNS = _columns("item::40 value:name:80")

# The rates a sheet shows next to their counts: (met, of). JSON gives only the counts.
RATES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "p1_rate": ("p1_met", ("p1_checked",)),
    "p4_rate": ("p4_met", ("transfers",)),
    "p5_rate": ("p5_met", ("p5_transfers",)),
    "p6_rate": ("callbacks_on_time", ("callbacks_on_time", "callbacks_late")),
    "p7_rate": ("p7_met", ("p7_checked",)),
}


def rate(figures: Mapping[str, Any], name: str) -> float | None:
    """A rate of :data:`RATES` (``None`` when nothing was judged)."""
    met, of = RATES[name]
    whole = sum(int(figures[key]) for key in of)
    return None if whole == 0 else int(figures[met]) / whole


def summary_rows(figures: MonthFigures, lang: Lang) -> list[list[Any]]:
    """The department rows, the office row, then the staff rows (charts read the first
    block, so it is contiguous)."""
    rows = [_summary_row(row, "department_level", lang) for row in figures.departments]
    rows.append(_summary_row(figures.office, "office", lang))
    rows += [_summary_row(row, "staff_level", lang) for row in figures.staff]
    return rows


def _summary_row(figures: Mapping[str, Any], level: str, lang: Lang) -> list[Any]:
    values: dict[str, Any] = {**figures, **{name: rate(figures, name) for name in RATES}}
    values["level"] = word(lang, level)
    if level == "office":
        values["department"] = figures["department"] or ""
    elif figures["department"] is None:
        values["department"] = word(lang, "no_department")
    return [values.get(column.key) for column in SUMMARY_COLUMNS]


# --------------------------------------------------------------------------- streamed rows


async def stream(engine: AsyncEngine, query: Select[Any]) -> AsyncGenerator[Sequence[Any], None]:
    """The rows of ``query`` in batches of ``STREAM_BATCH`` (a server-side cursor on
    PostgreSQL): one connection, held while the caller reads."""
    async with engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=STREAM_BATCH))
        async for partition in result.partitions():
            yield partition


TimeForm = Literal["text", "serial"]


def seoul_time(column: Any, dialect: str, form: TimeForm) -> Expression:
    """A stored instant as the sheets show it, made by the database (no per-row parsing):
    ``text``, Seoul wall clock ``YYYY-MM-DD HH:MM:SS.mmm`` (CSV); ``serial``, an Excel date
    serial of the Seoul wall clock (XLSX: a number formatted as a date is a date cell).

    PostgreSQL converts with its zone rules; SQLite (no zone database) adds 9 hours, which
    is Asia/Seoul's offset all year since 1988."""
    if dialect == "postgresql":
        local = column.op("AT TIME ZONE")(literal_column("'Asia/Seoul'"))
        if form == "text":
            return func.to_char(local, "YYYY-MM-DD HH24:MI:SS.MS")
        return func.extract("epoch", local) / 86400.0 + EXCEL_EPOCH_SERIAL
    if form == "text":
        return func.strftime("%Y-%m-%d %H:%M:%f", column, "+9 hours")
    return func.julianday(column, "+9 hours") - JULIAN_DAY_OF_EXCEL_EPOCH


def _scoped(scope: Scope) -> Any:
    where = in_month(scope)
    if scope.department is not None:
        where = and_(where, calls_table.c.department == scope.department)
    return where


def calls_query(scope: Scope, time: Callable[[Any], Expression]) -> Select[Any]:
    """One row per call of the month (never one per leg), with its transfers counted."""
    t = transfers_table.c
    p4 = scope.judgement.p4_met()
    judged = p4.is_not(None)
    p5 = and_(judged, t.other_department.is_(True))
    transfers = (
        select(
            t.linkedid,
            func.count().label("transfer_count"),
            func.max(t.wait_seconds).label("wait_max"),
            count_if(judged).label("p4_judged"),
            count_if(p4.is_(True)).label("p4_met"),
            count_if(p5).label("p5_judged"),
            count_if(and_(p5, p4.is_(True))).label("p5_met"),
        )
        .select_from(transfers_table.join(calls_table, calls_table.c.linkedid == t.linkedid))
        .where(_scoped(scope))
        .group_by(t.linkedid)
        .subquery()
    )
    c = calls_table.c
    x = transfers.c
    return (
        select(
            time(c.started_at).label("started_at"),
            c.linkedid,
            c.direction,
            c.department,
            c.answered_by,
            c.staff,
            c.dialed,
            c.caller,
            c.caller_name,
            c.answered_at,
            c.missed,
            c.missed_reason,
            c.incomplete,
            c.ring_seconds,
            c.rings,
            c.p1_met,
            c.apology_expected,
            c.hangup_first,
            c.p7_met,
            c.judged,
            c.definitions_version,
            x.transfer_count,
            x.wait_max,
            x.p4_judged,
            x.p4_met,
            x.p5_judged,
            x.p5_met,
        )
        .select_from(calls_table.outerjoin(transfers, transfers.c.linkedid == c.linkedid))
        .where(_scoped(scope))
        .order_by(c.started_at, c.linkedid)
    )


class CallRows:
    """Turns the stored calls into the calls sheet's rows, in ``lang`` (one call at a time,
    for every call of the month: the words are looked up in plain dicts)."""

    def __init__(self, scope: Scope, directory: Directory, lang: Lang) -> None:
        self.scope = scope
        self.directory = directory
        self.words: dict[Any, str] = {**WORDS[lang], None: ""}
        self.verdicts = {None: "", True: word(lang, "met"), False: word(lang, "breached")}
        self.yes_no = {None: "", True: word(lang, "yes"), False: word(lang, "no")}

    def row(self, call: Any) -> list[Any]:
        words, verdicts, yes_no = self.words, self.verdicts, self.yes_no
        rings, p1, apology = self._rings(call)
        staff = call.answered_by or call.staff
        if staff is None and self.directory.is_staff(call.dialed):
            staff = call.dialed
        direction = call.direction
        number = call.dialed if direction == "outbound" else call.caller
        return [
            call.started_at,
            call.linkedid,
            words.get(direction, direction),
            call.department or "",
            staff or "",
            self.directory.staff_name(staff) or "",
            mask_number(number) if direction != "internal" else "",
            call.caller_name,
            words[_outcome(call)],
            words.get(call.missed_reason, call.missed_reason),
            call.ring_seconds,
            rings,
            verdicts[p1],
            yes_no[apology],
            call.transfer_count or 0,
            call.wait_max,
            verdicts[_all_met(call.p4_judged, call.p4_met)],
            verdicts[_all_met(call.p5_judged, call.p5_met)],
            words.get(call.hangup_first, call.hangup_first),
            verdicts[call.p7_met],
            yes_no[call.incomplete],
            yes_no[call.judged],
            call.definitions_version,
        ]

    def _rings(self, call: Any) -> tuple[int | None, bool | None, bool | None]:
        """Rings, P1 and P2 as stored, or re-judged by the rules' own arithmetic."""
        if not self.scope.judgement.recompute or call.ring_seconds is None:
            return call.rings, call.p1_met, call.apology_expected
        charter = self.scope.judgement.charter
        rings = rings_heard(call.ring_seconds, charter)
        if call.p1_met is None:  # not a call P1 and P2 ask about
            return rings, None, None
        return rings, rings <= charter.max_rings_p1, rings >= charter.apology_from_ring


def _outcome(call: Any) -> str:
    if call.incomplete:
        return "incomplete"
    if call.answered_at is not None:
        return "answered"
    return "missed" if call.missed else "other"


def _all_met(judged: int | None, met: int | None) -> bool | None:
    """A call's P4 (P5): met when every judged transfer was; none judged, no verdict."""
    return None if not judged else met == judged


def missed_query(scope: Scope, time: Callable[[Any], Expression]) -> Select[Any]:
    """Each missed inbound customer call of the month with the obligation it created or
    joined (none: a misdial below the ring minimum, say) and how that ended."""
    c = calls_table.c
    h = obligation_changes_table.c
    o = obligations_table.c
    joined = and_(h.call_id == c.linkedid, h.kind.in_(("created", "joined")))
    return (
        select(
            time(c.started_at).label("started_at"),
            c.linkedid,
            c.department,
            c.dialed,
            c.caller,
            c.caller_name,
            c.missed_reason,
            c.ring_seconds,
            o.id,
            o.owner,
            o.owner_kind,
            time(o.due_at).label("due_at"),
            o.state,
            o.closed_by,
            time(o.closed_at).label("closed_at"),
        )
        .select_from(
            calls_table.outerjoin(obligation_changes_table, joined).outerjoin(
                obligations_table, o.id == h.obligation_id
            )
        )
        .where(
            _scoped(scope), c.direction == "inbound", c.incomplete.is_(False), c.missed.is_(True)
        )
        .order_by(c.started_at, c.linkedid, o.id)
    )


def missed_row(call: Any, directory: Directory, lang: Lang) -> list[Any]:
    owner = call.owner or ""
    if call.owner_kind == "staff" and directory.staff_name(owner):
        owner = f"{directory.staff_name(owner)}({owner})"
    on_time = {"fulfilled_on_time": True, "fulfilled_late": False}.get(call.state or "")
    return [
        call.started_at,
        call.linkedid,
        call.department or "",
        call.dialed,
        mask_number(call.caller),
        call.caller_name,
        word(lang, call.missed_reason),
        call.ring_seconds,
        call.id or "",
        owner,
        call.due_at,
        word(lang, call.state),
        call.closed_by or "",
        call.closed_at,
        yes_no(lang, on_time),
    ]


def sheet_columns() -> Mapping[str, Sequence[Column]]:
    return {
        "summary": SUMMARY_COLUMNS,
        "calls": CALL_COLUMNS,
        "missed": MISSED_COLUMNS,
        "definitions": DEFINITION_COLUMNS,
    }
