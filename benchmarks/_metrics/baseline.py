"""The baseline: the same values in prometheus_client's own metric types, for its encoders.

``CallMetrics`` keeps its families as cached lines (``call_monitor/metrics.py``); before that
they were prometheus_client ``Counter``/``Histogram``/``Gauge``/``Info`` objects, rendered
by ``generate_latest``. :func:`plain_registry` rebuilds that registry from what
``CallMetrics`` collects (``registry.collect()``, a public API), so the benchmark can time
both on one day of calls and check that they give the same bytes. ``staff_p2=True`` adds
the per-staff P2 series that were created up front before (0 forever: ``judge()`` never
attributes P2), i.e. the registry as it was.

Benchmark code: a histogram's counts are set through prometheus_client's private state
(``_buckets``, ``_sum``); there is no public way to set them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from call_monitor.directory import UNKNOWN
from call_monitor.metrics.families import RESULTS, CallMetrics


def plain_registry(metrics: CallMetrics, *, staff_p2: bool = False) -> CollectorRegistry:
    """A registry of plain prometheus_client metrics holding ``metrics``'s current values,
    in the same order (families and series)."""
    registry = CollectorRegistry()
    for family in metrics.registry.collect():
        labelnames = _labelnames(family)
        if family.type == "counter":
            counter = Counter(family.name, family.documentation, labelnames, registry=registry)
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    _child(counter, labelnames, sample.labels).inc(sample.value)
            if staff_p2 and family.name == "callmon_staff_charter_checks":
                for staff in [*metrics.directory.extensions, UNKNOWN]:
                    for result in RESULTS:
                        counter.labels(clause="P2", staff=staff, result=result)
        elif family.type == "gauge":
            gauge = Gauge(family.name, family.documentation, labelnames, registry=registry)
            for sample in family.samples:
                _child(gauge, labelnames, sample.labels).set(sample.value)
        elif family.type == "info":
            (sample,) = family.samples
            Info(family.name, family.documentation, registry=registry).info(dict(sample.labels))
        elif family.type == "histogram":
            _histogram(family, labelnames, registry)
        else:
            raise ValueError(f"{family.name}: type {family.type} not mirrored")
    return registry


def _labelnames(family: Any) -> list[str]:
    names: list[str] = []
    for sample in family.samples:
        for name in sample.labels:
            if name != "le" and name not in names:
                names.append(name)
    return names


def _child(metric: Any, labelnames: list[str], labels: dict[str, str]) -> Any:
    if not labelnames:
        return metric
    return metric.labels(**{name: labels[name] for name in labelnames})


def _histogram(family: Any, labelnames: list[str], registry: CollectorRegistry) -> None:
    bounds: list[float] = []
    for sample in family.samples:
        if sample.name.endswith("_bucket"):
            bound = float(sample.labels["le"])
            if bound in bounds:
                break
            bounds.append(bound)
    histogram = Histogram(
        family.name, family.documentation, labelnames, buckets=bounds, registry=registry
    )
    index, previous = 0, 0.0
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        child = _child(histogram, labelnames, labels)
        if sample.name.endswith("_bucket"):
            # Cumulative in the exposition, one count per bucket inside prometheus_client.
            if index == 0:
                previous = 0.0
            child._buckets[index].set(sample.value - previous)
            previous = sample.value
            index = (index + 1) % len(bounds)
        elif sample.name.endswith("_sum"):
            child._sum.set(sample.value)
