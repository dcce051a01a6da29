"""``call-monitor demo``: recorded calls over a real local AMI socket into the real daemon."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from call_monitor.charter.lines import describe
from call_monitor.config import Settings
from call_monitor.daemon.service import Daemon, install_signals, process_setup
from call_monitor.demo.pbx import PlaybackServer, chain, recording_path, script_for
from call_monitor.directory import Directory

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


async def demo(settings: Settings, *, speed: float, once: bool, lang: str) -> int:
    """Recorded calls over a real local AMI socket into the real daemon."""
    process_setup()
    # One continuous link: the recordings follow each other with a short pause.
    script = [chain(script_for(recording_path(f"{name}.ami") for name in DEMO_SCENARIOS))]
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
            on_call=lambda c: print(describe(c, lang, directory=directory), flush=True),
        )
        install_signals(daemon)
        web = f"http://{settings.web.host}:{settings.web.port}"
        print(
            f"call-monitor demo: AMI playback on 127.0.0.1:{server.port}, "
            f"metrics {web}/metrics, store {settings.store.url}",
            flush=True,
        )
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
