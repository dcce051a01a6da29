"""``call-monitor export``: the month's export file and its manifest; ``export verify``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from call_monitor.checklist.form import FormError
from call_monitor.config import Settings
from call_monitor.export.build import ExportRequest, no_progress
from call_monitor.export.manifest import verify
from call_monitor.export.month import Month
from call_monitor.export.run import export_month_sync


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.export_command == "verify":
        return _verify(args.manifest)
    missing = [f"--{name}" for name in ("month", "format", "out") if getattr(args, name) is None]
    if missing:
        print(f"call-monitor export: {', '.join(missing)} required", file=sys.stderr)
        return 2
    try:
        month = Month.parse(args.month)
    except ValueError as exc:
        print(f"call-monitor export: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    if not out.parent.is_dir():
        print(f"call-monitor export: --out: no directory {out.parent}", file=sys.stderr)
        return 2
    request = ExportRequest(month, args.format, out, args.lang, args.department, args.recompute)
    store = make_url(settings.store.url).render_as_string(hide_password=True)
    try:
        with _progress(sys.stderr.isatty()) as (started, advance):
            manifest = export_month_sync(settings, request, advance, started)
    except (SQLAlchemyError, OSError) as exc:
        reason = getattr(exc, "orig", None) or exc
        print(f"call-monitor export: cannot export from {store}: {reason}", file=sys.stderr)
        return 1
    except FormError as exc:  # the checklist's questions head its sheet: the form is read
        print(f"call-monitor export: {exc}", file=sys.stderr)
        return 1
    print(f"{out}\n{manifest}")
    return 0


@contextmanager
def _progress(
    on_terminal: bool,
) -> Iterator[tuple[Callable[[int], None] | None, Callable[[int], None]]]:
    """A progress bar over the call rows on a terminal; nothing otherwise."""
    if not on_terminal:
        yield None, no_progress
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # On stderr: stdout says which files were written.
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("export", total=None)

        def started(total: int) -> None:
            bar.update(task, total=total)

        def advance(rows: int) -> None:
            bar.advance(task, rows)

        yield started, advance


def _verify(path: Path) -> int:
    try:
        problems = verify(path)
    except (OSError, ValueError) as exc:
        print(f"call-monitor export verify: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"call-monitor export verify: {problem.name}: {problem.reason}", file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: every file matches")
    return 0
