"""The whole daemon (AMI client, pipeline, store, web) over real sockets.

A :class:`PlaybackServer` plays recordings on a loopback TCP port, the real
:class:`~call_monitor.daemon.service.Daemon` connects to it, judges the calls, writes them to a
SQLite file and serves ``/metrics``. What it concludes must be exactly what the offline
``replay()`` of the same bytes concludes, whatever the TCP chunk boundaries were.
The demo as a real process (SIGTERM, exit code, nothing lost) is checked at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from call_monitor.charter.judged import JudgedCall, call_report
from call_monitor.config import AmiSettings, Settings, StoreSettings, WebSettings
from call_monitor.daemon.pipeline import StageFailed, replay
from call_monitor.daemon.service import Daemon
from call_monitor.demo.pbx import (
    RECORDINGS_DIR,
    PlaybackServer,
    Recording,
    chain,
    recording_path,
    script_for,
)
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.store import count_calls, create_engine, load_call
from tests.faults import BAD, BAD_OBLIGATION, BURST, InjectedBug, plant_bug

DEADLINE = 30.0  # bound for any one wait; the runs finish far sooner
STOP_SECONDS = 5.0  # SIGTERM to exit (uvicorn's own graceful limit is 5 s for open requests)
SECRET = "daemon-test-secret-5c1d"

RECORDINGS = sorted(
    p
    for p in RECORDINGS_DIR.glob("*.ami")
    if ".part" not in p.name and not p.name.endswith(".full.ami")
)
FULL = [
    recording_path(f"{name}.full.ami")
    for name in (
        "e_blind_transfer",
        "f1_attended_transfer_2s",
        "h2_queue_ringall",
        "i1_group_pickup",
    )
]
RECONNECT = [
    recording_path("s_ami_reconnect_midcall.part1.ami"),
    recording_path("s_ami_reconnect_midcall.part2.ami"),
]
TINY_UP_TO = 70_000  # bytes: tiny chunks on bigger files only make the run slow
SMALL_UP_TO = 200_000


def chunking(path: Path, seed: int) -> tuple[int, int]:
    """(chunk_seed, max_chunk): random pieces as small as the file's size allows."""
    size = path.stat().st_size
    if size <= TINY_UP_TO:
        return seed, 7  # crosses every multi-byte boundary there is
    if size <= SMALL_UP_TO:
        return seed, 61
    return seed, 4096


