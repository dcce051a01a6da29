"""Every ``callmon_`` family as declared: its name, help text and label names.

Data only, kept apart from what feeds the families (:mod:`.families`), so the list reads as
a catalogue: the families :class:`~call_monitor.metrics.families.CallMetrics` keeps, by
group, then the ones read from the running parts at scrape time. A counter's name is
without its ``_total`` (prometheus_client's convention, the exposition adds it).
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class FamilySpec(NamedTuple):
    """A family's name, help and label names: a fast family's first arguments
    (``FastCounter(*spec, lock=lock)``)."""

    name: str
    documentation: str
    labelnames: tuple[str, ...] = ()


# -- per finished call ---------------------------------------------------------------------

CALLS = FamilySpec(
    "callmon_calls",
    "Finished calls by direction and outcome (missed: never answered; incomplete: "
    "the monitor did not see the whole call).",
    ("direction", "outcome", "department"),
)
MISSED_CALLS = FamilySpec(
    "callmon_missed_calls",
    "Calls that rang staff and were never answered, by why.",
    ("direction", "department", "reason"),
)
ANSWER_RINGS = FamilySpec(
    "callmon_answer_rings",
    "Ring on which customer calls were answered (P1: within 2 rings).",
    ("department",),
)
RING_DURATION = FamilySpec(
    "callmon_ring_duration_seconds",
    "Customer calls: seconds from the first staff phone ringing to the answer "
    "(answered) or to the caller giving up (missed).",
    ("department", "outcome"),
)
QUEUE_WAIT = FamilySpec(
    "callmon_queue_wait_seconds",
    "Customer calls that waited in a queue: seconds from joining it to the first member's "
    "phone ringing (or to the caller leaving, if none rang): the waiting time of wallboards.",
    ("department",),
)
APOLOGY_EXPECTED = FamilySpec(
    "callmon_apology_expected_calls",
    "Customer calls answered on ring 3 or later, where P2 expects an apology.",
    ("department",),
)
CHARTER_CHECKS = FamilySpec(
    "callmon_charter_checks",
    "Charter clauses judged on customer calls, by department and result.",
    ("clause", "department", "result"),
)
STAFF_CHARTER_CHECKS = FamilySpec(
    "callmon_staff_charter_checks",
    "Charter clauses judged on customer calls, by staff extension and result.",
    ("clause", "staff", "result"),
)
HANGUP_FIRST = FamilySpec(
    "callmon_hangup_first",
    "Answered customer calls by which side hung up first (P7: the caller).",
    ("department", "side"),
)
RESYNC_INCOMPLETE = FamilySpec(
    "callmon_resync_incomplete_calls",
    "Calls closed without the monitor seeing all of them (AMI gap); not judged.",
)

# -- transfers -----------------------------------------------------------------------------

TRANSFER_WAIT = FamilySpec(
    "callmon_transfer_wait_seconds",
    "Customer's wait from the start of a transfer to talking with the colleague "
    "(P4/P5: under 10 s), by the transferring staff member's department.",
    ("department",),
)
TRANSFERS = FamilySpec(
    "callmon_transfers",
    "Transfers of customers by kind (attended: the colleague was briefed) and P4 "
    "result (not_judged: no transfer target was seen).",
    ("kind", "department", "result"),
)

# -- the office and the build --------------------------------------------------------------

STAFF_INFO = FamilySpec(
    "callmon_staff_info",
    "The department of each known staff extension (always 1), for joins.",
    ("staff", "department"),
)
BUILD = FamilySpec(  # an info family: its labels come with its one series
    "callmon_build", "Version of call-monitor and of the charter definitions."
)

# -- callbacks (P6/V4) ---------------------------------------------------------------------

CALLBACKS_CLOSED = FamilySpec(
    "callmon_callbacks_closed",
    "Callback obligations closed (P6/V4), by the owner's department and how: "
    "fulfilled on time or late, resolved by the customer calling again, cancelled.",
    ("department", "result"),
)
CALLBACK_FULFILMENT = FamilySpec(
    "callmon_callback_fulfilment_working_seconds",
    "Working seconds from a callback obligation to the answered callback that "
    "fulfilled it (P6/V4: within 3600), by the owner's department.",
    ("department",),
)
CALLBACKS_OPEN = FamilySpec(
    "callmon_callbacks_open",
    "Callbacks owed and not yet made (P6/V4), overdue ones included, by the owner's department.",
    ("department",),
)
CALLBACKS_OVERDUE = FamilySpec(
    "callmon_callbacks_overdue",
    "Open callbacks past their deadline (1 working hour), by the owner's department.",
    ("department",),
)
CALLBACKS_OLDEST_DUE = FamilySpec(
    "callmon_callbacks_oldest_due_timestamp_seconds",
    "The earliest deadline among the open callbacks of the owner's department (Unix time; "
    "0 when none is open): time() minus it is how long the oldest has been overdue.",
    ("department",),
)
CALLBACKS_PENDING = FamilySpec(
    "callmon_callbacks_pending_changes",
    "Callback changes not yet written to the store (kept and retried).",
)
CALLBACKS_WRITE_FAILURES = FamilySpec(
    "callmon_callbacks_write_failures",
    "Failed writes of callback changes to the store (each retried).",
)

# -- the supervisors' checklist (first revisions: a correction is the store's, not a count) --

CHECKLIST_ANSWERS = FamilySpec(
    "callmon_checklist_answers",
    "Answers in supervisors' checklists of sampled calls (first revisions), by the scored "
    "staff member's department, form item and answer (yes, no, na).",
    ("department", "item", "answer"),
)
CHECKLIST_SCORE = FamilySpec(
    "callmon_checklist_score_ratio",
    "Scores of supervisors' checklists as a ratio (1: the score 100, every answered item "
    "yes; weighted), first revisions, by the scored staff member's department.",
    ("department",),
)

# -- the daemon's pipeline -----------------------------------------------------------------

EVENT_HANDLING_LAG = FamilySpec(
    "callmon_event_handling_lag_seconds",
    "Seconds from an AMI event's arrival to the end of its handling, probed once a second: "
    "the newest item waiting in the queue then (the event loop's delay when none waits).",
)
PIPELINE_ERRORS = FamilySpec(
    "callmon_pipeline_errors",
    "Bugs a call triggered in the daemon's pipeline, by stage: that call was logged "
    "with its traceback and skipped at that stage (closed incomplete if it raised in "
    "the correlator); the daemon went on.",
    ("stage",),
)


# -- read at scrape time, one series each ----------------------------------------------------


class WatchedSpec(NamedTuple):
    """A scrape-time family: which provider feeds it (``source``), its key among that
    provider's values, its type, name and help."""

    source: str
    key: str
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily]
    name: str
    documentation: str


