"""One human line per finished call, Korean first (English with ``lang="en"``)."""

from __future__ import annotations

from call_monitor.charter.judged import JudgedCall
from call_monitor.timefmt import iso_seoul

_TEXT = {
    "ko": {
        "customer": "고객",
        "inbound": "수신",
        "outbound": "발신",
        "internal": "내선",
        "unknown": "미상",
        "answered": "{who} 응답",
        "picked": "{who} 당겨받기",
        "missed": "부재중({reason})",
        "rings": "벨 {rings}회 {seconds:.1f}초",
        "met": "충족",
        "breached": "미충족",
        "apology": "양해 인사 필요",
        "transfer": "연결 {kind} {src}→{dst} 대기 {wait}",
        "hangup": {
            "caller": "고객 먼저 끊음",
            "staff": "직원 먼저 끊음",
            "unknown": "끊은 쪽 미상",
        },
        "incomplete": "불완전(감시 중단)",
        "blind": "블라인드",
        "attended": "협의",
        "no_answer": "무응답",
        "caller_abandoned": "고객 포기",
        "busy": "통화 중",
        "unavailable": "연결 불가",
        "failed": "실패",
    },
    "en": {
        "customer": "customer",
        "inbound": "inbound",
        "outbound": "outbound",
        "internal": "internal",
        "unknown": "unknown",
        "answered": "answered by {who}",
        "picked": "picked up by {who}",
        "missed": "missed ({reason})",
        "rings": "{rings} rings {seconds:.1f}s",
        "met": "met",
        "breached": "breached",
        "apology": "apology expected",
        "transfer": "transfer {kind} {src}->{dst} wait {wait}",
        "hangup": {
            "caller": "caller hung up first",
            "staff": "staff hung up first",
            "unknown": "hang-up side unknown",
        },
        "incomplete": "incomplete (monitor gap)",
        "blind": "blind",
        "attended": "attended",
        "no_answer": "no answer",
        "caller_abandoned": "caller gave up",
        "busy": "busy",
        "unavailable": "unavailable",
        "failed": "failed",
    },
}


def describe(call: JudgedCall, lang: str = "ko") -> str:
    t = _TEXT[lang]
    r, v = call.record, call.verdict
    parts = [iso_seoul(r.started_at) or "", str(t[r.direction]), v.department or "-"]
    if r.answered:
        who = r.answered_by or t["customer"]
        parts.append(str(t["picked" if r.picked_up else "answered"]).format(who=who))
    elif r.missed:
        parts.append(str(t["missed"]).format(reason=t[r.missed_reason or "failed"]))
    if v.rings is not None and r.ring_seconds is not None:
        parts.append(str(t["rings"]).format(rings=v.rings, seconds=r.ring_seconds))
    if v.p1_met is not None:
        parts.append(f"P1 {t['met' if v.p1_met else 'breached']}")
    if v.apology_expected:
        parts.append(str(t["apology"]))
    for transfer, tv in zip(r.transfers, v.transfers, strict=True):
        wait = "-" if tv.wait_seconds is None else f"{tv.wait_seconds:.1f}s"
        parts.append(
            str(t["transfer"]).format(
                kind=t[transfer.kind], src=transfer.from_ext, dst=transfer.to_ext, wait=wait
            )
        )
    if r.answered:
        hangup = t["hangup"]
        assert isinstance(hangup, dict)
        parts.append(hangup[r.hangup_first])
    if r.incomplete:
        parts.append(str(t["incomplete"]))
    return " | ".join(parts)
