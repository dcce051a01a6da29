"""The sheets of an export: their columns (with a type each) and their rows.

The summary is built from the month's figures (a few hundred rows at most); the calls and
the missed calls are streamed from the database (a server-side cursor on PostgreSQL,
``yield_per`` batches), one row at a time to the writer, so memory does not grow with the
month. Their cells are made by the database as the sheet shows them (words in the export's
language, verdicts, staff names, Seoul times; for CSV the names neutralised): Python only
masks the customer's number (:func:`finish`), so a row costs little more than its fetch.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from sqlalchemy import (
    Select,
    Text,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.calls.model import AfterDial, Direction, HangupSide
from call_monitor.charter.obligations import ObligationState
from call_monitor.checklist.form import Form
from call_monitor.directory import Directory
from call_monitor.export.figures import (
    MISSED_REASONS,
    MonthFigures,
    Scope,
    in_month,
    share,
    staff_names,
)
from call_monitor.export.headers import WORDS, Lang, word
from call_monitor.export.judgement import Expression, count_if
from call_monitor.export.text import FORMULA_STARTS, mask_number
from call_monitor.store.models import calls_table, transfers_table
from call_monitor.store.obligations import obligation_changes_table, obligations_table
from call_monitor.store.sqlite_rows import sqlite_rows

# text: the program's own words; name: text from the directory or the store (department,
# staff, ids); stranger: a caller's text.
# scored_rate / scored_number: a checklist figure, "not scored" in words when none.
Kind = Literal[
    "text", "name", "stranger", "int", "seconds", "rate", "datetime", "scored_rate", "scored_number"
]
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
    "apology_given_share:scored_rate:12 transfers:int p4_met:int p4_rate:rate "
    "p4_wait_median_seconds:seconds:12 p4_wait_p90_seconds:seconds:12 "
    "transfers_attended:int transfers_blind:int transfers_park:int "
    "transfers_external:int transfers_never_connected:int "
    "p5_transfers:int p5_met:int p5_rate:rate p5_direct_number_share:scored_rate:12 "
    "callbacks_owed:int callbacks_on_time:int callbacks_late:int callbacks_open:int "
    "callbacks_resolved_by_inbound:int callbacks_cancelled:int p6_rate:rate "
    "p7_checked:int p7_met:int p7_rate:rate scored_calls:int "
    "checklist_mean_score:scored_number:12 checklist_yes_share:scored_rate:12"
)
CALL_COLUMNS = _columns(
    "started_at:datetime:20 linkedid:name:18 direction::8 department:name:16 staff:name:8 "
    "staff_name:name:12 number::15 caller_name:stranger:16 outcome::9 missed_reason::12 "
    "after_dial::10 queue_wait_seconds:seconds:10 "
    "ring_seconds:seconds rings:int p1::8 p2::8 transfer_count:int wait_max_seconds:seconds "
    "p4::8 p5::8 hangup_first::10 p7::8 incomplete::8 judged::8 definitions_version:name:10"
)
MISSED_COLUMNS = _columns(
    "started_at:datetime:20 linkedid:name:18 department:name:16 dialed:name:10 number::15 "
    "caller_name:stranger:16 missed_reason::12 ring_seconds:seconds obligation:name:24 "
    "owner:name:12 due_at:datetime:20 state::18 closed_by:name:12 closed_at:datetime:20 "
    "on_time::8"
)
CHECKLIST_COLUMNS = _columns(
    "level::8 department:name:16 staff:name:8 staff_name:name:12 checklist_item:name:18 "
    "clause::6 question:name:40 item_answered:int:10 item_yes:int item_yes_share:rate"
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
    values.update(_who(figures, level, lang))
    return [values.get(column.key) for column in SUMMARY_COLUMNS]


def _who(figures: Mapping[str, Any], level: str, lang: Lang) -> dict[str, Any]:
    """A summary-like row's first cells: level, department (in words when none), staff."""
    department = figures["department"]
    if department is None:
        department = "" if level == "office" else word(lang, "no_department")
    return {
        "level": word(lang, level),
        "department": department,
        "staff": figures["staff"],
        "staff_name": figures["staff_name"],
    }


