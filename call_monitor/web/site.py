"""The supervisors' and staff's web on the app: accounts, security, the pages and the API.

:func:`install` puts on an app (``create_app``) what :class:`Site` holds: the middlewares in
the order a request meets them (body limit, Host and Origin, security headers, CSRF, session),
the callbacks API behind its authorization, the pages and their static files.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from call_monitor.config import Settings, WebSettings
from call_monitor.directory import Directory
from call_monitor.store.checklist_service import ChecklistService
from call_monitor.web.auth import Access, Accounts, Rules
from call_monitor.web.callbacks import CallbackDesk, callbacks_router
from call_monitor.web.checklist import ChecklistPages, checklist_router
from call_monitor.web.export_page import ExportPage, export_router
from call_monitor.web.live import Live
from call_monitor.web.pages import LoginFirst, Pages, pages_router
from call_monitor.web.recording import Recordings
from call_monitor.web.security import Csrf, HostAndOrigin, LoginLimiter, SecurityHeaders

STATIC = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "callmon_session"
# Pages and API requests handled at once; more wait their turn. Each is a few ms of CPU on the
# monitor's event loop between its awaits: twenty at once put twenty such slices between an
# AMI event and its handling (benchmarks/web.py).
MAX_CONCURRENT_REQUESTS = 4
UNTHROTTLED = ("/metrics", "/healthz", "/readyz", "/me/events", "/static/")


class Throttle:
    """At most ``limit`` requests of the site in the app at once (probes, static files and
    the long-lived event streams pass)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNTHROTTLED):
            await self.app(scope, receive, send)
            return
        async with self.slots:
            await self.app(scope, receive, send)


@dataclass
class Site:
    """What the web needs from the daemon (it knows the daemon only by these)."""

    engine: AsyncEngine
    directory: Directory
    desk: CallbackDesk
    settings: WebSettings
    secret: str  # signs the session and CSRF cookies; never logged
    live: Live = field(default_factory=Live)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    # The monitor's settings, for the monthly export's download (None: no /export page).
    export_settings: Settings | None = None
    checklists: ChecklistService | None = None  # None: no checklist on the pages
    # The pages' reads (and audit rows): ``store.engine.create_reader``; None: ``engine``.
    reader: AsyncEngine | None = None

    @property
    def reads(self) -> AsyncEngine:
        return self.reader or self.engine

    @property
    def access(self) -> Access:
        settings = self.settings
        accounts = Accounts(
            self.reads, settings.trusted_user_header, frozenset(settings.trusted_proxies)
        )
        return Access(accounts, Rules(self.directory), self.reads)


async def _to_login(request: Request, exc: Exception) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def install(app: FastAPI, site: Site) -> None:
    """The site's routes and middlewares (added innermost first: Starlette wraps each new
    one around the ones before)."""
    settings = site.settings
    access = site.access
    app.state.live = site.live
    app.include_router(
        callbacks_router(site.desk, access, writes_per_minute=settings.writes_per_minute)
    )
    pages = Pages(site.reads, site.desk, access, site.live, site.limiter)
    recordings = Recordings(settings.recording_template)
    if site.checklists is not None:  # before the pages: their routes are the more specific
        app.include_router(
            checklist_router(ChecklistPages(pages, site.checklists, access, recordings))
        )
    app.include_router(pages_router(pages))
    if site.export_settings is not None:
        app.include_router(export_router(ExportPage(pages, site.export_settings)))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(LoginFirst, _to_login)
    app.add_middleware(
        SessionMiddleware,
        secret_key=site.secret,
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.session_hours * 3600),
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(Csrf, secret=site.secret, secure=settings.secure_cookies)
    app.add_middleware(SecurityHeaders, media_origin=recordings.media_origin)
    app.add_middleware(Throttle, limit=MAX_CONCURRENT_REQUESTS)
    app.add_middleware(
        HostAndOrigin,
        hosts=settings.hosts(),
        session_cookie=SESSION_COOKIE,
        user_header=settings.trusted_user_header,
    )
