"""What every benchmark report says about the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as a report prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
