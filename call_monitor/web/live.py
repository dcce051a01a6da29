"""Live updates for the staff home: server-sent events fed by the callback changes as they are
committed (the same batches whose alerts fill the outbox), so a page shows a new callback
without a reload.

The daemon hands every committed batch to :meth:`Live.changed`; each open page listens for
its own keys (``staff:<extension>``, ``department:<name>``) on a small queue of its own. A
page that does not keep up loses events, not memory: its queue is bounded and an event is
only a nudge to re-read (the page then fetches what it owes from the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from call_monitor.charter.obligations import ObligationChange

QUEUE_SIZE = 16
KEEPALIVE_SECONDS = 15.0
_CLOSED = "closed"


def keys_of(change: ObligationChange) -> set[str]:
    obligation = change.obligation
    keys = {f"department:{obligation.owner_department}"}
    if obligation.owner_kind == "staff":
        keys.add(f"staff:{obligation.owner}")
    return keys


@dataclass(eq=False)
class _Listener:
    keys: frozenset[str]
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Live:
    """The open pages and what they listen for."""

    def __init__(self) -> None:
        self._listeners: set[_Listener] = set()
        self._closed = False

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def changed(self, changes: Sequence[ObligationChange]) -> None:
        """Committed callback changes: nudge every page that listens for one of them."""
        for change in changes:
            keys = keys_of(change)
            event = json.dumps(
                {"kind": change.kind, "obligation": change.obligation.id}, ensure_ascii=False
            )
            for listener in self._listeners:
                if listener.keys & keys:
                    with contextlib.suppress(asyncio.QueueFull):
                        listener.queue.put_nowait(event)

    def close(self) -> None:
        """End every stream (the daemon stops): open pages reconnect to the next one."""
        self._closed = True
        for listener in self._listeners:
            with contextlib.suppress(asyncio.QueueFull):
                listener.queue.put_nowait(_CLOSED)

    @contextlib.contextmanager
    def listen(self, keys: Sequence[str]) -> Iterator[asyncio.Queue[str]]:
        listener = _Listener(frozenset(keys))
        self._listeners.add(listener)
        try:
            yield listener.queue
        finally:
            self._listeners.discard(listener)

    async def stream(self, keys: Sequence[str]) -> AsyncIterator[str]:
        """The ``text/event-stream`` body for a page listening for ``keys``."""
        if self._closed:
            return
        with self.listen(keys) as queue:
            yield "retry: 3000\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event == _CLOSED:
                    return
                yield f"event: callbacks\ndata: {event}\n\n"
