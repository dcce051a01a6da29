"""``--format json``: the month's figures for machines (no call rows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from call_monitor.export.build import ExportData
from call_monitor.export.figures import COUNT_KEYS, WAIT_KEYS

# The checklist's figures (None: not scored) after the counts, then the wait percentiles.
EXTRA_KEYS = (
    "checklist_mean_score",
    "checklist_yes_share",
    "checklist_items",
    "apology_given_share",
    "p5_direct_number_share",
    *WAIT_KEYS,
)


def figures_object(figures: dict[str, Any]) -> dict[str, Any]:
    """One figures object: ``department``, ``staff`` (null on department rows), the staff
    member's name, the counts (integers), then the figures that are not counts."""
    keys = ("department", "staff", "staff_name", *COUNT_KEYS, *EXTRA_KEYS)
    return {key: figures[key] for key in keys}


def document(data: ExportData) -> dict[str, Any]:
    figures = data.figures
    return {
        "month": str(data.request.month),
        "definitions_version": data.definitions_version,
        "generated_at": data.generated_at.isoformat(timespec="seconds"),
        "recomputed": data.request.recompute,
        "definitions_version_current": data.settings.charter.definitions_version,
        "definitions_versions_stored": data.stored_versions,
        "department_filter": data.request.department,
        "office": figures_object(figures.office),
        "departments": [figures_object(row) for row in figures.departments],
        "staff": [figures_object(row) for row in figures.staff],
    }


def write_json(data: ExportData, path: Path) -> None:
    body = document(data)
    data.row_counts.update(departments=len(body["departments"]), staff=len(body["staff"]))
    path.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
