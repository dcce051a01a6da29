"""A whole web site for tests: a SQLite store with calls replayed from the recordings, a real
callback service (its writer running), one account per role, and the app as the daemon builds
it (``create_app`` with a :class:`Site`). Used by the HTTP tests and the browser test."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from call_monitor.charter.judged import JudgedCall
from call_monitor.checklist.files import load_form
from call_monitor.config import (
    DirectorySettings,
    Settings,
    StoreSettings,
    WebSettings,
    default_directory,
)
from call_monitor.daemon.callbacks import CallbackService
from call_monitor.daemon.pipeline import replay
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics
from call_monitor.store import StoreWriter, create_engine, upgrade
from call_monitor.store.accounts import add_user, create_token, hash_password
from call_monitor.store.checklist_service import ChecklistService
from call_monitor.timefmt import SEOUL
from call_monitor.web.app import create_app
from call_monitor.web.site import Site
from tests.recordings import RECORDINGS

PASSWORD = "correct horse battery"
MINWON = "민원여권과"
CHONGMU = "총무과"
# login -> (role, extension, departments)
ACCOUNTS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "admin": ("admin", None, ()),
    "auditor": ("auditor", None, ()),
    "sup-minwon": ("supervisor", None, (MINWON,)),
    "sup-chongmu": ("supervisor", None, (CHONGMU,)),
    "staff-201": ("staff", "201", ()),
    "staff-203": ("staff", "203", ()),
}
SCENARIOS = ("a_answer_1ring.ami", "c_answer_3rings_breach.ami", "g1_staff_hangs_up_first.ami")
HOSTILE_CALLER = '"><img src=x onerror=alert(1)><script>alert(2)</script>\u202eevil\nline'
CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')


@functools.cache
def password_hash() -> str:
    """One hash for every test account: argon2 is slow on purpose."""
    return hash_password(PASSWORD)


@dataclass
class WebSite:
    app: FastAPI
    site: Site
    metrics: CallMetrics
    service: CallbackService
    base: str
    tokens: dict[str, str] = field(default_factory=dict)
    calls: list[JudgedCall] = field(default_factory=list)

    def client(self, base_url: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url=base_url or self.base, **kwargs)

    def api(self, login: str | None) -> httpx.AsyncClient:
        """A client with the login's API token (``None``: no credentials at all)."""
        headers = {} if login is None else {"Authorization": f"Bearer {self.tokens[login]}"}
        return self.client(headers=headers)


async def log_in(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> httpx.Response:
    """The login form, as a browser fills it (its CSRF token, its Origin)."""
    page = await client.get("/login")
    token = csrf_of(page.text)
    return await client.post(
        "/login",
        data={"login": login, "password": password, "csrftoken": token},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def recorded_calls(settings: Settings, scenarios: Sequence[str] = SCENARIOS) -> list[JudgedCall]:
    judged = [
        item
        for item in replay([RECORDINGS / name for name in scenarios], settings)
        if isinstance(item, JudgedCall)
    ]
    judged[-1].record.caller_name = HOSTILE_CALLER
    return judged


def recordings_clock(calls: Sequence[JudgedCall]) -> Callable[[], datetime]:
    """A clock running from an hour after the last recorded call: "this month" of the
    checklist (the staff home, the sampling page) is the recordings' month."""
    offset = datetime.fromtimestamp(calls[-1].record.started_at, UTC) - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset + timedelta(hours=1)


@contextlib.asynccontextmanager
async def web_site(
    db: Path,
    base: str = "http://127.0.0.1",
    web: WebSettings | None = None,
    *,
    scenarios: Sequence[str] = SCENARIOS,
    directory_settings: DirectorySettings | None = None,
) -> AsyncIterator[WebSite]:
    url = f"sqlite+aiosqlite:///{db}"
    await upgrade(url)
    settings = Settings(
        store=StoreSettings(url=url),
        web=web or WebSettings(),
        directory=directory_settings or default_directory(),
    )
    engine = create_engine(url)
    directory = Directory(settings.directory)
    metrics = CallMetrics(directory, checklist_form=load_form(None))
    calls = recorded_calls(settings, scenarios)
    writer = StoreWriter(engine, settings.store)
    for judged in calls:
        writer.submit(judged.record, judged.verdict)
    await writer.close()
    service = CallbackService(
        settings, engine, directory, clock=lambda: datetime.now(SEOUL), retry_initial_seconds=0.01
    )
    await service.start()
    checklists = ChecklistService(
        engine,
        load_form(None),
        directory,
        clock=recordings_clock(calls),
        on_submitted=metrics.observe_checklist,
    )
    secret = "test-secret-" + "x" * 40
    site = Site(
        engine,
        directory,
        service,
        settings.web,
        secret,
        checklists=checklists,
        export_settings=settings,
    )
    service.on_changes = site.live.changed
    app = create_app(metrics, lambda: None, site=site)
    found = WebSite(app, site, metrics, service, base, calls=calls)
    for login, (role, extension, departments) in ACCOUNTS.items():
        await add_user(
            engine,
            login=login,
            display_name=login,
            role=role,
            password_hash=password_hash(),
            extension=extension,
            departments=departments,
        )
        found.tokens[login] = await create_token(engine, login)
    task = asyncio.create_task(service.run_writer())
    try:
        yield found
    finally:
        site.live.close()
        await service.close()
        await task
        await engine.dispose()
