"""(e) panoramisk's ``Manager`` with a catch-all (``*``) event callback that counts.

panoramisk logs in by itself on connect; the end of the stream is its ``on_disconnect``.
Its reconnect (scheduled after ``reconnect_timeout``) never comes: the run is over by then.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from panoramisk import Manager
from panoramisk.message import Message

from _ingest.common import HOST, SECRET, USERNAME, ClientArgs, peak_rss_kib


async def _run(args: ClientArgs) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    logged_in: asyncio.Future[float] = loop.create_future()
    ended: asyncio.Future[float] = loop.create_future()
    count = 0

    def on_event(manager: Manager, event: Message) -> None:
        nonlocal count
        count += 1

    def on_login(manager: Manager) -> None:
        if not logged_in.done():
            logged_in.set_result(time.perf_counter())

    def on_disconnect(manager: Manager, exc: BaseException | None) -> None:
        if not ended.done():
            ended.set_result(time.perf_counter())

    manager = Manager(
        loop=loop,
        host=HOST,
        port=args.port,
        username=USERNAME,
        secret=SECRET,
        reconnect_timeout=3600,
        on_login=on_login,
        on_disconnect=on_disconnect,
    )
    manager.register_event("*", on_event)
    manager.connect()
    stage = "logging in"
    try:
        async with asyncio.timeout(args.timeout):
            started = await logged_in
            stage = "streaming"
            finished = await ended
    except TimeoutError:
        manager.close()
        return {
            "error": f"no end while {stage} after {args.timeout:g} s",
            "hung": True,
            "events": count,
            "peak_rss_kib": peak_rss_kib(),
        }
    manager.close()
    return {"events": count, "seconds": finished - started, "peak_rss_kib": peak_rss_kib()}


def run(args: ClientArgs) -> dict[str, Any]:
    return asyncio.run(_run(args))
