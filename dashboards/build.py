"""The Grafana boards of call-monitor, as code (grafana-foundation-sdk, the Grafana 11.6 build).

    python dashboards/build.py              # writes dashboards/grafana/dashboards/*.json
    python dashboards/build.py --out DIR    # writes them to DIR instead

The JSON is committed; ``tests/test_dashboards.py`` rebuilds it and fails if it differs. Every
query uses only the families the daemon exports (``call_monitor/metrics/families.py``), and
the test runs each one on a real Prometheus scraping the demo.

Titles are Korean (the team leads read them), descriptions English. Board time zone:
Asia/Seoul, so "today" (``now/d``) and "this month" (``now/M``) are the office's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from string import ascii_uppercase
from typing import Self

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    Dashboard,
    DashboardLink,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueGraphMode,
    GraphDrawStyle,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    TableColoredBackgroundCellOptions,
    VizOrientation,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
BOARDS_DIR = HERE / "grafana" / "dashboards"

# The provisioned Prometheus datasource (grafana/provisioning/datasources/prometheus.yml).
DATASOURCE_UID = "callmon-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TIMEZONE = "Asia/Seoul"
TAG = "call-monitor"

# The office's compliance target for each clause (the share of judged calls that keep it):
# the charter promises every call, a team lead needs a line to steer by. Change and rebuild.
TARGET = 0.9
TRANSFER_LIMIT_SECONDS = 10.0  # P4/P5 ([charter] transfer_limit_seconds)

# Working hours 09:00-18:00 Mon-Fri, shaded on every time series (Grafana time regions).
WORKING_HOURS_CRON = "0 9 * * 1-5"
WORKING_HOURS_DURATION = "9h"

DEPT = 'department=~"$department"'


# -- pieces --------------------------------------------------------------------------------


def query(
    expr: str, legend: str = "", *, instant: bool = False, table_format: bool = False
) -> Dataquery:
    """A Prometheus query on the provisioned datasource."""
    built = Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        built = built.legend_format(legend)
    built = built.instant() if instant else built.range()
    if table_format:
        built = built.format(PromQueryFormat.TABLE)
    return built


def heatmap_query(expr: str) -> Dataquery:
    """Histogram buckets shown as one bar per bucket (Grafana de-accumulates them)."""
    return query(expr, "{{le}}", instant=True).format(PromQueryFormat.HEATMAP)


def steps(*pairs: tuple[float | None, str]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in pairs])
    )


def target_steps(target: float = TARGET) -> ThresholdsConfig:
    """Red below the target, green from it."""
    return steps((None, "red"), (target, "green"))


def limit_steps(limit: float) -> ThresholdsConfig:
    """Green below a limit, red from it (a wait, a count that should stay 0)."""
    return steps((None, "green"), (limit, "red"))


NAN_AS_DASH: list[model.ValueMapping] = [
    model.SpecialValueMap(
        options=model.DashboardSpecialValueMapOptions(
            match=model.SpecialValueMatch.NULL_AND_NAN,
            result=model.ValueMappingResult(text="–"),
        )
    )
]
UP_DOWN: list[model.ValueMapping] = [
    model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="끊김 / down", color="red"),
            "1": model.ValueMappingResult(text="연결됨 / up", color="green"),
        }
    )
]


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[Dataquery],
    *,
    unit: str = "short",
    thresholds: ThresholdsConfig | None = None,
    span: int = 4,
    mappings: list[model.ValueMapping] | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .span(span)
        .height(4)
        .graph_mode(BigValueGraphMode.NONE)
        .color_mode(BigValueColorMode.VALUE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(thresholds or steps((None, "blue")))
        .mappings(mappings or NAN_AS_DASH)
    )
    if unit == "percentunit":
        panel = panel.min(0).max(1)
    return panel


def series_panel(
    title: str,
    description: str,
    targets: Sequence[Dataquery],
    *,
    unit: str = "short",
    limit_line: ThresholdsConfig | None = None,
    bars: bool = False,
    interval: str = "",
    span: int = 12,
) -> timeseries.Panel:
    """A time series; ``limit_line``: drawn as a dashed line (a target or a limit)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .span(span)
        .height(8)
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
        )
    )
    if unit == "percentunit":
        panel = panel.min(0).max(1)
    if limit_line is not None:
        panel = panel.thresholds(limit_line).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
        )
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS).fill_opacity(60)
    if interval:
        panel = panel.interval(interval)
    return panel


