"""The checklist's metrics: answers per department, item and answer; the score; P2 per staff."""

from __future__ import annotations

from datetime import UTC, datetime

from call_monitor.checklist.files import load_form
from call_monitor.checklist.revisions import Revision
from call_monitor.checklist.scoring import ScoredItem
from call_monitor.config import default_directory
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics

DIRECTORY = Directory(default_directory())
FORM = load_form()
MINWON = "민원여권과"
WHEN = datetime(2026, 3, 2, 1, 2, 3, tzinfo=UTC)


def value(metrics: CallMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def revision(
    answers: dict[str, str], *, score: float | None = 80.0, department: str | None = MINWON
) -> Revision:
    items = tuple(ScoredItem(i, a, "", False, False) for i, a in answers.items())  # type: ignore[arg-type]
    return Revision("1.1", 1, FORM.id, FORM.version, "kim", WHEN, None, score, True, "201",
                    department, WHEN, items)  # fmt: skip


def test_every_department_item_and_answer_exists_at_zero() -> None:
    metrics = CallMetrics(DIRECTORY, checklist_form=FORM)
    for department in [*DIRECTORY.departments, "unknown"]:
        for item in FORM.item_ids:
            for answer in ("yes", "no", "na"):
                labels = {"department": department, "item": item, "answer": answer}
                assert value(metrics, "callmon_checklist_answers_total", **labels) == 0.0
        assert value(metrics, "callmon_checklist_score_ratio_count", department=department) == 0
    # Without a form (a tool that scores nothing), no checklist series at all.
    bare = CallMetrics(DIRECTORY)
    assert b"callmon_checklist_answers_total{" not in bare.render()


def test_a_first_revision_is_counted_a_correction_is_not() -> None:
    metrics = CallMetrics(DIRECTORY, checklist_form=FORM)
    answers = {"p1_greeting": "yes", "p3_repeat": "no", "p6_memo": "na", "p99_unknown": "yes"}
    metrics.observe_checklist(revision(answers, score=75.0), first=True)
    metrics.observe_checklist(revision({"p3_repeat": "yes"}, score=100.0), first=False)

    def answers_of(item: str, answer: str, department: str = MINWON) -> float | None:
        labels = {"department": department, "item": item, "answer": answer}
        return value(metrics, "callmon_checklist_answers_total", **labels)

    assert answers_of("p1_greeting", "yes") == 1
    assert answers_of("p3_repeat", "no") == 1
    assert answers_of("p3_repeat", "yes") == 0
    assert answers_of("p6_memo", "na") == 1
    assert answers_of("p99_unknown", "yes") is None  # not in the form: no new label
    score = {"department": MINWON}
    assert value(metrics, "callmon_checklist_score_ratio_count", **score) == 1
    assert value(metrics, "callmon_checklist_score_ratio_sum", **score) == 0.75
    assert value(metrics, "callmon_checklist_score_ratio_bucket", le="0.7", **score) == 0
    assert value(metrics, "callmon_checklist_score_ratio_bucket", le="0.8", **score) == 1


def test_the_apology_item_feeds_the_staff_p2_series() -> None:
    metrics = CallMetrics(DIRECTORY, checklist_form=FORM)
    p2 = {"clause": "P2", "staff": "201"}
    assert value(metrics, "callmon_staff_charter_checks_total", result="met", **p2) is None
    metrics.observe_checklist(revision({"p2_apology": "no"}), first=True)
    assert value(metrics, "callmon_staff_charter_checks_total", result="breached", **p2) == 1
    assert value(metrics, "callmon_staff_charter_checks_total", result="met", **p2) == 0
    metrics.observe_checklist(revision({"p2_apology": "yes"}), first=True)
    metrics.observe_checklist(revision({"p2_apology": "na"}), first=True)  # not judged
    assert value(metrics, "callmon_staff_charter_checks_total", result="met", **p2) == 1
    by_department = {"clause": "P2", "department": MINWON}
    assert value(metrics, "callmon_charter_checks_total", result="met", **by_department) == 1
    assert value(metrics, "callmon_charter_checks_total", result="breached", **by_department) == 1


def test_an_unknown_department_is_labelled_unknown_and_no_score_is_no_observation() -> None:
    metrics = CallMetrics(DIRECTORY, checklist_form=FORM)
    metrics.observe_checklist(
        revision({"p1_greeting": "na"}, score=None, department="<script>"), first=True
    )
    labels = {"department": "unknown", "item": "p1_greeting", "answer": "na"}
    assert value(metrics, "callmon_checklist_answers_total", **labels) == 1
    assert value(metrics, "callmon_checklist_score_ratio_count", department="unknown") == 0
    assert b"<script>" not in metrics.render()
