"""The web app factory, and a uvicorn runner that lives inside the daemon's event loop.

Routes:

- ``GET /metrics``: Prometheus text format (OpenMetrics when the scraper asks for it, as
  prometheus_client's ``choose_encoder`` decides), by :meth:`CallMetrics.exposition`, served
  directly, not through ``make_asgi_app`` (mounted at ``/metrics`` it redirects to
  ``/metrics/``, and it would render with ``generate_latest``: 0.3-0.9 s for 1,300 staff);
- ``GET /healthz``: the process answers;
- ``GET /readyz``: 200 while the AMI link is up and the store takes writes, else 503.

With a :class:`~call_monitor.web.site.Site`, the pages, the callbacks API and their security
(:mod:`.site`); ``/metrics`` then wants ``web.metrics_token`` when one is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable, Generator, Iterable
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from call_monitor import __version__
from call_monitor.metrics import CallMetrics
from call_monitor.web.site import Site, install

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5
# A memo is a few kB at most (its longest field, the matter, 2,000 characters).
MAX_BODY_BYTES = 64 * 1024


def create_app(
    metrics: CallMetrics,
    ready: Callable[[], str | None],
    *,
    routers: Iterable[APIRouter] = (),
    site: Site | None = None,
) -> FastAPI:
    """Build the app; ``ready`` says why the monitor is not ready (the AMI link down, the
    store failing), None when it is (read on each request); ``site``: the pages, the
    callbacks API and their security (:mod:`.site`)."""
    app = FastAPI(
        title="call-monitor",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.metrics = metrics
    app.add_exception_handler(RequestValidationError, _refused)
    metrics_token = None
    if site is not None:
        install(app, site)
        token = site.settings.metrics_token
        metrics_token = None if token is None else f"Bearer {token.get_secret_value()}"
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)  # the outermost

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        if metrics_token is not None and not secrets.compare_digest(
            request.headers.get("authorization", "").encode(), metrics_token.encode()
        ):
            return Response("bearer token required", status_code=401)
        # Rendered in the event loop, not a worker thread: the scrape-time providers read
        # the pipeline's state, which only the loop touches, and the render joins lines
        # kept ready (a few ms for 1,300 staff, see benchmarks/metrics.py).
        body, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(content=body, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        reason = ready()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    for router in routers:
        app.include_router(router)
    return app


async def _refused(_: Request, exc: Exception) -> JSONResponse:
    """422 for a body or a query that is refused, naming where and why, never echoing the
    input: a stranger's text, or a number JSON cannot hold (``1e999`` is parsed as infinity,
    and FastAPI's own answer, which quotes it, then failed to encode: a 500)."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with 413 before the app sees any of it: by
    its ``Content-Length``, or, without one, as it streams in (read here, up to the limit,
    then handed on whole: the API's bodies are small)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        messages = await self._read(receive)
        if messages is None:
            await self._refuse(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or ``None`` once they pass the limit."""
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body over {self.max_bytes} bytes"}, status_code=413
        )
        await response(scope, receive, send)


LISTEN_BACKLOG = 2048  # uvicorn's default


class _Server(uvicorn.Server):
    """uvicorn that leaves signals to the daemon and tells when it listens."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The daemon owns SIGINT/SIGTERM; it stops us by cancelling the task.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._started_event is not None and not self.should_exit:
            self._started_event.set()


async def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port``; ``OSError`` when the port is taken.

    The daemon binds before it touches the store: a second monitor started by mistake stops
    here, before it writes a single call into the first one's database.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening at once holds the port: another process that binds it with
        # SO_REUSEADDR between our bind and uvicorn's start would otherwise succeed too.
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _run(server: _Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process on a failed lifespan startup
        raise RuntimeError(f"web server failed to start (exit code {exc.code})") from exc


async def serve(
    app: Any,
    host: str,
    port: int,
    *,
    started: asyncio.Event | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (or on ``sock``, from :func:`bind`, which it then owns
    and closes) in the running event loop until cancelled.

    Binding errors (port in use, bad address) raise ``OSError`` here. On cancellation the
    server stops accepting, lets open requests finish (at most
    ``GRACEFUL_SHUTDOWN_SECONDS``), and the cancellation propagates, so it fits in an
    ``asyncio.TaskGroup``. ``started`` is set once the socket is listening.
    """
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the daemon's logging alone
        access_log=False,
        lifespan="auto",
        ws="none",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    if sock is None:
        sock = await bind(host, port)
    server = _Server(config, started)
    task = asyncio.create_task(_run(server, sock), name=f"web {host}:{port}")
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        try:
            await task
        except asyncio.CancelledError:
            server.force_exit = True
            task.cancel()
            raise
        except Exception:
            log.exception("web server failed while shutting down")
        raise
    finally:
        sock.close()
