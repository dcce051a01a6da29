"""dashboards/: the Grafana boards and the Prometheus configuration and alert rules.

- the committed board JSON is what ``dashboards/build.py`` builds now;
- the boards are sound for Grafana (there is no Grafana to load them here: neither Debian nor
  PyPI nor npm packages a runnable one): the SDK's own model reads back every field, uids and
  panel ids are unique, every query names the provisioned datasource, every variable used
  is defined, panels do not overlap;
- ``promtool check config``, ``check rules`` and ``test rules`` pass;
- a real Prometheus (Debian's package), scraping the demo daemon replaying recordings, runs
  every panel query (each returns data) and every alert rule's expression (each parses), and
  every metric any of them names is on the daemon's ``/metrics``.

promtool and prometheus come from Debian's ``prometheus`` package (``scripts/services``
installs it as root); without it these tests skip, and with ``CI=true`` they fail.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import unavailable
from tests.test_cli import clean_env
from tests.test_cli_newcomer import free_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
BOARDS = DASHBOARDS / "grafana" / "dashboards"
PROVISIONING = DASHBOARDS / "grafana" / "provisioning"
PROMETHEUS = DASHBOARDS / "prometheus"
RULES = PROMETHEUS / "rules"
CLI = (sys.executable, "-m", "call_monitor")
EXAMPLE_CONFIG = ROOT / "call-monitor.example.toml"

# Grafana's own variables, substituted by the test as Grafana would with concrete values (a
# 1 s scrape interval here: every window holds several samples).
GRAFANA_VARIABLES = {"__range": "2m", "__interval": "10s", "__rate_interval": "10s"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not installed (Debian package prometheus; scripts/services)")
    assert path is not None
    return path


def load_boards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text("utf-8")) for path in sorted(BOARDS.glob("*.json"))
    }


def load_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]
        for rule in group["rules"]
    ]


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def panel_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def variable_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for variable in board.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            yield variable["name"], variable["query"]


def substitute(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"{name!r} in {expr!r} is neither a board variable nor Grafana's"
        return values[name]

    return VARIABLE.sub(value, expr)


def datasource_uid() -> str:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = provisioned["datasources"]
    assert datasource["type"] == "prometheus"
    return str(datasource["uid"])


# -- the boards are current and sound ---------------------------------------------------------


def test_the_committed_boards_are_what_build_py_makes(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, str(DASHBOARDS / "build.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    fresh = {path.name: path.read_text("utf-8") for path in tmp_path.glob("*.json")}
    committed = {path.name: path.read_text("utf-8") for path in BOARDS.glob("*.json")}
    assert sorted(fresh) == sorted(committed), "boards added or removed: run dashboards/build.py"
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} is stale: run python dashboards/build.py"


def _contained(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where ``ours`` is not kept as it is in ``theirs`` (which may add defaults)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [
            problem
            for key, value in ours.items()
            for problem in (
                _contained(value, theirs[key], f"{path}/{key}")
                if key in theirs
                else [f"{path}/{key} dropped"]
            )
        ]
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [
            problem
            for index, (mine, other) in enumerate(zip(ours, theirs, strict=True))
            for problem in _contained(mine, other, f"{path}[{index}]")
        ]
    return [] if ours == theirs else [f"{path}: {ours!r} became {theirs!r}"]


def test_the_sdk_model_reads_back_every_field_of_every_board() -> None:
    register_default_plugins()
    for name, board in load_boards().items():
        again = json.loads(JSONEncoder().encode(Dashboard.from_json(board)))
        problems = _contained(board, again)
        # The one field the 11.6 schema lacks: the working-hours time region, which Grafana
        # reads from the built-in datasource's annotation target (build.py: TimeRegionTarget).
        problems = [p for p in problems if not p.startswith("/annotations/list[0]/target/")]
        assert problems == [], name


def test_the_boards_are_consistent() -> None:
    uid = datasource_uid()
    boards = load_boards()
    assert set(boards) == {"team-lead-live.json", "charter-month.json", "monitor-health.json"}
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        assert board["timezone"] == "Asia/Seoul", name
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), name
        defined = {v["name"] for v in board.get("templating", {}).get("list", [])}
        cells: set[tuple[int, int]] = set()
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])
            mine = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & mine, (name, panel["title"], "overlaps another panel")
            cells |= mine
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert all(ref_ids), (name, panel["title"])
            assert len(set(ref_ids)) == len(ref_ids), (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, (name, panel["title"])
                used = {a or b for a, b in VARIABLE.findall(target["expr"])}
                assert used <= defined | set(GRAFANA_VARIABLES), (name, panel["title"], used)
        for variable in board.get("templating", {}).get("list", []):
            assert variable["datasource"]["uid"] == uid, (name, variable["name"])


def test_the_team_lead_board_shades_working_hours_in_seoul() -> None:
    board = load_boards()["team-lead-live.json"]
    (annotation,) = board["annotations"]["list"]
    region = annotation["target"]["timeRegion"]
    assert annotation["target"]["queryType"] == "timeRegions"
    assert region == {
        "mode": "cron",
        "cronExpr": "0 9 * * 1-5",
        "duration": "9h",
        "timezone": "Asia/Seoul",
    }


# -- promtool -----------------------------------------------------------------------------


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_promtool_checks_the_config_and_its_rules() -> None:
    checked = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", *sorted(RULES.glob("*.yml")))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    checked = promtool("test", "rules", *tests)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_rule_has_a_severity_and_a_korean_and_english_summary() -> None:
    rules = load_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "CallmonAmiDisconnected",
        "CallmonCallbacksOverdue",
        "CallmonP1ComplianceLow",
        "CallmonStoreFallingBehind",
        "CallmonAlertOutboxNotDraining",
        "CallmonPipelineErrors",
    } <= names
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        korean, english = rule["annotations"]["summary"].split(" / ", 1)
        assert re.search("[가-힣]", korean), rule["alert"]
        assert re.search("[a-z]{3}", english), rule["alert"]
    # Every alert rule's test file entries name a rule that exists.
    tested = {
        case["alertname"]
        for path in (PROMETHEUS / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text("utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert tested == names


# -- a real Prometheus scraping the demo ---------------------------------------------------


@dataclass
class Live:
    prometheus: httpx.Client
    exposition: str  # the daemon's /metrics, as scraped last
    department: str  # a department with staff
    staff: str  # one of its staff

    def query(self, expr: str) -> dict[str, Any]:
        answer = self.prometheus.get("/api/v1/query", params={"query": expr})
        body: dict[str, Any] = answer.json()
        assert answer.status_code == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        return body["data"]  # type: ignore[no-any-return]

    def exported(self) -> set[str]:
        return {
            sample.name
            for family in text_string_to_metric_families(self.exposition)
            for sample in family.samples
        }


def _wait_for(what: str, check: Any, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    prometheus_bin = tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    web_port, prometheus_port = free_port(), free_port()
    # The demo loops over its recordings; MQTT points at a closed port so the alert path's
    # series exist (broker down, alerts waiting) without a broker.
    env = clean_env(
        CALLMON_WEB__PORT=str(web_port),
        CALLMON_STORE__URL=f"sqlite+aiosqlite:///{tmp / 'demo.sqlite3'}",
        CALLMON_MQTT__HOST="127.0.0.1",
        CALLMON_MQTT__PORT=str(free_port()),
    )
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text("utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["call-monitor:8089"]}]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{web_port}"]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), "utf-8")
    shutil.copytree(RULES, tmp / "rules")
    metrics_url = f"http://127.0.0.1:{web_port}/metrics"
    with contextlib.ExitStack() as stack:
        demo_log = stack.enter_context((tmp / "demo.log").open("wb"))
        demo = subprocess.Popen(
            [*CLI, "--config", str(EXAMPLE_CONFIG), "demo", "--speed", "10"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=demo_log,
        )
        stack.callback(_stop, demo)
        _wait_for("the demo's first judged calls", lambda: _judged_calls(metrics_url) > 0)
        server_log = stack.enter_context((tmp / "prometheus.log").open("wb"))
        server = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=server_log,
        )
        stack.callback(_stop, server)
        client = stack.enter_context(
            httpx.Client(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=10)
        )
        _wait_for("Prometheus ready", lambda: client.get("/-/ready").status_code == 200)
        scrapes = "count_over_time(callmon_ami_connected[1m]) >= 8"
        _wait_for(
            "8 scrapes of the demo",
            lambda: client.get("/api/v1/query", params={"query": scrapes}).json()["data"]["result"],
        )
        _wait_for("rules evaluated", lambda: _rules_evaluated(client))
        staff_info = client.get("/api/v1/query", params={"query": "callmon_staff_info"}).json()
        member = staff_info["data"]["result"][0]["metric"]
        yield Live(
            client,
            httpx.get(metrics_url, timeout=10).text,
            member["department"],
            member["staff"],
        )


def _judged_calls(metrics_url: str) -> float:
    text = httpx.get(metrics_url, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "callmon_charter_checks"
        for sample in family.samples
    )


def _rules_evaluated(client: httpx.Client) -> bool:
    groups = client.get("/api/v1/rules").json()["data"]["groups"]
    return bool(groups) and all(group["lastEvaluation"][:4] != "0001" for group in groups)


def names_in(expr: str) -> set[str]:
    """Metric names of every selector in a PromQL expression (parsed, not pattern-matched)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            by_name = [m.value for m in node.matchers.matchers if m.name == "__name__"]
            names.update([node.name] if node.name else by_name)
            return
        for child in ("expr", "param", "lhs", "rhs", "vector_selector"):
            if (value := getattr(node, child, None)) is not None:
                walk(value)
        for argument in getattr(node, "args", None) or []:
            walk(argument)

    walk(promql_parser.parse(expr))
    return names