# In the exposition's order.
WATCHED: tuple[WatchedSpec, ...] = (
    WatchedSpec(
        "in_progress",
        "in_progress",
        GaugeMetricFamily,
        "callmon_calls_in_progress",
        "Calls currently up on the PBX, as the monitor sees them.",
    ),
    WatchedSpec(
        "link",
        "connected",
        GaugeMetricFamily,
        "callmon_ami_connected",
        "1 while the AMI connection is up and logged in, else 0.",
    ),
    WatchedSpec(
        "link",
        "events",
        CounterMetricFamily,
        "callmon_ami_events",
        "AMI events received from the PBX.",
    ),
    WatchedSpec(
        "link",
        "framing",
        CounterMetricFamily,
        "callmon_ami_framing_errors",
        "AMI messages that could not be framed or decoded (oversized, no header).",
    ),
    WatchedSpec(
        "link",
        "repairs",
        CounterMetricFamily,
        "callmon_ami_framing_repairs",
        "AMI input repaired so a message was kept: header lines without a colon skipped, "
        "lone CR or LF line ends read as CRLF, a banner repeated inside a connection.",
    ),
    WatchedSpec(
        "link",
        "reconnects",
        CounterMetricFamily,
        "callmon_ami_reconnects",
        "AMI connections re-established after a loss.",
    ),
    WatchedSpec(
        "correlator",
        "malformed",
        CounterMetricFamily,
        "callmon_ami_malformed_events",
        "AMI events the correlator received but could not use (missing or bad fields).",
    ),
    WatchedSpec(
        "correlator",
        "capped",
        CounterMetricFamily,
        "callmon_calls_capped",
        "Calls in progress closed incomplete by the cap on them (ami.max_calls_in_progress).",
    ),
    WatchedSpec(
        "correlator",
        "pbx_restarts",
        CounterMetricFamily,
        "callmon_pbx_restarts",
        "PBX restarts and shutdowns seen (its Shutdown event, or a login to a PBX up for "
        "less time than the link was down); the calls in flight were hung up by it.",
    ),
    WatchedSpec(
        "store",
        "store_failures",
        CounterMetricFamily,
        "callmon_store_write_failures",
        "Batches of call records the store failed to write (kept and retried).",
    ),
    WatchedSpec(
        "store",
        "store_dropped",
        CounterMetricFamily,
        "callmon_store_dropped_calls",
        "Calls evicted unwritten because the store's queue was full (lost).",
    ),
    WatchedSpec(
        "store",
        "store_rejected",
        CounterMetricFamily,
        "callmon_store_rejected_calls",
        "Calls the database refused for their data (set aside and logged, not retried).",
    ),
    WatchedSpec(
        "store",
        "store_pending",
        GaugeMetricFamily,
        "callmon_store_pending_calls",
        "Judged calls queued for the store and not yet written (a store falling behind).",
    ),
    WatchedSpec(
        "alerts",
        "alerts_connected",
        GaugeMetricFamily,
        "callmon_alerts_broker_connected",
        "1 while the alert publisher is connected to the MQTT broker, else 0.",
    ),
    WatchedSpec(
        "alerts",
        "alerts_pending",
        GaugeMetricFamily,
        "callmon_alerts_outbox_pending_messages",
        "Alerts in the outbox not yet delivered to the broker (as last counted).",
    ),
    WatchedSpec(
        "alerts",
        "alerts_age",
        GaugeMetricFamily,
        "callmon_alerts_outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered alert in the outbox (0 when none waits).",
    ),
    WatchedSpec(
        "alerts",
        "alerts_failures",
        CounterMetricFamily,
        "callmon_alerts_publish_failures",
        "Failed MQTT sessions of the alert publisher: connections refused or lost, "
        "PUBACKs that did not come (each retried; no alert is dropped).",
    ),
    WatchedSpec(
        "alerts",
        "alerts_published",
        CounterMetricFamily,
        "callmon_alerts_published_messages",
        "Alerts the MQTT broker acknowledged (QoS 1 PUBACK).",
    ),
)
