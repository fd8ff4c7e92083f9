"""deploy/monitoring/grafana-dashboard.json: each panel's query reads only runnet's metrics, its legends real labels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.runnet_metrics import METRICS, series
from tests.support.helm import kustomize
from tests.support.promql import check

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((REPO / "deploy" / "monitoring" / "grafana-dashboard.json").read_text())
PANELS = DASHBOARD["panels"]
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_panel_reads_runnet_metrics(panel: dict[str, Any]) -> None:
    assert panel["targets"], f"panel {panel['title']!r} has no query"
    for target in panel["targets"]:
        analysis = check(target["expr"], series())
        assert not analysis.problems, f"panel {panel['title']!r}: " + "; ".join(analysis.problems)
        assert analysis.metrics and analysis.labels is not None
        legend = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        assert legend <= analysis.labels, (
            f"panel {panel['title']!r}: legend uses {sorted(legend - analysis.labels)}, "
            f"not on {sorted(analysis.labels)}"
        )


def test_every_metric_has_a_panel() -> None:
    shown = {m for p in PANELS for t in p["targets"] for m in check(t["expr"], series()).metrics}
    bases = {name for name in METRICS if not any(s.startswith(name) for s in shown)}
    assert not bases, f"no panel shows {sorted(bases)}"


def test_layout() -> None:
    """Panels sit on Grafana's 24-column grid without overlapping; the data source is a variable."""
    cells: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
    assert [v["type"] for v in DASHBOARD["templating"]["list"]] == ["datasource"]
    assert len({p["id"] for p in PANELS}) == len(PANELS)


def test_kustomization_ships_the_dashboard() -> None:
    """`kubectl apply -k deploy/monitoring`: the rules, the ServiceMonitor and the dashboard for Grafana's sidecar."""
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(REPO / "deploy" / "monitoring")}
    assert set(objects) == {("ServiceMonitor", "runnet"), ("PrometheusRule", "runnet"),
                            ("ConfigMap", "runnet-grafana-dashboard")}  # fmt: skip
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"runnet-system"}
    config_map = objects[("ConfigMap", "runnet-grafana-dashboard")]
    assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert json.loads(config_map["data"]["grafana-dashboard.json"]) == DASHBOARD
