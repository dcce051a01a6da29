"""What if: the text exposition (0.0.4) with every series' name and labels formatted once.

``generate_latest`` builds a ``Sample`` (a dict of labels) per series in ``collect()``, then
sorts, escapes and formats those labels again for every line, at every scrape: ~8 µs a
series here, 22,000 series a scrape with a 1,300-staff directory. CallMetrics creates every
series at start-up with a fixed label set, so the line up to the value never changes: this
renderer keeps those prefixes and, at a scrape, only reads and formats the values.

A prototype for the report, not for ``call_monitor/``: it reads prometheus_client's private
state (``_metrics``, ``_value``, ``_buckets``, ``_sum``), handles labelled counters, gauges and
histograms with ``_created`` off, and leaves anything else (the scrape-time collector, the
info metric) to ``generate_latest``. :func:`check` tells whether its bytes equal
``generate_latest``'s; the benchmark only times it if they do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import _escape as escape_value
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class _One(Collector):
    """One collector, seen as a registry by ``generate_latest``."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterable[Any]:
        return self.collector.collect()


def _go(value: float) -> str:
    """prometheus_client's float formatting (``floatToGoString``, untyped)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _escape(value: str) -> str:
    # As generate_latest calls it (its third parameter is typed as a callable).
    text: str = escape_value(value, "allow-utf-8", False)  # type: ignore[arg-type]
    return text


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs))
    return "{" + inner + "}" if inner else ""


def _help(name: str, documentation: str, kind: str) -> str:
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


class CachedRenderer:
    """``render()`` gives ``generate_latest(registry)``'s bytes (``_created`` off)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # Per collector: (children seen, the function that renders it).
        self._plans: dict[int, tuple[int, Callable[[], str]]] = {}

    def render(self) -> bytes:
        parts = []
        for collector in list(self.registry._collector_to_names):
            parts.append(self._plan(collector)())
        return "".join(parts).encode("utf-8")

    def _plan(self, collector: Collector) -> Callable[[], str]:
        children = getattr(collector, "_metrics", None)
        size = -1 if children is None else len(children)
        known = self._plans.get(id(collector))
        if known is not None and known[0] == size:
            return known[1]
        plan = self._make(collector)
        self._plans[id(collector)] = (size, plan)
        return plan

    def _make(self, collector: Collector) -> Callable[[], str]:
        labelled = bool(getattr(collector, "_labelnames", ()))
        if labelled and isinstance(collector, Counter | Gauge):
            return self._scalar(collector)
        if labelled and isinstance(collector, Histogram):
            return self._histogram(collector)
        return lambda: generate_latest(_One(collector)).decode("utf-8")

    @staticmethod
    def _scalar(metric: Counter | Gauge) -> Callable[[], str]:
        counter = isinstance(metric, Counter)
        name = metric._name + ("_total" if counter else "")
        head = _help(name, metric._documentation, "counter" if counter else "gauge")
        names = metric._labelnames
        children: dict[Any, Any] = metric._metrics
        rows = [
            (f"{name}{_labels(zip(names, values, strict=True))} ", child._value)
            for values, child in children.items()
        ]

        def render() -> str:
            return head + "".join([prefix + _go(value.get()) + "\n" for prefix, value in rows])

        return render

    @staticmethod
    def _histogram(metric: Histogram) -> Callable[[], str]:
        name = metric._name
        head = _help(name, metric._documentation, "histogram")
        names = metric._labelnames
        rows = []
        children: dict[Any, Any] = metric._metrics
        for values, child in children.items():
            pairs = list(zip(names, values, strict=True))
            buckets = [
                (
                    f"{name}_bucket{_labels([*pairs, ('le', _go(bound))])} ",
                    child._buckets[i],
                )
                for i, bound in enumerate(child._upper_bounds)
            ]
            labels = _labels(pairs)
            rows.append((buckets, f"{name}_count{labels} ", f"{name}_sum{labels} ", child._sum))

        def render() -> str:
            out = [head]
            for buckets, count_prefix, sum_prefix, total in rows:
                acc = 0.0
                for prefix, bucket in buckets:
                    acc += bucket.get()
                    out.append(prefix + _go(acc) + "\n")
                out.append(count_prefix + _go(acc) + "\n")
                out.append(sum_prefix + _go(total.get()) + "\n")
            return "".join(out)

        return render


def check(renderer: CachedRenderer) -> str:
    """Empty if the renderer's bytes equal ``generate_latest``'s, else where they differ."""
    fast = renderer.render()
    slow = generate_latest(renderer.registry)
    if fast == slow:
        return ""
    lines_fast, lines_slow = fast.splitlines(), slow.splitlines()
    for index, (a, b) in enumerate(zip(lines_fast, lines_slow, strict=False)):
        if a != b:
            return f"line {index + 1}: {a[:120]!r} != {b[:120]!r}"
    return f"{len(lines_fast)} lines != {len(lines_slow)} lines"
