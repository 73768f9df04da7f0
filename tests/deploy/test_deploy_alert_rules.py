"""Check the Prometheus alert rules with promtool and their unit tests."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
RULES = DASHBOARDS / "kubestash-rules.yaml"
PROMETHEUS_RULE = DASHBOARDS / "prometheusrule.yaml"
RULE_TESTS = sorted((DASHBOARDS / "tests").glob("*.yaml"))

# Metrics that kubestash exports (renderer/metrics.py), with their histogram series, plus
# what Prometheus and the Python client add for every target.
KUBESTASH_METRICS = {
    "kubestash_v2_settings_info",
    "kubestash_key_synced_failed_status",
    "kubestash_table_fetch_status",
    "kubestash_secret_key_drift",
    "kubestash_sync_total",
    "kubestash_last_successful_sync_timestamp_seconds",
    "kubestash_managed_secrets",
    "kubestash_managed_keys",
    "kubestash_invalid_keys",
    "kubestash_kms_decrypt_total",
    "kubestash_decrypt_cache_hits_total",
    "kubestash_kube_requests_total",
    "kubestash_stream_records_total",
    "kubestash_stream_lag_seconds",
    "kubestash_http_requests_total",
    "kubestash_leader",
}
HISTOGRAMS = {"kubestash_ddb_fetch_seconds", "kubestash_sync_duration_seconds"}
ALLOWED_METRICS = (
    KUBESTASH_METRICS
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | {"up", "process_start_time_seconds"}
)

PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Return the metric names that a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    text = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)

    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        is_call = text[match.end() :].lstrip().startswith("(")
        if is_call or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed (Debian package prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_rules() -> None:
    result = promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_prometheus_rule_groups(tmp_path: Path) -> None:
    groups = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]["groups"]
    extracted = tmp_path / "prometheusrule-groups.yaml"
    extracted.write_text(yaml.safe_dump({"groups": groups}))

    result = promtool("check", "rules", str(extracted))

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "dashboards/tests has no promtool test files"

    result = promtool("test", "rules", *map(str, RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_wrong_rule(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    for test_file in RULE_TESTS:
        shutil.copy(test_file, tmp_path / "tests" / test_file.name)
    loosened = RULES.read_text().replace("kubestash_stream_lag_seconds > 300", "vector(1)")
    (tmp_path / "kubestash-rules.yaml").write_text(loosened)

    result = promtool("test", "rules", str(tmp_path / "tests" / "stream_test.yaml"))

    assert result.returncode != 0, result.stdout


def test_prometheus_rule_has_the_same_groups() -> None:
    plain = yaml.safe_load(RULES.read_text())["groups"]
    manifest = yaml.safe_load(PROMETHEUS_RULE.read_text())

    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert "namespace" not in manifest["metadata"]
    assert manifest["spec"]["groups"] == plain


def test_alert_tests_cover_fire_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for test_file in RULE_TESTS:
        for group in yaml.safe_load(test_file.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                target = firing if case.get("exp_alerts") else quiet
                target.add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}

    assert names - firing == set()
    assert names - quiet == set()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_and_runbook_text(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"].strip()
    assert len(rule["annotations"]["description"].split()) >= 25


@pytest.mark.parametrize(
    "name", ["KubestashSecretKeyDrift", "KubestashKeySyncFailed"], ids=lambda name: name
)
def test_per_key_alert_names_the_key(name: str) -> None:
    rule = next(rule for rule in alert_rules() if rule["alert"] == name)
    for annotation in ("summary", "description"):
        text = rule["annotations"][annotation]
        for label in ("namespace", "secret", "key"):
            assert f"$labels.{label}" in text, f"{annotation} lacks {label}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_uses_only_known_metrics(rule: dict[str, Any]) -> None:
    assert metric_names(rule["expr"]) - ALLOWED_METRICS == set()


def test_metric_names_ignores_functions_and_labels() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{job="x", le!="1e3"}[5m])))'
        " / on (job) group_left b offset 1h > 4 * 3600 unless absent(c)"
    )

    assert metric_names(expr) == {"a_bucket", "b", "c"}
