"""The supervisors' checklist on the web (issue 10): on the call page, on the staff home, and
the sampling page. Every write goes through :class:`ChecklistService` (which feeds the
metrics) and into the audit log.

Who may do what:

- **supervisor** of the scored staff member's department (the call's, when nobody of the
  directory answered), and **admin**: score a call (``POST /calls/{id}/checklist``), correct
  it with a reason (a new revision), resolve a dispute by a new revision or by upholding it
  (``.../{revision}/uphold``); the sampling page ``/checklists`` for their departments;
- **staff**: the scores of their own calls (the call page, the staff home), acknowledge the
  latest revision (``.../{revision}/acknowledge``) or dispute one item of it with a comment
  (``.../{revision}/dispute``);
- **auditor**: reads everything (every call page, ``/checklists`` of every department),
  changes nothing.

The call's recording (``web.recording_template``) plays on the call page; a local file is
served by ``/calls/{id}/recording`` (range requests) to whoever may see the call.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from call_monitor.checklist.facts import Answer, Asked, CallFacts, ask, facts_of
from call_monitor.checklist.revisions import Dispute, History, Revision
from call_monitor.checklist.scoring import MAX_COMMENT, ChecklistError, Given
from call_monitor.directory import Directory
from call_monitor.store.accounts import User
from call_monitor.store.checklist_service import ChecklistService, NotFound, Refused
from call_monitor.web.auth import Access
from call_monitor.web.pages import Pages
from call_monitor.web.recording import Recordings

# ?done=... after a write (post, redirect, get): the notice each shows.
NOTICES = {
    "submitted": "cl_submitted",
    "acknowledged": "cl_acknowledged",
    "disputed": "cl_disputed",
    "upheld": "cl_upheld",
}
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


@dataclass(frozen=True, slots=True)
class Sheet:
    """The checklist part of one call page, for one user."""

    linkedid: str
    facts: CallFacts
    asked: tuple[Asked, ...]
    history: History
    shown: dict[str, tuple[str, str]]  # item id -> (answer, comment) the form starts with
    direct_numbers: tuple[tuple[str, str], ...]  # (department, number) of P5's transfers
    may_score: bool
    may_answer: bool  # the scored staff member, latest revision not yet answered
    open_dispute: Dispute | None  # the latest revision's open dispute

    @property
    def latest(self) -> Revision | None:
        return self.history.latest


class ChecklistPages:
    def __init__(
        self, pages: Pages, service: ChecklistService, access: Access, recordings: Recordings
    ) -> None:
        self.pages = pages
        self.service = service
        self.access = access
        self.recordings = recordings
        self.directory: Directory = service.directory
        pages.call_extras = self.call_part
        pages.me_extras = self.me_part
        pages.admin_extras = self.admin_part

    # -- who may ---------------------------------------------------------------------------

    def department(self, call: dict[str, Any]) -> str | None:
        """The department a call is scored in: its answerer's, else the call's (as the
        service stores it on the revision)."""
        return self.directory.department_of(call["answered_by"]) or call["department"]

    def may_score(self, user: User, department: str | None) -> bool:
        if user.role == "admin":
            return True
        return user.role == "supervisor" and department in user.departments

    # -- parts of other pages --------------------------------------------------------------

    async def call_part(self, request: Request, user: User, call: dict[str, Any]) -> dict[str, Any]:
        facts = facts_of(call, self.directory)
        asked = ask(self.service.form, facts)
        history = await self.service.history(call["linkedid"])
        latest = history.latest
        responded = {a.revision for a in history.acknowledgements}
        responded |= {d.revision for d in history.disputes}
        answered = latest is not None and latest.revision in responded
        open_dispute = next(
            (d for d in history.disputes if d.open and latest and d.revision == latest.revision),
            None,
        )
        sheet = Sheet(
            linkedid=call["linkedid"],
            facts=facts,
            asked=asked,
            history=history,
            shown=_shown(asked, latest),
            direct_numbers=self._direct_numbers(facts),
            may_score=facts.answered and self.may_score(user, self.department(call)),
            may_answer=(
                latest is not None
                and not answered
                and user.role == "staff"
                and user.extension == latest.staff
            ),
            open_dispute=open_dispute,
        )
        recording = await asyncio.to_thread(self.recordings.find, call)
        notice = NOTICES.get(request.query_params.get("done", ""))
        return {
            "sheet": sheet,
            "form": self.service.form,
            "recording": recording,
            "max_comment": MAX_COMMENT,
            **({"notice": notice} if notice else {}),
        }

    def _direct_numbers(self, facts: CallFacts) -> tuple[tuple[str, str], ...]:
        found: dict[str, str] = {}
        for transfer in facts.transfers:
            department = transfer.to_department
            if transfer.other_department and department:
                found[department] = self.directory.direct_number(department) or ""
        return tuple(found.items())

    async def me_part(self, request: Request, user: User, _: User) -> dict[str, Any]:
        if user.extension is None:
            return {}
        scored = await self.service.scored(user.extension)
        scores = [r.score for r in scored if r.score is not None]
        mean = round(sum(scores) / len(scores), 2) if scores else None
        return {"scored": scored, "mean_score": mean}

    async def admin_part(self, request: Request, user: User, _: User) -> dict[str, Any]:
        return {"checklist_form": self.service.form}

    # -- writes ----------------------------------------------------------------------------

    async def _call_for(self, request: Request, linkedid: str) -> tuple[User, Any]:
        """The user and the call, or the user and the refusal page."""
        user = await self.pages.user(request)
        call = await self.pages.visible_call(user, linkedid)
        if not isinstance(call, dict):
            return user, await self.pages.refuse(request, user, call)
        return user, call

    async def submit(self, request: Request, linkedid: str) -> Response:
        user, call = await self._call_for(request, linkedid)
        if not isinstance(call, dict):
            return cast("Response", call)
        if not self.may_score(user, self.department(call)):
            return await self.pages.refuse(request, user, 403)
        form = await request.form()
        answers: dict[str, Given] = {}
        posted: dict[str, tuple[str, str]] = {}
        for item in self.service.form.items:
            answer = form.get(f"answer-{item.id}")
            comment = form.get(f"comment-{item.id}")
            comment = comment if isinstance(comment, str) else ""
            if isinstance(answer, str) and answer:
                answers[item.id] = Given(cast("Answer", answer), comment)
                posted[item.id] = (answer, comment)
        reason = _text(form.get("reason"))
        resolves = _text(form.get("resolves"))
        try:
            if resolves.isdigit():
                revision, _ = await self.service.revise(
                    linkedid, int(resolves), answers, user.login, reason
                )
            else:
                revision = await self.service.submit(linkedid, answers, user.login, reason)
        except ChecklistError as exc:
            return await self.pages.call_page(
                request, user, call, 422, posted=posted, problems=exc.problems, reason=reason
            )
        except (Refused, NotFound) as exc:
            status = 404 if isinstance(exc, NotFound) else 409
            return await self.pages.call_page(
                request, user, call, status, posted=posted, error=str(exc), reason=reason
            )
        await self.access.audit(
            "checklist_submit" if revision.revision == 1 else "checklist_revision",
            user,
            linkedid,
            revision=revision.revision,
            score=revision.score,
            passed=revision.passed,
            reason=revision.reason,
            resolves=int(resolves) if resolves.isdigit() else None,
        )
        return _back(linkedid, "submitted")

    async def acknowledge(self, request: Request, linkedid: str, revision: int) -> Response:
        return await self._respond(
            request,
            linkedid,
            _scored_staff,
            lambda user: self.service.acknowledge(linkedid, revision, user.extension or ""),
            ("checklist_acknowledge", "acknowledged"),
            revision=revision,
        )

    async def dispute(
        self,
        request: Request,
        linkedid: str,
        revision: int,
        item_id: Annotated[str, Form(max_length=40)],
        comment: Annotated[str, Form(max_length=MAX_COMMENT)] = "",
    ) -> Response:
        return await self._respond(
            request,
            linkedid,
            _scored_staff,
            lambda user: self.service.dispute(
                linkedid, revision, user.extension or "", item_id, comment
            ),
            ("checklist_dispute", "disputed"),
            revision=revision,
            item=item_id,
            comment=comment,
        )

    async def uphold(
        self,
        request: Request,
        linkedid: str,
        revision: int,
        comment: Annotated[str, Form(max_length=MAX_COMMENT)] = "",
    ) -> Response:
        return await self._respond(
            request,
            linkedid,
            lambda user, call: self.may_score(user, self.department(call)),
            lambda user: self.service.uphold(linkedid, revision, user.login, comment),
            ("checklist_uphold", "upheld"),
            revision=revision,
            comment=comment,
        )

    async def _respond(
        self,
        request: Request,
        linkedid: str,
        allowed: Callable[[User, dict[str, Any]], bool],
        act: Callable[[User], Awaitable[object]],
        names: tuple[str, str],
        **details: object,
    ) -> Response:
        """A staff member's answer or a supervisor's resolution: who may, the service's
        refusal as the call page with its reason, else the audit row and back to the call."""
        user, call = await self._call_for(request, linkedid)
        if not isinstance(call, dict):
            return cast("Response", call)
        if not allowed(user, call):
            return await self.pages.refuse(request, user, 403)
        try:
            await act(user)
        except (Refused, NotFound) as exc:
            status = 404 if isinstance(exc, NotFound) else 409
            return await self.pages.call_page(request, user, call, status, error=str(exc))
        action, done = names
        await self.access.audit(action, user, linkedid, **details)
        return _back(linkedid, done)

    # -- sampling --------------------------------------------------------------------------

    async def sampling(
        self,
        request: Request,
        month: Annotated[str | None, Query(pattern=MONTH)] = None,
        department: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        """One department's board at a time (its staff's progress and next calls: two
        queries per person), the others a link away; the open disputes of all of them."""
        user = await self.pages.user(request)
        if user.role == "staff":
            return await self.pages.refuse(request, user, 403)
        seen = self.pages.rules.departments(user)
        departments = self.directory.departments if seen is None else list(seen)
        if department is not None and department not in departments:
            return await self.pages.refuse(request, user, 403)
        shown = department or (departments[0] if departments else None)
        month = month or self.service.month()
        staff = [e for e in self.directory.extensions if self.directory.department_of(e) == shown]
        picks = [await self.service.next_to_score(extension, month) for extension in staff]
        return await self.pages.render(
            request,
            "checklists.html",
            user,
            month=month,
            departments=departments,
            shown=shown,
            picks=picks,
            disputes=await self.service.open_disputes(departments),
        )

    # -- the recording ---------------------------------------------------------------------

    async def recording(self, request: Request, linkedid: str) -> Response:
        user, call = await self._call_for(request, linkedid)
        if not isinstance(call, dict):
            return cast("Response", call)
        found = await asyncio.to_thread(self.recordings.find, call)
        if found is None or found.path is None:
            return await self.pages.refuse(request, user, 404)
        media_type = mimetypes.guess_type(found.path.name)[0] or "application/octet-stream"
        # FileResponse answers Range requests (206, one or several ranges) itself.
        return FileResponse(found.path, media_type=media_type, headers=_PRIVATE)


_PRIVATE = {"Cache-Control": "private, no-store"}


def _scored_staff(user: User, _: dict[str, Any]) -> bool:
    """Staff only: the service checks it is the staff member the revision scored."""
    return user.role == "staff" and user.extension is not None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _shown(asked: Sequence[Asked], latest: Revision | None) -> dict[str, tuple[str, str]]:
    """What the form starts with: the latest revision's answers (a correction starts from
    them), else the PBX's measured answers."""
    previous = {} if latest is None else {i.item_id: (i.answer, i.comment) for i in latest.items}
    shown: dict[str, tuple[str, str]] = {}
    for item in asked:
        if item.item.id in previous:
            shown[item.item.id] = previous[item.item.id]
        elif item.prefilled is not None:
            shown[item.item.id] = (item.prefilled, "")
    return shown


def _back(linkedid: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/calls/{linkedid}?done={done}#checklist", status_code=303)


def checklist_router(pages: ChecklistPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/checklists", pages.sampling, methods=["GET"])
    router.add_api_route("/calls/{linkedid}/checklist", pages.submit, methods=["POST"])
    for action in ("acknowledge", "dispute", "uphold"):
        router.add_api_route(
            f"/calls/{{linkedid}}/checklist/{{revision}}/{action}",
            getattr(pages, action),
            methods=["POST"],
        )
    router.add_api_route("/calls/{linkedid}/recording", pages.recording, methods=["GET", "HEAD"])
    return router
