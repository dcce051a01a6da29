"""The callbacks API (P6, V4), under ``/api/callbacks``; used by the supervisor's web page and
by ``call-monitor memo``.

- ``GET /api/callbacks?staff=&department=&state=&limit=``: stored obligations, oldest first
  (``state`` may be given several times: any of them);
- ``GET /api/callbacks/{id}``: one obligation with its history;
- ``POST /api/callbacks/memo``: a colleague's memo, JSON ``{number, owner, taken_by,
  caller_name, matter, memo_id}`` (``memo_id`` optional: the same id twice makes one memo);
  201 when committed, 202 when accepted but the store is lagging (it is retried), 422 for
  an unknown owner or a number without digits;
- ``POST /api/callbacks/{id}/cancel``: JSON ``{reason, by}``; 404 if there is no such
  obligation, 409 if it is already closed; 200 when committed, 202 as for a memo.

An obligation comes with its history (``history``, and the joined calls' linkedids in
``calls``) as the store's ``obligation_changes`` rows have it: the tracker in memory keeps
only counts. A memo's or a cancel's answer ends with its own change, committed or not.

The caller's name, number and matter are strangers' words: stored and returned exactly as
given (JSON-escaped, never interpreted); only their length is limited, and NUL is refused
(PostgreSQL text cannot hold it).

Every request needs a user (a session or an API token, :mod:`call_monitor.web.auth`), whose
role says what they see (staff their own callbacks, supervisors their departments', auditors
and admins all) and change (auditors nothing; cancels supervisors and admins). A cancel is
recorded as the user's (``by``, when given, is ignored: it was whatever the sender typed).
Auditors get caller numbers masked. Memos and cancels are written to the audit log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from call_monitor.charter.obligations import (
    CHANGE,
    OBLIGATION,
    Obligation,
    ObligationChange,
    ObligationHistory,
    ObligationState,
    Outcome,
    callback_report,
    iso_at,
)
from call_monitor.records import Key, report
from call_monitor.store.accounts import User
from call_monitor.store.engine import STORE_DOWN
from call_monitor.web.auth import Access, Rules, mask

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_NUMBER = 64
MAX_NAME = 200
MAX_MATTER = 2000
MAX_PERSON = 100  # an extension, a department name or a person's name
MAX_REASON = 500
MAX_LIST = 1000
MEMO_ID = r"^[A-Za-z0-9._:-]+$"


class CallbackDesk(Protocol):
    """What the API asks of the callback service (``call_monitor.daemon.callbacks``): the
    web stands below the daemon and knows it only by this. Each raises
    :class:`~sqlalchemy.exc.SQLAlchemyError` when the store cannot answer."""

    async def query(
        self,
        *,
        staff: str | None = None,
        department: str | None = None,
        state: Sequence[str] | None = None,
        limit: int | None = 1000,
    ) -> list[Obligation]: ...

    async def get(self, obligation_id: str) -> Obligation | None: ...

    async def histories(
        self, obligations: Sequence[Obligation]
    ) -> dict[str, ObligationHistory]: ...

    async def history_until(self, change: ObligationChange) -> ObligationHistory: ...

    async def memo(
        self,
        *,
        number: str,
        owner: str,
        taken_by: str,
        caller_name: str,
        matter: str,
        memo_id: str | None,
    ) -> Outcome: ...

    async def cancel(self, obligation_id: str, reason: str, by: str | None) -> Outcome: ...


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL characters are not accepted")
        return value


class MemoIn(_Body):
    number: str = Field(min_length=1, max_length=MAX_NUMBER)
    owner: str = Field(min_length=1, max_length=MAX_PERSON)  # an extension or a department
    taken_by: str = Field(min_length=1, max_length=MAX_PERSON)
    caller_name: str = Field(default="", max_length=MAX_NAME)
    matter: str = Field(default="", max_length=MAX_MATTER)
    # The sender's id for this memo: sent again (a retry after a lost answer), it changes
    # nothing and gets the first answer again, marked ``"repeated": true``.
    memo_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=MEMO_ID)


class CancelIn(_Body):
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    by: str | None = Field(default=None, max_length=MAX_PERSON)


# An obligation's details in the API, in order, after its id and its ``replay --json`` line;
# ``calls`` and ``history`` are its history's.
OBLIGATION_DETAILS: tuple[Key, ...] = (
    "owner_kind",
    "source",
    "number_raw",
    "caller_name",
    "matter",
    "taken_by",
    "reminder_at",
    "calls",
    "closed_by",
    "closing_call",
    "history",
)
CHANGE_API: tuple[Key, ...] = ("at", "kind", "state", "cause", ("call_id", "linkedid"), "by")


def obligation_json(obligation: Obligation, history: ObligationHistory) -> dict[str, Any]:
    """An obligation for the API: the ``replay --json`` line plus its details and history
    (``history``: the store's, :meth:`CallbackDesk.histories`)."""
    values = OBLIGATION.values(obligation, iso_at) | {
        "calls": list(history.calls),
        "history": [report(CHANGE.values(c, iso_at), CHANGE_API) for c in history.changes],
    }
    return {
        "id": obligation.id,
        **callback_report(obligation),
        **report(values, OBLIGATION_DETAILS),
    }


async def _outcome(service: CallbackDesk, outcome: Outcome, done_status: int) -> JSONResponse:
    body = {
        "stored": outcome.stored,
        "repeated": outcome.repeated,
        "change": outcome.change.kind,
        "obligation": obligation_json(
            outcome.obligation, await service.history_until(outcome.change)
        ),
    }
    return JSONResponse(body, status_code=done_status if outcome.stored else 202)


# A store that cannot answer now will later: ask again after this (HTTP Retry-After).
RETRY_AFTER_SECONDS = 5


def unavailable(detail: str) -> HTTPException:
    """503 with ``Retry-After``: what the store cannot do now, it will."""
    return HTTPException(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _from_store(answer: Awaitable[_T]) -> _T:
    """The desk's answer from the store; 503 when the store cannot answer."""
    try:
        return await answer
    except STORE_DOWN as exc:
        raise unavailable(f"store unavailable: {type(exc).__name__}") from exc


class WriteLimit:
    """At most ``per_minute`` writes (memos, cancels) per client address in any minute:
    2,000 memos in 9 s from one client were all taken (issue 14, item 12). Past it 429,
    with ``Retry-After`` saying when the window lets one more through."""

    def __init__(self, per_minute: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._item = RateLimitItemPerMinute(per_minute)

    def __call__(self, request: Request) -> None:
        client = request.client.host if request.client is not None else "unknown"
        if self._limiter.hit(self._item, "callbacks-write", client):
            return
        reset_at = self._limiter.get_window_stats(self._item, "callbacks-write", client)[0]
        wait = max(1, round(reset_at - time.time()))
        raise HTTPException(
            429, "too many writes from this client", headers={"Retry-After": str(wait)}
        )


def callbacks_router(
    service: CallbackDesk, access: Access, *, writes_per_minute: int = 60
) -> APIRouter:
    routes = _CallbackRoutes(service, access)
    router = APIRouter(
        prefix="/api/callbacks",
        tags=["callbacks"],
        # Before the body is read: no credentials, no 422 telling what a body should be.
        dependencies=[Depends(access.authenticate)],
    )
    limited = [Depends(WriteLimit(writes_per_minute))]
    router.add_api_route("", routes.list_callbacks, methods=["GET"])
    router.add_api_route("/{obligation_id}", routes.get_callback, methods=["GET"])
    router.add_api_route(
        "/memo", routes.create_memo, methods=["POST"], status_code=201, dependencies=limited
    )
    router.add_api_route(
        "/{obligation_id}/cancel", routes.cancel_callback, methods=["POST"], dependencies=limited
    )
    return router


def _user(request: Request) -> User:
    user: User = request.state.user  # set by Access.authenticate, the router's dependency
    return user


def _scopes(
    rules: Rules, user: User, staff: str | None, department: str | None
) -> list[tuple[str | None, str | None]]:
    """The (staff, department) queries a user may make for what they asked; 403 past."""
    seen = rules.departments(user)
    if seen is None:
        return [(staff, department)]
    if user.role == "staff":
        if staff not in (None, user.extension) or department is not None:
            raise HTTPException(403, "staff see their own callbacks only")
        return [(user.extension, None)]
    if staff is not None:
        staff_department = rules.directory.department_of(staff)
        if staff_department not in seen or department not in (None, staff_department):
            raise HTTPException(403, "not one of your departments")
        return [(staff, None)]
    if department is not None:
        if department not in seen:
            raise HTTPException(403, "not one of your departments")
        return [(None, department)]
    return [(None, d) for d in seen]


async def visible(
    service: CallbackDesk,
    rules: Rules,
    user: User,
    *,
    staff: str | None = None,
    department: str | None = None,
    state: Sequence[str] | None = None,
    limit: int = MAX_LIST,
) -> list[Obligation]:
    """The obligations ``user`` asked for and may see, oldest first (the newest ``limit``)."""
    found: list[Obligation] = []
    for one_staff, one_department in _scopes(rules, user, staff, department):
        found += await _from_store(
            service.query(staff=one_staff, department=one_department, state=state, limit=limit)
        )
    found.sort(key=lambda o: (o.created_at, o.id))
    return found[-limit:]


async def write_memo(service: CallbackDesk, access: Access, user: User, memo: MemoIn) -> Outcome:
    """A memo by ``user`` (403 when their role may not write one for that owner), audited."""
    if not access.rules.may_memo(user, memo.owner):
        raise HTTPException(403, "you may not write a memo for this owner")
    try:
        outcome = await service.memo(
            number=memo.number,
            owner=memo.owner,
            taken_by=memo.taken_by,
            caller_name=memo.caller_name,
            matter=memo.matter,
            memo_id=memo.memo_id,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    except RuntimeError as exc:  # shutting down
        raise unavailable(str(exc)) from exc
    if not outcome.repeated:
        await access.audit(
            "memo", user, outcome.obligation.id, owner=memo.owner, taken_by=memo.taken_by
        )
    return outcome


async def cancel_obligation(
    service: CallbackDesk, access: Access, user: User, obligation_id: str, reason: str
) -> Outcome:
    """A cancel by ``user``: 404 unknown or not theirs to see, 403 not theirs to cancel,
    409 already closed; audited, recorded as the user's."""
    stored = await _from_store(service.get(obligation_id))
    if stored is None or not access.rules.sees_obligation(user, stored):
        raise HTTPException(404, "no such callback obligation")
    if not access.rules.may_cancel(user, stored):
        raise HTTPException(403, "you may not cancel this callback")
    try:
        outcome = await service.cancel(obligation_id, reason, user.login)
    except KeyError:
        raise await _not_cancelled(service, obligation_id) from None
    except RuntimeError as exc:
        raise unavailable(str(exc)) from exc
    await access.audit("cancel", user, obligation_id, reason=reason)
    return outcome


async def _not_cancelled(service: CallbackDesk, obligation_id: str) -> HTTPException:
    """Why a cancel found no open obligation: none at all (404), or closed (409)."""
    stored = await _from_store(service.get(obligation_id))
    if stored is None:
        return HTTPException(404, "no such callback obligation")
    return HTTPException(409, f"already closed: {stored.state}")


class _CallbackRoutes:
    """The API's handlers, each given the desk it serves (FastAPI reads a bound method's
    parameters as a function's)."""

    def __init__(self, service: CallbackDesk, access: Access) -> None:
        self.service = service
        self.access = access
        self.rules = access.rules

    def _shown(
        self, user: User, found: Sequence[Obligation], histories: dict[str, ObligationHistory]
    ) -> list[dict[str, Any]]:
        shown = [obligation_json(o, histories[o.id]) for o in found]
        if user.role == "auditor":  # reads the handling, rings nobody
            for item in shown:
                item["number"] = mask(item["number"])
                item["number_raw"] = mask(item["number_raw"])
        return shown

    async def list_callbacks(
        self,
        request: Request,
        staff: Annotated[str | None, Query(max_length=MAX_PERSON)] = None,
        department: Annotated[str | None, Query(max_length=MAX_PERSON)] = None,
        state: Annotated[list[ObligationState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST,
    ) -> dict[str, Any]:
        user = _user(request)
        found = await visible(
            self.service,
            self.rules,
            user,
            staff=staff,
            department=department,
            state=state,
            limit=limit,
        )
        histories = await _from_store(self.service.histories(found))
        return {"obligations": self._shown(user, found, histories)}

    async def get_callback(self, request: Request, obligation_id: str) -> dict[str, Any]:
        user = _user(request)
        found = await _from_store(self.service.get(obligation_id))
        # Another's obligation is "not found": its id tells nothing about it.
        if found is None or not self.rules.sees_obligation(user, found):
            raise HTTPException(404, "no such callback obligation")
        histories = await _from_store(self.service.histories([found]))
        return self._shown(user, [found], histories)[0]

    async def create_memo(self, request: Request, memo: MemoIn) -> JSONResponse:
        outcome = await write_memo(self.service, self.access, _user(request), memo)
        return await _outcome(self.service, outcome, 201)

    async def cancel_callback(
        self, request: Request, obligation_id: str, cancel: CancelIn
    ) -> JSONResponse:
        outcome = await cancel_obligation(
            self.service, self.access, _user(request), obligation_id, cancel.reason
        )
        return await _outcome(self.service, outcome, 200)
