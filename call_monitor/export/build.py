"""What one export reads from the store: the figures, the definitions, and the calls and
missed calls as row streams (each read when its writer asks, once).

An export runs in a thread of its own with an event loop of its own (``run.py``): the
writers are plain synchronous code (xlsxwriter, csv, zipfile), and the streams below drive
that private loop a batch of rows at a time, so no other event loop is ever blocked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.checklist.files import load_form
from call_monitor.checklist.form import Form
from call_monitor.config import Settings
from call_monitor.directory import Directory
from call_monitor.export.definitions import definition_rows
from call_monitor.export.figures import MonthFigures, Scope, in_month, month_figures
from call_monitor.export.headers import Lang
from call_monitor.export.judgement import Judgement
from call_monitor.export.month import Month
from call_monitor.export.sheets import (
    CALL_COLUMNS,
    MISSED_COLUMNS,
    Column,
    SqlWords,
    TimeForm,
    calls_query,
    checklist_rows,
    csv_line,
    csv_lines,
    finish,
    missed_query,
    seoul_time,
    stream,
    summary_rows,
)
from call_monitor.store.models import calls_table
from call_monitor.timefmt import SEOUL

Format = Literal["xlsx", "csv", "json", "html"]
FORMATS: tuple[Format, ...] = ("xlsx", "csv", "json", "html")
SHEETS = ("summary", "calls", "missed", "checklist", "definitions")
Row = TypeVar("Row")
Stream = tuple["asyncio.Task[Sequence[Any] | None]", AsyncGenerator[Sequence[Any], None]]
HISTORY_MONTHS = 6  # months the HTML report looks back for its month-over-month charts
CALL_PARTS = 4  # the calls sheet is read in this many stretches of the month
PARTS_IN_FLIGHT = 2  # stretches the database works on at once


@dataclass(frozen=True, slots=True)
class ExportRequest:
    month: Month
    format: Format
    out: Path
    lang: Lang = "ko"
    department: str | None = None
    recompute: bool = False

    def query(self) -> dict[str, Any]:
        """The request as the manifest records it."""
        return {
            "month": str(self.month),
            "format": self.format,
            "lang": self.lang,
            "department": self.department,
            "recompute": self.recompute,
        }


def no_progress(rows: int) -> None:
    """A progress callback that shows nothing (not a terminal)."""


@dataclass
class ExportData:
    """Everything an export's writers read; the streams count their rows."""

    request: ExportRequest
    settings: Settings
    loop: asyncio.AbstractEventLoop  # the export's own (run.py)
    engine: AsyncEngine
    directory: Directory
    scope: Scope
    generated_at: datetime
    # The figures, being counted by the database on a connection of their own while the
    # call rows stream on another (the spreadsheets write the summary last): awaited by
    # ``figures``, cancelled by ``close``.
    pending_figures: asyncio.Future[MonthFigures]
    stored_versions: list[str]
    definitions: list[list[str]]
    form: Form  # the checklist form in force: its items' questions
    progress: Callable[[int], None] = no_progress
    row_counts: dict[str, int] = field(default_factory=dict)
    # The streams asked for: their first batch's task and their rows (closed by close()).
    open_streams: list[Stream] = field(default_factory=list)

    @property
    def figures(self) -> MonthFigures:
        if not self.pending_figures.done():
            self.loop.run_until_complete(self.pending_figures)
        return self.pending_figures.result()

    def close(self) -> None:
        """Stop the figures' counting and the streams if the export ended before it needed
        them all; give back their connections (a SQLite reader: its process)."""
        pending: list[asyncio.Future[Any]] = [self.pending_figures]
        pending += [first for first, _ in self.open_streams]
        for task in pending:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    self.loop.run_until_complete(task)
        for _, batches in self.open_streams:
            self.loop.run_until_complete(batches.aclose())
        self.open_streams.clear()

    @property
    def lang(self) -> Lang:
        return self.request.lang

    @property
    def definitions_version(self) -> str:
        """The version the figures were judged under: the current one when re-judged, else
        the stored verdicts' (several, comma-separated, if the month spans a change)."""
        if self.request.recompute or not self.stored_versions:
            return self.settings.charter.definitions_version
        return ", ".join(self.stored_versions)

    def summary(self) -> list[list[Any]]:
        rows = summary_rows(self.figures, self.lang)
        self.row_counts["summary"] = len(rows)
        return rows

    def checklist(self) -> list[list[Any]]:
        rows = checklist_rows(self.figures, self.form, self.lang)
        self.row_counts["checklist"] = len(rows)
        return rows

    def definition_rows(self) -> list[list[str]]:
        self.row_counts["definitions"] = len(self.definitions)
        return self.definitions

    @property
    def _dialect(self) -> str:
        return self.engine.dialect.name

    def _cells(self, times: TimeForm) -> tuple[SqlWords, Callable[[Any], Any]]:
        """How the streamed sheets' cells are made: the words (neutralised for CSV, whose
        times are text) and the times (see :func:`seoul_time`)."""
        dialect = self._dialect
        words = SqlWords(self.lang, neutralise=times == "text")
        return words, lambda column: seoul_time(column, dialect, times)

    def _call_parts(self, times: TimeForm) -> list[Select[Any]]:
        """The calls query of each part of the month (see :meth:`_rows`)."""
        words, time = self._cells(times)
        return [
            calls_query(part, self.directory, words, time, self._dialect)
            for part in self.scope.parts(CALL_PARTS)
        ]

    def _missed_query(self, times: TimeForm) -> Select[Any]:
        words, time = self._cells(times)
        return missed_query(self.scope, self.directory, words, time)

    def calls(self, times: TimeForm) -> Iterator[list[Any]]:
        """The calls sheet's rows, times as ``times`` (see :func:`seoul_time`); with
        ``text`` the names come neutralised. The database starts on them now: ask for them
        first, write another sheet meanwhile (``missed``), then these."""
        return self._rows("calls", self._call_parts(times), _finish_row(CALL_COLUMNS))

    def missed(self, times: TimeForm) -> Iterator[list[Any]]:
        query = self._missed_query(times)
        return self._rows("missed", [query], _finish_row(MISSED_COLUMNS))

    def calls_csv(self) -> Iterator[str]:
        """The calls sheet as CSV lines (``sheets.csv_lines``), started now as ``calls``."""
        queries = [csv_lines(q, CALL_COLUMNS, self._dialect) for q in self._call_parts("text")]
        return self._rows("calls", queries, csv_line)

    def missed_csv(self) -> Iterator[str]:
        query = csv_lines(self._missed_query("text"), MISSED_COLUMNS, self._dialect)
        return self._rows("missed", [query], csv_line)

    def _rows(
        self, sheet: str, queries: Sequence[Select[Any]], finished: Callable[[Sequence[Any]], Row]
    ) -> Iterator[Row]:
        """The rows of ``queries``, one after the other. Each is started before its rows
        are wanted, and two at a time: the database makes a part's rows (PostgreSQL: all
        of them before the first, 1-2 s for a month) while the writer writes the part
        before, or another sheet. The first ones start now (the loop runs them whenever it
        runs for anything; SQLite's reader starts its process)."""
        started = [self._start(query) for query in queries[:PARTS_IN_FLIGHT]]
        return self._finished(sheet, started, queries[PARTS_IN_FLIGHT:], finished)

    def _start(self, query: Select[Any]) -> Stream:
        batches = stream(self.engine, query)
        first = self.loop.create_task(_next(batches))
        self.open_streams.append((first, batches))
        return first, batches

    def _finished(
        self,
        sheet: str,
        started: list[Stream],
        waiting: Sequence[Select[Any]],
        finished: Callable[[Sequence[Any]], Row],
    ) -> Iterator[Row]:
        """The rows as the sheet shows them (``finished``: the number masked), counted."""
        count = 0
        queued = iter(waiting)
        while started:
            first, batches = started.pop(0)
            if (query := next(queued, None)) is not None:
                started.append(self._start(query))
            batch = self.loop.run_until_complete(first)
            while batch is not None:
                for cells in batch:
                    yield finished(cells)
                count += len(batch)
                if sheet == "calls":
                    self.progress(len(batch))
                batch = self.loop.run_until_complete(_next(batches))
        self.row_counts[sheet] = count

    def history(self) -> list[tuple[str, dict[str, Any]]]:
        """The office figures of this month and of up to ``HISTORY_MONTHS - 1`` before it
        that have calls, oldest first (the HTML report's month over month)."""
        found: list[tuple[str, dict[str, Any]]] = []
        for back in range(HISTORY_MONTHS - 1, 0, -1):
            month = self.request.month.shifted(-back)
            scope = Scope(month, self.scope.judgement, self.scope.department)
            office = self.loop.run_until_complete(self._office(scope))
            if office["inbound_calls"]:
                found.append((str(month), office))
        found.append((str(self.request.month), self.figures.office))
        return found

    async def _office(self, scope: Scope) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            return (await month_figures(conn, scope, self.directory)).office


