"""The supervisors' and staff's pages: server-rendered (Jinja2, autoescaped: a caller's name
is text, never markup), htmx for the parts that change (vendored under ``/static``: offices
are often closed to the internet), Korean by default and English by ``?lang=en``.

- ``/login``, ``/logout``: a form; failures are rate-limited per account and per client, and
  every attempt, ok or refused, is written to the audit log;
- ``/me``: a staff member's home: what I owe now (live: ``/me/events`` pushes a nudge when
  one of my callbacks changes, and htmx re-reads ``/me/owed``), my month so far (P1, P7);
- ``/callbacks``: open and overdue by department and staff, recently closed, the memo form,
  cancel with a reason;
- ``/calls``: filtered, keyset-paginated, totals counted in SQL; ``/calls/{linkedid}``: the
  timeline, the verdicts, and the slot where the checklist goes;
- ``/admin``: users, the directory in force, the latest audit rows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.charter.obligations import OPEN_STATES, Obligation
from call_monitor.directory import Directory
from call_monitor.store.accounts import (
    DUMMY_HASH,
    User,
    audit_entries,
    find_user,
    list_users,
    verify_password,
)
from call_monitor.store.browse import PAGE_SIZE, CallFilter, call_totals, list_calls, staff_month
from call_monitor.store.reading import load_call
from call_monitor.timefmt import SEOUL
from call_monitor.web.auth import SESSION_USER, Access, mask
from call_monitor.web.callbacks import (
    MAX_PERSON,
    CallbackDesk,
    MemoIn,
    cancel_obligation,
    visible,
    write_memo,
)
from call_monitor.web.i18n import LANGS, STRINGS, Lang, text
from call_monitor.web.live import Live
from call_monitor.web.recent import Recent
from call_monitor.web.security import CSRF_FIELD, LoginLimiter, csrf_token

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANG_COOKIE = "lang"
CLAUSES = ("P1", "P4", "P5", "P7")
CLOSED_SHOWN = 50
TOTALS_SECONDS = 60.0  # how old the calls page's totals may be (the rows are always live)
_About = TypeVar("_About")


# An extra part of a page: (request, user, what the page is about) -> template values.
Extras = Callable[[Request, User, _About], Awaitable[dict[str, Any]]]


class LoginFirst(Exception):
    """A page asked for without a session: the handler answers with the login page."""


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the package's templates change with a new release only
    )
    environment.filters["seoul"] = _seoul
    environment.filters["clock"] = _clock
    return environment


def _seoul(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M:%S")


def _clock(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(SEOUL).strftime("%H:%M:%S")


def _lang(request: Request) -> Lang:
    for wanted in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        for lang in LANGS:
            if wanted == lang:
                return lang
    return "ko"


def _month(today: date) -> tuple[datetime, datetime]:
    start = datetime.combine(today.replace(day=1), time(), SEOUL)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


class CallsQuery(BaseModel):
    """The calls page's filters, as its form sends them (an empty field: no filter)."""

    since: date | None = Field(default=None, alias="from")  # the first day (Seoul)
    until: date | None = Field(default=None, alias="to")  # the last day, included
    department: str = Field(default="", max_length=MAX_PERSON)
    staff: str = Field(default="", max_length=MAX_PERSON)
    breached: str = Field(default="", pattern="^(P[1-7])?$")
    missed: str = Field(default="", pattern="^(yes|no)?$")
    scored: str = Field(default="", pattern="^(yes|no)?$")
    before: str = Field(default="", max_length=300)  # the keyset of the page before

    def filter(
        self, today: date, departments: tuple[str, ...] | None, extension: str | None
    ) -> CallFilter:
        """This month up to today unless dates are given."""
        first = self.since or today.replace(day=1)
        last = self.until or today
        return CallFilter(
            since=datetime.combine(first, time(), SEOUL),
            until=datetime.combine(last + timedelta(days=1), time(), SEOUL),
            department=self.department or None,
            staff=self.staff or None,
            breached=self.breached or None,
            missed={"yes": True, "no": False}.get(self.missed),
            scored={"yes": True, "no": False}.get(self.scored),
            departments=departments,
            extension=extension,
        )

    def echo(self, wanted: CallFilter) -> dict[str, str]:
        """The filters for the form and the next page's link (the dates as applied)."""
        return {
            "from": wanted.since.date().isoformat(),
            "to": (wanted.until - timedelta(days=1)).date().isoformat(),
            "department": self.department,
            "staff": self.staff,
            "breached": self.breached,
            "missed": self.missed,
            "scored": self.scored,
        }


