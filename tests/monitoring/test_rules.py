"""deploy/monitoring's PrometheusRule: each alert reads only runnet's metrics and their labels, for long enough."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml

from tests.monitoring.runnet_metrics import METRICS, series
from tests.support.promql import check

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RULE = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
ALERTS = {r["alert"]: r for g in RULE["spec"]["groups"] for r in g["rules"] if "alert" in r}
TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


def for_(rule: dict[str, Any]) -> timedelta:
    return timedelta(0) if "for" not in rule else promql.parse_duration(rule["for"])


def test_objects_are_prometheus_operators() -> None:
    assert RULE["apiVersion"] == "monitoring.coreos.com/v1" and RULE["kind"] == "PrometheusRule"
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # runnet's own namespace/name labels (the object's) must not be renamed exported_namespace by the target's.
    assert endpoint["honorLabels"] is True


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_reads_runnet_metrics(name: str) -> None:
    rule = ALERTS[name]
    analysis = check(rule["expr"], series())
    assert not analysis.problems, f"alert {name}: " + "; ".join(analysis.problems)
    assert analysis.metrics, f"alert {name} reads no metric"
    assert analysis.labels is not None, f"alert {name}'s expression is a scalar"
    used = {label for text in rule.get("annotations", {}).values() for label in TEMPLATE_LABEL.findall(text)}
    assert used <= analysis.labels, (
        f"alert {name}'s annotations use {sorted(used - analysis.labels)}, not on its result {sorted(analysis.labels)}"
    )
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert for_(rule) >= timedelta(minutes=5), f"alert {name} fires on one evaluation (for: {rule.get('for')})"


def alert_on(metric: str) -> dict[str, Any]:
    found = [r for r in ALERTS.values() if metric in check(r["expr"], series()).metrics]
    assert len(found) == 1, f"expected one alert on {metric}, found {[r['alert'] for r in found]}"
    return found[0]


def threshold(expr: str) -> float:
    tree = promql.parse(expr)
    assert isinstance(tree, promql.BinaryExpr) and isinstance(tree.rhs, promql.NumberLiteral), expr
    return float(tree.rhs.val)


def test_the_alerts_the_issue_asks_for() -> None:
    not_ready = alert_on("runnet_objects")
    assert for_(not_ready) == timedelta(minutes=15)
    assert 'ready="false"' in not_ready["expr"]
    for metric in ("runnet_nat_port_headroom_ratio", "runnet_subnet_ip_headroom_ratio"):
        rule = alert_on(metric)
        assert "<" in rule["expr"] and threshold(rule["expr"]) == 0.2, rule["expr"]
    pending = alert_on("runnet_psc_connections")
    assert 'status="PENDING"' in pending["expr"]
    assert for_(pending) >= timedelta(hours=1)
    denied = alert_on("runnet_gcp_requests_total")
    assert 'code="403"' in denied["expr"] and denied["labels"]["severity"] == "critical"


def test_check_catches_mistakes() -> None:
    """The checker itself: a wrong name, label, grouping or histogram use is reported."""
    cases = {
        "runnet_object > 0": "not a runnet metric",
        'runnet_objects{state="x"}': "has no label 'state'",
        "sum by (namespace) (runnet_objects)": "no such label",
        "histogram_quantile(0.9, sum by (kind) (rate(runnet_reconcile_duration_seconds_bucket[5m])))": "without 'le'",
        "runnet_objects > on(name) runnet_psc_connections": "not labels of the left side",
    }
    for expr, problem in cases.items():
        problems = check(expr, series()).problems
        assert any(problem in p for p in problems), f"{expr}: {problems}"


def test_table_is_what_runnet_serves() -> None:
    """This table (runnet_metrics.py) names what runnet.metrics.NAMES names."""
    module = importlib.import_module("runnet.metrics")
    names = set(module.NAMES)
    assert names == set(METRICS), (
        f"only in runnet.metrics.NAMES: {sorted(names - set(METRICS))}; "
        f"only in the table: {sorted(set(METRICS) - names)}"
    )
