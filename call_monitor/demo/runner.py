"""``call-monitor demo``: recorded calls over a real local AMI socket into the real daemon."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from time import time as time_now

from pydantic import SecretStr

from call_monitor.charter.lines import describe
from call_monitor.config import (
    WEEKDAYS,
    Settings,
    TimeSpan,
    WorkingHoursSettings,
    default_store_url,
)
from call_monitor.daemon.service import Daemon, install_signals, process_setup
from call_monitor.demo.pbx import PlaybackServer
from call_monitor.demo.recording import (
    Recording,
    overlap,
    recording_path,
    script_for,
    starting_at,
)
from call_monitor.directory import Directory
from call_monitor.timefmt import SEOUL

SETUP_SECONDS = 1.0  # from the script's making to its first event: start, connect, login
DEMO_SCENARIOS = [
    "a_answer_1ring",
    "c_answer_3rings_breach",
    "e_blind_transfer",
    "f1_attended_transfer_2s",
    "g1_staff_hangs_up_first",
    "h1_ring_group",
    "h2_queue_ringall",
    "i1_group_pickup",
    "m_caller_abandons_while_ringing",
    "d_missed_then_callback",
    "p_internal_call",
    "j_burst_50",
]


# A new recorded call starts this often: the variety of the office shows within a minute
# at speed 1, calls overlapping as they do in an office (back to back, a minute showed ~3).
START_EVERY_SECONDS = 5.0
# The demo's callbacks fall due while one watches: owed within this many minutes, the
# reminder one minute before, the clock running around the clock (the real rule is one
# working hour, 09:00-18:00 on working days, which at night would show nothing at all).
DEMO_CALLBACK_MINUTES = 3.0
DEMO_REMINDER_MINUTES = 1.0
DEMO_NOTE = {
    "ko": f"데모: 녹음된 통화를 지금 일어난 것처럼 재생합니다. 회신 기한은 근무시간 1시간 대신 "
    f"{DEMO_CALLBACK_MINUTES:.0f}분(알림은 {DEMO_REMINDER_MINUTES:.0f}분 전)으로 줄였습니다.",
    "en": "demo: the recorded calls play as if they happened now; callbacks are owed within "
    f"{DEMO_CALLBACK_MINUTES:.0f} minutes (reminder {DEMO_REMINDER_MINUTES:.0f} minute before) "
    "instead of one working hour.",
}
ALL_DAY = TimeSpan(start=time(0), end=time(23, 59, 59, 999999))


def demo_script(now: float) -> list[Recording]:
    """The demo's one connection: the recorded calls overlapped, the first stamped ``now``."""
    recordings = script_for(recording_path(f"{name}.ami") for name in DEMO_SCENARIOS)
    return [starting_at(overlap(recordings, START_EVERY_SECONDS), now)]


def demo_settings(settings: Settings, now: datetime) -> Settings:
    """``settings`` with the demo's short callback deadlines on an always-open clock, and
    its own store (``demo.sqlite3`` beside the default one) unless ``store.url`` is set."""
    today = now.astimezone(SEOUL).date()
    hours = WorkingHoursSettings(
        days=dict.fromkeys(WEEKDAYS, ALL_DAY),
        extra_open=[today + timedelta(days=n) for n in range(3)],  # holidays included
        extra_open_hours=ALL_DAY,
    )
    callbacks = settings.callbacks.model_copy(
        update={
            "due_working_seconds": DEMO_CALLBACK_MINUTES * 60,
            "reminder_before_working_seconds": DEMO_REMINDER_MINUTES * 60,
        }
    )
    store = settings.store
    if "url" not in store.model_fields_set:
        # Not the monitor's own store: recorded calls and 3-minute callbacks must never mix
        # with an office's real ones. A store.url given on purpose is used as given.
        store = store.model_copy(update={"url": default_store_url("demo.sqlite3")})
    return settings.model_copy(
        update={"working_hours": hours, "callbacks": callbacks, "store": store}
    )


async def demo(settings: Settings, *, speed: float, once: bool, lang: str) -> int:
    """Recorded calls over a real local AMI socket into the real daemon."""
    process_setup()
    now = time_now()
    script = demo_script(now + SETUP_SECONDS)
    settings = demo_settings(settings, datetime.fromtimestamp(now, SEOUL))
    playback_speed = speed if speed > 0 else float("inf")
    async with PlaybackServer(
        script, speed=playback_speed, loop=not once, username="demo", secret="demo"
    ) as server:
        ami = settings.ami.model_copy(
            update={
                "host": "127.0.0.1",
                "port": server.port,
                "username": "demo",
                "reconnect_initial_seconds": 0.1,
                "reconnect_max_seconds": 1.0,
            }
        )
        settings = settings.model_copy(update={"ami": ami})
        directory = Directory(settings.directory)
        # Flushed per call: stdout is block-buffered when it is a pipe or a file (``| tee``,
        # a container log), and the calls would only show up kilobytes later.
        daemon = Daemon(
            settings,
            SecretStr("demo"),
            on_call=lambda c, caused: print(
                describe(c, lang, directory=directory, changes=caused), flush=True
            ),
        )
        install_signals(daemon)
        web = f"http://{settings.web.host}:{settings.web.port}"
        print(
            f"call-monitor demo: AMI playback on 127.0.0.1:{server.port}, "
            f"metrics {web}/metrics, store {settings.store.url}",
            flush=True,
        )
        print(DEMO_NOTE[lang], flush=True)
        await daemon.run(*([_stop_when_played(server, daemon)] if once else []))
    return 0


async def _stop_when_played(server: PlaybackServer, daemon: Daemon) -> None:
    await server.finished
    # Stop once the link has been quiet for a moment and the pipeline has caught up: there
    # is no event for "the peer sent its last byte and we read it".
    seen = -1
    while seen != daemon.client.stats.events or not daemon.queue.empty():
        seen = daemon.client.stats.events
        await asyncio.sleep(0.5)
    daemon.stop()
