"""Check the Grafana dashboard: its variables, layout, and every PromQL query through promtool."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy_alert_rules import ALLOWED_METRICS, HISTOGRAMS, KUBESTASH_METRICS, metric_names

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "kubestash.json"

# Values that Grafana substitutes before it sends a query; promtool needs real PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
}


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [panel for panel in load_dashboard()["panels"] if panel["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    found = []
    for panel in panels():
        for target in panel["targets"]:
            found.append((f"{panel['title']} {target['refId']}", target["expr"]))
    return found


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_dashboard_variables() -> None:
    variables = {item["name"]: item for item in load_dashboard()["templating"]["list"]}

    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["type"] == "query"
    assert variables["namespace"]["includeAll"] is True
    assert variables["namespace"]["multi"] is True


def test_namespace_variable_reads_a_kubestash_metric() -> None:
    variables = {item["name"]: item for item in load_dashboard()["templating"]["list"]}
    query = variables["namespace"]["query"]["query"]
    match = re.fullmatch(r"label_values\((\w+), namespace\)", query)

    assert match is not None
    assert match.group(1) in KUBESTASH_METRICS


def test_every_panel_uses_the_datasource_variable() -> None:
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in load_dashboard()["panels"]]

    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap() -> None:
    occupied: dict[tuple[int, int], str] = {}
    overlaps = []
    for panel in load_dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in occupied:
                    overlaps.append((panel["title"], occupied[(x, y)]))
                occupied[(x, y)] = panel["title"]

    assert overlaps == []


def test_queries_use_only_known_variables() -> None:
    for name, expr in queries():
        assert "$" not in substitute(expr), name


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{index}", "expr": substitute(expr)}
        for index, (_, expr) in enumerate(queries())
    ]
    rules_file = tmp_path / "dashboard-queries.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian package prometheus)"

    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "expr"), queries(), ids=[name for name, _ in queries()])
def test_query_uses_only_known_metrics(name: str, expr: str) -> None:
    assert metric_names(expr) - ALLOWED_METRICS == set()


def test_dashboard_shows_every_kubestash_metric() -> None:
    used = set()
    for _, expr in queries():
        for metric in metric_names(expr):
            used.add(re.sub(r"_(bucket|sum|count)$", "", metric))
    # The settings info metric only carries labels; /config and the status page show them.
    expected = (KUBESTASH_METRICS - {"kubestash_v2_settings_info"}) | HISTOGRAMS

    assert expected - used == set()


def test_per_key_panels_filter_by_namespace() -> None:
    per_key = ("kubestash_secret_key_drift", "kubestash_key_synced_failed_status")
    for name, expr in queries():
        for metric in per_key:
            if metric in expr:
                assert f'{metric}{{namespace=~"$namespace"}}' in expr, name


def test_key_tables_list_names_only() -> None:
    tables = [panel for panel in panels() if panel["type"] == "table"]
    assert tables
    for table in tables:
        organize = next(t for t in table["transformations"] if t["id"] == "organize")
        assert organize["options"]["excludeByName"]["Value"] is True, table["title"]
