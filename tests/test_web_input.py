"""Bodies the API must refuse cleanly (issue 14, item 12): a number JSON cannot hold, lone
surrogates, bodies too large. Each used to be a 500 (or 100 MB read and parsed); now 422 or
413, and the desk behind the API is never reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn, cast

import httpx
import pytest

from call_monitor.config import default_directory
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.web import create_app
from call_monitor.web.app import MAX_BODY_BYTES
from call_monitor.web.callbacks import CallbackDesk, callbacks_router
from tests.webauth import access_as

MEMO = '{"number": "010-1234-5678", "owner": "201", "taken_by": "202", "caller_name": %s}'


class _Untouchable:
    """A desk any call on which fails the test: refused bodies never get this far."""

    def __getattr__(self, name: str) -> NoReturn:
        pytest.fail(f"the desk's {name} was reached")


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    metrics = CallMetrics(Directory(default_directory()))
    router = callbacks_router(cast("CallbackDesk", _Untouchable()), access_as())
    app = create_app(metrics, lambda: None, routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def _post(api: httpx.AsyncClient, body: bytes, **headers: str) -> httpx.Response:
    return await api.post(
        "/api/callbacks/memo",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
async def test_a_number_json_cannot_hold_is_a_422(api: httpx.AsyncClient, number: str) -> None:
    response = await _post(api, (MEMO % number).encode())
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "caller_name"]
    assert "input" not in error  # the refused value is never echoed


@pytest.mark.parametrize("escape", [r'"\ud800"', r'"a\udfffb"', r'"\udc00\ud800"'])
async def test_a_lone_surrogate_is_a_422(api: httpx.AsyncClient, escape: str) -> None:
    response = await _post(api, (MEMO % escape).encode())
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "caller_name"]


async def test_a_paired_surrogate_is_text(api: httpx.AsyncClient) -> None:
    """``\\ud83d\\ude00`` is JSON's spelling of one character (😀): not refused as a lone
    one (the desk is reached, which this test's desk refuses by failing: so a 500)."""
    with pytest.raises(pytest.fail.Exception, match="desk's memo was reached"):
        await _post(api, (MEMO % r'"\ud83d\ude00"').encode())


async def test_a_body_over_the_limit_is_a_413_by_its_length(api: httpx.AsyncClient) -> None:
    big = MEMO % ('"' + "가" * MAX_BODY_BYTES + '"')
    response = await _post(api, big.encode())
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.text


async def test_a_streamed_body_over_the_limit_is_a_413(api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 4096  # 400 kB of JSON whitespace, no Content-Length

    response = await api.post(
        "/api/callbacks/memo", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_a_bad_length_header_is_a_413(api: httpx.AsyncClient) -> None:
    response = await _post(api, b"{}", **{"Content-Length": "-5"})
    assert response.status_code in (400, 413)


async def test_writes_are_limited_per_client() -> None:
    """Issue 14, item 12: 2,000 memos in 9 s were all taken. Past the limit a client gets
    429 with Retry-After; reads are not limited."""
    metrics = CallMetrics(Directory(default_directory()))
    router = callbacks_router(
        cast("CallbackDesk", _Untouchable()), access_as(), writes_per_minute=3
    )
    app = create_app(metrics, lambda: None, routers=[router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as api:
        # Refused bodies (422) never reach the desk, but count as writes: a flood of them
        # is a flood all the same.
        answers = [(await _post(api, b"{}")).status_code for _ in range(5)]
        assert answers == [422, 422, 422, 429, 429]
        refused = await _post(api, b"{}")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
