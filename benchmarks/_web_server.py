"""The server side of ``benchmarks/web.py``, one process per phase: the real daemon
(``call_monitor.daemon.service.Daemon``: AMI client, pipeline, store writer, callbacks,
web app, all in one event loop) on a filled store, reading the playback AMI server's paced
stream while the orchestrator's people browse its pages.

``python benchmarks/_web_server.py JSON``, with ``PYTHONPATH`` naming the tree whose
``call_monitor`` is measured (the orchestrator compares two trees in one run this way).
It prints ``READY <call_monitor path>`` once the web listens and the AMI link is up; reads
``START`` (the browsing begins: record from now) and ``STOP`` (it ended) on stdin; then
prints one ``RESULT {json}`` line: each handled AMI item's lag (arrival of its bytes to the
end of its handling, as ``benchmarks/ingest.py`` measures it) and the loop's lateness
(a probe waking every 5 ms), both over the browsing only.

The one addition to the daemon's app: ``POST /bench/checklist/{linkedid}``, a checklist
submit through the daemon's ``ChecklistService`` (open the call's items, answer yes to what
the PBX did not measure, submit; a correction when already scored), behind the same
middlewares and session as the pages, until the checklist page itself is on main.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _ingest (the timed framer)

from _ingest.variant_full import TimedQueue, instrument
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

import call_monitor
from call_monitor.ami.stream import StreamItem
from call_monitor.checklist.scoring import Given
from call_monitor.config import (
    AmiSettings,
    DepartmentEntry,
    DirectorySettings,
    Settings,
    StaffEntry,
    StoreSettings,
    WebSettings,
)
from call_monitor.daemon.service import QUEUE_SIZE, Daemon
from call_monitor.web.auth import Accounts

DEPARTMENTS = [f"부서{d:02d}" for d in range(60)]
STAFF_PER_DEPARTMENT = 20
PROBE_SECONDS = 0.005
AMI_USER, AMI_SECRET = "bench", "bench"  # what _ingest/server.py accepts


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


class TimedDaemon(Daemon):
    """The real daemon; each queue item's lag noted while ``recording``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.recording = False
        self.lags: list[float] = []
        self.linked = asyncio.Event()

    def _handle(self, item: StreamItem) -> None:
        queue = self.queue
        assert isinstance(queue, TimedQueue)
        arrived = queue.arrivals.popleft()
        super()._handle(item)
        if self.recording:
            self.lags.append(time.perf_counter() - arrived)
        self.linked.set()


def add_checklist_route(daemon: TimedDaemon) -> None:
    accounts = Accounts(daemon.engine)
    service = daemon.checklists

    async def submit(request: Request, linkedid: str) -> JSONResponse:
        user = await accounts.user(request)
        if user is None:
            return JSONResponse({"detail": "login"}, status_code=401)
        prepared = await service.prepare(linkedid)
        answers = {
            a.item.id: Given("yes") for a in prepared.asked if a.applicable and a.prefilled is None
        }
        reason = "benchmark: corrected" if prepared.history.revisions else None
        revision = await service.submit(linkedid, answers, user.login, reason)
        return JSONResponse({"revision": revision.revision, "score": revision.score})

    daemon.app.add_api_route("/bench/checklist/{linkedid}", submit, methods=["POST"])


async def probe(lateness: list[float], daemon: TimedDaemon) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + PROBE_SECONDS
        await asyncio.sleep(PROBE_SECONDS)
        if daemon.recording:
            lateness.append(max(0.0, loop.time() - due))


async def _unless_ended(running: asyncio.Task[None], ready: asyncio.Event) -> None:
    """Wait for ``ready``; the daemon's error if it ends first."""
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait((running, waiting), return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        waiting.cancel()
        running.result()
        raise RuntimeError("the daemon ended before it was ready")


async def _line() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def run(config: dict[str, Any]) -> dict[str, Any]:
    instrument()
    settings = Settings(
        ami=AmiSettings(host="127.0.0.1", port=config["ami_port"], username=AMI_USER),
        store=StoreSettings(url=config["store_url"]),
        web=WebSettings(
            host="127.0.0.1",
            port=config["web_port"],
            session_secret=SecretStr(config["secret"]),
        ),
        directory=directory_settings(),
    )
    daemon = TimedDaemon(settings, SecretStr(AMI_SECRET), queue=TimedQueue(QUEUE_SIZE))
    add_checklist_route(daemon)
    running = asyncio.create_task(daemon.run(), name="daemon")
    lateness: list[float] = []
    prober = asyncio.create_task(probe(lateness, daemon), name="probe")
    try:
        for ready in (daemon.web_started, daemon.linked):
            await _unless_ended(running, ready)
        print(f"READY {Path(call_monitor.__file__).parent}", flush=True)
        if await _line() != "START":
            raise RuntimeError("expected START")
        daemon.recording = True
        started = time.perf_counter()
        if await _line() != "STOP":
            raise RuntimeError("expected STOP")
        daemon.recording = False
        seconds = time.perf_counter() - started
    finally:
        prober.cancel()
        daemon.stop()
        await running
    return {
        "seconds": seconds,
        "lags": daemon.lags,
        "lateness": lateness,
        "events": daemon.client.stats.events,
        "calls": daemon.pipeline.correlator.stats.calls_ended,
        "stored": daemon.writer.stats.written,
    }


def main() -> int:
    result = asyncio.run(run(json.loads(sys.argv[1])))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
