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

NO AUTHENTICATION YET: that comes with the supervisor web page's issue. Until then the web
server must listen on loopback only (``web.host``, 127.0.0.1 by default).
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
from call_monitor.store.engine import STORE_DOWN

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


def callbacks_router(service: CallbackDesk, *, writes_per_minute: int = 60) -> APIRouter:
    routes = _CallbackRoutes(service)
    router = APIRouter(prefix="/api/callbacks", tags=["callbacks"])
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


class _CallbackRoutes:
    """The API's handlers, each given the desk it serves (FastAPI reads a bound method's
    parameters as a function's)."""

    def __init__(self, service: CallbackDesk) -> None:
        self.service = service

    async def list_callbacks(
        self,
        staff: Annotated[str | None, Query(max_length=MAX_PERSON)] = None,
        department: Annotated[str | None, Query(max_length=MAX_PERSON)] = None,
        state: Annotated[list[ObligationState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST,
    ) -> dict[str, Any]:
        found = await _from_store(
            self.service.query(staff=staff, department=department, state=state, limit=limit)
        )
        histories = await _from_store(self.service.histories(found))
        return {"obligations": [obligation_json(o, histories[o.id]) for o in found]}

    async def get_callback(self, obligation_id: str) -> dict[str, Any]:
        found = await _from_store(self.service.get(obligation_id))
        if found is None:
            raise HTTPException(404, "no such callback obligation")
        histories = await _from_store(self.service.histories([found]))
        return obligation_json(found, histories[found.id])

    async def create_memo(self, memo: MemoIn) -> JSONResponse:
        try:
            outcome = await self.service.memo(
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
        return await _outcome(self.service, outcome, 201)

    async def cancel_callback(self, obligation_id: str, cancel: CancelIn) -> JSONResponse:
        try:
            outcome = await self.service.cancel(obligation_id, cancel.reason, cancel.by)
        except KeyError:
            raise await self._not_cancelled(obligation_id) from None
        except RuntimeError as exc:
            raise unavailable(str(exc)) from exc
        return await _outcome(self.service, outcome, 200)

    async def _not_cancelled(self, obligation_id: str) -> HTTPException:
        """Why a cancel found no open obligation: none at all (404), or closed (409)."""
        stored = await _from_store(self.service.get(obligation_id))
        if stored is None:
            return HTTPException(404, "no such callback obligation")
        return HTTPException(409, f"already closed: {stored.state}")
