"""What the checklist keeps: revisions, acknowledgements, disputes. Plain data, pure.

A call's checklist is a list of revisions, 1, 2, ...: a submitted revision is never edited; a
correction is the next revision, with its reason. The latest revision is the call's score
(exports read it). The staff member scored acknowledges a revision, or disputes one item
of it with a comment; a supervisor resolves the dispute by upholding the revision (with a
comment) or by a new revision (the dispute names it). Each record's mapping (``REVISION``
...) gives the store's rows (``store.checklists``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from call_monitor.checklist.scoring import ScoredItem
from call_monitor.records import Shape

Resolution = Literal["upheld", "revised"]


@dataclass(frozen=True, slots=True)
class Revision:
    linkedid: str
    revision: int  # 1 for the first submission, then 2, 3 ... per correction
    form_id: str
    form_version: str
    supervisor: str  # login of who submitted it
    submitted_at: datetime
    reason: str | None  # why this correction; None for revision 1
    score: float | None  # 0-100; None when nothing was answered yes or no
    passed: bool  # no critical item answered no
    staff: str | None  # the extension scored (who answered the call)
    department: str | None  # that staff member's department, else the call's
    call_started_at: datetime  # the call's month is sampling's and progress's month
    items: tuple[ScoredItem, ...] = ()


REVISION: Shape[Revision] = Shape(Revision)
SCORED_ITEM: Shape[ScoredItem] = Shape(ScoredItem)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    linkedid: str
    revision: int
    staff: str
    at: datetime


ACKNOWLEDGEMENT: Shape[Acknowledgement] = Shape(Acknowledgement)


@dataclass(frozen=True, slots=True)
class Dispute:
    """One item of one revision disputed by the staff member (one dispute per revision)."""

    linkedid: str
    revision: int
    item_id: str
    staff: str
    comment: str
    opened_at: datetime
    resolution: Resolution | None = None  # None: open
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution_comment: str | None = None
    resolving_revision: int | None = None  # the new revision, when revised

    @property
    def open(self) -> bool:
        return self.resolution is None


DISPUTE: Shape[Dispute] = Shape(Dispute)


@dataclass(frozen=True, slots=True)
class History:
    """Everything recorded about one call's checklist, oldest first."""

    linkedid: str
    revisions: tuple[Revision, ...]
    acknowledgements: tuple[Acknowledgement, ...]
    disputes: tuple[Dispute, ...]

    @property
    def latest(self) -> Revision | None:
        return self.revisions[-1] if self.revisions else None