def bars_panel(
    title: str,
    description: str,
    targets: Sequence[Dataquery],
    *,
    unit: str = "short",
    thresholds: ThresholdsConfig | None = None,
    span: int = 6,
    vertical: bool = False,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .span(span)
        .height(8)
        .display_mode(BarGaugeDisplayMode.BASIC)
        .orientation(VizOrientation.VERTICAL if vertical else VizOrientation.HORIZONTAL)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(thresholds or steps((None, "blue")))
        .mappings(NAN_AS_DASH)
    )
    if unit == "percentunit":
        panel = panel.min(0).max(1)
    return panel


def ratio(met: str, judged: str) -> str:
    """``met / judged``: NaN (shown as –) where nothing was judged."""
    return f"{met}\n/\n{judged}"


def today(selector: str, by: str = "") -> str:
    """The increase of a counter over the board's range (today), summed."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({selector}[$__range]))"


def label_variable(
    name: str, label: str, description: str, query_text: str, sort: model.VariableSort
) -> QueryVariable:
    """A multi-value variable from a label's values, "All" meaning any (``.*``)."""
    return (
        QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query_text)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(sort)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def department_variable() -> QueryVariable:
    return label_variable(
        "department",
        "부서 / Department",
        "Departments of the directory (label department of callmon_calls_total).",
        "label_values(callmon_calls_total, department)",
        model.VariableSort.ALPHABETICAL_ASC,
    )


def staff_variable() -> QueryVariable:
    return label_variable(
        "staff",
        "직원 / Staff",
        "Staff extensions of the chosen departments (callmon_staff_info).",
        'label_values(callmon_staff_info{department=~"$department"}, staff)',
        model.VariableSort.NUMERICAL_ASC,
    )


class TimeRegionTarget(model.AnnotationTarget):
    """The built-in Grafana datasource's time-region query: the 11.6 schema's
    AnnotationTarget has no field for it (Grafana reads ``queryType`` and ``timeRegion``)."""

    def __init__(self, region: dict[str, str]) -> None:
        super().__init__()
        self.region = region

    def to_json(self) -> dict[str, object]:
        return {"queryType": "timeRegions", "refId": "Anno", "timeRegion": self.region}


class TimeRegion(Builder[model.AnnotationTarget]):
    def __init__(self, region: dict[str, str]) -> None:
        self._internal = TimeRegionTarget(region)

    def build(self) -> model.AnnotationTarget:
        return self._internal


def working_hours() -> AnnotationQuery:
    return (
        AnnotationQuery()
        .name("근무시간 / Working hours")
        .datasource(model.DataSourceRef(type_val="datasource", uid="grafana"))
        .enable(True)
        .icon_color("rgba(120, 120, 120, 0.12)")
        .target(
            TimeRegion(
                {
                    "mode": "cron",
                    "cronExpr": WORKING_HOURS_CRON,
                    "duration": WORKING_HOURS_DURATION,
                    "timezone": TIMEZONE,
                }
            )
        )
    )


def board(uid: str, title: str, description: str, time_from: str) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone(TIMEZONE)
        .week_start("monday")
        .time(time_from, "now")
        .refresh("30s")
        .readonly()
        .link(
            DashboardLink("call-monitor")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(False)
        )
    )


