"""Run an export: read, write the file, write its manifest.

:func:`export_month_sync` does it all on an event loop of its own (call it from a thread or
from a command); :func:`export_month` is for async code: it runs the former in a worker
thread, so a web request's export never blocks the server's loop. The file is written under
a temporary name and renamed when complete: a failed export leaves no half file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from call_monitor.config import Settings
from call_monitor.export.build import ExportData, ExportRequest, gather, no_progress, row_total
from call_monitor.export.csvzip import write_csv_zip
from call_monitor.export.html import write_html
from call_monitor.export.jsonout import write_json
from call_monitor.export.manifest import write_manifest
from call_monitor.export.xlsx import write_xlsx
from call_monitor.store.engine import create_engine

WRITERS: dict[str, Callable[[ExportData, Path], None]] = {
    "xlsx": write_xlsx,
    "csv": write_csv_zip,
    "json": write_json,
    "html": write_html,
}


def export_month_sync(
    settings: Settings,
    request: ExportRequest,
    progress: Callable[[int], None] = no_progress,
    started: Callable[[int], None] | None = None,
) -> Path:
    """Write ``request.out`` and its manifest; the manifest's path.

    ``started(total)``: told how many call rows will stream (for a progress bar);
    ``progress(rows)``: told as they do."""
    loop = asyncio.new_event_loop()
    engine = create_engine(settings.store.url)
    try:
        data = loop.run_until_complete(gather(request, settings, engine, progress))
        try:
            if started is not None:
                started(loop.run_until_complete(row_total(engine, data.scope)))
            partial = request.out.with_name(f".{request.out.name}.partial-{os.getpid()}")
            try:
                WRITERS[request.format](data, partial)
                partial.replace(request.out)
            finally:
                partial.unlink(missing_ok=True)
            return write_manifest(data, [request.out])
        finally:
            data.close()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


async def export_month(
    settings: Settings,
    request: ExportRequest,
    progress: Callable[[int], None] = no_progress,
) -> Path:
    """:func:`export_month_sync` in a worker thread (never on the caller's loop)."""
    return await asyncio.to_thread(export_month_sync, settings, request, progress)
