"""Prometheus metrics of the monitor, each instance with its own registry.

Rules kept here, and checked by the tests:

- names start with ``callmon_``, use base units (seconds) and counters end in ``_total``;
- every label value comes from a bounded set: a configured department or extension (through
  :meth:`Directory.department_label` / :meth:`Directory.staff_label`, else ``"unknown"``),
  a clause, a result, a direction ... never a phone number, a channel, a caller name or a
  ``Linkedid``;
- every label combination exists from the start, at zero, so a board shows 0 rather than
  "no data" and ``rate()`` sees the first increment. One exception: the per-staff P2 series
  (``callmon_staff_charter_checks_total{clause="P2"}``). :func:`judge` never attributes P2
  to anyone (whether the apology was said is the supervisor checklist's), so they are not
  created up front (2 per staff member, 2,600 for 1,300 staff, all 0 forever); a P2 check
  fed through :meth:`CallMetrics.observe_checks` creates its staff member's pair, known
  extensions and ``"unknown"`` only, so the set stays bounded by the directory.

Two ways values arrive, one place each:

- per finished call, :meth:`CallMetrics.observe_call` (calls, rings, charter checks,
  transfers, hang-up order);
- read at scrape time from the components that already count (the AMI link, the
  correlator, the store, the live call table, the open callbacks), through ``watch_*``
  providers. Their counts must be cumulative over the life of the process (not reset on
  reconnect);
- per closed callback obligation, :meth:`CallMetrics.observe_callback_closed`;
- per bug a call triggered in the daemon's pipeline, :meth:`CallMetrics.observe_pipeline_error`
  (the call pays, the daemon goes on: ``callmon_pipeline_errors_total{stage}``).

The exposition (``/metrics``, :meth:`CallMetrics.exposition`): CallMetrics's own families
are the fast collectors of :mod:`call_monitor.metrics.exposition` (each series' line formatted once,
re-formatted only when its value changed; the same bytes as prometheus_client's encoders).
The callbacks' families are fast ones too, set from their provider at each scrape; the few
single-series families of the other ``watch_*`` providers are rendered by prometheus_client
at each scrape.

Threads: every update and the render take one lock per instance (re-entrant; a call is
counted under it as a whole), so a render from another thread sees whole calls. The daemon
renders in the event loop: it is cheap (well under 5 ms, see ``benchmarks/metrics.py``), and
the scrape-time providers read state only the loop may touch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import product
from typing import Protocol, TypeVar, get_args

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from call_monitor import __version__
from call_monitor.calls.model import (
    CallRecord,
    Direction,
    HangupSide,
    MissedReason,
    Outcome,
    TransferKind,
)
from call_monitor.charter.judged import PipelineStage
from call_monitor.charter.obligations import ClosedState, FulfilledState
from call_monitor.charter.rules import CLAUSES, CallVerdict, Check, CheckResult, Clause
from call_monitor.checklist.facts import ANSWERS
from call_monitor.checklist.form import Form
from call_monitor.checklist.revisions import Revision
from call_monitor.directory import UNKNOWN, Directory
from call_monitor.metrics.catalogue import (
    ANSWER_RINGS,
    APOLOGY_EXPECTED,
    BUILD,
    CALLBACK_FULFILMENT,
    CALLBACKS_CLOSED,
    CALLBACKS_OLDEST_DUE,
    CALLBACKS_OPEN,
    CALLBACKS_OVERDUE,
    CALLBACKS_PENDING,
    CALLBACKS_WRITE_FAILURES,
    CALLS,
    CHARTER_CHECKS,
    CHECKLIST_ANSWERS,
    CHECKLIST_SCORE,
    EVENT_HANDLING_LAG,
    HANGUP_FIRST,
    MISSED_CALLS,
    PIPELINE_ERRORS,
    QUEUE_WAIT,
    RESYNC_INCOMPLETE,
    RING_DURATION,
    STAFF_CHARTER_CHECKS,
    STAFF_INFO,
    TRANSFER_WAIT,
    TRANSFERS,
    WATCHED,
    FamilySpec,
)
from call_monitor.metrics.exposition import (
    EOF_LINE,
    OPENMETRICS,
    TEXT,
    Family,
    FastCounter,
    FastGauge,
    FastHistogram,
    FastInfo,
    encode_collector,
    negotiated_format,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Family)

# Label values: the model's own value sets, in the order of their Literal types (the order
# the series are created in, so the order of the exposition).
CHECK_CLAUSES: tuple[Clause, ...] = CLAUSES
# The clauses judge() attributes to a staff member (P1 to the answerer, P4/P5 to the
# transferring one, P7 to the last one on the line): their per-staff series exist from the
# start. P2 per staff only once a P2 check is fed (see the module's docstring).
STAFF_CLAUSES: tuple[Clause, ...] = tuple(c for c in CLAUSES if c != "P2")
RESULTS: tuple[CheckResult, ...] = get_args(CheckResult)
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
RING_OUTCOMES = tuple(o for o in OUTCOMES if o != "incomplete")  # judged calls are complete
MISSED_REASONS: tuple[str, ...] = (*get_args(MissedReason), UNKNOWN)
HANGUP_SIDES: tuple[HangupSide, ...] = get_args(HangupSide)
TRANSFER_KINDS: tuple[TransferKind, ...] = get_args(TransferKind)
TRANSFER_RESULTS = (*RESULTS, "not_judged")  # not_judged: no transfer target was seen

ANSWER_RING_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
RING_SECONDS_BUCKETS = (1.0, 2.0, 3.0, 4.5, 6.0, 9.0, 12.0, 15.0, 20.0, 30.0, 60.0)
# Event-to-handled lag: a healthy monitor stays in the first buckets (ingest p99 ~2 ms).
HANDLING_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TRANSFER_WAIT_BUCKETS = (1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)
# Waiting in a queue before a phone rings: seconds to minutes (the queue's own timeout).
QUEUE_WAIT_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CALLBACK_RESULTS: tuple[ClosedState, ...] = get_args(ClosedState)
FULFILLED: tuple[FulfilledState, ...] = get_args(FulfilledState)
# Where in the daemon's pipeline a call raised: events to calls, the charter rules, these
# metrics, the store, the callbacks, the call line.
PIPELINE_STAGES: tuple[PipelineStage, ...] = get_args(PipelineStage)
CHECKLIST_SCORE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)  # the score / 100
# Working seconds from the obligation to the answered callback; the charter's limit is 3600.
FULFILMENT_BUCKETS = (
    60.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    2700.0,
    3600.0,
    5400.0,
    7200.0,
    14400.0,
    28800.0,
)


class LinkStatsView(Protocol):
    """What the AMI client counts (cumulative over the process, across reconnects)."""

    @property
    def connected(self) -> bool: ...

    @property
    def events(self) -> int: ...

    @property
    def framing_errors(self) -> int: ...

    @property
    def framing_repairs(self) -> int: ...

    @property
    def reconnects(self) -> int: ...


class CorrelatorStatsView(Protocol):
    """What the correlator counts (``CorrelatorStats``): events it could not use, calls the
    cap on calls in progress closed."""

    @property
    def rejected(self) -> int: ...

    @property
    def capped(self) -> int: ...

    @property
    def pbx_restarts(self) -> int: ...


class StoreStatsView(Protocol):
    """What the store writer knows (``StoreWriter.gauges()``): its queue, failed batches,
    evicted calls, calls refused for their data."""

    @property
    def pending(self) -> int: ...

    @property
    def failures(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def rejected(self) -> int: ...


class CallbacksView(Protocol):
    """What the callback service knows at scrape time (``CallbackService.gauges()``)."""

    @property
    def open_obligations(self) -> Sequence[tuple[str | None, bool]]:
        """One ``(owner department, past due now)`` per open obligation."""
        ...

    @property
    def write_failures(self) -> int: ...

    @property
    def pending_changes(self) -> int: ...

    @property
    def oldest_due(self) -> Mapping[str | None, float]:
        """Owner department -> the earliest deadline of its open obligations (epoch s)."""
        ...


class AlertPathView(Protocol):
    """What the MQTT alert publisher knows at scrape time (``OutboxPublisher.gauges()``),
    kept up to date by the publisher from what it reads each round: a scrape reads no
    database."""

    @property
    def connected(self) -> bool: ...

    @property
    def outbox_pending(self) -> int:
        """Undelivered outbox rows, as last counted."""
        ...

    @property
    def oldest_pending_age_seconds(self) -> float:
        """Age of the oldest undelivered row now; 0 with none."""
        ...

    @property
    def publish_failures(self) -> int: ...

    @property
    def published(self) -> int: ...


def _bounded(value: str | None, allowed: tuple[str, ...], default: str = UNKNOWN) -> str:
    return value if value is not None and value in allowed else default


def _result(met: bool) -> CheckResult:
    return "met" if met else "breached"


def _in_progress(count: int) -> dict[str, float]:
    return {"in_progress": float(count)}


def _link_values(link: LinkStatsView) -> dict[str, float]:
    return {
        "connected": 1.0 if link.connected else 0.0,
        "events": float(link.events),
        "framing": float(link.framing_errors),
        "repairs": float(link.framing_repairs),
        "reconnects": float(link.reconnects),
    }


def _correlator_values(correlator: CorrelatorStatsView) -> dict[str, float]:
    return {
        "malformed": float(correlator.rejected),
        "capped": float(correlator.capped),
        "pbx_restarts": float(correlator.pbx_restarts),
    }


def _store_values(store: StoreStatsView) -> dict[str, float]:
    return {
        "store_failures": float(store.failures),
        "store_dropped": float(store.dropped),
        "store_rejected": float(store.rejected),
        "store_pending": float(store.pending),
    }


def _alert_values(alerts: AlertPathView) -> dict[str, float]:
    return {
        "alerts_connected": 1.0 if alerts.connected else 0.0,
        "alerts_pending": float(alerts.outbox_pending),
        "alerts_age": alerts.oldest_pending_age_seconds,
        "alerts_failures": float(alerts.publish_failures),
        "alerts_published": float(alerts.published),
    }


class _WatchedCollector:
    """Values read at scrape time from the pipeline's own counters.

    A provider that raises is logged and its metrics are left out of that scrape; the rest
    of the scrape still succeeds.
    """

    def __init__(self) -> None:
        self.link: Callable[[], LinkStatsView] | None = None
        self.correlator: Callable[[], CorrelatorStatsView] | None = None
        self.store: Callable[[], StoreStatsView] | None = None
        self.in_progress: Callable[[], int] | None = None
        self.alerts: Callable[[], AlertPathView] | None = None

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
        return {spec.key: spec.kind(spec.name, spec.documentation) for spec in WATCHED}

    def describe(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        return list(self._families().values())

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        families = self._families()
        self._add(families, "in_progress", "calls in progress", self.in_progress, _in_progress)
        self._add(families, "link", "AMI link", self.link, _link_values)
        self._add(families, "correlator", "correlator", self.correlator, _correlator_values)
        self._add(families, "store", "store", self.store, _store_values)
        # No alert publisher (no broker configured): no alert path, no series. Zeros would
        # say "nothing waits" while the alerts pile up in the outbox.
        self._add(families, "", "alert publisher", self.alerts, _alert_values)
        for family in families.values():
            if family.samples:
                yield family

    def _add(
        self,
        families: dict[str, GaugeMetricFamily | CounterMetricFamily],
        zero_source: str,
        what: str,
        provider: Callable[[], _T] | None,
        values_of: Callable[[_T], dict[str, float]],
    ) -> None:
        """One provider's values into their families: zeros for ``zero_source``'s families
        while it is not watched (``""``: none), nothing when it fails (logged)."""
        if provider is None:
            values = {spec.key: 0.0 for spec in WATCHED if spec.source == zero_source}
        else:
            view = self._read(what, provider)
            if view is None:
                return
            values = values_of(view)
        for key, value in values.items():
            families[key].add_metric([], value)

    @staticmethod
    def _read(what: str, provider: Callable[[], _T] | None) -> _T | None:
        if provider is None:
            return None
        try:
            return provider()
        except Exception:
            log.exception("metrics: reading %s stats failed; left out of this scrape", what)
            return None


class _CallbacksCollector:
    """Open and overdue callbacks per department, computed at scrape time: "overdue" is
    "past its deadline now", whether or not the timer has marked it yet.

    Kept in fast families (a line per department, formatted once), set from the provider
    at each scrape (:meth:`refresh`); a provider that raises is logged and these families
    are left out of that scrape."""

    def __init__(self, directory: Directory, lock: threading.RLock) -> None:
        self.directory = directory
        self.provider: Callable[[], CallbacksView] | None = None
        self._lock = lock
        self._departments = [*directory.departments, UNKNOWN]
        self.open = FastGauge(*CALLBACKS_OPEN, lock=lock)
        self.overdue = FastGauge(*CALLBACKS_OVERDUE, lock=lock)
        self.oldest_due = FastGauge(*CALLBACKS_OLDEST_DUE, lock=lock)
        self.pending = FastGauge(*CALLBACKS_PENDING, lock=lock)
        self.failures = FastCounter(*CALLBACKS_WRITE_FAILURES, lock=lock)
        self.families: tuple[Family, ...] = (
            self.open,
            self.overdue,
            self.oldest_due,
            self.pending,
            self.failures,
        )
        self._by_department = [
            (
                department,
                self.open.labels(department),
                self.overdue.labels(department),
                self.oldest_due.labels(department),
            )
            for department in self._departments
        ]

    def refresh(self) -> bool:
        """Read the provider into the families; ``False`` if it failed (logged)."""
        view = _WatchedCollector._read("callbacks", self.provider)
        if self.provider is not None and view is None:
            return False  # the provider failed: logged, left out of this scrape
        open_counts = dict.fromkeys(self._departments, 0)
        overdue_counts = dict.fromkeys(self._departments, 0)
        oldest: dict[str, float] = {}
        pending = failures = 0
        if view is not None:
            for department, overdue in view.open_obligations:
                label = self.directory.department_label(department)
                open_counts[label] += 1
                overdue_counts[label] += int(overdue)
            for department, due in view.oldest_due.items():
                label = self.directory.department_label(department)
                oldest[label] = min(due, oldest.get(label, due))
            pending, failures = view.pending_changes, view.write_failures
        with self._lock:
            for department, open_gauge, overdue_gauge, due_gauge in self._by_department:
                open_gauge.set(float(open_counts[department]))
                overdue_gauge.set(float(overdue_counts[department]))
                due_gauge.set(oldest.get(department, 0.0))
            self.pending.set(float(pending))
            self.failures.set_total(float(failures))
        return True

    def render_into(self, out: list[bytes], fmt: str) -> None:
        if self.refresh():
            for family in self.families:
                family.render_into(out, fmt)

    def describe(self) -> list[Metric]:
        return [metric for family in self.families for metric in family.describe()]

    def collect(self) -> list[Metric]:
        if not self.refresh():
            return []
        return [metric for family in self.families for metric in family.collect()]


class CallMetrics:
    """The monitor's metrics, on a registry of their own (tests create several)."""

    def __init__(
        self,
        directory: Directory,
        registry: CollectorRegistry | None = None,
        *,
        definitions_version: str = "",
        checklist_form: Form | None = None,
    ) -> None:
        self.directory = directory
        # The checklist's items: the answers' item label (bounded by the form in force), and
        # those of clause P2, whose yes/no feed the per-staff P2 series.
        items = () if checklist_form is None else checklist_form.items
        self._checklist_items = tuple(item.id for item in items)
        self._p2_items = frozenset(item.id for item in items if item.clause == "P2")
        self.registry = registry if registry is not None else CollectorRegistry()
        # Every update and every render (re-entrant: observe_call holds it for a whole call).
        self._lock = lock = threading.RLock()
        # The exposition renders these in the order they are made, registered in that order
        # (which prometheus_client's encoders follow), then the scrape-time collectors.
        self._families: list[Family] = []
        self.calls = self._counter(CALLS)
        self.missed_calls = self._counter(MISSED_CALLS)
        self.answer_rings = self._histogram(ANSWER_RINGS, ANSWER_RING_BUCKETS)
        self.ring_duration = self._histogram(RING_DURATION, RING_SECONDS_BUCKETS)
        self.queue_wait = self._histogram(QUEUE_WAIT, QUEUE_WAIT_BUCKETS)
        self.apology_expected = self._counter(APOLOGY_EXPECTED)
        self.charter_checks = self._counter(CHARTER_CHECKS)
        self.staff_charter_checks = self._counter(STAFF_CHARTER_CHECKS)
        self.transfer_wait = self._histogram(TRANSFER_WAIT, TRANSFER_WAIT_BUCKETS)
        self.transfers = self._counter(TRANSFERS)
        self.hangup_first = self._counter(HANGUP_FIRST)
        self.resync_incomplete = self._counter(RESYNC_INCOMPLETE)
        self.staff_info = self._made(FastGauge(*STAFF_INFO, lock=lock))
        build = {"version": __version__, "definitions_version": definitions_version or UNKNOWN}
        self.build_info = self._made(FastInfo(BUILD.name, BUILD.documentation, build, lock=lock))
        self.callbacks_closed = self._counter(CALLBACKS_CLOSED)
        self.callback_fulfilment = self._histogram(CALLBACK_FULFILMENT, FULFILMENT_BUCKETS)
        self.pipeline_errors = self._counter(PIPELINE_ERRORS)
        self.handling_lag = self._histogram(EVENT_HANDLING_LAG, HANDLING_LAG_BUCKETS)
        self.checklist_answers = self._counter(CHECKLIST_ANSWERS)
        self.checklist_score = self._histogram(CHECKLIST_SCORE, CHECKLIST_SCORE_BUCKETS)
        self._watched = _WatchedCollector()
        self._callbacks = _CallbacksCollector(directory, lock)
        self.registry.register(self._watched)
        self.registry.register(self._callbacks)
        self._create_series()

    def _made(self, family: _F) -> _F:
        self._families.append(family)
        self.registry.register(family)
        return family

    def _counter(self, spec: FamilySpec) -> FastCounter:
        return self._made(FastCounter(*spec, lock=self._lock))

    def _histogram(self, spec: FamilySpec, buckets: Sequence[float]) -> FastHistogram:
        return self._made(FastHistogram(*spec, buckets=buckets, lock=self._lock))

    # -- the series that exist from the start, at zero (but per-staff P2: see the docstring)

    def _create_series(self) -> None:
        departments = [*self.directory.departments, UNKNOWN]
        self._create_call_series(departments)
        self._create_charter_series(departments, [*self.directory.extensions, UNKNOWN])
        for department, kind, result in product(departments, TRANSFER_KINDS, TRANSFER_RESULTS):
            self.transfers.labels(kind, department, result)
        for department, closed in product(departments, CALLBACK_RESULTS):
            self.callbacks_closed.labels(department, closed)
        for department in departments:
            self.transfer_wait.labels(department)
            self.callback_fulfilment.labels(department)
        for stage in PIPELINE_STAGES:
            self.pipeline_errors.labels(stage)
        for department, item, answer in product(departments, self._checklist_items, ANSWERS):
            self.checklist_answers.labels(department, item, answer)
        if self._checklist_items:
            for department in departments:
                self.checklist_score.labels(department)
        self.handling_lag.labels()
        for extension in self.directory.extensions:
            department = self.directory.department_label(self.directory.department_of(extension))
            self.staff_info.labels(extension, department).set(1)

    def _create_call_series(self, departments: list[str]) -> None:
        for department, direction, outcome in product(departments, DIRECTIONS, OUTCOMES):
            self.calls.labels(direction, outcome, department)
        for department, direction, reason in product(departments, DIRECTIONS, MISSED_REASONS):
            self.missed_calls.labels(direction, department, reason)
        for department, ring_outcome in product(departments, RING_OUTCOMES):
            self.ring_duration.labels(department, ring_outcome)
        for department, side in product(departments, HANGUP_SIDES):
            self.hangup_first.labels(department, side)
        for department in departments:
            self.answer_rings.labels(department)
            self.queue_wait.labels(department)
            self.apology_expected.labels(department)

    def _create_charter_series(self, departments: list[str], extensions: list[str]) -> None:
        for department, clause, result in product(departments, CHECK_CLAUSES, RESULTS):
            self.charter_checks.labels(clause, department, result)
        for extension, clause, result in product(extensions, STAFF_CLAUSES, RESULTS):
            self.staff_charter_checks.labels(clause, extension, result)

    # -- scrape-time sources -------------------------------------------------------------

    def watch_link(self, provider: Callable[[], LinkStatsView]) -> None:
        """AMI link: ``callmon_ami_connected``, ``_events_total``, ``_framing_errors_total``,
        ``_reconnects_total``. Replaces any earlier provider."""
        self._watched.link = provider

    def watch_correlator(self, provider: Callable[[], CorrelatorStatsView]) -> None:
        """Correlator: ``callmon_ami_malformed_events_total`` (e.g. ``lambda: c.stats``)."""
        self._watched.correlator = provider

    def watch_store(self, provider: Callable[[], StoreStatsView]) -> None:
        """Store writer: ``callmon_store_write_failures_total``,
        ``callmon_store_dropped_calls_total``, ``callmon_store_rejected_calls_total``,
        ``callmon_store_pending_calls`` (e.g. ``writer.gauges``)."""
        self._watched.store = provider

    def watch_calls_in_progress(self, provider: Callable[[], int]) -> None:
        """Live call table: ``callmon_calls_in_progress``."""
        self._watched.in_progress = provider

    def watch_callbacks(self, provider: Callable[[], CallbacksView]) -> None:
        """Callback service: ``callmon_callbacks_open{department}``,
        ``callmon_callbacks_overdue{department}``, ``callmon_callbacks_pending_changes``,
        ``callmon_callbacks_write_failures_total`` (e.g. ``service.gauges``)."""
        self._callbacks.provider = provider

    def watch_alerts(self, provider: Callable[[], AlertPathView]) -> None:
        """MQTT alert publisher: ``callmon_alerts_broker_connected``,
        ``callmon_alerts_outbox_pending_messages``,
        ``callmon_alerts_outbox_oldest_pending_age_seconds``,
        ``callmon_alerts_publish_failures_total``, ``callmon_alerts_published_messages_total``
        (e.g. ``publisher.gauges``). Unwatched, these series are left out."""
        self._watched.alerts = provider

    def observe_handling_lag(self, seconds: float) -> None:
        """One probe of the time from an event's arrival to the end of its handling."""
        self.handling_lag.observe(seconds)

    def observe_pipeline_error(self, stage: str) -> None:
        """Count one bug a call triggered at ``stage`` (one of :data:`PIPELINE_STAGES`)."""
        bounded = _bounded(stage, PIPELINE_STAGES, default="")
        if not bounded:
            log.warning("metrics: pipeline stage %r is not counted", stage)
            return
        with self._lock:
            self.pipeline_errors.labels(bounded).inc()

    def observe_callback_closed(
        self, department: str | None, result: str, working_seconds: float | None
    ) -> None:
        """Count one closed obligation; a fulfilled one's working seconds go to the histogram
        (the others were never called back: no fulfilment time)."""
        label = self.directory.department_label(department)
        bounded = _bounded(result, CALLBACK_RESULTS, default="")
        if not bounded:
            log.warning("metrics: callback result %r is not counted", result)
            return
        with self._lock:
            self.callbacks_closed.labels(label, bounded).inc()
            if bounded in FULFILLED and working_seconds is not None:
                self.callback_fulfilment.labels(label).observe(max(0.0, working_seconds))

    def observe_checklist(self, revision: Revision, first: bool) -> None:
        """Count a submitted checklist: its answers, its score, and its P2 item's yes / no as
        the scored staff member's P2 check. First revisions only: a counter cannot take back
        what a correction changes (the store keeps every revision; exports read the latest).
        Items not in the form in force are not counted (the label stays bounded)."""
        if not first:
            return
        department = self.directory.department_label(revision.department)
        p2_checks = [
            Check("P2", item.answer == "yes", revision.staff, revision.department)
            for item in revision.items
            if item.item_id in self._p2_items and item.answer != "na"
        ]
        with self._lock:
            for item in revision.items:
                if item.item_id in self._checklist_items and item.answer in ANSWERS:
                    self.checklist_answers.labels(department, item.item_id, item.answer).inc()
            if revision.score is not None and self._checklist_items:
                self.checklist_score.labels(department).observe(revision.score / 100)
            self.observe_checks(p2_checks)

    # -- per call ----------------------------------------------------------------------

    def observe_call(self, record: CallRecord, verdict: CallVerdict) -> None:
        """Count one finished call (once per call, when it has ended)."""
        with self._lock:
            self._observe_call(record, verdict)

    def _observe_call(self, record: CallRecord, verdict: CallVerdict) -> None:
        department = self.directory.department_label(verdict.department)
        direction = _bounded(record.direction, DIRECTIONS)
        self.calls.labels(direction, record.outcome, department).inc()
        if record.incomplete:
            self.resync_incomplete.inc()
            return

        if record.missed and not record.answered:
            reason = _bounded(record.missed_reason, MISSED_REASONS)
            self.missed_calls.labels(direction, department, reason).inc()

        if not verdict.judged:
            return
        # Below: customer calls, the ones the charter is measured on.
        queue_wait = record.queue_wait_seconds
        if queue_wait is not None:
            self.queue_wait.labels(department).observe(queue_wait)
        ring_seconds = record.ring_seconds
        if record.answered:
            if verdict.rings is not None:
                self.answer_rings.labels(department).observe(verdict.rings)
            if ring_seconds is not None:
                self.ring_duration.labels(department, "answered").observe(ring_seconds)
            if verdict.apology_expected:
                self.apology_expected.labels(department).inc()
            side = _bounded(record.hangup_first, HANGUP_SIDES)
            self.hangup_first.labels(department, side).inc()
        elif ring_seconds is not None:
            self.ring_duration.labels(department, "missed").observe(ring_seconds)

        self._observe_transfers(record, verdict)
        self.observe_checks(verdict.checks)

    def _observe_transfers(self, record: CallRecord, verdict: CallVerdict) -> None:
        directory = self.directory
        for transfer, transfer_verdict in zip(record.transfers, verdict.transfers, strict=False):
            transfer_department = directory.department_label(
                directory.department_of(transfer.from_ext) or verdict.department
            )
            if transfer_verdict.wait_seconds is not None:
                self.transfer_wait.labels(transfer_department).observe(
                    transfer_verdict.wait_seconds
                )
            result = (
                "not_judged"
                if transfer_verdict.p4_met is None
                else _result(transfer_verdict.p4_met)
            )
            kind = _bounded(transfer.kind, TRANSFER_KINDS, default="blind")
            self.transfers.labels(kind, transfer_department, result).inc()

    def observe_checks(self, checks: Iterable[Check]) -> None:
        """Count judged clauses: those of :func:`judge`, and later the checklist's (P2).

        A staff member's P2 series (met and breached) are created at their first P2 check."""
        with self._lock:
            for check in checks:
                clause = _bounded(check.clause, CHECK_CLAUSES, default="")
                if not clause:
                    continue
                result = _result(check.met)
                department = self.directory.department_label(check.department)
                self.charter_checks.labels(clause, department, result).inc()
                staff = self.directory.staff_label(check.staff)
                if clause not in STAFF_CLAUSES:
                    for other in RESULTS:  # both at once: a board sees 0, not "no data"
                        self.staff_charter_checks.labels(clause, staff, other)
                self.staff_charter_checks.labels(clause, staff, result).inc()

    # -- exposition --------------------------------------------------------------------

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The body and content type of ``GET /metrics`` for this ``Accept`` header.

        The format is prometheus_client's choice (``choose_encoder``): text 0.0.4 by
        default, OpenMetrics 1.0.0 for Prometheus. Those (and text 1.0.0) are rendered
        here, from the cached lines; any other choice (the ``dots`` escaping, another
        OpenMetrics version) by prometheus_client's encoder, slowly but the same way.

        What CallMetrics registered, only: given a registry shared with other collectors,
        ``generate_latest(registry)`` would show theirs too, this does not."""
        encoder, content_type = choose_encoder(accept)
        fmt = negotiated_format(content_type)
        if fmt is None:
            return encoder(self.registry), content_type
        return self._render(fmt), content_type

    def render(self) -> bytes:
        """The Prometheus text format (0.0.4), as :meth:`exposition` with no ``Accept``."""
        return self._render(TEXT)

    def _render(self, fmt: str) -> bytes:
        parts: list[bytes] = []
        with self._lock:
            for family in self._families:
                family.render_into(parts, fmt)
        parts.append(encode_collector(self._watched.collect, fmt))
        self._callbacks.render_into(parts, fmt)
        if fmt == OPENMETRICS:
            parts.append(EOF_LINE)
        return b"".join(parts)


__all__ = [
    "PIPELINE_STAGES",
    "AlertPathView",
    "CallMetrics",
    "CallbacksView",
    "CorrelatorStatsView",
    "FastCounter",
    "FastGauge",
    "FastHistogram",
    "FastInfo",
    "LinkStatsView",
    "StoreStatsView",
    "negotiated_format",
]