def checklist_rows(figures: MonthFigures, form: Form, lang: Lang) -> list[list[Any]]:
    """The share of "yes" per checklist item, in the summary's row order (departments, the
    office, staff), one row per item answered in the row's scored calls. An item of an
    older form version, not in the current form, shows its id without its question."""
    questions = {item.id: (item.clause, getattr(item, lang)) for item in form.items}
    levels = [
        *((row, "department_level") for row in figures.departments),
        (figures.office, "office"),
        *((row, "staff_level") for row in figures.staff),
    ]
    rows = []
    for figures_row, level in levels:
        who = _who(figures_row, level, lang)
        for item, counts in figures_row["checklist_items"].items():
            clause, question = questions.get(item, ("", ""))
            values = {
                **who,
                "checklist_item": item,
                "clause": clause,
                "question": question,
                "item_answered": counts["answered"],
                "item_yes": counts["yes"],
                "item_yes_share": share(counts["answered"], counts["yes"]),
            }
            rows.append([values[column.key] for column in CHECKLIST_COLUMNS])
    return rows


# --------------------------------------------------------------------------- streamed rows


async def stream(engine: AsyncEngine, query: Select[Any]) -> AsyncGenerator[Sequence[Any], None]:
    """The rows of ``query`` in batches of ``STREAM_BATCH``: on PostgreSQL a server-side
    cursor on a connection held while the caller reads; on a SQLite file a reader process
    (``store/sqlite_rows.py``: it reads while the writer writes)."""
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path and path != ":memory:":
        # The query's few values as literals (the month's bounds, a department's name,
        # quoted by SQLAlchemy): the child takes SQL text alone.
        sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        async for batch in sqlite_rows(path, sql, STREAM_BATCH):
            yield batch
        return
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


class SqlWords:
    """The sheets' words made by the database: a stored value in ``lang``'s words, a
    verdict, yes or no, and (for CSV) text neutralised against formulas. So a streamed row
    comes out of the database as the sheet shows it, but for the masked number."""

    def __init__(self, lang: Lang, neutralise: bool) -> None:
        self.words = WORDS[lang]
        self.neutralise = neutralise

    def of(self, column: Any, values: Sequence[str]) -> Expression:
        """``column``'s value in words (one of ``values``; another one as stored)."""
        mapping = {value: self.words[value] for value in values}
        return func.coalesce(case(mapping, value=column, else_=column), "")

    def verdict(self, met: Any) -> Expression:
        return self._either(met, "met", "breached")

    def yes_no(self, value: Any) -> Expression:
        return self._either(value, "yes", "no")

    def _either(self, value: Any, true: str, false: str) -> Expression:
        return case(
            (value.is_(True), self.words[true]), (value.is_(False), self.words[false]), else_=""
        )

    def text(self, column: Any) -> Expression:
        """Text from outside the program, as a cell: neutralised for CSV (``text.py``)."""
        value = func.coalesce(column, "")
        if not self.neutralise:
            return value
        first = func.substr(value, 1, 1)
        return case((first.in_(FORMULA_STARTS), literal("'", Text).concat(value)), else_=value)


