"""The definitions sheet: the exact definitions and thresholds the figures were made under,
their version, the working hours and the holidays of the month."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

from call_monitor.calls.model import MissedReason
from call_monitor.charter.callbacks import OBLIGING_REASONS
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import WEEKDAYS, Settings
from call_monitor.export.headers import Lang, word
from call_monitor.export.month import Month

_ITEMS: Mapping[Lang, Mapping[str, str]] = {
    "ko": {
        "month": "대상 월 (Asia/Seoul)",
        "definitions_version": "정의 버전 (현재 설정)",
        "stored_versions": "저장된 판정의 정의 버전",
        "judged_under": "이 파일의 수치",
        "stored": "저장된 판정 그대로 (통화마다 저장된 정의 버전)",
        "recomputed": "현재 정의로 다시 판정 (--recompute): "
        "저장된 사실(벨 시간, 대기 시간)에 현재 기준 적용",
        "cadence": "벨 주기 (울림 + 쉼, 초)",
        "p1": "P1 기준: 벨 횟수 이내 (벨 n회 = ⌊벨 시간 / 주기⌋ + 1)",
        "p2": "P2 사과 필요: 벨 횟수 이상",
        "p4": "P4/P5 기준: 돌려주기 대기 (초 미만)",
        "internal": "내선 통화도 판정",
        "p6": "P6 회신 기한 (근무시간, 초)",
        "reminder": "P6 알림 (기한 전 근무시간, 초)",
        "hours": "근무시간",
        "lunch": "점심시간 (근무시간 아님)",
        "holidays": "이 달의 휴무일 (공휴일·지정 휴무)",
        "extra_open": "이 달의 추가 근무일",
        "rates": "비율",
        "rates_text": "P1 = 충족/판정, P4 = 10초 이내/돌려주기, P5 = 10초 이내/타부서 연결, "
        "P6 = 기한 내/(기한 내 + 기한 넘김), P7 = 고객이 먼저 끊음/판정. "
        "불완전 통화(모니터가 전체를 보지 못한 통화)는 모든 비율에서 제외.",
        "percentiles": "대기 중앙값·90%",
        "percentiles_text": "순위 방식(nearest rank): n건 중 ⌈n/2⌉번째, ⌈0.9n⌉번째 값",
        "p7_scope": "P7 판정 대상",
        "p7_scope_text": "직원이 고객과 실제로 통화한(연결된) 통화만. "
        "벨이 울리는 중에 고객이 끊거나 음성사서함에서 끊은 통화, "
        "먼저 끊은 쪽을 모르거나 교환기(재시작)가 끊은 통화는 판정하지 않음.",
        "queue": "대기열 대기",
        "queue_text": "모든 상담원이 통화 중이라 대기열에서 음악을 들으며 기다린 시간은 "
        "벨 시간이 아님: 벨 시간은 첫 전화가 울릴 때부터. 대기 시간은 통화마다 따로 표시.",
        "after_dial": "벨 멈춘 뒤 음성사서함·안내방송",
        "after_dial_text": "아무도 받지 않아 음성사서함이나 안내방송으로 넘어간 통화는 "
        "부재중(무응답)이며 회신 의무가 생김; 벨 시간은 마지막 전화가 멈춘 때까지.",
        "transfer_kinds": "P4 돌려주기",
        "transfer_kinds_text": "설명 후 돌려줌, 바로 돌려줌, 보류(파크) 후 동료가 받음, "
        "외부 번호로 돌려줌(휴대전화·다른 기관) 모두 대기 시간으로 P4 판정. "
        "파크는 동료가 통화를 찾아갈 때까지; 시간이 지나 되돌아오면 연결 안 됨(미충족).",
        "obliging": "회신 의무가 생기는 부재 사유",
        "callback_by": "P6 회신 인정",
        "callback_by_text": "의무가 생긴 뒤 고객 번호로 건 발신 전화가 연결되면 회신: "
        "담당자 본인 또는 담당자 부서의 동료(회신한 사람 표시). "
        "다른 부서의 전화는 인정하지 않음.",
        "checklist": "점검표 (P2 사과, P3, P5 직통번호)",
        "checklist_text": "감독자 점검표: 이 달에 시작한 통화 중 평가된 통화"
        "(통화마다 최신 수정본), 응답한 직원과 그 부서에 집계. "
        "평균 점수 = 수정본 점수(0–100)의 평균; '예' 비율 = 예 / "
        "(예 + 아니오), 해당 없음 제외; P2 사과함 = 사과가 필요했던 통화(벨 3회 이상)의 "
        "p2_apology 항목, P5 직통번호 = 타부서 연결 통화의 p5_direct_number 항목. "
        "평가한 통화가 없는 칸은 '평가 없음'.",
        "none": "없음",
        "yes": "예",
        "no": "아니오",
    },
    "en": {
        "month": "Month (Asia/Seoul)",
        "definitions_version": "Definitions version (current settings)",
        "stored_versions": "Definitions versions of the stored verdicts",
        "judged_under": "Figures in this file",
        "stored": "as stored (each call's verdict under its stored definitions version)",
        "recomputed": "re-judged under the current definitions (--recompute): the current "
        "thresholds applied to the stored facts (ring time, transfer wait)",
        "cadence": "Ring cadence (on + off, seconds)",
        "p1": "P1: answered within rings (ring n = floor(ring time / period) + 1)",
        "p2": "P2 apology expected: from ring",
        "p4": "P4/P5: transfer wait under (seconds)",
        "internal": "Internal calls judged",
        "p6": "P6 callback deadline (working seconds)",
        "reminder": "P6 reminder (working seconds before the deadline)",
        "hours": "Working hours",
        "lunch": "Lunch break (not working time)",
        "holidays": "Closed days of the month (public holidays, closures)",
        "extra_open": "Extra working days of the month",
        "rates": "Rates",
        "rates_text": "P1 = met/judged, P4 = within 10 s/transfers, P5 = within 10 s/"
        "transfers to another department, P6 = on time/(on time + late), P7 = caller hung up "
        "first/judged. Incomplete calls (not seen whole by the monitor) are in no rate.",
        "percentiles": "Median and 90th percentile wait",
        "percentiles_text": "nearest rank: the ceil(n/2)-th and ceil(0.9 n)-th of n values",
        "p7_scope": "P7 judged on",
        "p7_scope_text": "only calls where a staff member talked with the caller (a staff "
        "phone bridged with the caller). A caller who hangs up while it rings or in "
        "voicemail, a call whose hang-up side is unknown or that the PBX (a restart) ended, "
        "is not judged.",
        "queue": "Queue wait",
        "queue_text": "waiting in a queue with music while every member is busy is not "
        "ringing: the ring time starts when the first phone rings. The wait is shown per call.",
        "after_dial": "Voicemail or announcement after the ringing",
        "after_dial_text": "a call nobody answered that went on to voicemail or an "
        "announcement is a missed call (no answer) and owes a callback; its ring time ends "
        "when the last phone stopped ringing.",
        "transfer_kinds": "P4 transfers",
        "transfer_kinds_text": "attended, blind, parked and retrieved by a colleague, and to "
        "an outside number (a mobile, another agency): all judged on the caller's wait. A "
        "park lasts until a colleague retrieves the call; one that times out and comes back "
        "was never connected (breached).",
        "obliging": "Missed reasons that owe a callback",
        "callback_by": "P6 callback fulfilled by",
        "callback_by_text": "an answered outbound call to the caller's number after the "
        "obligation began, by the owner or a colleague in the owner's department (who called "
        "back is shown). A call from another department does not fulfil it.",
        "checklist": "Checklist (P2 apology, P3, P5 direct number)",
        "checklist_text": "the supervisors' checklist: the calls of the month that were "
        "scored (each call's latest revision), counted to the staff member who answered and "
        "their department. Mean score = the mean of the revisions' scores (0-100); 'yes' "
        "share = yes / (yes + no), not-applicable left out; P2 apology given = item "
        "p2_apology of the calls that needed an apology (ring 3 or later), P5 direct number "
        "= item p5_direct_number of the transfers to another department. A cell where no "
        "call was scored says 'not scored'.",
        "none": "none",
        "yes": "yes",
        "no": "no",
    },
}


MISSED_REASONS: tuple[str, ...] = get_args(MissedReason)


def definition_rows(
    settings: Settings,
    month: Month,
    lang: Lang,
    stored_versions: Sequence[str],
    recompute: bool,
) -> list[list[str]]:
    """``[item, value]`` rows, in ``lang``."""
    text = _ITEMS[lang]
    charter = settings.charter
    hours = WorkingHours(settings.working_hours)
    days = list(month.days())
    weekly = settings.working_hours.days
    # Days that would be working days by the week but are closed: holidays, closures.
    closed = [d for d in days if weekly.get(WEEKDAYS[d.weekday()]) and not hours.hours_of(d)]
    opened = [d for d in days if d in set(settings.working_hours.extra_open)]
    spans = settings.working_hours.days
    lunch = settings.working_hours.lunch
    rows = [
        ("month", str(month)),
        ("definitions_version", charter.definitions_version),
        ("stored_versions", ", ".join(stored_versions) or text["none"]),
        ("judged_under", text["recomputed" if recompute else "stored"]),
        ("cadence", f"{charter.ring_on_seconds:g} + {charter.ring_off_seconds:g}"),
        ("p1", str(charter.max_rings_p1)),
        ("p2", str(charter.apology_from_ring)),
        ("p4", f"{charter.transfer_limit_seconds:g}"),
        ("internal", text["yes" if charter.count_internal_calls else "no"]),
        ("p6", f"{settings.callbacks.due_working_seconds:g}"),
        ("reminder", f"{settings.callbacks.reminder_before_working_seconds:g}"),
        ("hours", ", ".join(f"{day} {s.start:%H:%M}-{s.end:%H:%M}" for day, s in spans.items())),
        ("lunch", f"{lunch.start:%H:%M}-{lunch.end:%H:%M}" if lunch else text["none"]),
        ("holidays", ", ".join(map(str, closed)) or text["none"]),
        ("extra_open", ", ".join(map(str, opened)) or text["none"]),
        ("rates", text["rates_text"]),
        ("percentiles", text["percentiles_text"]),
        ("p7_scope", text["p7_scope_text"]),
        ("queue", text["queue_text"]),
        ("after_dial", text["after_dial_text"]),
        ("transfer_kinds", text["transfer_kinds_text"]),
        ("obliging", ", ".join(word(lang, r) for r in MISSED_REASONS if r in OBLIGING_REASONS)),
        ("callback_by", text["callback_by_text"]),
        ("checklist", text["checklist_text"]),
    ]
    return [[text[key], value] for key, value in rows]
