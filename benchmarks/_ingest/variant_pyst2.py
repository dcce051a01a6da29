"""(d) pyst2's ``asterisk.manager.Manager`` with a catch-all event callback that counts.

pyst2 reads its socket through an unbuffered ``makefile`` one line at a time (a ``recv``
per byte), parses in one thread and dispatches in another. It is known to hang on some
inputs (a thread that dies leaves the others waiting forever), so everything runs under a
watchdog: past the timeout the child reports how far it got and exits.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from asterisk.manager import Event, Manager

from _ingest.common import (
    HOST,
    SECRET,
    USERNAME,
    ClientArgs,
    emit,
    peak_rss_kib,
    ru_maxrss_kib,
)


class _Progress:
    def __init__(self) -> None:
        self.events = 0
        self.stage = "connecting"
        self.started_at: float | None = None


def run(args: ClientArgs) -> dict[str, Any]:
    progress = _Progress()
    began = time.perf_counter()

    def on_event(event: Event, manager: Manager) -> None:
        progress.events += 1

    def watchdog() -> None:
        # pyst2's threads (and its __del__, which logs off a dead link) can block the
        # interpreter's exit: report and leave at once.
        emit(_hung(progress, args, began))
        os._exit(0)

    timer = threading.Timer(args.timeout, watchdog)
    timer.daemon = True
    timer.start()

    manager = Manager()
    manager.register_event("*", on_event)
    manager.connect(HOST, args.port)
    progress.stage = "logging in"
    manager.login(USERNAME, SECRET)
    progress.started_at = time.perf_counter()
    progress.stage = "streaming"
    # The dispatch thread ends when the receive thread reports the end of the stream.
    manager.event_dispatch_thread.join()
    elapsed = time.perf_counter() - progress.started_at
    timer.cancel()
    result = {
        "events": progress.events,
        "seconds": elapsed,
        "peak_rss_kib": peak_rss_kib(),
        "ru_maxrss_kib": ru_maxrss_kib(),
    }
    emit(result)
    os._exit(0)  # same reason as the watchdog's


def _hung(progress: _Progress, args: ClientArgs, began: float) -> dict[str, Any]:
    now = time.perf_counter()
    streaming = None if progress.started_at is None else now - progress.started_at
    return {
        "error": f"hung while {progress.stage}: no end after {now - began:.0f} s",
        "hung": True,
        "events": progress.events,
        "seconds": streaming,
        "peak_rss_kib": peak_rss_kib(),
        "ru_maxrss_kib": ru_maxrss_kib(),
    }
