"""CallMetrics: counts per call, bounded labels, series at zero, scrape-time sources.

How the exposition encodes them (prometheus_client's bytes, negotiation): test_exposition.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from call_monitor.alerts.publisher import OutboxPublisher
from call_monitor.calls.correlator import CorrelatorStats
from call_monitor.calls.model import CallRecord, Leg, Transfer
from call_monitor.charter.rules import Check, judge
from call_monitor.config import CharterSettings, MqttSettings, StoreSettings, default_directory
from call_monitor.daemon.pipeline import Stage
from call_monitor.directory import Directory
from call_monitor.metrics.families import (
    CALLBACK_RESULTS,
    CHECK_CLAUSES,
    PIPELINE_STAGES,
    STAFF_CLAUSES,
    CallMetrics,
)
from call_monitor.store import StoreWriter, create_engine

DIRECTORY = Directory(default_directory())
CHARTER = CharterSettings()
MINWON = "민원여권과"
CHONGMU = "총무과"
EVIL_NUMBER = '=cmd|"/C calc"!A0'
EVIL_NAME = '홍길동\n{evil="1"}'


def inbound(
    *,
    linkedid: str = "1795848104.1",
    caller: str = "01012345678",
    caller_name: str = "Customer",
    dialed: str = "201",
    ring_seconds: float | None = 1.0,
    answered_by: str | None = "201",
    hangup_first: str = "caller",
    transfers: list[Transfer] | None = None,
    missed_reason: str | None = None,
    incomplete: bool = False,
    direction: str = "inbound",
) -> CallRecord:
    start = 1_795_848_100.0
    ring_at = start + 0.5
    answered_at = None
    if answered_by is not None and ring_seconds is not None:
        answered_at = ring_at + ring_seconds
    ended_at = (answered_at or ring_at + (ring_seconds or 0.0)) + 30.0
    return CallRecord(
        linkedid=linkedid,
        started_at=start,
        direction=direction,  # type: ignore[arg-type]
        caller=caller,
        caller_name=caller_name,
        dialed=dialed,
        ring_started_at=ring_at,
        answered_at=answered_at,
        answered_by=answered_by,
        legs=[
            Leg("customer", None, answered_at=answered_at, ended_at=ended_at),
            Leg("staff", dialed, rang_at=ring_at, answered_at=answered_at, ended_at=ended_at),
        ],
        ended_at=ended_at,
        missed=answered_by is None,
        missed_reason=missed_reason,  # type: ignore[arg-type]
        hangup_first=hangup_first,  # type: ignore[arg-type]
        talked=answered_at is not None,  # the answerer was bridged with the caller
        incomplete=incomplete,
        transfers=transfers or [],
    )


def observe(metrics: CallMetrics, record: CallRecord) -> None:
    metrics.observe_call(record, judge(record, CHARTER, DIRECTORY))


def value(metrics: CallMetrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    assert sample is not None, f"no series {name}{labels}"
    return sample


def series_count(metrics: CallMetrics) -> int:
    return sum(len(family.samples) for family in metrics.registry.collect())


@pytest.fixture
def metrics() -> CallMetrics:
    return CallMetrics(DIRECTORY, definitions_version=CHARTER.definitions_version)


def test_series_exist_at_zero(metrics: CallMetrics) -> None:
    departments = [*DIRECTORY.departments, "unknown"]
    for department in departments:
        for clause in CHECK_CLAUSES:
            for result in ("met", "breached"):
                assert (
                    value(
                        metrics,
                        "callmon_charter_checks_total",
                        clause=clause,
                        department=department,
                        result=result,
                    )
                    == 0.0
                )
        for direction in ("inbound", "outbound", "internal", "unknown"):
            for outcome in ("answered", "missed", "incomplete"):
                assert (
                    value(
                        metrics,
                        "callmon_calls_total",
                        direction=direction,
                        outcome=outcome,
                        department=department,
                    )
                    == 0.0
                )
        assert value(metrics, "callmon_answer_rings_count", department=department) == 0.0
        assert value(metrics, "callmon_transfer_wait_seconds_count", department=department) == 0
        for side in ("caller", "staff", "unknown"):
            assert (
                value(metrics, "callmon_hangup_first_total", department=department, side=side) == 0
            )
    for staff in [*DIRECTORY.extensions, "unknown"]:
        for clause in STAFF_CLAUSES:
            for result in ("met", "breached"):
                assert (
                    value(
                        metrics,
                        "callmon_staff_charter_checks_total",
                        clause=clause,
                        staff=staff,
                        result=result,
                    )
                    == 0.0
                )
    for name in (
        "callmon_calls_in_progress",
        "callmon_ami_connected",
        "callmon_ami_events_total",
        "callmon_ami_framing_errors_total",
        "callmon_ami_framing_repairs_total",
        "callmon_ami_malformed_events_total",
        "callmon_calls_capped_total",
        "callmon_pbx_restarts_total",
        "callmon_ami_reconnects_total",
        "callmon_resync_incomplete_calls_total",
        "callmon_store_write_failures_total",
        "callmon_store_dropped_calls_total",
        "callmon_store_rejected_calls_total",
        "callmon_store_pending_calls",
    ):
        assert value(metrics, name) == 0.0
    assert (
        value(metrics, "callmon_build_info", version="0.1.0", definitions_version="2026.2") == 1.0
    )
    assert value(metrics, "callmon_staff_info", staff="203", department=CHONGMU) == 1.0


def test_names_follow_conventions(metrics: CallMetrics) -> None:
    for family in metrics.registry.collect():
        assert family.name.startswith("callmon_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_rings", "_ratio")), family.name
        assert family.documentation, family.name


def test_answered_within_two_rings(metrics: CallMetrics) -> None:
    observe(metrics, inbound(ring_seconds=4.0))  # ring 2
    calls = value(
        metrics, "callmon_calls_total", direction="inbound", outcome="answered", department=MINWON
    )
    assert calls == 1.0
    assert value(metrics, "callmon_answer_rings_count", department=MINWON) == 1.0
    assert value(metrics, "callmon_answer_rings_bucket", department=MINWON, le="1.0") == 0.0
    assert value(metrics, "callmon_answer_rings_bucket", department=MINWON, le="2.0") == 1.0
    assert value(metrics, "callmon_answer_rings_sum", department=MINWON) == 2.0
    assert value(
        metrics, "callmon_ring_duration_seconds_sum", department=MINWON, outcome="answered"
    ) == pytest.approx(4.0)
    assert (
        value(metrics, "callmon_charter_checks_total", clause="P1", department=MINWON, result="met")
        == 1.0
    )
    assert (
        value(metrics, "callmon_staff_charter_checks_total", clause="P1", staff="201", result="met")
        == 1.0
    )
    assert (
        value(metrics, "callmon_charter_checks_total", clause="P7", department=MINWON, result="met")
        == 1.0
    )
    assert value(metrics, "callmon_hangup_first_total", department=MINWON, side="caller") == 1.0
    assert value(metrics, "callmon_apology_expected_calls_total", department=MINWON) == 0.0


def test_third_ring_breaches_p1_and_expects_apology(metrics: CallMetrics) -> None:
    observe(
        metrics, inbound(ring_seconds=7.0, answered_by="203", dialed="203", hangup_first="staff")
    )
    assert value(metrics, "callmon_answer_rings_bucket", department=CHONGMU, le="2.0") == 0.0
    assert value(metrics, "callmon_answer_rings_bucket", department=CHONGMU, le="3.0") == 1.0
    assert (
        value(
            metrics,
            "callmon_charter_checks_total",
            clause="P1",
            department=CHONGMU,
            result="breached",
        )
        == 1.0
    )
    assert (
        value(
            metrics,
            "callmon_staff_charter_checks_total",
            clause="P1",
            staff="203",
            result="breached",
        )
        == 1.0
    )
    assert (
        value(
            metrics,
            "callmon_staff_charter_checks_total",
            clause="P7",
            staff="203",
            result="breached",
        )
        == 1.0
    )
    assert value(metrics, "callmon_apology_expected_calls_total", department=CHONGMU) == 1.0
    assert value(metrics, "callmon_hangup_first_total", department=CHONGMU, side="staff") == 1.0


def test_missed_call(metrics: CallMetrics) -> None:
    observe(
        metrics,
        inbound(dialed="600", answered_by=None, ring_seconds=4.0, missed_reason="caller_abandoned"),
    )
    assert (
        value(
            metrics, "callmon_calls_total", direction="inbound", outcome="missed", department=MINWON
        )
        == 1.0
    )
    assert (
        value(
            metrics,
            "callmon_missed_calls_total",
            direction="inbound",
            department=MINWON,
            reason="caller_abandoned",
        )
        == 1.0
    )
    assert (
        value(metrics, "callmon_ring_duration_seconds_count", department=MINWON, outcome="missed")
        == 1.0
    )
    assert value(metrics, "callmon_answer_rings_count", department=MINWON) == 0.0
    assert sum_checks(metrics) == 0.0


def test_missed_without_reason_is_unknown_reason(metrics: CallMetrics) -> None:
    observe(metrics, inbound(answered_by=None, missed_reason=None))
    assert (
        value(
            metrics,
            "callmon_missed_calls_total",
            direction="inbound",
            department=MINWON,
            reason="unknown",
        )
        == 1.0
    )


def sum_checks(metrics: CallMetrics) -> float:
    total = 0.0
    for family in metrics.registry.collect():
        if family.name in {"callmon_charter_checks", "callmon_staff_charter_checks"}:
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def test_transfers(metrics: CallMetrics) -> None:
    started = 1_795_848_120.0
    transfers = [
        # attended, to another department, customer connected after 4 s: P4 and P5 met
        Transfer("attended", started, "201", "203", True, connected_at=started + 4.0),
        # blind, within the department, connected after 12 s: P4 breached
        Transfer("blind", started + 20, "201", "202", True, connected_at=started + 32.0),
        # started, target never seen: not judged
        Transfer("blind", started + 40, "201"),
    ]
    observe(metrics, inbound(transfers=transfers))
    assert value(metrics, "callmon_transfer_wait_seconds_count", department=MINWON) == 2.0
    assert value(metrics, "callmon_transfer_wait_seconds_sum", department=MINWON) == 16.0
    assert (
        value(metrics, "callmon_transfer_wait_seconds_bucket", department=MINWON, le="10.0") == 1.0
    )
    assert (
        value(metrics, "callmon_transfers_total", kind="attended", department=MINWON, result="met")
        == 1.0
    )
    assert (
        value(
            metrics, "callmon_transfers_total", kind="blind", department=MINWON, result="breached"
        )
        == 1.0
    )
    assert (
        value(
            metrics, "callmon_transfers_total", kind="blind", department=MINWON, result="not_judged"
        )
        == 1.0
    )
    assert (
        value(metrics, "callmon_staff_charter_checks_total", clause="P4", staff="201", result="met")
        == 1.0
    )
    assert (
        value(
            metrics,
            "callmon_staff_charter_checks_total",
            clause="P4",
            staff="201",
            result="breached",
        )
        == 1.0
    )
    assert (
        value(metrics, "callmon_charter_checks_total", clause="P5", department=MINWON, result="met")
        == 1.0
    )
    # P7 goes to the last staff member on the line: 202 (the last completed transfer)
    assert (
        value(metrics, "callmon_staff_charter_checks_total", clause="P7", staff="202", result="met")
        == 1.0
    )


def test_incomplete_call_counts_but_is_not_judged(metrics: CallMetrics) -> None:
    observe(metrics, inbound(ring_seconds=9.0, incomplete=True))
    assert (
        value(
            metrics,
            "callmon_calls_total",
            direction="inbound",
            outcome="incomplete",
            department=MINWON,
        )
        == 1.0
    )
    assert (
        value(
            metrics,
            "callmon_calls_total",
            direction="inbound",
            outcome="answered",
            department=MINWON,
        )
        == 0.0
    )
    assert value(metrics, "callmon_resync_incomplete_calls_total") == 1.0
    assert value(metrics, "callmon_answer_rings_count", department=MINWON) == 0.0
    assert sum_checks(metrics) == 0.0


def test_internal_call_is_counted_not_judged(metrics: CallMetrics) -> None:
    record = inbound(caller="202", direction="internal", ring_seconds=7.0)
    observe(metrics, record)
    assert (
        value(
            metrics,
            "callmon_calls_total",
            direction="internal",
            outcome="answered",
            department=MINWON,
        )
        == 1.0
    )
    assert value(metrics, "callmon_answer_rings_count", department=MINWON) == 0.0
    assert sum_checks(metrics) == 0.0


def test_unknown_extension_is_unknown_staff(metrics: CallMetrics) -> None:
    observe(metrics, inbound(dialed="299", answered_by="299", ring_seconds=8.0))
    assert (
        value(
            metrics,
            "callmon_staff_charter_checks_total",
            clause="P1",
            staff="unknown",
            result="breached",
        )
        == 1.0
    )
    assert (
        value(
            metrics,
            "callmon_charter_checks_total",
            clause="P1",
            department="unknown",
            result="breached",
        )
        == 1.0
    )
    assert 'staff="299"' not in metrics.render().decode()


def test_no_per_staff_p2_series_up_front(metrics: CallMetrics) -> None:
    # judge() attributes P1, P4, P5 and P7 to staff, never P2 (the checklist's): no series
    # that could only ever show 0.
    assert set(STAFF_CLAUSES) == set(CHECK_CLAUSES) - {"P2"}
    text = metrics.render().decode()
    assert 'clause="P2",result="met",staff=' not in text
    assert 'callmon_charter_checks_total{clause="P2",department="총무과",result="met"} 0.0' in text
    staff_series = [
        s
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name.startswith("callmon_staff_c")
    ]
    assert len(staff_series) == (len(DIRECTORY.extensions) + 1) * len(STAFF_CLAUSES) * 2
    # a day of judged calls adds none
    for n in range(20):
        observe(metrics, inbound(ring_seconds=float(n), answered_by="203", dialed="203"))
    assert 'clause="P2",result="met",staff=' not in metrics.render().decode()


def test_checklist_checks_can_be_fed(metrics: CallMetrics) -> None:
    before = series_count(metrics)
    metrics.observe_checks([Check("P2", False, "202", MINWON), Check("P2", True, "999", None)])
    assert (
        value(
            metrics,
            "callmon_staff_charter_checks_total",
            clause="P2",
            staff="202",
            result="breached",
        )
        == 1.0
    )
    # the staff member's pair comes at once; an unknown extension counts as "unknown"
    assert (
        value(metrics, "callmon_staff_charter_checks_total", clause="P2", staff="202", result="met")
        == 0.0
    )
    assert (
        value(
            metrics,
            "callmon_staff_charter_checks_total",
            clause="P2",
            staff="unknown",
            result="met",
        )
        == 1.0
    )
    assert 'staff="999"' not in metrics.render().decode()
    assert series_count(metrics) == before + 4
    metrics.observe_checks([Check("P2", True, "202", MINWON)] * 3)
    assert series_count(metrics) == before + 4
    assert (
        value(
            metrics, "callmon_charter_checks_total", clause="P2", department="unknown", result="met"
        )
        == 1.0
    )


@pytest.mark.parametrize("evil", [EVIL_NUMBER, EVIL_NAME])
def test_caller_identity_never_exposed(metrics: CallMetrics, evil: str) -> None:
    observe(metrics, inbound(caller=evil, caller_name=evil, linkedid="1795848104.77"))
    # hostile values where extensions go: unknown staff, never echoed
    observe(metrics, inbound(caller=evil, caller_name=evil, dialed=evil, answered_by=evil))
    observe(
        metrics,
        inbound(
            caller=evil,
            caller_name=evil,
            transfers=[Transfer("attended", 1_795_848_120.0, evil, evil, True)],
        ),
    )
    text = metrics.render().decode()
    for needle in (evil, "calc", "홍길동", "evil", "01012345678", "1795848104.77"):
        assert needle not in text
    assert (
        value(
            metrics,
            "callmon_calls_total",
            direction="inbound",
            outcome="answered",
            department="unknown",
        )
        == 1.0
    )
    # the output still parses as the Prometheus text format
    assert list(text_string_to_metric_families(text))


def test_labels_stay_bounded_over_many_callers(metrics: CallMetrics) -> None:
    for n in range(10):  # every path once, so the comparison is not trivially "no calls"
        observe(metrics, inbound(ring_seconds=float(n)))
    before = series_count(metrics)
    for n in range(1000):
        unknown = f"9{n:03d}"
        record = inbound(
            linkedid=f"1795848200.{n}",
            caller=f"010{n:08d}",
            caller_name=f"Caller {n}",
            dialed=unknown if n % 2 else "201",
            answered_by=unknown if n % 3 else None,
            ring_seconds=float(n % 13),
            missed_reason="no_answer",
            transfers=[Transfer("blind", 1_795_848_130.0, unknown, f"8{n:03d}", True)],
        )
        observe(metrics, record)
    assert series_count(metrics) == before

    allowed = {
        "department": {*DIRECTORY.departments, "unknown"},
        "staff": {*DIRECTORY.extensions, "unknown"},
        "clause": set(CHECK_CLAUSES),
        "result": {"met", "breached", "not_judged", *CALLBACK_RESULTS},
        "direction": {"inbound", "outbound", "internal", "unknown"},
        "outcome": {"answered", "missed", "incomplete"},
        "side": {"caller", "staff", "unknown", "pbx"},
        "kind": {"blind", "attended", "park"},
        "reason": {
            "no_answer",
            "caller_abandoned",
            "busy",
            "unavailable",
            "failed",
            "pbx_restart",
            "abandoned_in_queue",
            "unknown",
        },
        "stage": set(PIPELINE_STAGES),
    }
    for family in metrics.registry.collect():
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                if label in {"le", "version", "definitions_version"}:
                    continue
                assert label_value in allowed[label], (sample.name, label, label_value)


def test_instances_do_not_share_state() -> None:
    first = CallMetrics(DIRECTORY)
    second = CallMetrics(DIRECTORY, CollectorRegistry())
    observe(first, inbound())
    labels = {"direction": "inbound", "outcome": "answered", "department": MINWON}
    assert first.registry.get_sample_value("callmon_calls_total", labels) == 1.0
    assert second.registry.get_sample_value("callmon_calls_total", labels) == 0.0


@dataclass
class FakeLink:
    connected: bool = False
    events: int = 0
    framing_errors: int = 0
    framing_repairs: int = 0
    reconnects: int = 0


def test_scrape_time_sources(metrics: CallMetrics) -> None:
    # the real stats of the correlator and the store writer fit the protocols
    link, correlator = FakeLink(), CorrelatorStats()
    writer = StoreWriter(create_engine("sqlite+aiosqlite://"), StoreSettings())  # unconnected
    live = {"a": 1, "b": 2}
    metrics.watch_link(lambda: link)
    metrics.watch_correlator(lambda: correlator)
    metrics.watch_store(writer.gauges)
    metrics.watch_calls_in_progress(lambda: len(live))
    assert value(metrics, "callmon_ami_connected") == 0.0
    assert value(metrics, "callmon_calls_in_progress") == 2.0

    link.connected, link.events, link.framing_errors, link.reconnects = True, 1234, 2, 3
    link.framing_repairs = 4
    correlator.rejected, correlator.capped, correlator.pbx_restarts = 5, 6, 7
    writer.stats.failures, writer.stats.dropped, writer.stats.rejected = 7, 1, 2
    for n in range(3):
        record = inbound(linkedid=f"queued.{n}")
        writer.submit(record, judge(record, CHARTER, DIRECTORY))
    live["c"] = 3
    assert value(metrics, "callmon_ami_connected") == 1.0
    assert value(metrics, "callmon_ami_events_total") == 1234.0
    assert value(metrics, "callmon_ami_framing_errors_total") == 2.0
    assert value(metrics, "callmon_ami_framing_repairs_total") == 4.0
    assert value(metrics, "callmon_ami_reconnects_total") == 3.0
    assert value(metrics, "callmon_ami_malformed_events_total") == 5.0
    assert value(metrics, "callmon_calls_capped_total") == 6.0
    assert value(metrics, "callmon_pbx_restarts_total") == 7.0
    assert value(metrics, "callmon_store_write_failures_total") == 7.0
    assert value(metrics, "callmon_store_dropped_calls_total") == 1.0
    assert value(metrics, "callmon_store_rejected_calls_total") == 2.0
    assert value(metrics, "callmon_store_pending_calls") == 3.0
    assert value(metrics, "callmon_calls_in_progress") == 3.0


def test_failing_source_does_not_break_the_scrape(
    metrics: CallMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> FakeLink:
        raise RuntimeError("boom")

    metrics.watch_link(broken)
    metrics.watch_calls_in_progress(lambda: 4)
    text = metrics.render().decode()
    assert "callmon_ami_connected" not in text
    assert "callmon_calls_in_progress 4.0" in text
    assert "callmon_calls_total" in text
    assert "AMI link" in caplog.text


def test_render_is_text_format(metrics: CallMetrics) -> None:
    observe(metrics, inbound())
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert families["callmon_calls"].type == "counter"
    assert families["callmon_answer_rings"].type == "histogram"
    assert families["callmon_ami_connected"].type == "gauge"


# -- the pipeline's bugs and the alert path ------------------------------------------------------


def test_pipeline_errors_by_stage(metrics: CallMetrics, caplog: pytest.LogCaptureFixture) -> None:
    # The daemon's stages are exactly the label values, each series there from the start.
    assert get_args(Stage) == PIPELINE_STAGES
    for stage in PIPELINE_STAGES:
        assert value(metrics, "callmon_pipeline_errors_total", stage=stage) == 0.0
    metrics.observe_pipeline_error("store")
    metrics.observe_pipeline_error("store")
    metrics.observe_pipeline_error("correlate")
    metrics.observe_pipeline_error("1795848104.1")  # never a label: logged, not counted
    assert value(metrics, "callmon_pipeline_errors_total", stage="store") == 2.0
    assert value(metrics, "callmon_pipeline_errors_total", stage="correlate") == 1.0
    assert value(metrics, "callmon_pipeline_errors_total", stage="judge") == 0.0
    assert "1795848104.1" not in metrics.render().decode()
    assert "not counted" in caplog.text


def test_the_alert_path_is_read_from_the_publisher_at_scrape_time(metrics: CallMetrics) -> None:
    alerts = [
        "callmon_alerts_broker_connected",
        "callmon_alerts_outbox_pending_messages",
        "callmon_alerts_outbox_oldest_pending_age_seconds",
        "callmon_alerts_publish_failures_total",
        "callmon_alerts_published_messages_total",
    ]
    # No publisher watched (no broker configured): no alert path, no series.
    assert all(metrics.registry.get_sample_value(name) is None for name in alerts)
    now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    publisher = OutboxPublisher(None, MqttSettings(host="x"), clock=lambda: now)  # type: ignore[arg-type]
    metrics.watch_alerts(publisher.gauges)
    assert [value(metrics, name) for name in alerts] == [0.0] * 5
    stats = publisher.stats
    stats.connected, stats.published, stats.failures = True, 12, 3
    stats.outbox_backlog, stats.oldest_pending_at = 4, now - timedelta(seconds=90)
    assert [value(metrics, name) for name in alerts] == [1.0, 4.0, 90.0, 3.0, 12.0]
    now += timedelta(seconds=30)  # the scrape reads the clock: the age grows between rounds
    assert value(metrics, "callmon_alerts_outbox_oldest_pending_age_seconds") == 120.0
    stats.outbox_backlog = 0  # delivered, the oldest not yet forgotten: no age
    assert value(metrics, "callmon_alerts_outbox_oldest_pending_age_seconds") == 0.0


# -- callbacks (P6/V4) -------------------------------------------------------------------------


@dataclass
class FakeCallbacks:
    open_obligations: list[tuple[str | None, bool]]
    write_failures: int = 0
    pending_changes: int = 0
    oldest_due: dict[str | None, float] = field(default_factory=dict)


def test_callback_series_exist_at_zero(metrics: CallMetrics) -> None:
    for department in [*DIRECTORY.departments, "unknown"]:
        assert value(metrics, "callmon_callbacks_open", department=department) == 0.0
        assert value(metrics, "callmon_callbacks_overdue", department=department) == 0.0
        for result in CALLBACK_RESULTS:
            labels = {"department": department, "result": result}
            assert value(metrics, "callmon_callbacks_closed_total", **labels) == 0.0
        assert (
            value(
                metrics, "callmon_callback_fulfilment_working_seconds_count", department=department
            )
            == 0.0
        )
    assert value(metrics, "callmon_callbacks_write_failures_total") == 0.0
    assert value(metrics, "callmon_callbacks_pending_changes") == 0.0


def test_callbacks_open_and_overdue_are_read_at_scrape_time(metrics: CallMetrics) -> None:
    view = FakeCallbacks([(MINWON, False), (MINWON, True), (CHONGMU, False)])
    metrics.watch_callbacks(lambda: view)
    assert value(metrics, "callmon_callbacks_open", department=MINWON) == 2.0
    assert value(metrics, "callmon_callbacks_overdue", department=MINWON) == 1.0
    assert value(metrics, "callmon_callbacks_open", department=CHONGMU) == 1.0
    assert value(metrics, "callmon_callbacks_overdue", department=CHONGMU) == 0.0
    # A department nobody configured, or none: "unknown", never the raw name.
    view.open_obligations = [("가짜과\n{x=1}", True), (None, False)]
    view.write_failures, view.pending_changes = 3, 2
    assert value(metrics, "callmon_callbacks_open", department=MINWON) == 0.0
    assert value(metrics, "callmon_callbacks_open", department="unknown") == 2.0
    assert value(metrics, "callmon_callbacks_overdue", department="unknown") == 1.0
    assert value(metrics, "callmon_callbacks_write_failures_total") == 3.0
    assert value(metrics, "callmon_callbacks_pending_changes") == 2.0
    assert "가짜과" not in metrics.render().decode()


def test_the_oldest_open_deadline_per_department(metrics: CallMetrics) -> None:
    name = "callmon_callbacks_oldest_due_timestamp_seconds"
    for department in [*DIRECTORY.departments, "unknown"]:
        assert value(metrics, name, department=department) == 0.0  # none open: 0
    view = FakeCallbacks(
        [(MINWON, True), (None, False)],
        oldest_due={MINWON: 1_800_000_000.5, "가짜과": 1_700_000_100.0, None: 1_700_000_000.0},
    )
    metrics.watch_callbacks(lambda: view)
    assert value(metrics, name, department=MINWON) == 1_800_000_000.5
    # Unknown and unconfigured departments share "unknown": the earliest of them.
    assert value(metrics, name, department="unknown") == 1_700_000_000.0
    assert value(metrics, name, department=CHONGMU) == 0.0
    view.oldest_due = {}
    assert value(metrics, name, department=MINWON) == 0.0


def test_event_handling_lag_is_a_histogram_from_the_start(metrics: CallMetrics) -> None:
    name = "callmon_event_handling_lag_seconds"
    assert value(metrics, f"{name}_count") == 0.0
    metrics.observe_handling_lag(0.002)
    metrics.observe_handling_lag(0.3)
    assert value(metrics, f"{name}_count") == 2.0
    assert value(metrics, f"{name}_bucket", le="0.005") == 1.0
    assert value(metrics, f"{name}_bucket", le="0.5") == 2.0


def test_callback_closed_and_fulfilment_time(metrics: CallMetrics) -> None:
    metrics.observe_callback_closed(MINWON, "fulfilled_on_time", 120.0)
    metrics.observe_callback_closed(MINWON, "fulfilled_late", 4000.0)
    metrics.observe_callback_closed(MINWON, "cancelled", 50.0)  # not a fulfilment: no time
    metrics.observe_callback_closed("어딘가", "resolved_by_inbound", 10.0)
    metrics.observe_callback_closed(MINWON, "open", 1.0)  # not a closing result: ignored
    closed = "callmon_callbacks_closed_total"
    assert value(metrics, closed, department=MINWON, result="fulfilled_on_time") == 1.0
    assert value(metrics, closed, department=MINWON, result="fulfilled_late") == 1.0
    assert value(metrics, closed, department=MINWON, result="cancelled") == 1.0
    assert value(metrics, closed, department="unknown", result="resolved_by_inbound") == 1.0
    fulfilment = "callmon_callback_fulfilment_working_seconds"
    assert value(metrics, f"{fulfilment}_count", department=MINWON) == 2.0
    assert value(metrics, f"{fulfilment}_sum", department=MINWON) == 4120.0
    assert value(metrics, f"{fulfilment}_bucket", department=MINWON, le="3600.0") == 1.0
    assert value(metrics, f"{fulfilment}_count", department="unknown") == 0.0


def test_failing_callbacks_source_leaves_only_its_series_out(
    metrics: CallMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> FakeCallbacks:
        raise RuntimeError("boom")

    metrics.watch_callbacks(broken)
    text = metrics.render().decode()
    assert "callmon_callbacks_open{" not in text
    assert "callmon_callbacks_closed_total" in text
    assert "callbacks" in caplog.text


# -- scrapes: the latest values, whole calls ---------------------------------------------------

# What Prometheus 2.x and 3.x send by default (more headers in test_exposition.py).
PROMETHEUS_2_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.mark.usefixtures("created_off")
def test_a_scrape_shows_the_latest_values(metrics: CallMetrics) -> None:
    labels = {"direction": "inbound", "outcome": "answered", "department": MINWON}
    first = metrics.render()
    observe(metrics, inbound())
    second = metrics.render()
    assert first != second
    assert metrics.render() == second  # nothing changed: the same bytes
    observe(metrics, inbound())
    families = text_string_to_metric_families(metrics.render().decode())
    found = [
        s.value
        for f in families
        for s in f.samples
        if s.name == "callmon_calls_total" and s.labels == labels
    ]
    assert found == [2.0]
    assert metrics.render() == generate_latest(metrics.registry)


@pytest.mark.usefixtures("created_off")
def test_concurrent_calls_and_scrapes_see_whole_calls(metrics: CallMetrics) -> None:
    record = inbound()  # answered on ring 1: one call and one P1 met each
    verdict = judge(record, CHARTER, DIRECTORY)
    calls = (
        "callmon_calls_total",
        {"direction": "inbound", "outcome": "answered", "department": MINWON},
    )
    p1 = ("callmon_charter_checks_total", {"clause": "P1", "department": MINWON, "result": "met"})
    done = threading.Event()
    seen: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def count() -> None:
        for _ in range(300):
            metrics.observe_call(record, verdict)

    def scrape() -> None:
        try:
            while not done.is_set():
                text = metrics.exposition(PROMETHEUS_3_ACCEPT)[0].decode()
                found = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in parse_openmetrics(text)
                    for s in f.samples
                }
                seen.append(
                    (
                        found[calls[0], tuple(sorted(calls[1].items()))],
                        found[p1[0], tuple(sorted(p1[1].items()))],
                    )
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    counters = [threading.Thread(target=count) for _ in range(3)]
    scrapers = [threading.Thread(target=scrape) for _ in range(2)]
    for thread in scrapers + counters:
        thread.start()
    for thread in counters:
        thread.join()
    done.set()
    for thread in scrapers:
        thread.join()
    assert not errors
    assert seen
    assert all(a == b for a, b in seen)  # a scrape never sees half a call
    assert value(metrics, *calls[:1], **calls[1]) == 900.0
    assert value(metrics, *p1[:1], **p1[1]) == 900.0
