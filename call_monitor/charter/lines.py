"""One line a team lead reads per finished call, and the summary after a replay: Korean
first, English with ``lang="en"``. Pure: the call, its verdict, the directory and the
callback changes the call caused are all handed in.

What a line says, in order: when the call started (Seoul, to the second), its direction and
department, who answered (name and extension from the directory) or why it was missed, how
long it rang, the charter verdicts (only on a judged call: an internal or outbound call is
described, never judged), each transfer in the office's words, who hung up first, and the
callbacks the call opened, joined, attempted or closed.

Words chosen for the Korean lines (what staff say, not the PBX's terms): a blind transfer is
"바로 돌려줌" (passed on at once), an attended one "설명 후 돌려줌" (passed on after briefing
the colleague); a callback owed is "회신 필요", its deadline "기한"; seconds are always "초".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from call_monitor.calls.model import CallRecord, Transfer
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.obligations import ObligationChange
from call_monitor.charter.rules import TransferVerdict
from call_monitor.directory import Directory
from call_monitor.timefmt import SEOUL

Lang = str  # "ko" or "en"

_KO = {
    "inbound": "수신",
    "outbound": "발신",
    "internal": "내선",
    "unknown": "방향 미상",
    "answered": "{who} 응답",
    "picked": "{who} 당겨받음",
    "customer_answered": "{who}→고객, 고객 응답",
    "not_answered": "{who}→고객, 고객 응답 없음",
    "missed": "부재중: {reason}",
    "no_answer": "아무도 받지 않음",
    "caller_abandoned": "고객이 기다리다 끊음",
    "abandoned_in_queue": "대기열에서 기다리다 끊음(벨 울리기 전)",
    "after_voicemail": "음성사서함으로",
    "after_voicemail_left": "음성사서함에 메시지 남김",
    "after_announcement": "안내 방송으로",
    "after_other": "다른 안내로",
    "busy": "통화 중",
    "unavailable": "전화기 연결 안 됨",
    "failed": "연결 실패",
    "pbx_restart": "교환기 재시작으로 끊김",
    "ring": "벨 {rings}회({seconds:.1f}초)",
    "met": "충족",
    "breached": "미충족",
    "apology": "P2 양해 인사 필요",
    "blind": "바로 돌려줌",
    "park": "보류(파킹) 후 연결",
    "attended": "설명 후 돌려줌",
    "transfer_connected": "{src}→{dst} {kind}, {wait:.1f}초 만에 연결",
    "transfer_not_connected": "{src}→{dst} {kind}, 연결 안 됨",
    "other_department": "다른 부서",
    "external": "외부로 연결",
    "caller_first": "고객이 먼저 끊음",
    "staff_first": "직원이 먼저 끊음",
    "hangup_unknown": "끊은 쪽 미상",
    "pbx_first": "교환기가 끊음(재시작)",
    "incomplete": "일부만 관찰됨(감시 중단): 판정 안 함",
    "unknown_time": "시각 미상",
    "created": "회신 필요: {owner}, 기한 {due}",
    "joined": "회신 필요(같은 고객 다시 부재중): {owner}, 기한 {due}",
    "attempt": "회신 시도: 고객 응답 없음({owner} 회신 대기)",
    "fulfilled_on_time": "회신 완료(기한 내)",
    "fulfilled_late": "회신 완료(기한 넘김)",
    "resolved_by_inbound": "고객이 다시 걸어와 회신 해결",
    "summary": "합계: 통화 {calls}건 · 판정 {judged}건 · P1 {p1}"
    " · 부재중 {missed}건 · 회신 필요 {owed}건(완료 {done}, 대기 {open})",
    "percent": "충족 {met}/{checked}({percent:.0f}%)",
    "none": "해당 없음",
}
_EN = {
    "inbound": "inbound",
    "outbound": "outbound",
    "internal": "internal",
    "unknown": "direction unknown",
    "answered": "answered by {who}",
    "picked": "picked up by {who}",
    "customer_answered": "{who}->customer, answered",
    "not_answered": "{who}->customer, no answer",
    "missed": "missed: {reason}",
    "no_answer": "nobody answered",
    "caller_abandoned": "caller gave up waiting",
    "abandoned_in_queue": "caller left the queue before any phone rang",
    "after_voicemail": "to voicemail",
    "after_voicemail_left": "left a voicemail message",
    "after_announcement": "to an announcement",
    "after_other": "on to another application",
    "busy": "busy",
    "unavailable": "phone unreachable",
    "failed": "connection failed",
    "pbx_restart": "cut off by a PBX restart",
    "ring": "{rings} {rings_word} ({seconds:.1f} s)",
    "met": "met",
    "breached": "breached",
    "apology": "P2 apology expected",
    "blind": "passed on at once",
    "park": "parked, then taken up",
    "attended": "passed on after briefing",
    "transfer_connected": "{src}->{dst} {kind}, connected after {wait:.1f} s",
    "transfer_not_connected": "{src}->{dst} {kind}, never connected",
    "other_department": "other department",
    "external": "out of the office",
    "caller_first": "caller hung up first",
    "staff_first": "staff hung up first",
    "hangup_unknown": "hang-up side unknown",
    "pbx_first": "the PBX hung up (restart)",
    "incomplete": "partly seen (monitor gap): not judged",
    "unknown_time": "time unknown",
    "created": "callback owed: {owner}, due {due}",
    "joined": "callback owed (the caller missed again): {owner}, due {due}",
    "attempt": "callback attempt: customer did not answer ({owner} still owes it)",
    "fulfilled_on_time": "called back on time",
    "fulfilled_late": "called back late",
    "resolved_by_inbound": "resolved: the caller called again",
    "summary": "Total: {calls} {calls_word} · {judged} judged · P1 {p1}"
    " · {missed} missed · {owed} {owed_word} owed ({done} done, {open} open)",
    "percent": "met {met}/{checked} ({percent:.0f}%)",
    "none": "n/a",
}
TEXT: dict[Lang, dict[str, str]] = {"ko": _KO, "en": _EN}


def _when(epoch: float | None, t: dict[str, str]) -> str:
    if epoch is None:
        return t["unknown_time"]
    return datetime.fromtimestamp(epoch, SEOUL).strftime("%Y-%m-%d %H:%M:%S")


def _plural(count: int, word: str) -> str:
    """The English noun for ``count`` (the Korean text counts with 회/건 and needs none)."""
    return word if count == 1 else f"{word}s"


def _person(extension: str | None, directory: Directory | None) -> str:
    """``김민원(201)`` when the directory knows the extension, else the extension."""
    if extension is None:
        return "?"
    name = directory.staff_name(extension) if directory is not None else None
    return f"{name}({extension})" if name else extension


def _answer(record: CallRecord, directory: Directory | None, t: dict[str, str]) -> str | None:
    if record.direction == "outbound":
        who = _person(record.staff, directory)
        return t["customer_answered" if record.answered else "not_answered"].format(who=who)
    if record.answered:
        who = _person(record.answered_by, directory)
        return t["picked" if record.picked_up else "answered"].format(who=who)
    if record.missed:
        reason = t[record.missed_reason or "failed"]
        if record.after_dial is not None:
            left = "_left" if record.voicemail_left else ""
            reason = f"{reason}, {t[f'after_{record.after_dial}{left}']}"
        return t["missed"].format(reason=reason)
    return None


def _rings(rings: int | None, seconds: float | None, t: dict[str, str]) -> str | None:
    if rings is None or seconds is None:
        return None
    return t["ring"].format(rings=rings, seconds=seconds, rings_word=_plural(rings, "ring"))


def _transfer(
    transfer: Transfer, verdict: TransferVerdict, directory: Directory | None, t: dict[str, str]
) -> str:
    names = {
        "src": _person(transfer.from_ext, directory),
        "dst": _person(transfer.to_ext, directory),
        "kind": t[transfer.kind],
    }
    if verdict.wait_seconds is None:
        text = t["transfer_not_connected"].format(**names)
    else:
        text = t["transfer_connected"].format(wait=verdict.wait_seconds, **names)
    if verdict.other_department:
        text += f" ({t['other_department']})"
    if transfer.external:
        text += f" ({t['external']})"
    return text


def _verdict(clause: str, met: bool | None, t: dict[str, str]) -> str | None:
    return None if met is None else f"{clause} {t['met' if met else 'breached']}"


def _hangup(record: CallRecord, t: dict[str, str]) -> str | None:
    if not record.answered:
        return None
    return t[
        {"caller": "caller_first", "staff": "staff_first", "pbx": "pbx_first"}.get(
            record.hangup_first, "hangup_unknown"
        )
    ]


def _callback(change: ObligationChange, directory: Directory | None, t: dict[str, str]) -> str:
    obligation = change.obligation
    owner = (
        _person(obligation.owner, directory)
        if obligation.owner_kind == "staff"
        else obligation.owner
    )
    due = obligation.due_at.astimezone(SEOUL).strftime("%m-%d %H:%M")
    return t.get(change.kind, change.kind).format(owner=owner, due=due)


# The callback changes a call line mentions: what a finished call does to an obligation.
CALL_CHANGES = frozenset(
    {"created", "joined", "attempt", "fulfilled_on_time", "fulfilled_late", "resolved_by_inbound"}
)


def describe(
    call: JudgedCall,
    lang: Lang = "ko",
    *,
    directory: Directory | None = None,
    changes: Iterable[ObligationChange] = (),
) -> str:
    """The call's line; ``changes`` are the callback changes the call caused."""
    t = TEXT[lang]
    record, verdict = call.record, call.verdict
    parts: list[str | None] = [
        _when(record.started_at, t),
        t[record.direction],
        verdict.department or "-",
        _answer(record, directory, t),
        _rings(verdict.rings, record.ring_seconds, t),
    ]
    if verdict.judged:
        parts.append(_verdict("P1", verdict.p1_met, t))
        if verdict.apology_expected:
            parts.append(t["apology"])
    for transfer, transfer_verdict in zip(record.transfers, verdict.transfers, strict=True):
        parts.append(_transfer(transfer, transfer_verdict, directory, t))
        if verdict.judged:
            parts.append(_verdict("P4", transfer_verdict.p4_met, t))
    parts.append(_hangup(record, t))
    if verdict.judged and record.answered:
        parts.append(_verdict("P7", verdict.p7_met, t))
    if record.incomplete:
        parts.append(t["incomplete"])
    parts.extend(_callback(c, directory, t) for c in changes if c.kind in CALL_CHANGES)
    return " | ".join(part for part in parts if part)


