"""What the checklist pages call: score a call, correct it, acknowledge, dispute, resolve,
the history, the next call to score, a department's progress. I/O shell over the async
engine; the rules are :mod:`call_monitor.checklist`'s.

Who may do what is the web's to check (roles, departments); this records who did it and
keeps the checklist's own rules, refused with :class:`Refused` (a one-line reason) or
:class:`~call_monitor.checklist.scoring.ChecklistError` (the items' problems):

- a call is scored once it is stored and answered; the first submission is revision 1, each
  later one a correction that needs a reason (revision numbers are taken in the writing
  transaction; two supervisors at once get 2 and 3, never two 2s);
- only the latest revision is acknowledged or disputed, and only by the staff member it
  scored; one acknowledgement or one dispute per revision, of one of its items, with a
  comment;
- a dispute is resolved once: upheld (with a comment), or by a new revision (whose reason is
  the resolution's comment), written in the same transaction as the resolution.

``on_submitted(revision, first)`` is told of every revision written, after its commit (the
daemon feeds the metrics with it); a failure there is logged, the revision stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from call_monitor.checklist.facts import Asked, CallFacts, ask, facts_of
from call_monitor.checklist.form import Form
from call_monitor.checklist.revisions import Acknowledgement, Dispute, History, Revision
from call_monitor.checklist.sampling import month_of, pick, sample_key, sampling_order
from call_monitor.checklist.scoring import MAX_COMMENT, Given, Scored, evaluate
from call_monitor.directory import Directory
from call_monitor.store import checklists
from call_monitor.store.checklists import StaffProgress
from call_monitor.store.reading import load_call

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3  # a revision number taken by a concurrent submission: take the next one


class NotFound(LookupError):
    """No such call, revision or dispute."""


class Refused(ValueError):
    """A rule of the checklist refuses the request; the message says which."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A call as the checklist page shows it before a submission."""

    facts: CallFacts
    asked: tuple[Asked, ...]
    history: History


@dataclass(frozen=True, slots=True)
class Pick:
    """Sampling's answer for one staff member and month."""

    month: str
    staff: str
    linkedid: str | None  # None: no unscored eligible call left
    candidates: int  # unscored eligible calls
    progress: StaffProgress


@dataclass(frozen=True, slots=True)
class AuditedCall:
    """One eligible call in sampling's order: its key (HMAC-SHA256, hex) and whether it
    was scored."""

    linkedid: str
    key: str
    scored: bool


@dataclass(frozen=True, slots=True)
class _Scoring:
    linkedid: str
    call_started_at: datetime
    facts: CallFacts
    scored: Scored


