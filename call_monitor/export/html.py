"""``--format html``: a one-page printable monthly report for publication.

Self-contained: styles inline, charts as inline SVG, no script, no external asset; Korean
fonts named by family with fallbacks. Rendered by a Jinja2 template with autoescaping on,
so every name from the directory or the store is escaped; the bars' geometry is computed
here, the template only places it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from call_monitor import __version__
from call_monitor.export.build import ExportData
from call_monitor.export.figures import COUNT_KEYS
from call_monitor.export.headers import HEADERS, Lang, word
from call_monitor.export.sheets import rate

CLAUSES = ("p1_rate", "p4_rate", "p6_rate", "p7_rate")
TARGET = 1.0  # the charter promises every call: the target line is at 100 %
BAR_WIDTH = 240  # px for 100 %
ROW_HEIGHT = 18

_TEXT: Mapping[Lang, Mapping[str, str]] = {
    "ko": {
        "title": "{year}년 {month}월 전화 친절 서비스 헌장 이행 현황",
        "office": "기관 전체",
        "departments": "부서별 현황",
        "charts": "조항별 부서 비교 (목표선: 100%)",
        "history": "월별 추이 (기관 전체)",
        "definitions": "정의와 기준",
        "generated": "작성",
        "version": "정의 버전",
        "program": "프로그램",
        "figure": "항목",
        "count": "값",
    },
    "en": {
        "title": "Telephone service charter, {year}-{month:02d}",
        "office": "Whole office",
        "departments": "By department",
        "charts": "Clauses by department (target line: 100%)",
        "history": "Month over month (whole office)",
        "definitions": "Definitions and thresholds",
        "generated": "Generated",
        "version": "Definitions version",
        "program": "Program",
        "figure": "Figure",
        "count": "Value",
    },
}
# The office's counts on the page: the summary's, without the breakdowns (by missed reason,
# by ring, by transfer kind), which the spreadsheets carry.
OFFICE_KEYS = tuple(
    key for key in COUNT_KEYS if not key.startswith(("missed_", "rings_", "transfers_"))
)
# The checklist's figures on the page (the spreadsheets add the share per item).
CHECKLIST_KEYS = (
    "checklist_mean_score",
    "checklist_yes_share",
    "apology_given_share",
    "p5_direct_number_share",
)
TABLE_KEYS = ("inbound_calls", "answered", "missed", "incomplete", *CLAUSES)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    y: int
    width: float  # px
    text: str  # the value as shown


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: Sequence[Bar]
    height: int
    target_x: float


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _chart(title: str, points: Sequence[tuple[str, float | None]]) -> Chart:
    bars = [
        Bar(label, index * ROW_HEIGHT, (value or 0.0) * BAR_WIDTH, percent(value))
        for index, (label, value) in enumerate(points)
    ]
    return Chart(title, bars, max(1, len(bars)) * ROW_HEIGHT + 4, TARGET * BAR_WIDTH)


def context(data: ExportData) -> dict[str, Any]:
    lang = data.lang
    headers = HEADERS[lang]
    figures = data.figures
    departments = [
        (row["department"] or word(lang, "no_department"), row) for row in figures.departments
    ]
    history = data.history()
    month = data.request.month
    return {
        "lang": lang,
        "text": _TEXT[lang],
        "title": _TEXT[lang]["title"].format(year=month.year, month=month.month),
        "headers": headers,
        "office": [(headers[key], figures.office[key]) for key in OFFICE_KEYS]
        + [(headers[key], percent(rate(figures.office, key))) for key in CLAUSES]
        + [(headers[key], _scored(figures.office, key, lang)) for key in CHECKLIST_KEYS],
        "table_keys": TABLE_KEYS,
        "rows": [(name, [_cell(row, key) for key in TABLE_KEYS]) for name, row in departments],
        "charts": [
            _chart(headers[key], [(name, rate(row, key)) for name, row in departments])
            for key in CLAUSES
        ],
        "history": [
            _chart(headers[key], [(label, rate(office, key)) for label, office in history])
            for key in CLAUSES
        ]
        if len(history) > 1
        else [],
        "definitions": data.definitions,
        "generated_at": data.generated_at.strftime("%Y-%m-%d %H:%M"),
        "definitions_version": data.definitions_version,
        "program": f"call-monitor {__version__}",
        "bar_width": BAR_WIDTH,
        "row_height": ROW_HEIGHT,
    }


def _scored(row: Mapping[str, Any], key: str, lang: Lang) -> str:
    """A checklist figure: a share in %, the mean score, or "not scored"."""
    value = row[key]
    if value is None:
        return word(lang, "not_scored")
    return f"{value:.2f}" if key == "checklist_mean_score" else percent(value)


def _cell(row: Mapping[str, Any], key: str) -> str:
    return percent(rate(row, key)) if key in CLAUSES else str(row[key])


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("call_monitor.export", "templates"),
    autoescape=True,  # every name from the directory or the store is escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(data: ExportData) -> str:
    return _ENVIRONMENT.get_template("report.html.j2").render(context(data))


def write_html(data: ExportData, path: Path) -> None:
    page = render(data)
    data.row_counts.update(departments=len(data.figures.departments))
    path.write_text(page, encoding="utf-8")