class Pages:
    """The page handlers, given what they read: the store, the callback desk, the rules."""

    def __init__(
        self,
        engine: AsyncEngine,
        desk: CallbackDesk,
        access: Access,
        live: Live,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self.engine = engine
        self.desk = desk
        self.access = access
        self.rules = access.rules
        self.directory: Directory = access.rules.directory
        self.live = live
        self.limiter = limiter or LoginLimiter()
        self.templates = _environment()
        # What other modules add to the call page and the staff home (the checklist's).
        self.call_extras: Extras[dict[str, Any]] | None = None
        self.me_extras: Extras[User] | None = None
        self.admin_extras: Extras[User] | None = None
        self.totals: Recent[CallFilter, dict[str, int]] = Recent(TOTALS_SECONDS)

    # -- rendering --------------------------------------------------------------------

    async def render(
        self,
        request: Request,
        name: str,
        user: User | None,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        lang = _lang(request)
        strings = STRINGS[lang]
        context = {
            "t": lambda key: text(lang, key),
            "strings": strings,
            "lang": lang,
            "other_lang": "en" if lang == "ko" else "ko",
            "user": user,
            "csrf_field": CSRF_FIELD,
            "csrf": csrf_token(request.scope),
            "path": request.url.path,
            "staff_label": self._staff_label,
            **values,
        }
        # In a worker thread: a page of calls is milliseconds of CPU that the monitor's event
        # loop, which this web shares, must not wait for.
        body = await asyncio.to_thread(self.templates.get_template(name).render, context)
        response = HTMLResponse(body, status_code=status_code)
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
        return response

    def _staff_label(self, extension: str | None) -> str:
        if extension is None:
            return ""
        name = self.directory.staff_name(extension)
        return f"{name}({extension})" if name else extension

    async def user(self, request: Request) -> User:
        user = await self.access.gate.user(request)
        if user is None:
            raise LoginFirst
        return user

    async def refuse(self, request: Request, user: User | None, status: int) -> HTMLResponse:
        key = "forbidden" if status == 403 else "not_found"
        return await self.render(request, "error.html", user, status_code=status, message=key)

    # -- login ------------------------------------------------------------------------

    async def login_form(self, request: Request) -> HTMLResponse:
        return await self.render(request, "login.html", None)

    async def login(
        self,
        request: Request,
        login: Annotated[str, Form(max_length=MAX_PERSON)],
        password: Annotated[str, Form(max_length=1024)],
    ) -> Response:
        client = request.client.host if request.client else "unknown"
        if self.limiter.blocked(login, client):
            await self.access.audit("login_refused", None, login, reason="rate limited")
            return await self.render(request, "login.html", None, 429, error="login_limited")
        found = await find_user(self.engine, login)
        password_hash = DUMMY_HASH if found is None else found[1]
        # argon2 takes tens of ms of CPU: in a thread, not on the monitor's event loop.
        ok = await asyncio.to_thread(verify_password, password_hash, password)
        if found is None or not ok or found[0].disabled:
            self.limiter.failed(login, client)
            reason = "disabled" if found is not None and ok else "wrong login or password"
            await self.access.audit("login_refused", None, login, reason=reason, client=client)
            return await self.render(request, "login.html", None, 401, error="login_failed")
        user = found[0]
        self.limiter.succeeded(login)
        request.session.clear()
        request.session[SESSION_USER] = user.id
        await self.access.audit("login_ok", user, user.login, client=client)
        return RedirectResponse("/", status_code=303)

    async def logout(self, request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def home(self, request: Request) -> Response:
        user = await self.user(request)
        return RedirectResponse("/me" if user.role == "staff" else "/callbacks", status_code=303)

    # -- staff home ---------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        user = await self.user(request)
        if user.extension is None:
            return RedirectResponse("/callbacks", status_code=303)
        since, until = _month(datetime.now(SEOUL).date())
        month = await staff_month(self.engine, user.extension, since, until)
        rates = {
            clause: (round(100 * met / n), met, n) if n else None
            for clause, (met, n) in {c: month.get(c, (0, 0)) for c in ("P1", "P7")}.items()
        }
        owed = await self._owed(user)
        extras = {} if self.me_extras is None else await self.me_extras(request, user, user)
        return await self.render(request, "me.html", user, owed=owed, rates=rates, **extras)

    async def _owed(self, user: User) -> list[Obligation]:
        return await self.desk.query(staff=user.extension, state=sorted(OPEN_STATES), limit=200)

    async def me_owed(self, request: Request) -> Response:
        user = await self.user(request)
        owed = [] if user.extension is None else await self._owed(user)
        return await self.render(request, "owed.html", user, owed=owed)

    async def me_events(self, request: Request) -> Response:
        user = await self.user(request)
        keys = [f"staff:{user.extension}"] if user.extension else []
        return StreamingResponse(
            self.live.stream(keys),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- callbacks ----------------------------------------------------------------------

    async def callbacks(self, request: Request) -> Response:
        user = await self.user(request)
        return await self._callbacks_page(request, user)

    async def _callbacks_page(
        self, request: Request, user: User, status: int = 200, **values: Any
    ) -> HTMLResponse:
        found = await visible(self.desk, self.rules, user, limit=1000)
        open_ones = [o for o in found if o.state in OPEN_STATES]
        closed = [o for o in found if o.state not in OPEN_STATES][-CLOSED_SHOWN:][::-1]
        by_owner: Counter[tuple[str, str, str]] = Counter(
            (o.owner_department or "", o.owner if o.owner_kind == "staff" else "", str(o.state))
            for o in open_ones
        )
        return await self.render(
            request,
            "callbacks.html",
            user,
            status,
            open_ones=open_ones,
            closed=closed,
            summary=_summary(by_owner),
            number=self._number_for(user),
            may_memo=user.role != "auditor",
            owners=self._owners(user),
            may_cancel=lambda o: self.rules.may_cancel(user, o),
            **values,
        )

    def _owners(self, user: User) -> list[tuple[str, str]]:
        """Who a memo may be for (the form's suggestions): departments, then their staff."""
        departments = self.directory.departments
        owners = [(d, d) for d in departments]
        owners += [(e, self._staff_label(e)) for e in self.directory.extensions]
        return [(value, label) for value, label in owners if self.rules.may_memo(user, value)]

    def _number_for(self, user: User) -> Any:
        return (lambda n: n) if user.role != "auditor" else mask

    async def history(self, request: Request, obligation_id: str) -> Response:
        """One callback's history (a partial the callbacks page opens in place)."""
        user = await self.user(request)
        found = await self.desk.get(obligation_id)
        if found is None or not self.rules.sees_obligation(user, found):
            return await self.refuse(request, user, 404)
        history = (await self.desk.histories([found]))[found.id]
        return await self.render(
            request, "history.html", user, obligation=found, changes=history.changes
        )

    async def memo(
        self,
        request: Request,
        *,
        number: Annotated[str, Form()],
        owner: Annotated[str, Form()],
        taken_by: Annotated[str, Form()] = "",
        caller_name: Annotated[str, Form()] = "",
        matter: Annotated[str, Form()] = "",
    ) -> Response:
        user = await self.user(request)
        try:
            memo = MemoIn(
                number=number,
                owner=owner,
                taken_by=taken_by or user.extension or user.login,
                caller_name=caller_name,
                matter=matter,
            )
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
            return await self._callbacks_page(request, user, 422, error=fields)
        try:
            await write_memo(self.desk, self.access, user, memo)
        except HTTPException as exc:
            return await self._callbacks_page(request, user, exc.status_code, error=exc.detail)
        return await self._callbacks_page(request, user, notice="memo_saved")

    async def cancel(
        self,
        request: Request,
        obligation_id: str,
        reason: Annotated[str, Form(min_length=1, max_length=500)],
    ) -> Response:
        user = await self.user(request)
        try:
            await cancel_obligation(self.desk, self.access, user, obligation_id, reason)
        except HTTPException as exc:
            return await self._callbacks_page(request, user, exc.status_code, error=exc.detail)
        return await self._callbacks_page(request, user, notice="cancelled")

    # -- calls ----------------------------------------------------------------------------

    async def calls(self, request: Request, asked: Annotated[CallsQuery, Query()]) -> Response:
        user = await self.user(request)
        wanted = asked.filter(
            datetime.now(SEOUL).date(),
            # Staff: their own calls, whatever the department; others: their departments'.
            departments=None if user.role == "staff" else self.rules.departments(user),
            extension=user.extension if user.role == "staff" else None,
        )
        rows = await list_calls(self.engine, wanted, before=_cursor(asked.before), limit=PAGE_SIZE)
        # The totals of the whole filter on the first page only: the next pages are the same.
        totals = (
            None
            if asked.before
            else await self.totals.get(wanted, lambda: call_totals(self.engine, wanted))
        )
        following = None
        if len(rows) == PAGE_SIZE:
            tail = rows[-1]
            following = f"{tail['started_at'].isoformat()}|{tail['linkedid']}"
        return await self.render(
            request,
            "calls.html",
            user,
            rows=rows,
            totals=totals,
            query=asked.echo(wanted),
            following=following,
            clauses=CLAUSES,
            departments=self.directory.departments,
            number=(lambda n: n) if self.rules.sees_numbers(user) else mask,
        )

    async def call(self, request: Request, linkedid: str) -> Response:
        user = await self.user(request)
        call = await self.visible_call(user, linkedid)
        if not isinstance(call, dict):
            return await self.refuse(request, user, call)
        return await self.call_page(request, user, call)

    async def visible_call(self, user: User, linkedid: str) -> dict[str, Any] | int:
        """The stored call if ``user`` may see it, else the status that says why not."""
        call = await load_call(self.engine, linkedid)
        if call is None:
            return 404
        extensions = {call["answered_by"], call["staff"]}
        extensions |= {leg["extension"] for leg in call["legs"]}
        extensions |= {check["staff"] for check in call["checks"]}
        if not self.rules.sees_call(user, call["department"], {e for e in extensions if e}):
            return 403
        return call

    async def call_page(
        self, request: Request, user: User, call: dict[str, Any], status: int = 200, **values: Any
    ) -> HTMLResponse:
        """The call page; ``call_extras`` adds the checklist's and the recording's parts."""
        number = (lambda n: n) if self.rules.sees_numbers(user) else mask
        if self.call_extras is not None:
            values = {**await self.call_extras(request, user, call), **values}
        return await self.render(
            request,
            "call.html",
            user,
            status,
            call=call,
            timeline=_timeline(call),
            number=number,
            **values,
        )

    # -- admin ----------------------------------------------------------------------------

    async def admin(self, request: Request) -> Response:
        user = await self.user(request)
        if user.role != "admin":
            return await self.refuse(request, user, 403)
        return await self.render(
            request,
            "admin.html",
            user,
            users=await list_users(self.engine),
            directory=self.directory.settings,
            audit=await audit_entries(self.engine, 50),
            **({} if self.admin_extras is None else await self.admin_extras(request, user, user)),
        )


def _summary(by_owner: Counter[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Open and overdue counts per (department, staff), in that order."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (department, staff, state), count in sorted(by_owner.items()):
        row = rows.setdefault(
            (department, staff),
            {"department": department, "staff": staff, "open": 0, "overdue": 0},
        )
        row["overdue" if state == "overdue" else "open"] += count
    return list(rows.values())


def _cursor(before: str | None) -> tuple[datetime, str] | None:
    """The previous page's last call, ``<iso time>|<linkedid>``; a bad one is page 1."""
    if not before or "|" not in before:
        return None
    at, linkedid = before.split("|", 1)
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        return None
    return (parsed, linkedid) if parsed.tzinfo is not None else None


def _timeline(call: dict[str, Any]) -> list[tuple[datetime, str, str]]:
    """(when, what, who) of a stored call, in order of time."""
    events: list[tuple[datetime, str, str]] = [(call["started_at"], "ev_started", "")]
    for leg in call["legs"]:
        who = leg["extension"] or "customer"
        for key, what in (("rang_at", "ev_rang"), ("answered_at", "ev_answered")):
            if leg[key] is not None and leg["party"] == "staff":
                events.append((leg[key], what, who))
        if leg["ended_at"] is not None:
            events.append((leg["ended_at"], "ev_hung_up", who))
    for transfer in call["transfers"]:
        route = f"{transfer['from_ext'] or ''} → {transfer['to_ext'] or ''}"
        events.append((transfer["started_at"], "ev_transfer", route))
        if transfer["connected_at"] is not None:
            events.append((transfer["connected_at"], "ev_connected", route))
    if call["ended_at"] is not None:
        events.append((call["ended_at"], "ev_ended", ""))
    return sorted(events, key=lambda event: event[0])


def pages_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/login", pages.login_form, methods=["GET"])
    router.add_api_route("/login", pages.login, methods=["POST"])
    router.add_api_route("/logout", pages.logout, methods=["POST"])
    router.add_api_route("/", pages.home, methods=["GET"])
    router.add_api_route("/me", pages.me, methods=["GET"])
    router.add_api_route("/me/owed", pages.me_owed, methods=["GET"])
    router.add_api_route("/me/events", pages.me_events, methods=["GET"])
    router.add_api_route("/callbacks", pages.callbacks, methods=["GET"])
    router.add_api_route("/callbacks/memo", pages.memo, methods=["POST"])
    router.add_api_route("/callbacks/{obligation_id}/history", pages.history, methods=["GET"])
    router.add_api_route("/callbacks/{obligation_id}/cancel", pages.cancel, methods=["POST"])
    router.add_api_route("/calls", pages.calls, methods=["GET"])
    router.add_api_route("/calls/{linkedid}", pages.call, methods=["GET"])
    router.add_api_route("/admin", pages.admin, methods=["GET"])
    return router