class _Chain:
    """Adds rows and panels to a board in order (the SDK lays them out left to right, a row
    of panels closing at 24 columns), numbering them, and their queries A, B, ..."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self.last_id = 0

    def _next_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def row(self, title: str) -> Self:
        self.dash = self.dash.with_row(Row(title).id(self._next_id()))
        return self

    def add(self, *panels: Builder[model.Panel]) -> Self:
        for panel in panels:
            built = panel.build()
            built.id_val = self._next_id()
            for letter, target in zip(ascii_uppercase, built.targets or [], strict=False):
                if isinstance(target, prometheus.Dataquery) and not target.ref_id:
                    target.ref_id = letter
            self.dash = self.dash.with_panel(panel)
        return self


# -- 팀장 실시간 / Team lead, live ---------------------------------------------------------

INBOUND = f'callmon_calls_total{{direction="inbound",{DEPT}}}'
INBOUND_MISSED = f'callmon_missed_calls_total{{direction="inbound",{DEPT}}}'
ABANDONED = f'callmon_missed_calls_total{{direction="inbound",reason="caller_abandoned",{DEPT}}}'
STAFF_FIRST = f'callmon_hangup_first_total{{side="staff",{DEPT}}}'
P1_MET = f'callmon_charter_checks_total{{clause="P1",result="met",{DEPT}}}'
P1_ALL = f'callmon_charter_checks_total{{clause="P1",{DEPT}}}'
STAFF_JOIN = f"* on (staff) group_left () callmon_staff_info{{{DEPT}}}"


def staff_today(clause: str, result: str = "") -> str:
    """Per staff member of the chosen departments: a clause's checks today."""
    result_matcher = f',result="{result}"' if result else ""
    selector = (
        f'callmon_staff_charter_checks_total{{clause="{clause}"{result_matcher},staff=~"$staff"}}'
    )
    return f"sum by (staff) (increase({selector}[$__range]) {STAFF_JOIN})"


def transfer_quantile(q: float, window: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (le) "
        f"(increase(callmon_transfer_wait_seconds_bucket{{{DEPT}}}[{window}])))"
    )


