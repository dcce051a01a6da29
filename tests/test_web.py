"""The web app (in process) and serve() (over a real socket)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator
from typing import NoReturn, cast

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.exposition import choose_encoder
from sqlalchemy.exc import OperationalError

from call_monitor.charter.rules import Check
from call_monitor.config import default_directory
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.web import create_app, serve
from call_monitor.web.callbacks import CallbackDesk, callbacks_router
from tests.webauth import access_as


def make_app(
    state: dict[str, bool] | None = None, routers: list[APIRouter] | None = None
) -> FastAPI:
    flags = state if state is not None else {"ready": True}
    metrics = CallMetrics(Directory(default_directory()))
    return create_app(
        metrics, lambda: None if flags["ready"] else "AMI not connected", routers=routers or []
    )


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_metrics_is_text_format_without_redirect() -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE callmon_calls_total counter" in response.text
    assert "callmon_ami_connected 0.0" in response.text


async def test_metrics_openmetrics_on_request() -> None:
    async with client_for(make_app()) as client:
        response = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.mark.parametrize(
    "accept",
    [
        "",
        PROMETHEUS_3_ACCEPT,
        "text/plain;version=1.0.0",
        "application/openmetrics-text;version=1.0.0;escaping=dots",  # prometheus_client's
    ],
)
async def test_metrics_body_is_what_prometheus_client_would_serve(accept: str) -> None:
    app = make_app()
    metrics: CallMetrics = app.state.metrics
    metrics.observe_checks([Check("P1", False, "201", "민원여권과")])
    async with client_for(app) as client:
        response = await client.get("/metrics", headers={"Accept": accept} if accept else {})
    encoder, content_type = choose_encoder(accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == metrics.exposition(accept)[0] == encoder(metrics.registry)
    assert 'clause="P1",department="민원여권과",result="breached"} 1.0' in response.text


async def test_healthz() -> None:
    async with client_for(make_app({"ready": False})) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_follows_the_link() -> None:
    state = {"ready": False}
    async with client_for(make_app(state)) as client:
        down = await client.get("/readyz")
        state["ready"] = True
        up = await client.get("/readyz")
    assert down.status_code == 503
    assert "AMI not connected" in down.json()["reason"]
    assert up.status_code == 200
    assert up.json() == {"status": "ready"}


async def test_routers_are_included() -> None:
    router = APIRouter(prefix="/checklist")

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async with client_for(make_app(routers=[router])) as client:
        response = await client.get("/checklist/ping")
    assert response.json() == {"pong": "yes"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_over_a_real_socket_and_cancel() -> None:
    port = free_port()
    started = asyncio.Event()
    sigint_before = signal.getsignal(signal.SIGINT)
    task = asyncio.create_task(serve(make_app(), "127.0.0.1", port, started=started))
    await asyncio.wait_for(started.wait(), 10)
    assert signal.getsignal(signal.SIGINT) is sigint_before  # the daemon keeps its signals

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "callmon_calls_total" in response.text

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert task.cancelled()
    # the port is free again
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


async def test_serve_stops_when_a_taskgroup_sibling_fails() -> None:
    port = free_port()
    started = asyncio.Event()

    async def failing() -> None:
        await started.wait()
        raise ValueError("sibling failed")

    with pytest.raises(ExceptionGroup) as caught:  # noqa: PT012
        async with asyncio.timeout(10), asyncio.TaskGroup() as group:
            group.create_task(serve(make_app(), "127.0.0.1", port, started=started))
            group.create_task(failing())
    assert caught.group_contains(ValueError, match="sibling failed")
    assert len(caught.value.exceptions) == 1


async def test_serve_reports_a_busy_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError):  # noqa: PT011
            await serve(make_app(), "127.0.0.1", port)


async def test_serve_reports_a_failed_app_startup() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("store unreachable")
        yield

    with pytest.raises(RuntimeError, match="web server failed to start"):
        await serve(FastAPI(lifespan=lifespan), "127.0.0.1", free_port())


class _StoreDown:
    """A callback desk whose store cannot answer: each read raises as SQLAlchemy does."""

    async def _down(self, *args: object, **kwargs: object) -> NoReturn:
        raise OperationalError("SELECT", {}, ConnectionRefusedError("refused"))

    query = get = histories = _down

    async def cancel(self, obligation_id: str, reason: str, by: str | None) -> NoReturn:
        raise KeyError(obligation_id)  # not open: the API then asks the store why


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/callbacks", None),
        ("GET", "/api/callbacks/ob-1", None),
        ("POST", "/api/callbacks/ob-1/cancel", {"reason": "wrong number"}),
    ],
)
async def test_callbacks_api_answers_503_when_the_store_cannot(
    method: str, path: str, body: dict[str, str] | None
) -> None:
    desk = cast("CallbackDesk", _StoreDown())
    async with client_for(make_app(routers=[callbacks_router(desk, access_as())])) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == 503
    assert response.json() == {"detail": "store unavailable: OperationalError"}
    assert response.headers["Retry-After"] == "5"  # it will answer: ask again


class _StoreGone(_StoreDown):
    """asyncpg's refused connection is an OSError, not SQLAlchemy's: a 500 before."""

    async def _down(self, *args: object, **kwargs: object) -> NoReturn:
        raise ConnectionRefusedError("refused")

    query = get = histories = _down


async def test_callbacks_api_answers_503_when_the_driver_itself_raises() -> None:
    desk = cast("CallbackDesk", _StoreGone())
    async with client_for(make_app(routers=[callbacks_router(desk, access_as())])) as client:
        response = await client.get("/api/callbacks")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
