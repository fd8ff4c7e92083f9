"""deploy/helm/runnet with the real helm: lint, and what the values put in the rendered objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import helm
from tests.support.helm import CHART, REPO, find, one

GSA = "runnet-operator@team-prod.iam.gserviceaccount.com"
# Every value away from its default.
CUSTOM: dict[str, Any] = {
    "replicaCount": 3,
    "image": {"repository": "registry.example/runnet", "tag": "9.9.9"},
    "serviceAccount": {"gcpServiceAccount": GSA},
    "watchNamespaces": ["team-a", "team-b"],
    "resyncInterval": 300,
    "tenancy": "open",
    "logFormat": "json",
    "concurrency": 16,
    "gcpRates": {"share": 0.5, "groups": {"read": 600}},
    "metrics": {
        "port": 9100,
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
        "prometheusRule": {"enabled": True},
    },
    "podDisruptionBudget": {"minAvailable": 2},
    "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def flag(args: list[str], name: str) -> list[str]:
    """The values following each ``name`` in ``args`` (``[]`` for none; ``[""]`` per bare flag)."""
    return [
        args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
        for i, a in enumerate(args)
        if a == name
    ]


def test_lint(tmp_path: Path) -> None:
    done = helm.run("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout, done.stdout
    values = tmp_path / "custom.yaml"
    values.write_text(yaml.safe_dump(CUSTOM))
    done = helm.run("lint", "--strict", str(CHART), "--values", str(values))
    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_default_values(tmp_path: Path) -> None:
    objects = helm.template()
    deployment = one(objects, "Deployment", "runnet")
    assert deployment["metadata"]["namespace"] == "runnet-system"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == (
        "kubernetes.io/hostname"
    )
    c = container(objects)
    assert c["image"] == "ghcr.io/runnet-dev/runnet:0.1.0"
    args = c["args"]
    assert "--all-namespaces" in args and not flag(args, "--namespace")
    assert flag(args, "--resync-interval") == ["120"]
    assert flag(args, "--tenancy") == ["bound"]
    assert flag(args, "--log-format") == ["text"]
    assert flag(args, "--metrics-port") == ["9090"]
    assert flag(args, "--leader-elect") == [""]
    assert {"name": "metrics", "containerPort": 9090} in c["ports"]
    assert c["env"] == [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    sa = one(objects, "ServiceAccount", "runnet")
    assert "iam.gke.io/gcp-service-account" not in (sa["metadata"].get("annotations") or {})
    service = one(objects, "Service", "runnet-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    assert one(objects, "PodDisruptionBudget", "runnet")["spec"]["minAvailable"] == 1
    role = one(objects, "Role", "runnet-leader-election")
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["runnet-leader"],
            "verbs": ["get", "update"],
        },
    ]
    assert flag(args, "--leader-election-id") == ["runnet-leader"]
    assert not find(objects, "ServiceMonitor") and not find(objects, "PrometheusRule")
    assert not find(objects, "Namespace"), "Helm's convention: the release namespace (--create-namespace)"


def test_custom_values(tmp_path: Path) -> None:
    objects = helm.template(CUSTOM, release="edge", namespace="net-ops", tmp=tmp_path)
    deployment = one(objects, "Deployment", "edge-runnet")
    assert deployment["metadata"]["namespace"] == "net-ops"
    assert deployment["spec"]["replicas"] == 3
    c = container(objects)
    assert c["image"] == "registry.example/runnet:9.9.9"
    args = c["args"]
    assert flag(args, "--namespace") == ["team-a", "team-b"] and "--all-namespaces" not in args
    assert flag(args, "--resync-interval") == ["300"]
    assert flag(args, "--tenancy") == ["open"]
    assert flag(args, "--log-format") == ["json"]
    assert flag(args, "--concurrency") == ["16"]
    assert flag(args, "--gcp-rate-share") == ["0.5"] and flag(args, "--gcp-rate") == ["read=600"]
    assert flag(args, "--metrics-port") == ["9100"]
    assert flag(args, "--leader-elect") == [""]
    assert {"name": "metrics", "containerPort": 9100} in c["ports"]
    assert c["resources"] == CUSTOM["resources"]
    sa = one(objects, "ServiceAccount", "edge-runnet")
    assert sa["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": GSA}
    binding = one(objects, "ClusterRoleBinding", "edge-runnet")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "edge-runnet", "namespace": "net-ops"}]
    assert binding["roleRef"]["name"] == "edge-runnet"
    assert {o["metadata"]["name"] for o in find(objects, "ClusterRole")} == {
        "edge-runnet",
        "edge-runnet-edit",
        "edge-runnet-view",
    }
    assert one(objects, "Service", "edge-runnet-metrics")["spec"]["ports"][0]["port"] == 9100
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    monitor = one(objects, "ServiceMonitor", "edge-runnet")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["net-ops"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= one(objects, "Service")["metadata"]["labels"].items()
    rule = one(objects, "PrometheusRule", "edge-runnet")
    shipped = yaml.safe_load((REPO / "deploy" / "monitoring" / "prometheusrule.yaml").read_text())
    assert rule["spec"] == shipped["spec"], "chart files/prometheus-rules.yaml differs from deploy/monitoring's rules"


def test_metrics_off(tmp_path: Path) -> None:
    objects = helm.template({"metrics": {"port": 0, "serviceMonitor": {"enabled": True}}}, tmp=tmp_path)
    c = container(objects)
    assert flag(c["args"], "--metrics-port") == ["0"]
    assert [p["name"] for p in c["ports"]] == ["health"]
    assert not find(objects, "Service") and not find(objects, "ServiceMonitor")


def test_leader_election_off(tmp_path: Path) -> None:
    done = helm.run("template", "runnet", str(CHART), "--set", "leaderElection.enabled=false", check=False)
    assert done.returncode != 0
    assert "replicaCount above 1 needs leaderElection.enabled: true" in done.stderr
    objects = helm.template({"leaderElection": {"enabled": False}, "replicaCount": 1}, tmp=tmp_path)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" not in container(objects)["args"]
    assert not find(objects, "Role") and not find(objects, "RoleBinding")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tenancy": "strict"}, 'tenancy must be bound or open, not "strict"'),
        ({"logFormat": "xml"}, 'logFormat must be text or json, not "xml"'),
    ],
)
def test_bad_values(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    done = helm.run("template", "runnet", str(CHART), "--values", str(path), check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_crds_are_the_generated_ones() -> None:
    """The chart's crds/ are copies of crds/ (generated from the models): `make crds` writes both."""
    generated = {p.name: p.read_text() for p in (REPO / "crds").glob("*.runnet.dev.yaml")}
    chart = {p.name: p.read_text() for p in (CHART / "crds").iterdir()}
    assert generated, "no CRDs in crds/"
    stale = sorted(n for n in generated.keys() | chart.keys() if generated.get(n) != chart.get(n))
    assert not stale, f"deploy/helm/runnet/crds/ differs from crds/ in {stale}: run `make crds`"