def team_lead_live() -> Dashboard:
    chain = _Chain(
        board(
            "callmon-team-lead-live",
            "팀장 실시간 / Team lead, live",
            "Today's telephone charter figures for the chosen departments and staff, live.",
            "now/d",
        )
        .with_variable(department_variable())
        .with_variable(staff_variable())
        .annotation(working_hours())
    )
    chain.row("지금 · 오늘 / Now · today").add(
        stat_panel(
            "통화 중",
            "Calls in progress on the PBX now, office-wide (callmon_calls_in_progress has no "
            "department label).",
            [query("callmon_calls_in_progress", instant=True)],
        ),
        stat_panel(
            "오늘 P1 벨 2회 이내 응답률",
            f"P1 today: share of answered customer calls answered within 2 rings. Target "
            f"{TARGET:.0%} (red below).",
            [query(ratio(today(P1_MET), today(P1_ALL)), instant=True)],
            unit="percentunit",
            thresholds=target_steps(),
        ),
        stat_panel(
            "오늘 고객 전화",
            "Customer (inbound) calls finished today.",
            [
                query(
                    today(INBOUND),
                    instant=True,
                )
            ],
        ),
        stat_panel(
            "오늘 부재 통화",
            "Missed today: inbound calls that rang staff and were never answered (any reason).",
            [
                query(
                    today(INBOUND_MISSED),
                    instant=True,
                )
            ],
            thresholds=limit_steps(1),
        ),
        stat_panel(
            "오늘 포기 통화",
            "Abandoned today: inbound calls whose caller hung up while it rang.",
            [
                query(
                    today(ABANDONED),
                    instant=True,
                )
            ],
            thresholds=limit_steps(1),
        ),
        stat_panel(
            "오늘 직원 먼저 끊음 (P7)",
            "P7 today: answered customer calls where the staff member hung up first.",
            [
                query(
                    today(STAFF_FIRST),
                    instant=True,
                )
            ],
            thresholds=limit_steps(1),
        ),
        stat_panel(
            "미회신 (열린 회신)",
            "Open callbacks (P6/V4) owed by the chosen departments now.",
            [query(f"sum (callmon_callbacks_open{{{DEPT}}})", instant=True)],
            span=4,
        ),
        stat_panel(
            "가장 오래된 회신 기한",
            "How long ago the oldest open callback of the chosen departments fell due "
            "(negative: due in that many seconds); empty when none is open.",
            [
                query(
                    f"time() - min (callmon_callbacks_oldest_due_timestamp_seconds{{{DEPT}}} > 0)",
                    instant=True,
                )
            ],
            unit="s",
            thresholds=limit_steps(1),
            span=4,
        ),
        stat_panel(
            "기한 지난 회신",
            "Open callbacks past their deadline (1 working hour) now.",
            [query(f"sum (callmon_callbacks_overdue{{{DEPT}}})", instant=True)],
            thresholds=limit_steps(1),
            span=4,
        ),
        stat_panel(
            "오늘 호전환 대기 p50 · p90",
            f"P4/P5 today: the customer's wait from the start of a transfer to talking with "
            f"the colleague, median and 90th percentile (limit {TRANSFER_LIMIT_SECONDS:.0f} s, "
            f"red from it).",
            [
                query(transfer_quantile(0.5, "$__range"), "p50", instant=True),
                query(transfer_quantile(0.9, "$__range"), "p90", instant=True),
            ],
            unit="s",
            thresholds=limit_steps(TRANSFER_LIMIT_SECONDS),
            span=6,
        ),
        stat_panel(
            "오늘 P4 10초 이내 호전환율",
            f"P4 today: share of judged transfers that connected within "
            f"{TRANSFER_LIMIT_SECONDS:.0f} s. Target {TARGET:.0%}.",
            [
                query(
                    ratio(
                        today(f'callmon_charter_checks_total{{clause="P4",result="met",{DEPT}}}'),
                        today(f'callmon_charter_checks_total{{clause="P4",{DEPT}}}'),
                    ),
                    instant=True,
                )
            ],
            unit="percentunit",
            thresholds=target_steps(),
            span=6,
        ),
    )
    chain.row("오늘 추이 / Today, over time").add(
        series_panel(
            "P1 벨 2회 이내 응답률 (최근 1시간)",
            f"P1 per department over the hour before each point; the dashed line is the "
            f"target ({TARGET:.0%}).",
            [
                query(
                    ratio(
                        f"sum by (department) (increase({P1_MET}[1h]))",
                        f"sum by (department) (increase({P1_ALL}[1h]))",
                    ),
                    "{{department}}",
                )
            ],
            unit="percentunit",
            limit_line=target_steps(),
        ),
        bars_panel(
            "오늘 응답까지 벨 횟수 분포",
            "Answered customer calls today by the ring they were answered on (P1: 1 or 2).",
            [
                heatmap_query(
                    f"sum by (le) (increase(callmon_answer_rings_bucket{{{DEPT}}}[$__range]))"
                )
            ],
            span=12,
            vertical=True,
        ),
        series_panel(
            "부재 · 포기 통화",
            "Missed inbound calls per 5 minutes by why (caller_abandoned: the caller hung up "
            "while it rang; no_answer: nobody answered before the PBX gave up).",
            [
                query(
                    f"sum by (reason) (increase(callmon_missed_calls_total"
                    f'{{direction="inbound",{DEPT}}}[$__interval]))',
                    "{{reason}}",
                )
            ],
            bars=True,
            interval="5m",
        ),
        series_panel(
            "호전환 대기 p50 · p90 (최근 1시간)",
            f"P4/P5: transfer waits over the hour before each point; the dashed line is the "
            f"{TRANSFER_LIMIT_SECONDS:.0f} s limit.",
            [
                query(transfer_quantile(0.5, "1h"), "p50"),
                query(transfer_quantile(0.9, "1h"), "p90"),
            ],
            unit="s",
            limit_line=limit_steps(TRANSFER_LIMIT_SECONDS),
        ),
        series_panel(
            "미회신 · 기한 지난 회신",
            "Open and overdue callbacks (P6/V4) per department.",
            [
                query(
                    f"sum by (department) (callmon_callbacks_open{{{DEPT}}})", "열린 {{department}}"
                ),
                query(
                    f"sum by (department) (callmon_callbacks_overdue{{{DEPT}}})",
                    "기한 지남 {{department}}",
                ),
            ],
        ),
        series_panel(
            "직원 먼저 끊은 통화 (P7)",
            "P7: answered customer calls per 5 minutes where the staff member hung up first, "
            "per department.",
            [
                query(
                    f"sum by (department) (increase(callmon_hangup_first_total"
                    f'{{side="staff",{DEPT}}}[$__interval]))',
                    "{{department}}",
                )
            ],
            bars=True,
            interval="5m",
        ),
    )
    chain.row("직원별 (오늘) / Per staff member, today").add(
        bars_panel(
            "직원별 P1 응답률",
            f"P1 today per staff member (extension) of the chosen departments. Target "
            f"{TARGET:.0%}.",
            [query(ratio(staff_today("P1", "met"), staff_today("P1")), "{{staff}}", instant=True)],
            unit="percentunit",
            thresholds=target_steps(),
        ),
        bars_panel(
            "직원별 응답 고객 전화",
            "Customer calls each staff member answered today (their P1 checks).",
            [query(staff_today("P1"), "{{staff}}", instant=True)],
        ),
        bars_panel(
            "직원별 먼저 끊음 (P7 위반)",
            "P7 today: calls where this staff member hung up before the caller.",
            [query(staff_today("P7", "breached"), "{{staff}}", instant=True)],
            thresholds=limit_steps(1),
        ),
        bars_panel(
            "직원별 늦은 호전환 (P4 위반)",
            f"P4 today: transfers by this staff member that took {TRANSFER_LIMIT_SECONDS:.0f} s "
            f"or more.",
            [query(staff_today("P4", "breached"), "{{staff}}", instant=True)],
            thresholds=limit_steps(1),
        ),
    )
    return chain.dash


