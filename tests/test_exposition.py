"""call_monitor.metrics.exposition: the same bytes as prometheus_client's encoders.

The fast collectors (FastCounter, FastGauge, FastHistogram, FastInfo) against
prometheus_client's own types, byte for byte in the text and OpenMetrics formats, hostile
label values included; the formatting of values; what they refuse; the Accept-header
negotiation (negotiated_format); and CallMetrics's whole exposition against
prometheus_client's encoders. What CallMetrics counts is in test_metrics.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from unittest import mock

import prometheus_client
import prometheus_client.metrics
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from call_monitor.calls.model import Transfer
from call_monitor.charter.rules import Check, judge
from call_monitor.config import DepartmentEntry, DirectorySettings, StaffEntry
from call_monitor.directory import Directory
from call_monitor.metrics import CallMetrics, exposition
from call_monitor.metrics.exposition import (
    FastCounter,
    FastGauge,
    FastHistogram,
    FastInfo,
    negotiated_format,
)
from tests.test_metrics import (
    CHARTER,
    CHONGMU,
    MINWON,
    PROMETHEUS_2_ACCEPT,
    PROMETHEUS_3_ACCEPT,
    FakeCallbacks,
    FakeLink,
    inbound,
)

# -- CallMetrics's exposition: the same bytes as prometheus_client's encoders ------------------

# Other headers choose_encoder understands, besides what Prometheus 2.x and 3.x send.
FAST_ACCEPTS = [
    "",
    "*/*",
    "text/plain",
    "text/plain;version=0.0.4",
    "text/plain;version=1.0.0",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text",
    "application/openmetrics-text;version=0.0.1",  # not >= 1.0.0: text 0.0.4
    "application/openmetrics-text;version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=underscores",
    "text/plain;version=1.0.0;escaping=values",
    PROMETHEUS_2_ACCEPT,
    PROMETHEUS_3_ACCEPT,
]
# Rendered by prometheus_client's encoder itself: names rewritten, or another version.
SLOW_ACCEPTS = [
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "text/plain;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=1.0.0;escaping=values",  # U__ names
    "application/openmetrics-text;version=2.0.0",
]
QUOTED = '민원"여권\\과'
NEWLINE = "줄\n바꿈과"
EVIL_DIRECTORY = Directory(
    DirectorySettings(
        staff={
            "2001": StaffEntry(name="a", department=QUOTED),
            "2002": StaffEntry(name="b", department=NEWLINE),
            "2003": StaffEntry(name="c", department=CHONGMU),
        },
        departments={"그냥\\": DepartmentEntry()},
    )
)


def busy_metrics() -> CallMetrics:
    """Departments and labels that need escaping, calls on every path, every provider."""
    directory = EVIL_DIRECTORY
    metrics = CallMetrics(directory, definitions_version='2026.1 "q" \\ \n')
    started = 1_795_848_120.0
    for n, (ext, other) in enumerate([("2001", "2002"), ("2002", "2003"), ("2003", "2001")]):
        transfers = [
            Transfer("attended", started, ext, other, True, connected_at=started + 4.0 + n),
            Transfer("blind", started + 20, ext),
        ]
        for ring_seconds in (0.5, 4.0, 7.0, 13.0, 1e6):
            record = inbound(
                dialed=ext, answered_by=ext, ring_seconds=ring_seconds, transfers=transfers
            )
            metrics.observe_call(record, judge(record, CHARTER, directory))
        missed = inbound(dialed=ext, answered_by=None, missed_reason="busy")
        metrics.observe_call(missed, judge(missed, CHARTER, directory))
    metrics.observe_checks([Check("P2", False, "2001", QUOTED), Check("P2", True, None, None)])
    metrics.observe_callback_closed(NEWLINE, "fulfilled_late", 3600.5)
    metrics.observe_callback_closed(QUOTED, "fulfilled_on_time", 0.1)
    metrics.transfer_wait.labels(QUOTED).observe(float("inf"))  # the +Inf bucket only
    metrics.watch_link(lambda: FakeLink(True, 10**12, 1, 2))
    metrics.watch_callbacks(lambda: FakeCallbacks([(QUOTED, True), (NEWLINE, False), (None, True)]))
    return metrics


@pytest.mark.usefixtures("created_off")
@pytest.mark.parametrize("accept", FAST_ACCEPTS + SLOW_ACCEPTS)
def test_exposition_is_what_prometheus_client_encodes(accept: str) -> None:
    metrics = busy_metrics()
    body, content_type = metrics.exposition(accept)
    encoder, expected_type = choose_encoder(accept)
    assert content_type == expected_type
    assert body == encoder(metrics.registry)
    if accept in FAST_ACCEPTS:
        assert negotiated_format(content_type) in {"text", "openmetrics"}
    else:
        assert negotiated_format(content_type) is None


@pytest.mark.usefixtures("created_off")
def test_exposition_escapes_labels_and_parses_back() -> None:
    metrics = busy_metrics()
    text = metrics.render().decode()
    assert 'department="민원\\"여권\\\\과"' in text
    assert 'department="줄\\n바꿈과"' in text
    assert 'le="+Inf"' in text
    assert (
        'callmon_calls_total{department="그냥\\\\",direction="inbound",outcome="missed"} 0.0'
        in text
    )
    assert "callmon_ami_events_total 1e+12" in text

    def samples(families: Iterable[Any]) -> list[tuple[str, dict[str, str], float]]:
        return sorted(
            ((s.name, s.labels, s.value) for f in families for s in f.samples),
            key=lambda s: (s[0], sorted(s[1].items())),
        )

    expected = samples(metrics.registry.collect())
    assert samples(text_string_to_metric_families(text)) == expected
    openmetrics_text = metrics.exposition("application/openmetrics-text")[0].decode()
    assert openmetrics_text.endswith("# EOF\n")
    assert samples(parse_openmetrics(openmetrics_text)) == expected


@pytest.mark.usefixtures("created_on")
def test_no_created_series_whatever_the_switch() -> None:
    # The daemon turns _created off; with prometheus_client's default (on) the families of
    # CallMetrics still have none: the same bytes either way.
    metrics = busy_metrics()
    on = metrics.exposition(PROMETHEUS_2_ACCEPT)[0]
    assert b"_created" not in on
    assert b"_created" not in metrics.render()
    prometheus_client.disable_created_metrics()
    assert metrics.exposition(PROMETHEUS_2_ACCEPT)[0] == on


# -- the fast collectors against prometheus_client's types; negotiation ------------------------

LABEL_VALUES = st.one_of(
    st.sampled_from(["", '"', "\\", "\n", "\\n", MINWON, QUOTED, NEWLINE, "a=b,c}", "unknown"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
)
AMOUNTS = st.one_of(
    st.floats(min_value=0.0, allow_nan=False),
    st.sampled_from([0.0, 1.0, 0.1, 1e-9, 1234567.0, 12345678.9, float("inf")]),
)
ANY_FLOAT = st.one_of(st.floats(), st.sampled_from([-1.0, 0.5, 1.0, 2.5, 3.0, float("nan")]))
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("counter"), LABEL_VALUES, LABEL_VALUES, AMOUNTS),
        st.tuples(st.just("plain"), AMOUNTS),
        st.tuples(st.just("histogram"), LABEL_VALUES, ANY_FLOAT),
        st.tuples(st.just("gauge"), LABEL_VALUES, ANY_FLOAT),
        st.tuples(st.just("render")),
    ),
    max_size=40,
)
DOC = 'Doc with "quotes", a \\ backslash,\na newline and 한글.'


@pytest.mark.usefixtures("created_off")
@settings(max_examples=150, deadline=None)
@given(OPERATIONS, LABEL_VALUES, st.sampled_from([1, 3, 128]))
def test_fast_families_render_as_prometheus_client_types(
    operations: list[tuple[Any, ...]], info_value: str, block: int
) -> None:
    with mock.patch.object(exposition, "_BLOCK", block):  # lines joined by blocks of this
        fast_families_render_as_prometheus_client_types(operations, info_value)


def fast_families_render_as_prometheus_client_types(
    operations: list[tuple[Any, ...]], info_value: str
) -> None:
    lock = threading.RLock()
    ours = [
        FastCounter("t_counter", DOC, ["zone", "a"], lock=lock),
        FastCounter("t_plain", DOC, lock=lock),
        FastHistogram("t_seconds", DOC, ["zone"], buckets=(0.5, 1.0, 2.5, 10.0), lock=lock),
        FastGauge("t_gauge", DOC, ["zone"], lock=lock),
        FastInfo("t_build", DOC, {"version": info_value, "b": "x"}, lock=lock),
    ]
    registry = CollectorRegistry()
    counter = Counter("t_counter", DOC, ["zone", "a"], registry=registry)
    plain = Counter("t_plain", DOC, registry=registry)
    histogram = Histogram(
        "t_seconds", DOC, ["zone"], buckets=(0.5, 1.0, 2.5, 10.0), registry=registry
    )
    gauge = Gauge("t_gauge", DOC, ["zone"], registry=registry)
    Info("t_build", DOC, registry=registry).info({"version": info_value, "b": "x"})
    ours_registry = CollectorRegistry()
    for family in ours:
        ours_registry.register(family)
    fast_counter, fast_plain, fast_histogram, fast_gauge, _ = ours

    def check() -> None:
        for fmt, encoder, eof in (
            ("text", generate_latest, b""),
            ("openmetrics", om_exposition.generate_latest, b"# EOF\n"),
        ):
            parts: list[bytes] = []
            for family in ours:
                family.render_into(parts, fmt)
            expected = encoder(registry)
            assert b"".join(parts) + eof == expected
            assert encoder(ours_registry) == expected  # collect(), as the registry sees it

    for operation in operations:
        match operation:
            case ("counter", zone, a, amount):
                counter.labels(zone, a).inc(amount)
                fast_counter.labels(zone, a).inc(amount)
            case ("plain", amount):
                plain.inc(amount)
                fast_plain.inc(amount)
            case ("histogram", zone, amount):
                histogram.labels(zone).observe(amount)
                fast_histogram.labels(zone).observe(amount)
            case ("gauge", zone, amount):
                gauge.labels(zone).set(amount)
                fast_gauge.labels(zone).set(amount)
            case _:
                check()
    check()


@pytest.mark.parametrize(
    "number",
    [
        *(0.0, -0.0, 1.0, 3.0, 0.5, 5e-324, 999_999.0, 1e6, 1_234_567.0, 1e16, 2.0**53 + 2),
        *(-1.0, 12345.678, float("inf"), float("-inf"), float("nan")),
    ],
)
def test_values_are_formatted_as_prometheus_client_does(number: float) -> None:
    expected: str = floatToGoString(number)
    assert exposition._go(number) == expected.encode()


def test_fast_families_refuse_what_prometheus_client_refuses() -> None:
    lock = threading.RLock()
    counter = FastCounter("t_counter", "doc", ["zone"], lock=lock)
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError, match="expected labels"):
        counter.labels("a", "b")
    for bad in ("1abc", "a-b", "a b"):
        with pytest.raises(ValueError, match="metric name"):
            FastCounter(bad, "doc", lock=lock)
    for label in ("le", "__x", "a-b"):
        with pytest.raises(ValueError, match="label name"):
            FastCounter("t_x", "doc", [label], lock=lock)
    with pytest.raises(ValueError, match="increasing"):
        FastHistogram("t_h", "doc", buckets=(2.0, 1.0), lock=lock)


def test_negotiated_format() -> None:
    assert negotiated_format("text/plain; version=0.0.4; charset=utf-8") == "text"
    assert (
        negotiated_format("text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8")
        == "text"
    )
    assert negotiated_format("application/openmetrics-text; version=1.0.0; charset=utf-8") == (
        "openmetrics"
    )
    assert (
        negotiated_format(
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
        )
        == "openmetrics"
    )
    assert negotiated_format("application/openmetrics-text; version=2.0.0; charset=utf-8") is None
    assert negotiated_format("text/plain; version=1.0.0; charset=utf-8; escaping=dots") is None
    assert negotiated_format("text/plain; version=1.0.0; charset=utf-8; escaping=values") == "text"
    assert (
        negotiated_format(
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=values"
        )
        is None
    )