@dataclass(slots=True)
class Summary:
    """The counts after a replay: calls, judged calls, P1, missed calls, callbacks owed."""

    calls: int = 0
    judged: int = 0
    p1_checked: int = 0
    p1_met: int = 0
    missed: int = 0
    owed: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)

    def add(self, call: JudgedCall, changes: Sequence[ObligationChange] = ()) -> None:
        self.calls += 1
        verdict = call.verdict
        if verdict.judged:
            self.judged += 1
            if verdict.p1_met is not None:
                self.p1_checked += 1
                self.p1_met += verdict.p1_met
        if call.record.missed and call.record.direction != "outbound":
            self.missed += 1
        for change in changes:
            self.note(change)

    def note(self, change: ObligationChange) -> None:
        obligation = change.obligation
        self.owed.add(obligation.id)
        if obligation.closed_at is not None:
            self.closed.add(obligation.id)

    def text(self, lang: Lang = "ko") -> str:
        t = TEXT[lang]
        p1 = (
            t["percent"].format(
                met=self.p1_met,
                checked=self.p1_checked,
                percent=100 * self.p1_met / self.p1_checked,
            )
            if self.p1_checked
            else t["none"]
        )
        return t["summary"].format(
            calls_word=_plural(self.calls, "call"),
            owed_word=_plural(len(self.owed), "callback"),
            calls=self.calls,
            judged=self.judged,
            p1=p1,
            missed=self.missed,
            owed=len(self.owed),
            done=len(self.closed),
            open=len(self.owed - self.closed),
        )