# -- 헌장 월간 / Charter, month -----------------------------------------------------------

CLAUSE_MET = f'callmon_charter_checks_total{{result="met",{DEPT}}}'
CLAUSE_ALL = f"callmon_charter_checks_total{{{DEPT}}}"
ON_TIME = f'callmon_callbacks_closed_total{{result="fulfilled_on_time",{DEPT}}}'
FULFILLED = f'callmon_callbacks_closed_total{{result=~"fulfilled_.*",{DEPT}}}'


def per_day(selector: str, by: str) -> str:
    return f"sum by ({by}) (increase({selector}[1d]))"


def daily_panel(
    title: str, description: str, targets: Sequence[Dataquery], *, share: bool = False
) -> timeseries.Panel:
    """One bar per day: the 24 hours before its time. Prometheus cuts days at 00:00 UTC, 09:00
    in Seoul, so each bar holds one whole office day (the one before its date)."""
    return series_panel(
        title,
        f"{description} One bar per day: the 24 hours before its time; days are cut at 00:00 "
        "UTC, 09:00 in Seoul, so each bar holds one whole office day (the one before its date).",
        targets,
        unit="percentunit" if share else "short",
        limit_line=target_steps() if share else None,
        bars=True,
        interval="1d",
    )


def organize(renames: dict[str, str]) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(
        id_val="organize",
        options={"excludeByName": {"Time": True}, "renameByName": renames},
    )


