"""The checklist's pure core: the form file, what applies to a call, scoring, sampling."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from call_monitor.calls.model import CallRecord, Transfer, TransferKind
from call_monitor.charter.judged import judged_values
from call_monitor.charter.rules import judge
from call_monitor.checklist.facts import ANSWERS, Answer, CallFacts, ask, facts_of
from call_monitor.checklist.files import default_form_text, load_form
from call_monitor.checklist.form import CONDITIONS, Form, FormError, Item, Stage, parse_form
from call_monitor.checklist.sampling import (
    month_of,
    month_window,
    pick,
    sample_key,
    sampling_order,
)
from call_monitor.checklist.scoring import ChecklistError, Given, evaluate, score
from call_monitor.config import CharterSettings, default_directory
from call_monitor.directory import Directory
from call_monitor.timefmt import SEOUL

CHARTER = CharterSettings()
DIRECTORY = Directory(default_directory())
FORM = load_form()


def call(
    ring: float = 1.0,
    *,
    dialed: str = "201",
    answered_by: str = "201",
    picked_up: bool = False,
    hangup: str = "caller",
    transfer: tuple[TransferKind, str, float | None] | None = None,
) -> CallFacts:
    """The checklist's facts of a call judged by the real rules (ring: seconds of ringing;
    transfer: kind, target, wait)."""
    record = CallRecord(
        linkedid="1.1",
        started_at=100.0,
        direction="inbound",
        caller="01012345678",
        dialed=dialed,
        ring_started_at=100.0,
        answered_at=100.0 + ring,
        answered_by=answered_by,
        picked_up=picked_up,
        ended_at=200.0,
        hangup_first=hangup,  # type: ignore[arg-type]
        talked=True,  # answered and bridged: a conversation (P7 is judged)
    )
    if transfer is not None:
        kind, target, wait = transfer
        record.transfers.append(
            Transfer(
                kind=kind,
                started_at=150.0,
                from_ext=answered_by,
                to_ext=target,
                completed=wait is not None,
                connected_at=None if wait is None else 150.0 + wait,
            )
        )
    return facts_of(judged_values(record, judge(record, CHARTER, DIRECTORY)), DIRECTORY)


def asked(facts: CallFacts) -> dict[str, tuple[bool, Answer | None]]:
    return {a.item.id: (a.applicable, a.prefilled) for a in ask(FORM, facts)}


# --------------------------------------------------------------------------- the form


def test_the_shipped_form_covers_the_charter_in_three_stages() -> None:
    assert [(s.id, s.ko) for s in FORM.stages] == [
        ("greeting", "맞이"),
        ("handling", "응대"),
        ("closing", "마무리"),
    ]
    assert {item.clause for item in FORM.items} == {"P1", "P2", "P3", "P4", "P5", "P6", "P7"}
    measured = {item.id: item.measure for item in FORM.items if item.measured}
    assert measured == {
        "p1_rings": "p1_rings",
        "p4_transfer_wait": "p4_transfer_wait",
        "p7_caller_hangs_up": "p7_hangup",
    }
    assert {item.applies for item in FORM.items} == set(CONDITIONS)
    assert all(item.ko.strip() and item.en.strip() for item in FORM.items)


BAD_FORMS = [
    ("items.0.id = 'p1_rings'", "items: id 'p1_rings' twice"),
    ("items.2.weight = 0", "items[2].weight: Input should be greater than 0"),
    ("items.2.applies = 'on_tuesdays'", "items[2].applies: Input should be 'always'"),
    ("items.4.stage = 'lunch'", "items[4].stage: 'lunch' is not one of the stages"),
    ("del items.3.en", "items[3].en: Field required"),
    ("items.3.ko = '  '", "items[3].ko: text is blank"),
    ("items.3.colour = 'red'", "items[3].colour: Extra inputs are not permitted"),
    ("items.1.measure = 'p9'", "items[1].measure: Input should be 'p1_rings'"),
    ("items.1.clause = 'P8'", "items[1].clause: Input should be 'P1'"),
    ("items.1.id = 'P1 Rings!'", "items[1].id: String should match pattern"),
]


@pytest.mark.parametrize(("change", "problem"), BAD_FORMS)
def test_a_bad_form_is_refused_with_the_place_named(
    change: str, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "form.toml"
    path.write_text(_changed_form(change), encoding="utf-8")
    with pytest.raises(FormError) as refused:
        load_form(path)
    assert str(refused.value).startswith(f"checklist.form: {path}: ")
    assert any(problem in line for line in refused.value.problems), refused.value.problems


def _changed_form(change: str) -> str:
    """The shipped form with one change, written back as TOML (by hand: no TOML writer)."""
    data = parse_form(default_form_text()).model_dump()
    target, _, value = change.removeprefix("del ").partition(" = ")
    *path, key = target.split(".")
    node: object = data
    for part in path:
        node = node[int(part)] if part.isdigit() else node[part]  # type: ignore[index]
    assert isinstance(node, dict)
    if change.startswith("del "):
        del node[key]
    else:
        node[key] = eval(value)  # a literal of the table above
    return _toml(data)


def _toml(data: dict[str, object]) -> str:
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, list | tuple)]
    for table in ("stages", "items"):
        for entry in data[table]:  # type: ignore[attr-defined]
            lines.append(f"[[{table}]]")
            lines += [f"{k} = {value(v)}" for k, v in entry.items() if v is not None]
    return "\n".join(lines) + "\n"


def test_a_form_file_that_is_not_toml_or_missing_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "form.toml"
    bad.write_text("id = [", encoding="utf-8")
    with pytest.raises(FormError, match=r"^checklist\.form: .*form\.toml: not TOML"):
        load_form(bad)
    with pytest.raises(FormError, match=r"^checklist\.form: .*missing\.toml: cannot read"):
        load_form(tmp_path / "missing.toml")


def test_the_form_round_trips_through_the_test_writer() -> None:
    # The bad-form cases above rely on it: unchanged, the written form is the shipped one.
    assert parse_form(_toml(FORM.model_dump())) == FORM


# --------------------------------------------------------------------------- what applies


def test_a_quick_plain_call_asks_the_always_items_with_the_pbx_answers_filled_in() -> None:
    items = asked(call(ring=1.0))
    assert items["p1_rings"] == (True, "yes")
    assert items["p7_caller_hangs_up"] == (True, "yes")
    assert items["p2_apology"] == (False, None)
    for conditional in ("p4_briefing", "p4_transfer_wait", "p5_direct_number", "p6_memo"):
        assert items[conditional] == (False, None)
    assert items["p3_explain"] == (True, None)


def test_answered_on_ring_3_asks_for_the_apology_and_measures_p1_as_missed() -> None:
    items = asked(call(ring=6.0, hangup="staff"))  # ring 3 starts at 6 s
    assert items["p2_apology"] == (True, None)
    assert items["p1_rings"] == (True, "no")
    assert items["p7_caller_hangs_up"] == (True, "no")
    assert asked(call(ring=5.99))["p2_apology"] == (False, None)


def test_an_unknown_hang_up_side_is_left_to_the_supervisor() -> None:
    assert asked(call(hangup="unknown"))["p7_caller_hangs_up"] == (True, None)


def test_an_attended_transfer_to_another_department_asks_briefing_wait_and_number() -> None:
    items = asked(call(transfer=("attended", "203", 12.0)))  # 203: 총무과
    assert items["p4_briefing"] == (True, None)
    assert items["p4_transfer_wait"] == (True, "no")
    assert items["p5_direct_number"] == (True, None)


def test_a_blind_transfer_within_the_department_asks_only_the_wait() -> None:
    items = asked(call(transfer=("blind", "202", 4.0)))
    assert items["p4_briefing"] == (False, None)
    assert items["p4_transfer_wait"] == (True, "yes")
    assert items["p5_direct_number"] == (False, None)
    # A transfer that never reached the colleague: not in time.
    assert asked(call(transfer=("blind", "202", None)))["p4_transfer_wait"] == (True, "no")


def test_the_memo_item_asks_when_a_colleague_answered_for_the_owner() -> None:
    assert asked(call(dialed="201", answered_by="202"))["p6_memo"] == (True, None)
    assert asked(call(dialed="201", answered_by="202", picked_up=True))["p6_memo"][0]
    assert asked(call(dialed="600", answered_by="202"))["p6_memo"] == (False, None)  # a group
    assert asked(call(dialed="201", answered_by="201"))["p6_memo"] == (False, None)


# --------------------------------------------------------------------------- scoring

EVERYTHING_YES = {i: Given("yes") for i in ("p1_greeting", "p3_repeat", "p3_explain")} | {
    i: Given("yes") for i in ("p7_anything_else", "p7_closing")
}


def test_a_quick_call_all_yes_scores_100_and_keeps_the_measured_answers() -> None:
    scored = evaluate(FORM, call(), EVERYTHING_YES)
    assert scored.score == 100.0
    assert scored.passed
    by_id = {item.item_id: item for item in scored.items}
    assert [i.item_id for i in scored.items] == list(FORM.item_ids)
    assert by_id["p1_rings"].measured
    assert by_id["p1_rings"].answer == "yes"
    assert not by_id["p1_rings"].overridden
    assert by_id["p2_apology"].answer == "na"


def test_the_score_is_the_weighted_yes_over_the_answered_items() -> None:
    # Ring 3, staff hung up: p1_rings no (1), p7 hang-up no (1), apology no (1), the rest
    # yes: greeting 2, repeat 2, explain 3, anything else 1, closing 1 = 9 of 12.
    answers = EVERYTHING_YES | {"p2_apology": Given("no")}
    scored = evaluate(FORM, call(ring=7.0, hangup="staff"), answers)
    assert scored.score == 75.0
    assert scored.passed  # none of the three is critical
    answers["p3_repeat"] = Given("na")  # left out: 7 of 10
    assert evaluate(FORM, call(ring=7.0, hangup="staff"), answers).score == 70.0


def test_a_critical_no_fails_the_call_whatever_the_score() -> None:
    scored = evaluate(FORM, call(), EVERYTHING_YES | {"p1_greeting": Given("no")})
    assert scored.score is not None
    assert scored.score > 80
    assert not scored.passed


def test_a_submission_with_problems_is_refused_naming_each_item() -> None:
    answers = {
        "p1_greeting": Given("yes"),
        "p1_rings": Given("no"),  # the PBX measured yes: needs a comment
        "p2_apology": Given("yes"),  # answered on ring 1: does not apply
        "p3_repeat": Given("maybe"),  # type: ignore[arg-type]
        "p9_tea": Given("yes"),
        "p3_explain": Given("yes", "x" * 2001),
    }
    with pytest.raises(ChecklistError) as refused:
        evaluate(FORM, call(), answers)
    assert refused.value.problems == [
        "p1_rings: measured 'yes' by the PBX: a different answer needs a comment",
        "p2_apology: does not apply to this call: na only",
        "p3_explain: comment longer than 2000 characters",
        "p3_repeat: answer 'maybe' is not one of yes, no, na",
        "p7_anything_else: not answered",
        "p7_closing: not answered",
        "p9_tea: no such item in form charter_phone",
    ]


def test_a_measured_item_overridden_with_a_comment_is_marked() -> None:
    answers = EVERYTHING_YES | {"p1_rings": Given("no", "  the PBX clock was off  ")}
    item = evaluate(FORM, call(), answers).items[1]
    assert (item.item_id, item.answer, item.overridden) == ("p1_rings", "no", True)
    assert item.comment == "the PBX clock was off"
    same = evaluate(FORM, call(), EVERYTHING_YES | {"p1_rings": Given("yes")}).items[1]
    assert not same.overridden


# Property tests: the score's invariants on random forms and answers.

items_strategy = st.lists(
    st.tuples(st.floats(0.5, 10, allow_nan=False), st.booleans(), st.sampled_from(ANSWERS)),
    min_size=1,
    max_size=12,
)


def _form_and_answers(
    entries: list[tuple[float, bool, Answer]],
) -> tuple[Form, dict[str, Answer]]:
    items = tuple(
        Item(
            id=f"i{n}",
            stage="s",
            clause="P3",
            ko="가",
            en="a",
            weight=weight,
            critical=critical,
        )
        for n, (weight, critical, _) in enumerate(entries)
    )
    form = Form(id="f", version="1", stages=(Stage(id="s", ko="가", en="a"),), items=items)
    return form, {f"i{n}": answer for n, (_, _, answer) in enumerate(entries)}


@given(items_strategy)
def test_score_is_within_0_and_100_and_none_only_without_yes_or_no(
    entries: list[tuple[float, bool, Answer]],
) -> None:
    form, answers = _form_and_answers(entries)
    total, passed = score(answers, form)
    if all(a == "na" for a in answers.values()):
        assert total is None
    else:
        assert total is not None
        assert 0 <= total <= 100
    assert passed == (not any(c and a == "no" for _, c, a in entries))
    assert (total == 100) == (total is not None and "no" not in answers.values())
    assert (total == 0) == (total is not None and "yes" not in answers.values())


@given(items_strategy, st.data())
def test_a_no_turned_yes_never_lowers_the_score_and_na_items_do_not_count(
    entries: list[tuple[float, bool, Answer]], data: st.DataObject
) -> None:
    form, answers = _form_and_answers(entries)
    before, _ = score(answers, form)
    item = data.draw(st.sampled_from(sorted(answers)))
    better, _ = score(answers | {item: "yes"}, form)
    if answers[item] == "no":
        assert before is not None
        assert better is not None
        assert better >= before
    without = {k: v for k, v in answers.items() if v != "na"}
    assert score(without, form)[0] == before


@given(items_strategy, st.floats(0.1, 10, allow_nan=False))
def test_scaling_every_weight_keeps_the_score(
    entries: list[tuple[float, bool, Answer]], factor: float
) -> None:
    form, answers = _form_and_answers(entries)
    scaled, _ = _form_and_answers([(w * factor, c, a) for w, c, a in entries])
    if all(w * factor <= 100 for w, _, _ in entries):
        assert score(answers, scaled)[0] == pytest.approx(score(answers, form)[0], abs=0.01)


# --------------------------------------------------------------------------- sampling


def test_the_month_is_a_seoul_calendar_month() -> None:
    start, end = month_window("2026-12")
    assert (start.isoformat(), end.isoformat()) == (
        "2026-12-01T00:00:00+09:00",
        "2027-01-01T00:00:00+09:00",
    )
    assert month_of(datetime(2026, 2, 28, 15, 0, tzinfo=UTC)) == "2026-03"  # 00:00 KST
    assert month_of(datetime(2026, 2, 28, 14, 59, tzinfo=UTC)) == "2026-02"
    for bad in ("2026-13", "2026-1", "26-01", "2026-01-01", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_window(bad)


def test_the_key_is_the_documented_hmac() -> None:
    expected = hmac.new(b"2026-03|201", b"1772323200.17", hashlib.sha256).hexdigest()
    assert sample_key("2026-03", "201", "1772323200.17") == expected


def test_the_pick_is_the_first_of_the_order_whatever_the_order_given() -> None:
    linkedids = [f"17723{n:05d}.{n}" for n in range(200)]
    order = sampling_order("2026-03", "201", linkedids)
    assert sorted(order) == sorted(linkedids)
    shuffled = linkedids[:]
    random.Random(7).shuffle(shuffled)
    assert sampling_order("2026-03", "201", shuffled) == order
    assert pick("2026-03", "201", shuffled) == order[0]
    # Scoring the pick makes the next one in the order the pick.
    assert pick("2026-03", "201", [i for i in shuffled if i != order[0]]) == order[1]
    assert pick("2026-03", "201", []) is None


def test_each_month_and_person_has_its_own_order() -> None:
    linkedids = [f"1772.{n}" for n in range(50)]
    orders = {
        tuple(sampling_order(month, staff, linkedids))
        for month in ("2026-03", "2026-04")
        for staff in ("201", "202")
    }
    assert len(orders) == 4


def test_month_window_matches_month_of() -> None:
    start, end = month_window("2026-03")
    assert month_of(start) == "2026-03"
    assert month_of(end) == "2026-04"
    assert start.tzinfo == SEOUL


@given(
    st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30, unique=True),
    st.randoms(use_true_random=False),
    st.sampled_from(["2026-01", "2026-12"]),
    st.sampled_from(["201", "2999"]),
)
def test_the_pick_never_depends_on_the_candidates_order(
    linkedids: list[str], rng: random.Random, month: str, staff: str
) -> None:
    shuffled = linkedids[:]
    rng.shuffle(shuffled)
    assert pick(month, staff, shuffled) == pick(month, staff, linkedids)
    assert sampling_order(month, staff, shuffled) == sampling_order(month, staff, linkedids)
    first = pick(month, staff, linkedids)
    assert first is not None
    rest = [i for i in linkedids if i != first]
    assert pick(month, staff, rest) == (sampling_order(month, staff, linkedids)[1:] or [None])[0]