def _transfer_counts(scope: Scope) -> Any:
    """Per call of the month: its transfers, the longest wait, P4 and P5 judged and met."""
    t = transfers_table.c
    p4 = scope.judgement.p4_met()
    judged = p4.is_not(None)
    p5 = and_(judged, t.other_department.is_(True))
    return (
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


def _all_met(judged: Any, met: Any) -> Expression:
    """A call's P4 (P5): met when every judged transfer was; none judged, no verdict."""
    return case((func.coalesce(judged, 0) == 0, null()), else_=met == judged)


def calls_query(
    scope: Scope,
    directory: Directory,
    words: SqlWords,
    time: Callable[[Any], Expression],
    dialect: str,
) -> Select[Any]:
    """One row per call of the month (never one per leg), in start order, its cells in the
    order of :data:`CALL_COLUMNS`; the customer's number still to be masked."""
    c = calls_table.c
    judge = scope.judgement
    x = _transfer_counts(scope)
    names = staff_names(directory)
    # Nobody answered: the extension dialled, when it is a staff member's.
    dialed_staff = case((c.dialed.in_(select(names.c.extension)), c.dialed))
    staff = func.coalesce(c.answered_by, c.staff, dialed_staff)
    named = names.alias("named")
    outcome = case(
        (c.incomplete.is_(True), words.words["incomplete"]),
        (c.answered_at.is_not(None), words.words["answered"]),
        (c.missed.is_(True), words.words["missed"]),
        else_=words.words["other"],
    )
    number = case(
        (c.direction == "outbound", c.dialed), (c.direction == "internal", ""), else_=c.caller
    )
    cells = {
        "started_at": time(c.started_at),
        "linkedid": words.text(c.linkedid),
        "direction": words.of(c.direction, get_args(Direction)),
        "department": words.text(c.department),
        "staff": words.text(staff),
        "staff_name": words.text(named.c.name),
        "number": func.coalesce(number, ""),
        "caller_name": words.text(c.caller_name),
        "outcome": outcome,
        "missed_reason": words.of(c.missed_reason, MISSED_REASONS),
        "after_dial": words.of(c.after_dial, get_args(AfterDial)),
        "queue_wait_seconds": c.queue_wait_seconds,
        "ring_seconds": c.ring_seconds,
        "rings": judge.rings(dialect),
        "p1": words.verdict(judge.p1_met()),
        "p2": words.yes_no(judge.apology_expected()),
        "transfer_count": func.coalesce(x.c.transfer_count, 0),
        "wait_max_seconds": x.c.wait_max,
        "p4": words.verdict(_all_met(x.c.p4_judged, x.c.p4_met)),
        "p5": words.verdict(_all_met(x.c.p5_judged, x.c.p5_met)),
        "hangup_first": words.of(c.hangup_first, get_args(HangupSide)),
        "p7": words.verdict(c.p7_met),
        "incomplete": words.yes_no(c.incomplete),
        "judged": words.yes_no(c.judged),
        "definitions_version": words.text(c.definitions_version),
    }
    return (
        select(*(cells[column.key].label(column.key) for column in CALL_COLUMNS))
        .select_from(
            calls_table.outerjoin(x, x.c.linkedid == c.linkedid).outerjoin(
                named, named.c.extension == staff
            )
        )
        .where(_scoped(scope))
        .order_by(c.started_at, c.linkedid)
    )


def missed_query(
    scope: Scope, directory: Directory, words: SqlWords, time: Callable[[Any], Expression]
) -> Select[Any]:
    """Each missed inbound customer call of the month with the obligation it created or
    joined (none: a misdial below the ring minimum, say) and how that ended; cells in the
    order of :data:`MISSED_COLUMNS`, the customer's number still to be masked."""
    c = calls_table.c
    h = obligation_changes_table.c
    o = obligations_table.c
    names = staff_names(directory)
    owner_name = names.c.name.concat("(").concat(o.owner).concat(")")
    owner = case(
        (and_(o.owner_kind == "staff", names.c.name.is_not(None)), owner_name), else_=o.owner
    )
    state = o.state
    cells = {
        "started_at": time(c.started_at),
        "linkedid": words.text(c.linkedid),
        "department": words.text(c.department),
        "dialed": words.text(c.dialed),
        "number": func.coalesce(c.caller, ""),
        "caller_name": words.text(c.caller_name),
        "missed_reason": words.of(c.missed_reason, MISSED_REASONS),
        "ring_seconds": c.ring_seconds,
        "obligation": words.text(o.id),
        "owner": words.text(owner),
        "due_at": time(o.due_at),
        "state": words.of(state, get_args(ObligationState)),
        "closed_by": words.text(o.closed_by),
        "closed_at": time(o.closed_at),
        "on_time": words.yes_no(
            case((state == "fulfilled_on_time", true()), (state == "fulfilled_late", false()))
        ),
    }
    joined = and_(h.call_id == c.linkedid, h.kind.in_(("created", "joined")))
    return (
        select(*(cells[column.key].label(column.key) for column in MISSED_COLUMNS))
        .select_from(
            calls_table.outerjoin(obligation_changes_table, joined)
            .outerjoin(obligations_table, o.id == h.obligation_id)
            .outerjoin(names, names.c.extension == o.owner)
        )
        .where(
            _scoped(scope), c.direction == "inbound", c.incomplete.is_(False), c.missed.is_(True)
        )
        .order_by(c.started_at, c.linkedid, o.id)
    )


# SQL text constants, inline (not one bound parameter per use).
_QUOTE = literal_column("'\"'", Text)
_TWO_QUOTES = literal_column("'\"\"'", Text)
_COMMA = literal_column("','", Text)


def csv_lines(query: Select[Any], columns: Sequence[Column], dialect: str) -> Select[Any]:
    """A streamed sheet's query (:func:`calls_query`, :func:`missed_query` with text
    neutralised and times as text) as CSV the database makes: per row, the line before
    the customer's number (with its comma), the number (masked by :func:`csv_line`), and
    the rest of the line. Text quoted (a quote doubled: RFC 4180), numbers as the database
    writes them, nothing for null. Why in SQL: a row then crosses to Python as three values,
    not twenty-five, and PostgreSQL makes it on a core of its own (CSV of 300,000 calls:
    ``benchmarks/README.md``)."""
    cells = list(query.selected_columns)
    split = [column.key for column in columns].index("number")
    head = _csv_joined(cells[:split], columns[:split], dialect, "", ",")
    tail = _csv_joined(cells[split + 1 :], columns[split + 1 :], dialect, ",", "")
    return query.with_only_columns(head.label("head"), cells[split], tail.label("tail"))


def _csv_joined(
    cells: Sequence[Any], columns: Sequence[Column], dialect: str, start: str, end: str
) -> Expression:
    """The fields of ``cells`` joined by commas, between ``start`` and ``end``."""
    if dialect == "sqlite":
        # One printf: SQLite's || copies the growing line once per field (measured: the
        # line cost its reader more than the cells), and %w doubles a quote, as CSV does.
        specs = ['"%w"' if c.kind in _CSV_TEXT else "%s" for c in columns]
        values = [func.coalesce(cell, "") for cell in cells]  # %w writes null as "(NULL)"
        return func.printf(start + ",".join(specs) + end, *values)
    fields = [_csv_field(cell, column.kind) for cell, column in zip(cells, columns, strict=True)]
    line: Expression = literal_column(f"'{start}'", Text).concat(fields[0])
    for field in fields[1:]:
        line = line.concat(_COMMA).concat(field)
    return line.concat(literal_column(f"'{end}'", Text))


_CSV_TEXT = ("text", "name", "stranger")


def _csv_field(cell: Any, kind: Kind) -> Expression:
    if kind in ("int", "seconds"):
        return func.coalesce(sql_cast(cell, Text), "")
    if kind == "datetime":  # text already (seoul_time), digits and separators only
        return func.coalesce(cell, "")
    quoted = func.replace(func.coalesce(cell, ""), _QUOTE, _TWO_QUOTES)
    return _QUOTE.concat(quoted).concat(_QUOTE)


def csv_line(cells: Sequence[Any]) -> str:
    """A row of :func:`csv_lines` as its CSV line, the number masked."""
    head, number, tail = cells
    return f"{head}{masked(number)}{tail}\r\n"


@functools.lru_cache(maxsize=8192)
def masked(number: str) -> str:
    """:func:`mask_number`, remembered: a month's callers call more than once."""
    return mask_number(number)


def finish(index: int) -> Callable[[Sequence[Any]], list[Any]]:
    """A streamed row as the sheet's: the number in column ``index`` masked."""

    def row(cells: Sequence[Any]) -> list[Any]:
        values = list(cells)
        values[index] = masked(values[index])
        return values

    return row


def sheet_columns() -> Mapping[str, Sequence[Column]]:
    return {
        "summary": SUMMARY_COLUMNS,
        "calls": CALL_COLUMNS,
        "missed": MISSED_COLUMNS,
        "checklist": CHECKLIST_COLUMNS,
        "definitions": DEFINITION_COLUMNS,
    }