def _finish_row(columns: Sequence[Column]) -> Callable[[Sequence[Any]], list[Any]]:
    return finish([column.key for column in columns].index("number"))


async def _next(batches: AsyncIterator[Sequence[Any]]) -> Sequence[Any] | None:
    """The next batch; ``None`` after the last."""
    return await anext(batches, None)


async def _figures(engine: AsyncEngine, scope: Scope, directory: Directory) -> MonthFigures:
    async with engine.connect() as conn:
        return await month_figures(conn, scope, directory)


async def row_total(engine: AsyncEngine, scope: Scope) -> int:
    """How many call rows the export streams (for a progress bar)."""
    query = select(func.count()).select_from(calls_table).where(in_month(scope))
    if scope.department is not None:
        query = query.where(calls_table.c.department == scope.department)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def gather(
    request: ExportRequest,
    settings: Settings,
    engine: AsyncEngine,
    progress: Callable[[int], None] = no_progress,
) -> ExportData:
    """Read the figures, the stored versions and the definitions of ``request``; call it
    on the export's own loop."""
    directory = Directory(settings.directory)
    scope = Scope(request.month, Judgement(settings.charter, request.recompute), request.department)
    form = load_form(settings.checklist.form)  # a bad form file: FormError, before any query
    # Counted meanwhile; awaited by ExportData.figures, cancelled by its close() (or here).
    figures = asyncio.ensure_future(_figures(engine, scope, directory))
    try:
        return await _data(
            request,
            settings,
            engine,
            directory=directory,
            scope=scope,
            figures=figures,
            form=form,
            progress=progress,
        )
    except BaseException:
        figures.cancel()
        with contextlib.suppress(BaseException):
            await figures
        raise


async def _data(
    request: ExportRequest,
    settings: Settings,
    engine: AsyncEngine,
    *,
    directory: Directory,
    scope: Scope,
    figures: asyncio.Future[MonthFigures],
    form: Form,
    progress: Callable[[int], None],
) -> ExportData:
    async with engine.connect() as conn:
        versions = await conn.execute(
            select(calls_table.c.definitions_version)
            .where(in_month(scope))
            .distinct()
            .order_by(calls_table.c.definitions_version)
        )
        stored = [str(v) for v in versions.scalars()]
    return ExportData(
        request=request,
        settings=settings,
        loop=asyncio.get_running_loop(),
        engine=engine,
        directory=directory,
        scope=scope,
        generated_at=datetime.now(SEOUL),
        pending_figures=figures,
        stored_versions=stored,
        definitions=definition_rows(
            settings, request.month, request.lang, stored, request.recompute
        ),
        form=form,
        progress=progress,
    )