def every_expression(values: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(where, PromQL with the variables set) of every panel query, variable query's
    selector and alert rule."""
    for name, board in load_boards().items():
        for title, expr in panel_queries(board):
            yield f"{name}: {title}", substitute(expr, values)
        for variable, query in variable_queries(board):
            match = LABEL_VALUES.match(query)
            assert match is not None, (name, variable, query)
            yield f"{name}: ${variable}", substitute(match["selector"], values)
    for rule in load_rules():
        yield f"rule {rule['alert']}", rule["expr"]


def choices(live: Live) -> list[dict[str, str]]:
    """The boards' variables as a team lead sets them: all, or one department and its staff
    member."""
    return [
        {"department": ".*", "staff": ".*", **GRAFANA_VARIABLES},
        {"department": live.department, "staff": live.staff, **GRAFANA_VARIABLES},
    ]


def test_every_panel_query_returns_data_from_a_real_prometheus(live: Live) -> None:
    empty = []
    for values in choices(live):
        for name, board in load_boards().items():
            for title, expr in panel_queries(board):
                data = live.query(substitute(expr, values))
                if not data["result"]:
                    empty.append((name, title, values["department"], expr))
    assert empty == []


def test_every_variable_query_lists_values(live: Live) -> None:
    for values in choices(live):
        for name, board in load_boards().items():
            for variable, query in variable_queries(board):
                match = LABEL_VALUES.match(query)
                assert match is not None, (name, variable, query)
                params = {"match[]": substitute(match["selector"], values)}
                answer = live.prometheus.get(
                    f"/api/v1/label/{match['label']}/values", params=params
                )
                assert answer.json()["data"], (name, variable, params)


def test_every_alert_rule_parses_and_is_healthy_on_a_real_prometheus(live: Live) -> None:
    for rule in load_rules():
        live.query(rule["expr"])  # raises on a parse error
    loaded = {
        rule["name"]: rule
        for group in live.prometheus.get("/api/v1/rules").json()["data"]["groups"]
        for rule in group["rules"]
    }
    assert set(loaded) == {rule["alert"] for rule in load_rules()}
    unhealthy = {
        name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"
    }
    assert unhealthy == {}


def test_every_metric_named_anywhere_is_exported_by_the_daemon(live: Live) -> None:
    exported = live.exported()
    missing = {
        (where, name)
        for values in choices(live)
        for where, expr in every_expression(values)
        for name in names_in(expr)
        if name not in exported
    }
    assert missing == set()


def test_a_metric_the_daemon_does_not_export_is_caught(live: Live) -> None:
    """The checks above can fail: an unknown family gives no data, and is not exported."""
    unknown = 'sum by (department) (increase(callmon_calls_answered_total{department=~".*"}[2m]))'
    assert live.query(unknown)["result"] == []
    assert names_in(unknown) - live.exported() == {"callmon_calls_answered_total"}
    with pytest.raises(AssertionError):
        live.query("sum(rate(callmon_calls_total[2m])")  # a parse error is an error
