"""The chart (default values, release runnet in runnet-system) and the kustomize base deploy/ install the same thing.

Same kinds and names, same RBAC rules and bindings, the same CRDs, and the same operator container:
its args mean the same settings to `runnet run`'s own parser, the same ports, probes, env, security
context, resources and volumes. Each test names what differs and where, so the two cannot drift.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import click
import pytest

from runnet.cli import run as run_command
from tests.support import helm

# The chart leaves the namespace to Helm (`helm install --namespace runnet-system --create-namespace`).
BASE_ONLY = {("Namespace", "", "runnet-system")}
RBAC_KINDS = ("ClusterRole", "Role")
BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")
POD_FIELDS = ("serviceAccountName", "securityContext", "volumes")
CONTAINER_FIELDS = (
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "env",
    "securityContext",
    "resources",
    "volumeMounts",
)


@functools.cache
def both() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return helm.kustomize(), helm.template()


@pytest.fixture
def base() -> list[dict[str, Any]]:
    return both()[0]


@pytest.fixture
def chart() -> list[dict[str, Any]]:
    return both()[1]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def by_key(objects: list[dict[str, Any]], kinds: tuple[str, ...]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {key(o): o for o in objects if o["kind"] in kinds}


def show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def normal_rules(rules: list[dict[str, Any]]) -> list[str]:
    """Rules as sorted JSON, each rule's lists sorted: order carries no meaning in RBAC."""
    return sorted(show({k: sorted(v) if isinstance(v, list) else v for k, v in r.items()}) for r in rules)


def rbac_labels(roles: dict[tuple[str, str, str], dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each role's aggregation labels (rbac.authorization.k8s.io/aggregate-to-*)."""
    return {
        k[2]: {n: v for n, v in r["metadata"].get("labels", {}).items() if n.startswith("rbac.")}
        for k, r in roles.items()
    }


def test_same_kinds_and_names(base: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    base_keys = {key(o) for o in base} - BASE_ONLY
    chart_keys = {key(o) for o in chart}
    assert base_keys == chart_keys, (
        f"only in the kustomize base: {sorted(base_keys - chart_keys)}; "
        f"only in the chart: {sorted(chart_keys - base_keys)}"
    )


def test_same_rbac(base: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    b, c = by_key(base, RBAC_KINDS), by_key(chart, RBAC_KINDS)
    differ = [
        f"{k}: base {normal_rules(b[k]['rules'])} != chart {normal_rules(c[k]['rules'])}"
        for k in sorted(b.keys() & c.keys())
        if normal_rules(b[k]["rules"]) != normal_rules(c[k]["rules"])
    ]
    assert not differ, "RBAC rules differ:\n" + "\n".join(differ)
    both_ = b.keys() & c.keys()
    aggregation = rbac_labels({k: b[k] for k in both_})
    chart_aggregation = rbac_labels({k: c[k] for k in both_})
    assert aggregation == chart_aggregation, (
        f"aggregation labels (into admin/edit/view) differ: base {aggregation} != chart {chart_aggregation}"
    )
    b, c = by_key(base, BINDING_KINDS), by_key(chart, BINDING_KINDS)
    differ = [
        f"{k}: base {show([b[k]['roleRef'], b[k]['subjects']])} != chart {show([c[k]['roleRef'], c[k]['subjects']])}"
        for k in sorted(b.keys() & c.keys())
        if (b[k]["roleRef"], b[k]["subjects"]) != (c[k]["roleRef"], c[k]["subjects"])
    ]
    assert not differ, "bindings differ:\n" + "\n".join(differ)


def test_same_crds(base: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    b = by_key(base, ("CustomResourceDefinition",))
    c = by_key(chart, ("CustomResourceDefinition",))
    assert b.keys() == c.keys()
    differ = [k[2] for k in b if b[k]["spec"] != c[k]["spec"]]
    assert not differ, f"CRD specs differ: {differ} (`make crds` copies crds/ into the chart)"


def settings(args: list[str], where: str) -> dict[str, Any]:
    """What ``runnet run ARGS`` would run with, every default filled in, by click's own parser."""
    try:
        context = run_command.make_context("run", list(args))
    except click.ClickException as error:
        pytest.fail(f"{where}'s container args {args} are not `runnet run`'s: {error.format_message()}")
    return dict(context.params)


def test_same_container(base: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    b_deploy, c_deploy = helm.one(base, "Deployment"), helm.one(chart, "Deployment")
    differ = []
    for field in ("replicas",):
        if b_deploy["spec"].get(field) != c_deploy["spec"].get(field):
            differ.append(f"spec.{field}: base {b_deploy['spec'].get(field)} != chart {c_deploy['spec'].get(field)}")
    if b_deploy["spec"]["strategy"]["type"] != c_deploy["spec"]["strategy"]["type"]:
        differ.append(
            f"spec.strategy.type: base {b_deploy['spec']['strategy']} != chart {c_deploy['spec']['strategy']}"
        )
    b_pod, c_pod = b_deploy["spec"]["template"]["spec"], c_deploy["spec"]["template"]["spec"]
    differ += [
        f"pod {f}: base {show(b_pod.get(f))} != chart {show(c_pod.get(f))}"
        for f in POD_FIELDS
        if b_pod.get(f) != c_pod.get(f)
    ]
    b_c, c_c = b_pod["containers"][0], c_pod["containers"][0]
    assert (b_c["name"], len(b_pod["containers"])) == (c_c["name"], len(c_pod["containers"]))
    b_set, c_set = settings(b_c["args"], "the kustomize base"), settings(c_c["args"], "the chart")
    differ += [
        f"runnet run {name}: base {b_set.get(name)!r} (args {b_c['args']}) != chart {c_set.get(name)!r} "
        f"(args {c_c['args']})"
        for name in sorted(b_set.keys() | c_set.keys())
        if b_set.get(name) != c_set.get(name)
    ]
    differ += [
        f"container {f}: base {show(b_c.get(f))} != chart {show(c_c.get(f))}"
        for f in CONTAINER_FIELDS
        if b_c.get(f) != c_c.get(f)
    ]
    assert not differ, "the operator Deployment differs:\n" + "\n".join(differ)


def test_same_pdb_and_service(base: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    b_pdb, c_pdb = helm.one(base, "PodDisruptionBudget"), helm.one(chart, "PodDisruptionBudget")
    assert (b_pdb["spec"].get("minAvailable"), b_pdb["spec"].get("maxUnavailable")) == (
        c_pdb["spec"].get("minAvailable"),
        c_pdb["spec"].get("maxUnavailable"),
    ), f"PDB: base {show(b_pdb['spec'])} != chart {show(c_pdb['spec'])}"
    b_svc, c_svc = helm.one(base, "Service"), helm.one(chart, "Service")
    assert b_svc["spec"]["ports"] == c_svc["spec"]["ports"], (
        f"metrics Service ports: base {show(b_svc['spec']['ports'])} != chart {show(c_svc['spec']['ports'])}"
    )
    # Each selects the pods of its own Deployment.
    for objects, svc, pdb, where in ((base, b_svc, b_pdb, "base"), (chart, c_svc, c_pdb, "chart")):
        labels = helm.one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items(), (
            f"{where}: the metrics Service selects no operator pod"
        )
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), (
            f"{where}: the PDB selects no operator pod"
        )
