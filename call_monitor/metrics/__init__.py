"""Prometheus metrics: the metric families and what feeds them, and their exposition.

- :mod:`.families`: :class:`~call_monitor.metrics.families.CallMetrics`, every ``callmon_``
  family, fed by the judged calls and read from the running parts at scrape time;
- :mod:`.catalogue`: every family's name, help text and label names, as data;
- :mod:`.exposition`: the text and OpenMetrics encodings, from lines kept ready.
"""

from __future__ import annotations

from call_monitor.metrics.families import CallMetrics

__all__ = ["CallMetrics"]