class ChecklistService:
    def __init__(
        self,
        engine: AsyncEngine,
        form: Form,
        directory: Directory,
        *,
        monthly_target: int = 4,
        clock: Callable[[], datetime] = _utc_now,
        on_submitted: Callable[[Revision, bool], None] | None = None,
        reader: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine
        # The reads (``store.engine.create_reader``: no transaction round trips); the writes
        # stay on ``engine``, in their transactions.
        self.reads = reader or engine
        self.form = form
        self.directory = directory
        self.monthly_target = monthly_target
        self.clock = clock
        self.on_submitted = on_submitted

    # -- reading -------------------------------------------------------------------------

    async def prepare(self, linkedid: str) -> Prepared:
        """The call's facts, the form's items for it (applicable, pre-filled), its history."""
        call = await self._call(linkedid)
        facts = facts_of(call, self.directory)
        return Prepared(facts, ask(self.form, facts), await self.history(linkedid))

    async def history(self, linkedid: str) -> History:
        async with self.reads.connect() as conn:
            return await checklists.load_history(conn, linkedid)

    async def latest(self, linkedids: Sequence[str]) -> dict[str, Revision]:
        """The latest revision of each scored call among ``linkedids`` (a calls list)."""
        return await checklists.latest_revisions(self.reads, linkedids)

    async def open_disputes(self, departments: Sequence[str]) -> list[Dispute]:
        """The disputes waiting for the supervisors of ``departments``, oldest first."""
        return await checklists.open_disputes(self.reads, departments)

    async def scored(self, staff: str, month: str | None = None) -> list[Revision]:
        """The latest revisions of the staff member's scored calls in ``month`` (this one by
        default), newest call first: what the staff home lists."""
        return await checklists.staff_revisions(self.engine, staff, month or self.month())

    def month(self) -> str:
        """This month (``YYYY-MM``, Asia/Seoul) by the service's clock."""
        return month_of(self.clock())

    async def next_to_score(self, staff: str, month: str | None = None) -> Pick:
        """The staff member's next call to score (``checklist.sampling``) in ``month``
        (``YYYY-MM``, Asia/Seoul; this month by default), with their progress."""
        month = month or month_of(self.clock())
        candidates = await checklists.sampling_candidates(self.reads, month, staff)
        [progress] = await checklists.progress(self.reads, month, [staff], self.monthly_target)
        return Pick(month, staff, pick(month, staff, candidates), len(candidates), progress)

    async def sampling_audit(self, staff: str, month: str) -> list[AuditedCall]:
        """Every eligible call of the staff member's month in sampling's order, with its key
        and whether it was scored: scored calls that are not the first ones of the order
        (among the calls there when each was picked) were not sampling's picks."""
        eligible = await checklists.eligible_calls(self.reads, month, staff)
        return [
            AuditedCall(linkedid, sample_key(month, staff, linkedid), eligible[linkedid])
            for linkedid in sampling_order(month, staff, eligible)
        ]

    async def progress(self, department: str, month: str | None = None) -> list[StaffProgress]:
        """Each staff member of ``department`` (the directory's): scored calls this month
        (or ``month``) against the target."""
        staff = [
            extension
            for extension in self.directory.extensions
            if self.directory.department_of(extension) == department
        ]
        month = month or month_of(self.clock())
        return await checklists.progress(self.reads, month, staff, self.monthly_target)

    # -- writing -------------------------------------------------------------------------

    async def submit(
        self,
        linkedid: str,
        answers: Mapping[str, Given],
        supervisor: str,
        reason: str | None = None,
    ) -> Revision:
        """Score the call: revision 1, or a correction (``reason`` required)."""
        scoring = await self._scoring(linkedid, answers)
        return await self._write(scoring, supervisor, _optional(reason, "reason"))

    async def acknowledge(self, linkedid: str, revision: int, staff: str) -> Acknowledgement:
        ack = Acknowledgement(linkedid, revision, staff, self.clock())
        async with self.engine.begin() as conn:
            history = await checklists.load_history(conn, linkedid)
            self._check_own_latest(history, revision, staff)
            await checklists.insert_acknowledgement(conn, ack)
        return ack

    async def dispute(
        self, linkedid: str, revision: int, staff: str, item_id: str, comment: str
    ) -> Dispute:
        """Dispute one item of the latest revision (the staff member it scored)."""
        comment = _required(comment, "comment")
        async with self.engine.begin() as conn:
            history = await checklists.load_history(conn, linkedid)
            scored = self._check_own_latest(history, revision, staff)
            if item_id not in {item.item_id for item in scored.items}:
                raise Refused(f"item {item_id!r} is not in revision {revision}")
            dispute = Dispute(linkedid, revision, item_id, staff, comment, self.clock())
            await checklists.insert_dispute(conn, dispute)
        return dispute

    async def uphold(self, linkedid: str, revision: int, supervisor: str, comment: str) -> Dispute:
        """Resolve the revision's dispute by upholding the revision."""
        comment = _required(comment, "comment")
        async with self.engine.begin() as conn:
            dispute = await self._open_dispute(conn, linkedid, revision)
            resolved = replace(
                dispute,
                resolution="upheld",
                resolved_by=supervisor,
                resolved_at=self.clock(),
                resolution_comment=comment,
            )
            if not await checklists.close_dispute(conn, resolved):
                raise Refused("the dispute was resolved meanwhile")
        return resolved

    async def revise(
        self,
        linkedid: str,
        revision: int,
        answers: Mapping[str, Given],
        supervisor: str,
        reason: str,
    ) -> tuple[Revision, Dispute]:
        """Resolve the revision's dispute by a new revision (``reason``: why, the resolution's
        comment), both written in one transaction."""
        reason = _required(reason, "reason")
        async with self.reads.connect() as conn:
            await self._open_dispute(conn, linkedid, revision)  # fail before scoring
        scoring = await self._scoring(linkedid, answers)
        written = await self._write(scoring, supervisor, reason, disputed=revision)
        async with self.reads.connect() as conn:
            history = await checklists.load_history(conn, linkedid)
        [dispute] = [d for d in history.disputes if d.revision == revision]
        return written, dispute

    # -- the parts -----------------------------------------------------------------------

    async def _call(self, linkedid: str) -> dict[str, Any]:
        call = await load_call(self.reads, linkedid)
        if call is None:
            raise NotFound(f"no call {linkedid!r}")
        return call

    async def _scoring(self, linkedid: str, answers: Mapping[str, Given]) -> _Scoring:
        call = await self._call(linkedid)
        facts = facts_of(call, self.directory)
        if not facts.answered:
            raise Refused("the call was not answered: there is no conversation to score")
        return _Scoring(linkedid, call["started_at"], facts, evaluate(self.form, facts, answers))

    async def _write(
        self,
        scoring: _Scoring,
        supervisor: str,
        reason: str | None,
        disputed: int | None = None,
    ) -> Revision:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with self.engine.begin() as conn:
                    revision = await self._insert(conn, scoring, supervisor, reason, disputed)
                break
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.info("checklist of %s: revision number taken, retrying", scoring.linkedid)
        self._tell(revision)
        return revision

    async def _insert(
        self,
        conn: AsyncConnection,
        scoring: _Scoring,
        supervisor: str,
        reason: str | None,
        disputed: int | None,
    ) -> Revision:
        latest = await checklists.latest_number(conn, scoring.linkedid)
        if latest and reason is None:
            raise Refused(f"revision {latest} exists: a correction needs a reason")
        staff = scoring.facts.answered_by
        revision = Revision(
            linkedid=scoring.linkedid,
            revision=latest + 1,
            form_id=self.form.id,
            form_version=self.form.version,
            supervisor=supervisor,
            submitted_at=self.clock(),
            reason=reason if latest else None,
            score=scoring.scored.score,
            passed=scoring.scored.passed,
            staff=staff,
            department=self.directory.department_of(staff) or scoring.facts.department,
            call_started_at=scoring.call_started_at,
            items=scoring.scored.items,
        )
        await checklists.insert_revision(conn, revision)
        if disputed is not None:
            dispute = await self._open_dispute(conn, scoring.linkedid, disputed)
            resolved = replace(
                dispute,
                resolution="revised",
                resolved_by=supervisor,
                resolved_at=revision.submitted_at,
                resolution_comment=reason,
                resolving_revision=revision.revision,
            )
            if not await checklists.close_dispute(conn, resolved):
                raise Refused("the dispute was resolved meanwhile")
        return revision

    def _tell(self, revision: Revision) -> None:
        if self.on_submitted is None:
            return
        try:
            self.on_submitted(revision, revision.revision == 1)
        except Exception:  # the revision is written; a metrics bug must not undo the answer
            log.exception("checklist of %s: on_submitted failed", revision.linkedid)

    @staticmethod
    def _check_own_latest(history: History, revision: int, staff: str) -> Revision:
        latest = history.latest
        if latest is None or not any(r.revision == revision for r in history.revisions):
            raise NotFound(f"no revision {revision} of call {history.linkedid!r}")
        if latest.revision != revision:
            raise Refused(f"revision {revision} was corrected: revision {latest.revision} counts")
        if latest.staff != staff:
            raise Refused(f"revision {revision} scored {latest.staff}, not {staff}")
        if any(a.revision == revision for a in history.acknowledgements) or any(
            d.revision == revision for d in history.disputes
        ):
            raise Refused(f"revision {revision} was already acknowledged or disputed")
        return latest

    @staticmethod
    async def _open_dispute(conn: AsyncConnection, linkedid: str, revision: int) -> Dispute:
        history = await checklists.load_history(conn, linkedid)
        for dispute in history.disputes:
            if dispute.revision == revision:
                if not dispute.open:
                    raise Refused(f"the dispute of revision {revision} is resolved already")
                return dispute
        raise NotFound(f"no dispute of revision {revision} of call {linkedid!r}")


def _optional(value: str | None, name: str) -> str | None:
    """A comment or reason, stripped, ``None`` if blank; ``Refused`` if too long."""
    text = (value or "").strip()
    if len(text) > MAX_COMMENT:
        raise Refused(f"{name}: longer than {MAX_COMMENT} characters")
    return text or None


def _required(value: str, name: str) -> str:
    text = _optional(value, name)
    if text is None:
        raise Refused(f"{name}: required")
    return text