# Each recording twice: whole writes as a PBX sends them, and random pieces (a seed each);
# the read=all streams in random pieces only.
CASES = [
    pytest.param([path], seed, size, id=f"{path.name}-{seed}-{size}")
    for number, path in enumerate([*RECORDINGS, *FULL], start=1)
    for seed, size in ([(None, 0)] if path in RECORDINGS else []) + [chunking(path, number)]
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def daemon_settings(ami_port: int, db: Path) -> Settings:
    return Settings(
        ami=AmiSettings(
            host="127.0.0.1",
            port=ami_port,
            connect_timeout_seconds=5.0,
            action_timeout_seconds=5.0,
            reconnect_initial_seconds=0.01,
            reconnect_max_seconds=0.05,
        ),
        store=StoreSettings(url=sqlite_url(db), flush_interval_seconds=0.05),
        web=WebSettings(host="127.0.0.1", port=free_port()),
    )


def offline(paths: Sequence[Path], settings: Settings) -> list[dict[str, Any]]:
    return [
        call_report(r.record, r.verdict)
        for r in replay(paths, settings)
        if isinstance(r, JudgedCall)
    ]


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def metric_total(text: str, name: str) -> float:
    return sum(value for _, value in metric_samples(text, name))


async def until(predicate: Callable[[], bool]) -> None:
    """Poll a plain counter (there is no event to wait on), bounded by DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@dataclass
class Live:
    """A running daemon and its playback server; ``calls`` fills as calls finish."""

    daemon: Daemon
    server: PlaybackServer
    web: httpx.AsyncClient
    calls: list[JudgedCall] = field(default_factory=list)

    @property
    def reports(self) -> list[dict[str, Any]]:
        return [call_report(c.record, c.verdict) for c in self.calls]

    async def consumed(self) -> None:
        """Wait until the server played everything and the pipeline has taken all of it.

        The server plays in order and answers a Ping after every byte played before it; the
        client reads in order, so once the Pong is back every event is on the queue. The
        consumer handles each item in the step that takes it off the queue: an empty queue
        means every item has been through the pipeline.
        """
        client = self.daemon.client
        async with asyncio.timeout(DEADLINE):
            await self.server.finished
            await until(lambda: client.connected)
            pong = await client.action("Ping")
            assert pong.get("Ping") == "Pong"
            await until(self.daemon.queue.empty)

    async def metrics(self) -> str:
        response = await self.web.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text


@contextlib.asynccontextmanager
async def live_daemon(
    script: Sequence[Recording | bytes],
    db: Path,
    *,
    chunk_seed: int | None = None,
    max_chunk: int = 512,
) -> AsyncIterator[Live]:
    """Run the daemon against a playback of ``script``; on exit stop it and check it ended
    cleanly (a stop, not a crash)."""
    async with PlaybackServer(
        list(script), chunk_seed=chunk_seed, max_chunk=max_chunk, secret=SECRET
    ) as server:
        settings = daemon_settings(server.port, db)
        calls: list[JudgedCall] = []
        daemon = Daemon(settings, SecretStr(SECRET), on_call=lambda call, _: calls.append(call))
        task = asyncio.create_task(daemon.run(), name="daemon")
        base = f"http://{settings.web.host}:{settings.web.port}"
        try:
            async with asyncio.timeout(DEADLINE):
                started = asyncio.create_task(daemon.web_started.wait())
                await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    started.cancel()
                    await task  # raises what made the daemon end
                    pytest.fail("the daemon ended before its web server started")
            async with httpx.AsyncClient(base_url=base, timeout=DEADLINE) as web:
                yield Live(daemon, server, web, calls)
            assert not task.done(), "the daemon ended by itself"
        finally:
            daemon.stop()
            async with asyncio.timeout(DEADLINE):
                await task
    assert daemon.writer.closed
    assert daemon.writer.pending == 0
    # A store that failed and was retried would pass, slowly: say so instead.
    assert daemon.writer.stats.failures == 0, daemon.writer.stats.last_error


@contextlib.asynccontextmanager
async def store_at(db: Path) -> AsyncIterator[Any]:
    engine = create_engine(sqlite_url(db))
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_the_daemon_keeps_its_startup_objects_from_the_gc_while_it_runs(
    tmp_path: Path,
) -> None:
    """A full collection scanned everything built at start (the directory, every metric
    series) and stalled the loop; frozen while the daemon runs, given back after."""
    assert gc.get_freeze_count() == 0
    async with live_daemon(script_for(FULL[:1]), tmp_path / "calls.sqlite3") as live:
        await live.consumed()
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_the_event_handling_lag_is_probed_while_the_daemon_runs(tmp_path: Path) -> None:
    """``callmon_event_handling_lag_seconds`` (the Monitor health board's lag panel) gets a
    probe every second, a small one on an idle loop."""
    name = "callmon_event_handling_lag_seconds"
    async with live_daemon(script_for(FULL[:1]), tmp_path / "calls.sqlite3") as live:
        await live.consumed()
        probes = lambda: metric_total(live.daemon.metrics.render().decode(), f"{name}_count")  # noqa: E731
        await until(lambda: probes() >= 2)
        text = await live.metrics()
    assert metric_total(text, f"{name}_count") >= 2
    # A probe on a quiet daemon waits for nothing: under the 50 ms target, most of them.
    [under_50ms] = [
        value for labels, value in metric_samples(text, f"{name}_bucket") if labels["le"] == "0.05"
    ]
    assert under_50ms >= 1


# -- (a) every recording, any TCP chunking: the daemon concludes what replay() does -------


@pytest.mark.parametrize(("paths", "chunk_seed", "max_chunk"), CASES)
async def test_daemon_matches_offline_replay(
    paths: list[Path], chunk_seed: int | None, max_chunk: int, tmp_path: Path
) -> None:
    db = tmp_path / "calls.sqlite3"
    async with live_daemon(
        script_for(paths), db, chunk_seed=chunk_seed, max_chunk=max_chunk or 512
    ) as live:
        await live.consumed()
        metrics = await live.metrics()
        got = live.reports
        stats = live.daemon.client.stats
        assert (stats.framing_errors, stats.reconnects, stats.connects) == (0, 0, 1)

    want = offline(paths, live.daemon.settings)
    assert want, "every recording has calls"
    assert got == want
    assert metric_total(metrics, "callmon_calls_total") == len(want)
    assert metric_total(metrics, "callmon_ami_reconnects_total") == 0
    assert metric_total(metrics, "callmon_store_dropped_calls_total") == 0

    async with store_at(db) as engine:
        assert await count_calls(engine) == len({c["linkedid"] for c in want})
        for call in want:
            stored = await load_call(engine, call["linkedid"])
            assert stored is not None
            assert stored["answered_by"] == call["answered_by"]
            assert stored["incomplete"] == call["incomplete"]
            assert stored["caller_name"] == call["caller_name"]
            assert [t["to_ext"] for t in stored["transfers"]] == [
                t["to"] for t in call["transfers"]
            ]
            if call["transfers"]:
                assert [
                    (t["kind"], t["from_ext"], t["to_ext"], t["completed"], t["p4_met"])
                    for t in stored["transfers"]
                ] == [
                    (t["kind"], t["from"], t["to"], t["completed"], t["p4_met"])
                    for t in call["transfers"]
                ]
                assert [t["wait_seconds"] for t in stored["transfers"]] == pytest.approx(
                    [t["wait_seconds"] for t in call["transfers"]]
                )


# -- (b) the link drops mid-call and comes back -------------------------------------------


@pytest.mark.parametrize(("chunk_seed", "max_chunk"), [(None, 512), (4, 7), (9, 97)])
async def test_reconnect_mid_call(chunk_seed: int | None, max_chunk: int, tmp_path: Path) -> None:
    db = tmp_path / "calls.sqlite3"
    async with live_daemon(
        script_for(RECONNECT), db, chunk_seed=chunk_seed, max_chunk=max_chunk
    ) as live:
        await live.consumed()
        metrics = await live.metrics()
        got = live.reports
        assert live.server.connections == 2

    want = offline(RECONNECT, live.daemon.settings)
    assert got == want
    [call] = got
    # The resync found both channels still up: the call was followed through the gap.
    assert call["answered_by"] == "201"
    assert call["ring_seconds"] == pytest.approx(2.0, abs=0.05)
    assert call["hangup_first"] == "caller"
    assert call["incomplete"] is False
    assert call["transfers"] == []
    assert metric_total(metrics, "callmon_ami_reconnects_total") == 1
    assert metric_total(metrics, "callmon_calls_total") == 1
    async with store_at(db) as engine:
        assert await count_calls(engine) == 1
        stored = await load_call(engine, call["linkedid"])
    assert stored is not None
    assert (stored["answered_by"], stored["incomplete"]) == ("201", False)


# -- (d) hostile caller ids ----------------------------------------------------------------

HOSTILE_NAMES: dict[str, bytes] = {
    "formula": b'=HYPERLINK("http://x.example/?q=1","click")',
    "script": b"<script>alert(1)</script>",
    "newline": "홍길동\n".encode(),
    "huge": ("가나다라" * 900 + "x" * 4000).encode(),  # 10 800 + 4000 bytes
    "invalid_utf8": b"Bad\xff\xfe\xc3 name \xed\xa0\x80",
    "prometheus": b'x"} 1\ncallmon_calls_total{direction="evil"} 99\n#',
}
HOSTILE_NUMBERS: dict[str, bytes] = {
    "formula": b'=HYPERLINK("http://x")',
    "script": b"<img src=x onerror=alert(1)>",
    "newline": b"+82 10\n1234",
    "huge": b"9" * 10_000,
    "invalid_utf8": b"010\xff\xfe5678",
    "prometheus": b'0101"} 5\n',
}


def hostile_copy(name: bytes, number: bytes) -> bytes:
    original = recording_path("a_answer_1ring.ami").read_bytes()
    data = original
    for key in (b"CallerIDName", b"ConnectedLineName", b"CallerIDname", b"DestConnectedLineName"):
        data = data.replace(key + b": Customer\r\n", key + b": " + name + b"\r\n")
    for key in (b"CallerIDNum", b"ConnectedLineNum", b"CallerIDnum", b"DestConnectedLineNum"):
        data = data.replace(key + b": 01012345678\r\n", key + b": " + number + b"\r\n")
    data = data.replace(
        b'CallerID: "Customer" <01012345678>', b'CallerID: "' + name + b'" <' + number + b">"
    )
    assert b"Customer" not in data
    return data


@pytest.mark.parametrize("kind", list(HOSTILE_NAMES))
async def test_hostile_caller_id(kind: str, tmp_path: Path) -> None:
    name, number = HOSTILE_NAMES[kind], HOSTILE_NUMBERS[kind]
    data = hostile_copy(name, number)
    copy = tmp_path / "hostile.ami"
    copy.write_bytes(data)
    db = tmp_path / "calls.sqlite3"
    # Then an ordinary call on the same link: the daemon is still taking calls after it.
    after = recording_path("c_answer_3rings_breach.ami")
    script = [chain([Recording.from_bytes(data, "hostile"), Recording.load(after)])]
    max_chunk = 7 if len(data) <= TINY_UP_TO else 61
    async with live_daemon(script, db, chunk_seed=13, max_chunk=max_chunk) as live:
        await live.consumed()
        metrics = await live.metrics()
        got = live.reports
        ready = await live.web.get("/readyz")
        assert ready.status_code == 200  # still up and connected
        assert live.daemon.client.stats.framing_errors == 0

    [call, next_call] = got
    assert [call] == offline([copy], live.daemon.settings)
    assert (next_call["caller_name"], next_call["answered_by"], next_call["rings"]) == (
        "Customer",
        "201",
        3,
    )
    # As received: UTF-8 decoded, invalid bytes as U+FFFD, nothing trimmed or escaped.
    as_text = name.decode("utf-8", errors="replace")
    assert call["caller_name"] == as_text
    assert call["caller"] == number.decode("utf-8", errors="replace")
    assert call["answered_by"] == "201"
    assert call["direction"] == "inbound"
    if kind == "invalid_utf8":
        assert "\ufffd" in as_text

    async with store_at(db) as engine:
        assert await count_calls(engine) == 2
        stored = await load_call(engine, call["linkedid"])
    assert stored is not None
    assert stored["caller_name"] == as_text
    assert stored["caller"] == call["caller"]

    # The exposition is still well-formed, counts the calls, and never carries the
    # caller's name or number.
    assert metric_total(metrics, "callmon_calls_total") == 2
    assert metric_samples(metrics, "callmon_calls_total")  # parsed
    for text in (as_text, call["caller"]):
        fragments = {text, text.strip(), text[:12]}
        for fragment in fragments:
            if len(fragment.strip()) >= 4:
                assert fragment not in metrics
    assert "01012345678" not in metrics


# -- (e) one bad call costs that call, never the daemon -----------------------------------

# The five families a call counts in, from the judged call alone: (name, labels) -> value.
CALL_FAMILIES = (
    "callmon_calls",
    "callmon_missed_calls",
    "callmon_answer_rings",
    "callmon_ring_duration_seconds",
    "callmon_charter_checks",
    "callmon_staff_charter_checks",
    "callmon_hangup_first",
    "callmon_transfers",
    "callmon_resync_incomplete_calls",
)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def reported(call: JudgedCall) -> dict[str, Any]:
    return call_report(call.record, call.verdict)


def call_samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name in CALL_FAMILIES
        for sample in family.samples
    }


def counted(calls: Sequence[JudgedCall]) -> Samples:
    """What ``calls`` add to the call families of a fresh CallMetrics."""
    fresh = CallMetrics(Directory(Settings().directory))
    before = call_samples(fresh.render().decode())
    for call in calls:
        fresh.observe_call(call.record, call.verdict)
    after = call_samples(fresh.render().decode())
    return {key: after[key] - before[key] for key in after}


def obligations_of(live: Live) -> dict[str, tuple[str, str, int]]:
    return {
        o.id: (o.number, o.owner, o.missed_calls)
        for o in live.daemon.callbacks.tracker.open_obligations()
    }


@dataclass
class Run:
    """What one daemon run concluded: the calls reported, stored, counted and owed."""

    calls: dict[str, JudgedCall]
    stored: dict[str, dict[str, Any] | None]
    samples: Samples
    obligations: dict[str, tuple[str, str, int]]
    pipeline_errors: dict[str, float]


async def daemon_run(db: Path) -> Run:
    async with live_daemon(script_for(BURST), db) as live:
        await live.consumed()
        metrics = await live.metrics()
        obligations = obligations_of(live)
    calls = {c.record.linkedid: c for c in live.calls}
    assert len(calls) == len(live.calls), "each call reported once"
    async with store_at(db) as engine:
        stored = {linkedid: await load_call(engine, linkedid) for linkedid in calls}
        assert await count_calls(engine) == sum(row is not None for row in stored.values())
    errors = {
        labels["stage"]: value
        for labels, value in metric_samples(metrics, "callmon_pipeline_errors_total")
    }
    return Run(calls, stored, call_samples(metrics), obligations, errors)


def minus(samples: Samples, removed: Samples, added: Samples) -> Samples:
    return {key: samples[key] - removed.get(key, 0.0) + added.get(key, 0.0) for key in samples}


@pytest.mark.parametrize("stage", ["correlate", "judge", "metrics", "store", "callbacks"])
async def test_one_bad_call_costs_that_call_only(
    stage: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clean = await daemon_run(tmp_path / "clean.sqlite3")
    assert clean.calls[BAD].record.missed
    assert BAD_OBLIGATION in clean.obligations
    assert set(clean.pipeline_errors.values()) == {0.0}
    counted_was = counted([clean.calls[BAD]])  # before the bug is planted (maybe in metrics)

    plant_bug(monkeypatch, stage)
    # live_daemon fails the test if the daemon ends by itself or its store failed.
    bad = await daemon_run(tmp_path / "bad.sqlite3")

    # The bug was counted once, at its stage, and logged with the call and the traceback.
    assert bad.pipeline_errors == {s: float(s == stage) for s in clean.pipeline_errors}
    [logged] = [r for r in caplog.records if r.name == "call_monitor.daemon.pipeline"]
    assert f"{stage} failed on call {BAD}" in logged.getMessage()
    assert logged.exc_info is not None
    assert logged.exc_info[0] is InjectedBug

    # Every other call: reported, stored, counted and owed exactly as without the bad one.
    others = set(clean.calls) - {BAD}
    assert set(bad.calls) - {BAD} == others
    for linkedid in others:
        assert reported(bad.calls[linkedid]) == reported(clean.calls[linkedid])
        assert bad.stored[linkedid] == clean.stored[linkedid]
    assert {k: v for k, v in bad.obligations.items() if k != BAD_OBLIGATION} == {
        k: v for k, v in clean.obligations.items() if k != BAD_OBLIGATION
    }

    # The bad call: what is left of it depends on where it broke.
    was, now = clean.calls[BAD], bad.calls.get(BAD)
    assert now is not None  # reported in every case
    if stage == "correlate":  # closed at once, incomplete: stored and counted so
        assert now.record.incomplete
        assert not now.verdict.judged
        assert bad.stored[BAD] is not None
        assert bad.stored[BAD]["incomplete"] is True
    elif stage == "judge":  # the record as seen, measured against no clause
        assert now.record == was.record
        assert not now.verdict.judged
        assert now.verdict.checks == ()
        assert bad.stored[BAD] is not None
        assert bad.stored[BAD]["checks"] == []
    else:  # judged as ever; only the stage that broke missed it
        assert reported(now) == reported(was)
        assert (bad.stored[BAD] is None) == (stage == "store")
    assert (BAD_OBLIGATION in bad.obligations) == (stage not in ("correlate", "callbacks"))
    counted_now = {} if stage == "metrics" else counted([now])
    assert bad.samples == minus(clean.samples, counted_was, counted_now)


def test_offline_replay_survives_the_same_bad_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's own stages, offline (``replay()``, as ``call-monitor replay`` runs it)."""
    settings = Settings()
    clean = {r.record.linkedid: r for r in replay(BURST, settings) if isinstance(r, JudgedCall)}
    for stage in ("correlate", "judge"):
        with monkeypatch.context() as patched:
            plant_bug(patched, stage)
            results = list(replay(BURST, settings))
        [failed] = [r for r in results if isinstance(r, StageFailed)]
        assert (failed.stage, failed.linkedid) == (stage, BAD)
        assert isinstance(failed.error, InjectedBug)
        calls = {r.record.linkedid: r for r in results if isinstance(r, JudgedCall)}
        assert calls.keys() == clean.keys()
        for linkedid, call in calls.items():
            if linkedid != BAD:
                assert reported(call) == reported(clean[linkedid])
        assert not calls[BAD].verdict.judged
        assert calls[BAD].record.incomplete == (stage == "correlate")


# -- (c) the demo as a real process: SIGTERM, exit 0, nothing it printed is lost ---------


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2.0)
    except httpx.TransportError:
        return None


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without our settings, and without PYTHONUNBUFFERED: a service's
    stdout is a pipe or a file, block-buffered unless the program flushes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CALLMON_") and k != "PYTHONUNBUFFERED"
    }
    env.update(extra)
    return env


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_demo_process_sigterm_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite3"
    port = free_port()
    env = _clean_env(
        CALLMON_STORE__URL=sqlite_url(db),
        CALLMON_WEB__PORT=str(port),
        CALLMON_WEB__HOST="127.0.0.1",
    )
    stderr_path = tmp_path / "stderr.log"
    base = f"http://127.0.0.1:{port}"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "call_monitor", "--lang", "en", "demo", "--speed", "20"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            env=env,
        )
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    printed: list[str] = []

    def take_lines(wait: float) -> None:
        with contextlib.suppress(queue.Empty):
            while (line := lines.get(timeout=wait)) is not None:
                printed.append(line)
                wait = 0.0

    def printed_calls() -> list[str]:
        return [line for line in printed[2:] if line]  # after the banner and the demo's note

    ready_seen = False
    counted = 0.0
    try:
        deadline = time.monotonic() + DEADLINE
        while counted < 3 or not ready_seen:
            assert time.monotonic() < deadline, (printed, stderr_path.read_text())
            assert proc.poll() is None, stderr_path.read_text()
            take_lines(0.05)
            metrics = _get(f"{base}/metrics")
            if metrics is not None:
                assert metrics.status_code == 200
                counted = metric_total(metrics.text, "callmon_calls_total")
            ready = _get(f"{base}/readyz")
            ready_seen = ready_seen or (ready is not None and ready.status_code == 200)
        # A call is printed in the same step it is counted: the lines of the calls counted
        # so far are on stdout now, not held in a buffer until the buffer fills or the
        # process exits.
        flushed_by = time.monotonic() + 5.0
        while len(printed_calls()) < counted and time.monotonic() < flushed_by:
            take_lines(0.1)
        assert len(printed_calls()) >= counted, (printed, counted)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOP_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    proc.stdout.close()
    take_lines(0.0)
    assert code == 0, stderr_path.read_text()
    assert printed[0].startswith("call-monitor demo: AMI playback on 127.0.0.1:")
    assert printed[1].startswith("demo: the recorded calls play as if they happened now")
    calls = printed_calls()
    assert all(" | " in line for line in calls), calls
    assert len(calls) >= counted
    assert "Traceback" not in stderr_path.read_text()

    async def stored() -> int:
        async with store_at(db) as engine:
            return await count_calls(engine)

    assert asyncio.run(stored()) == len(calls)