def charter_month() -> Dashboard:
    chain = _Chain(
        board(
            "callmon-charter-month",
            "헌장 월간 / Charter, month",
            "This month's charter figures per clause and department against the targets, and "
            "day by day.",
            "now/M",
        ).with_variable(department_variable())
    )
    met_table = (
        table.Panel()
        .title("이달 조항별 이행률")
        .description(
            f"This month: share of judged customer calls that kept each clause, per department "
            f"(rows) and clause (columns). Target {TARGET:.0%}; – where nothing was judged (P2 "
            f"comes from the supervisor checklist)."
        )
        .datasource(DATASOURCE)
        .targets(
            [
                query(
                    ratio(
                        today(CLAUSE_MET, "department, clause"),
                        today(CLAUSE_ALL, "department, clause"),
                    ),
                    instant=True,
                    table_format=True,
                )
            ]
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "clause", "rowField": "department", "valueField": "Value"},
            )
        )
        .unit("percentunit")
        .thresholds(target_steps())
        .mappings(NAN_AS_DASH)
        .cell_options(TableColoredBackgroundCellOptions())
        .span(14)
        .height(8)
    )
    counts_table = (
        table.Panel()
        .title("이달 부서별 건수")
        .description(
            "This month per department: customer calls, missed, abandoned, staff hung up first "
            "(P7), callbacks fulfilled on time and late (P6/V4)."
        )
        .datasource(DATASOURCE)
        .targets(
            [
                query(
                    today(INBOUND, "department"),
                    instant=True,
                    table_format=True,
                ).ref_id("calls"),
                query(
                    today(INBOUND_MISSED, "department"),
                    instant=True,
                    table_format=True,
                ).ref_id("missed"),
                query(
                    today(
                        ABANDONED,
                        "department",
                    ),
                    instant=True,
                    table_format=True,
                ).ref_id("abandoned"),
                query(
                    today(STAFF_FIRST, "department"),
                    instant=True,
                    table_format=True,
                ).ref_id("staff_first"),
                query(today(ON_TIME, "department"), instant=True, table_format=True).ref_id(
                    "on_time"
                ),
                query(
                    today(
                        f'callmon_callbacks_closed_total{{result="fulfilled_late",{DEPT}}}',
                        "department",
                    ),
                    instant=True,
                    table_format=True,
                ).ref_id("late"),
            ]
        )
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            organize(
                {
                    "department": "부서 / Department",
                    "Value #calls": "고객 전화 / Calls",
                    "Value #missed": "부재 / Missed",
                    "Value #abandoned": "포기 / Abandoned",
                    "Value #staff_first": "직원 먼저 끊음 / P7",
                    "Value #on_time": "기한 내 회신 / On time",
                    "Value #late": "늦은 회신 / Late",
                }
            )
        )
        .decimals(0)
        .span(10)
        .height(8)
    )
    chain.row("이달 / This month").add(met_table, counts_table)
    chain.add(
        bars_panel(
            "이달 기한 내 회신율 (P6)",
            f"P6/V4 this month: share of fulfilled callbacks made within 1 working hour, per "
            f"department. Target {TARGET:.0%}.",
            [
                query(
                    ratio(today(ON_TIME, "department"), today(FULFILLED, "department")),
                    "{{department}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            thresholds=target_steps(),
            span=12,
        ),
        bars_panel(
            "이달 호전환 대기 p90 (P4)",
            f"P4/P5 this month: 90th percentile of the transfer wait per department (limit "
            f"{TRANSFER_LIMIT_SECONDS:.0f} s).",
            [
                query(
                    "histogram_quantile(0.9, sum by (department, le) (increase("
                    f"callmon_transfer_wait_seconds_bucket{{{DEPT}}}[$__range])))",
                    "{{department}}",
                    instant=True,
                )
            ],
            unit="s",
            thresholds=limit_steps(TRANSFER_LIMIT_SECONDS),
            span=12,
        ),
        bars_panel(
            "이달 대기열 대기 p90",
            "Queues this month: 90th percentile of the wait in a queue before the first "
            "member's phone rang, per department (the waiting time of call-centre wallboards; "
            "not ringing, so not in P1).",
            [
                query(
                    "histogram_quantile(0.9, sum by (department, le) (increase("
                    f"callmon_queue_wait_seconds_bucket{{{DEPT}}}[$__range])))",
                    "{{department}}",
                    instant=True,
                )
            ],
            unit="s",
            span=12,
        ),
    )
    answers = "callmon_checklist_answers_total{{answer{}, {}}}"
    chain.row("체크리스트 / Checklist").add(
        bars_panel(
            "이달 체크리스트 항목별 '예' 비율",
            f"Supervisors' checklists of sampled calls this month (first revisions): share of "
            f"each item's yes or no answers that were yes, chosen departments together (na left "
            f"out; – where the item was never answered). Target {TARGET:.0%}.",
            [
                query(
                    ratio(
                        today(answers.format('="yes"', DEPT), "item"),
                        today(answers.format('=~"yes|no"', DEPT), "item"),
                    ),
                    "{{item}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            thresholds=target_steps(),
            span=16,
        ),
        bars_panel(
            "이달 체크리스트 점수 중앙값",
            "Median checklist score this month per department (1 = 100 points).",
            [
                query(
                    "histogram_quantile(0.5, sum by (department, le) (increase("
                    f"callmon_checklist_score_ratio_bucket{{{DEPT}}}[$__range])))",
                    "{{department}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            thresholds=target_steps(),
            span=8,
        ),
    )
    chain.row("일별 / Day by day").add(
        daily_panel(
            "조항별 일일 이행률",
            f"Share of judged customer calls that kept each clause, per day, chosen "
            f"departments together; dashed line: target ({TARGET:.0%}).",
            [
                query(
                    ratio(per_day(CLAUSE_MET, "clause"), per_day(CLAUSE_ALL, "clause")),
                    "{{clause}}",
                )
            ],
            share=True,
        ),
        daily_panel(
            "부서별 일일 P1 응답률",
            f"P1 per department, per day; dashed line: target ({TARGET:.0%}).",
            [
                query(
                    ratio(per_day(P1_MET, "department"), per_day(P1_ALL, "department")),
                    "{{department}}",
                )
            ],
            share=True,
        ),
        daily_panel(
            "부서별 일일 고객 전화 · 부재",
            "Customer calls and missed calls per department, per day.",
            [
                query(per_day(INBOUND, "department"), "전화 {{department}}"),
                query(per_day(INBOUND_MISSED, "department"), "부재 {{department}}"),
            ],
        ),
        daily_panel(
            "부서별 일일 직원 먼저 끊음 (P7)",
            "Answered customer calls where staff hung up first, per department, per day.",
            [query(per_day(STAFF_FIRST, "department"), "{{department}}")],
        ),
    )
    return chain.dash


# -- 모니터 상태 / Monitor health -----------------------------------------------------------


def monitor_health() -> Dashboard:
    chain = _Chain(
        board(
            "callmon-monitor-health",
            "모니터 상태 / Monitor health",
            "Is call-monitor seeing the PBX, keeping up, storing and alerting?",
            "now-6h",
        ).annotation(working_hours())
    )
    chain.row("연결 / Links").add(
        stat_panel(
            "AMI 연결",
            "1 while the AMI connection to Asterisk is up and logged in.",
            [query("callmon_ami_connected", instant=True)],
            mappings=UP_DOWN,
            thresholds=steps((None, "red"), (1, "green")),
        ),
        stat_panel(
            "MQTT 브로커 연결",
            "1 while the callback alert publisher is connected to the MQTT broker (no series "
            "without [mqtt] host: alerts then wait in the outbox).",
            [query("callmon_alerts_broker_connected", instant=True)],
            mappings=UP_DOWN,
            thresholds=steps((None, "red"), (1, "green")),
        ),
        stat_panel(
            "AMI 재연결 (범위 내)",
            "AMI connections re-established after a loss, over the board's range.",
            [query("sum (increase(callmon_ami_reconnects_total[$__range]))", instant=True)],
            thresholds=limit_steps(1),
        ),
        stat_panel(
            "통화 중",
            "Calls up on the PBX now, as the monitor sees them.",
            [query("callmon_calls_in_progress", instant=True)],
        ),
        stat_panel(
            "저장 대기 통화",
            "Judged calls queued for the store, not yet written (a store falling behind).",
            [query("callmon_store_pending_calls", instant=True)],
            thresholds=limit_steps(1000),
        ),
        stat_panel(
            "버전",
            "call-monitor version and charter definitions version.",
            [query("callmon_build_info", "{{version}} / {{definitions_version}}", instant=True)],
            mappings=[],
        ),
    )
    chain.row("AMI 이벤트 / AMI events").add(
        series_panel(
            "초당 AMI 이벤트",
            "AMI events received per second.",
            [query("sum (rate(callmon_ami_events_total[$__rate_interval]))", "events/s")],
            unit="ops",
        ),
        series_panel(
            "깨진 이벤트 · 재연결 · 불완전 통화",
            "Per 5 minutes: AMI messages that could not be framed (framing), events the "
            "correlator could not use (malformed), reconnects, and calls closed without the "
            "monitor seeing all of them after an AMI gap (resync, not judged).",
            [
                query("sum (increase(callmon_ami_framing_errors_total[$__interval]))", "framing"),
                query(
                    "sum (increase(callmon_ami_malformed_events_total[$__interval]))", "malformed"
                ),
                query("sum (increase(callmon_ami_reconnects_total[$__interval]))", "reconnects"),
                query(
                    "sum (increase(callmon_resync_incomplete_calls_total[$__interval]))",
                    "resync",
                ),
            ],
            bars=True,
            interval="5m",
        ),
    )
    chain.row("처리 지연 / Handling lag").add(
        series_panel(
            "이벤트 처리 지연 p50 · p99",
            "Seconds from an AMI event's arrival to the end of its handling (probed once a "
            "second): median and 99th percentile over 5 minutes; the dashed line is 50 ms.",
            [
                query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(callmon_event_handling_lag_seconds_bucket[5m])))",
                    "p50",
                ),
                query(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(callmon_event_handling_lag_seconds_bucket[5m])))",
                    "p99",
                ),
            ],
            unit="s",
            limit_line=limit_steps(0.05),
        ),
    )
    chain.row("저장 · 알림 · 오류 / Store, alerts, errors").add(
        series_panel(
            "저장 대기 · 실패",
            "Calls queued for the store; per 5 minutes: failed batches (retried), calls "
            "dropped from a full queue (lost), calls the database refused; callback changes "
            "not yet written and their failed writes.",
            [
                query("callmon_store_pending_calls", "pending calls"),
                query(
                    "sum (increase(callmon_store_write_failures_total[$__interval]))",
                    "failed batches",
                ),
                query("sum (increase(callmon_store_dropped_calls_total[$__interval]))", "dropped"),
                query(
                    "sum (increase(callmon_store_rejected_calls_total[$__interval]))", "rejected"
                ),
                query("callmon_callbacks_pending_changes", "callback changes pending"),
                query(
                    "sum (increase(callmon_callbacks_write_failures_total[$__interval]))",
                    "callback write failures",
                ),
            ],
            interval="5m",
            span=8,
        ),
        series_panel(
            "알림 발신함",
            "Callback alerts waiting in the outbox, the age of the oldest (s, right), and per 5 "
            "minutes the alerts published and the failed publishes.",
            [
                query("callmon_alerts_outbox_pending_messages", "pending"),
                query("callmon_alerts_outbox_oldest_pending_age_seconds", "oldest age (s)"),
                query(
                    "sum (increase(callmon_alerts_published_messages_total[$__interval]))",
                    "published",
                ),
                query(
                    "sum (increase(callmon_alerts_publish_failures_total[$__interval]))",
                    "failures",
                ),
            ],
            interval="5m",
            span=8,
        ),
        series_panel(
            "파이프라인 오류",
            "Per 5 minutes, by stage: calls that hit a bug in the daemon's pipeline (logged "
            "with the call's linkedid and skipped at that stage; the daemon went on).",
            [
                query(
                    "sum by (stage) (increase(callmon_pipeline_errors_total[$__interval]))",
                    "{{stage}}",
                )
            ],
            bars=True,
            interval="5m",
            span=8,
        ),
    )
    return chain.dash


# -- output -------------------------------------------------------------------------------

BOARDS: dict[str, Callable[[], Dashboard]] = {
    "team-lead-live.json": team_lead_live,
    "charter-month.json": charter_month,
    "monitor-health.json": monitor_health,
}


def render(builder: Dashboard) -> str:
    encoder = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False)
    return encoder.encode(builder.build()) + "\n"


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in BOARDS.items():
        path = out / name
        path.write_text(render(make()), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=BOARDS_DIR, help="where to write the JSON")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
