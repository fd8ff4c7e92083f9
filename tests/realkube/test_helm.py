"""The Helm chart's objects, rendered by the real helm, accepted by the real kube-apiserver.

Rendered with non-default values as release ``edge`` in namespace ``runnet-helm`` (its cluster-scoped
names, edge-runnet*, leave deploy/'s runnet* alone) and applied for real: every object passes the
server's validation, strict field validation and admission, and reads back as rendered. The
Prometheus Operator's kinds are left out: this server has no monitoring.coreos.com CRDs.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.realkube.conftest import Kubectl
from tests.support import helm
from tests.support.control_plane import ControlPlane

NAMESPACE = "runnet-helm"
VALUES = {
    "replicaCount": 3,
    "serviceAccount": {"gcpServiceAccount": "runnet-operator@team-prod.iam.gserviceaccount.com"},
    "watchNamespaces": ["team-a"],
    "tenancy": "open",
    "logFormat": "json",
    "metrics": {"port": 9100, "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
}
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}


def test_chart_applies_to_the_real_server(real_kube: ControlPlane, kubectl: Kubectl, tmp_path: Path) -> None:
    helm.helm()
    objects = helm.template(VALUES, release="edge", namespace=NAMESPACE, tmp=tmp_path)
    assert {o["kind"] for o in objects} >= MONITORING_KINDS
    objects = [o for o in objects if o["kind"] not in MONITORING_KINDS]
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    kubectl("create", "namespace", NAMESPACE)
    kubectl("apply", "--server-side", "--field-manager=helm-test", "--validate=strict", "-f", str(manifest))
    stored = json.loads(kubectl("get", "-f", str(manifest), "-o", "json").stdout)["items"]
    assert [(o["kind"], o["metadata"]["name"]) for o in stored] == [(o["kind"], o["metadata"]["name"]) for o in objects]
    for obj, got in zip(objects, stored, strict=True):
        if obj["kind"] == "Deployment":
            spec = got["spec"]["template"]["spec"]
            assert got["spec"]["replicas"] == 3
            assert spec["containers"][0]["args"] == obj["spec"]["template"]["spec"]["containers"][0]["args"]
            assert spec["serviceAccountName"] == "edge-runnet"
        if obj["kind"] == "ServiceAccount":
            assert got["metadata"]["annotations"] == obj["metadata"]["annotations"]
    # The operator's identity may do what its roles say: its own Lease in the release namespace, no other.
    sa = f"--as=system:serviceaccount:{NAMESPACE}:edge-runnet"
    answers = {
        ("update", "leases/runnet-leader", "-n", NAMESPACE): "yes",
        ("create", "leases", "-n", NAMESPACE): "yes",
        ("update", "leases/other", "-n", NAMESPACE): "no",
        ("update", "leases/runnet-leader", "-n", "default"): "no",
        ("patch", "egressgateways.runnet.dev", "--subresource=status", "-A"): "yes",
        ("list", "projectbindings.runnet.dev"): "yes",
        ("create", "projectbindings.runnet.dev"): "no",
    }
    got = {q: kubectl("auth", "can-i", *q, sa, check=False).stdout.strip() for q in answers}
    assert got == answers


def test_helm_install_and_uninstall(real_kube: ControlPlane, kubectl: Kubectl) -> None:
    """The real helm installs the chart into the real server (CRDs from crds/ included) and uninstalls it."""
    where = ["--kubeconfig", str(real_kube.kubeconfig), "--namespace", "runnet-helm-install"]
    helm.run("install", "installed", str(helm.CHART), *where, "--create-namespace", "--set", "tenancy=open")
    listed = json.loads(helm.run("list", *where, "--output", "json").stdout)
    assert [(r["name"], r["status"], r["chart"]) for r in listed] == [("installed", "deployed", "runnet-0.1.0")]
    deployment = json.loads(
        kubectl("-n", "runnet-helm-install", "get", "deployment", "installed-runnet", "-o", "json").stdout
    )
    assert "open" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    for crd in ("egressgateways", "pscexports", "pscendpoints", "projectbindings"):
        kubectl("get", "crd", f"{crd}.runnet.dev")
    helm.run("uninstall", "installed", *where, "--wait", "--timeout", "60s")
    left = kubectl("-n", "runnet-helm-install", "get", "deployment,service,pdb,role,serviceaccount", "-o", "name")
    assert left.stdout.strip() == ""
    # Helm never deletes a chart's crds/: the runnet objects in the cluster outlive an uninstall.
    kubectl("get", "crd", "egressgateways.runnet.dev")
    gone = kubectl("get", "clusterrole", "installed-runnet", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
