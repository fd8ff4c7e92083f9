"""RBAC proven, not assumed: the operator runs as the ServiceAccount in deploy/, bound to exactly deploy/rbac.yaml.

With a token from the real TokenRequest API, the whole lifecycle of every kind sees no 403, with leader election
on as deploy/ runs it. Then each verb of each rule is taken out of the ClusterRole, or of the leader election
Role, in turn, and something visibly fails: so the roles grant nothing runnet does not use.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from runnet.api.common import GROUP, VERSION
from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.stack import CLUSTER_SCOPED, PLURALS, Stack, running_stack
from tests.operator.conftest import EXAMPLES, deploy_service
from tests.realkube.conftest import Kubectl
from tests.support.control_plane import ControlPlane
from tests.support.real_stack import RealKube

pytestmark = pytest.mark.timeout(900)
REPO = Path(__file__).resolve().parents[2]
RUNNET = str(Path(sys.executable).parent / "runnet")
ROLES = list(yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()))
CLUSTER_ROLE = next(d for d in ROLES if d["kind"] == "ClusterRole")
LEASE_ROLE = next(d for d in ROLES if d["kind"] == "Role")
LEASE = ("runnet-system", "runnet-leader")
IDENTITY = "runnet-rbac-test"
REFUSED = ("Forbidden", "forbidden", " 403", "cannot list", "cannot watch", "cannot patch", "cannot create")


def example(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


@pytest.fixture(scope="module")
def deployed(real_kube: ControlPlane, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/ applied; a kubeconfig that is the runnet ServiceAccount (a TokenRequest token), nothing more."""
    kubectl("apply", "-k", str(REPO / "deploy"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    token = kubectl("-n", "runnet-system", "create", "token", "runnet", "--duration=2h").stdout.strip()
    admin = yaml.safe_load(real_kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "real", "cluster": cluster}],
        "users": [{"name": "runnet", "user": {"token": token}}],
        "contexts": [{"name": "runnet", "context": {"cluster": "real", "user": "runnet"}}],
        "current-context": "runnet",
    }
    path = tmp_path_factory.mktemp("runnet-sa") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    assert base64.b64decode(cluster["certificate-authority-data"])  # the operator trusts the server's CA
    return path


def start_clean(stack: Stack) -> None:
    """What an earlier test left in the shared API server gone: an object its operator was refused deleting (still
    carrying its finalizer and a Ready status), its events, and the bindings' statuses. Otherwise a test could see
    "Ready", "events posted" or "the binding counts it" before its own operator did anything."""
    api = stack.api
    for kind, plural in PLURALS.items():
        if kind in CLUSTER_SCOPED:
            continue
        for obj in api.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
            meta = obj["metadata"]
            api.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], plural, meta["name"], {"metadata": {"finalizers": None}}
            )
            with contextlib.suppress(kubernetes.client.ApiException):
                stack.delete(kind, meta["name"], meta["namespace"])
    kubernetes.client.CoreV1Api(api.api_client).delete_collection_namespaced_event("default")
    for project in ("my-project", "producer-project", "consumer-project"):
        if stack.get("ProjectBinding", project) is not None:
            stack.delete("ProjectBinding", project)
        stack.bind(project)


@pytest.fixture
def cluster(real_kube: ControlPlane, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(EmulatorConfig(seed=1), tmp_path, RealKube(real_kube)) as stack:
        # deploy/ installed the CRDs; running_stack re-applies them from the models (the same content).
        start_clean(stack)
        yield stack


def set_role(stack: Stack, rules: list[dict[str, Any]], template: dict[str, Any] = CLUSTER_ROLE) -> None:
    """Replace the rules of deploy/'s ClusterRole (or of the leader election Role, its ``template``)."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(stack.api.api_client)
    role = copy.deepcopy(template)
    role["rules"] = rules
    if role["kind"] == "Role":
        rbac.replace_namespaced_role(role["metadata"]["name"], role["metadata"]["namespace"], role)
    else:
        rbac.replace_cluster_role(role["metadata"]["name"], role)


def lease_holder(stack: Stack) -> str | None:
    """Who holds runnet's Lease ('' when released, None when there is none)."""
    api = kubernetes.client.CoordinationV1Api(stack.api.api_client)
    try:
        return api.read_namespaced_lease(LEASE[1], LEASE[0]).spec.holder_identity or ""
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete_lease(stack: Stack) -> None:
    api = kubernetes.client.CoordinationV1Api(stack.api.api_client)
    try:
        api.delete_namespaced_lease(LEASE[1], LEASE[0])
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise


class Operator:
    """`runnet run` as the ServiceAccount with leader election (as deploy/ runs it), its log kept to look for
    refusals. The Lease is deleted first, so that each run creates it, renews it (every 2 s) and releases it."""

    def __init__(self, kubeconfig: Path, stack: Stack, log: Path) -> None:
        self.log = log
        delete_lease(stack)
        args = [RUNNET, "run", "--kubeconfig", str(kubeconfig), "--gcp-endpoint", stack.gcp.base_url]
        args += ["--leader-elect", "--leader-election-namespace", LEASE[0], "--leader-election-id", LEASE[1]]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "POD_NAME": IDENTITY}
        self.proc = subprocess.Popen(
            [*args, "--resync-interval", "5", "--metrics-port", "0"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )

    def refused(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return next((line for line in lines if any(word in line for word in REFUSED)), "")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return self.proc.returncode


def until(check: Callable[[], bool], timeout: float, operator: Operator | None = None) -> bool:
    """Whether ``check`` became true in time; False at once when the operator logs a refusal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if operator is not None and operator.refused():
            return False
        time.sleep(0.1)
    return False


def ready(stack: Stack, kind: str, name: str) -> bool:
    obj = stack.get(kind, name) or {}
    status = obj.get("status", {})
    cond = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
    return cond.get("status") == "True" and status.get("observedGeneration") == obj["metadata"]["generation"]


def events_posted(stack: Stack, name: str) -> bool:
    core = kubernetes.client.CoreV1Api(stack.api.api_client)
    return any(e.involved_object.name == name for e in core.list_namespaced_event("default").items)


def binding_counts(stack: Stack, name: str) -> int | None:
    """How many objects the ProjectBinding's status says use it (None before runnet wrote its status)."""
    return ((stack.get("ProjectBinding", name) or {}).get("status") or {}).get("objects")


def test_the_whole_lifecycle_of_every_kind_as_the_service_account_sees_no_403(
    deployed: Path, cluster: Stack, tmp_path: Path
) -> None:
    set_role(cluster, CLUSTER_ROLE["rules"])
    deploy_service(cluster.clients, "my-project", "asia-northeast1", "direct-vpc-egress")
    deploy_service(cluster.clients, "producer-project", "asia-northeast1", "hello-service")
    set_role(cluster, LEASE_ROLE["rules"], LEASE_ROLE)
    operator = Operator(deployed, cluster, tmp_path / "operator.log")
    try:
        bodies = [*example("egress-fixed-ip.yaml"), *example("psc-export.yaml"), *example("psc-endpoint.yaml")]
        for body in bodies:
            cluster.apply(body)
        for body in bodies:
            assert until(lambda b=body: ready(cluster, b["kind"], b["metadata"]["name"]), 90, operator), (
                operator.refused() or cluster.get(body["kind"], body["metadata"]["name"])
            )
        assert lease_holder(cluster) == IDENTITY, "it acts only as the leader"
        assert until(lambda: events_posted(cluster, "fixed-ip"), 15, operator)
        for project in ("my-project", "producer-project", "consumer-project"):
            assert until(lambda p=project: binding_counts(cluster, p) == 1, 15, operator), operator.refused()
        for body in reversed(bodies):
            cluster.delete(body["kind"], body["metadata"]["name"])
        for body in bodies:
            assert until(lambda b=body: cluster.get(b["kind"], b["metadata"]["name"]) is None, 90, operator)
    finally:
        assert operator.stop() == 0
    assert operator.refused() == "", operator.refused()
    assert lease_holder(cluster) == "", "renewed all along (no 403) and released on SIGTERM"


def ablations(role: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """The role with one verb of one rule taken out, for each verb of each rule."""
    out = []
    for i, rule in enumerate(role["rules"]):
        for verb in rule["verbs"]:
            rules = copy.deepcopy(role["rules"])
            rules[i]["verbs"] = [v for v in rule["verbs"] if v != verb]
            if not rules[i]["verbs"]:
                del rules[i]
            out.append((f"{verb} {','.join(rule['resources'])}", role, rules))
    return out


ABLATIONS = ablations(CLUSTER_ROLE) + ablations(LEASE_ROLE)


@pytest.mark.parametrize(("role", "rules"), [a[1:] for a in ABLATIONS], ids=[a[0] for a in ABLATIONS])
def test_taking_any_verb_out_of_the_role_breaks_something(
    deployed: Path, cluster: Stack, tmp_path: Path, role: dict[str, Any], rules: list[dict[str, Any]]
) -> None:
    set_role(cluster, CLUSTER_ROLE["rules"])
    set_role(cluster, LEASE_ROLE["rules"], LEASE_ROLE)
    set_role(cluster, rules, role)
    deploy_service(cluster.clients, "my-project", "asia-northeast1", "direct-vpc-egress")
    operator = Operator(deployed, cluster, tmp_path / "operator.log")
    try:
        (body,) = example("egress-fixed-ip.yaml")
        cluster.apply(body)
        worked = until(lambda: ready(cluster, "EgressGateway", "fixed-ip"), 25, operator)
        worked = worked and until(lambda: events_posted(cluster, "fixed-ip"), 10, operator)
        worked = worked and until(lambda: binding_counts(cluster, "my-project") == 1, 10, operator)
        if worked:
            cluster.delete("EgressGateway", "fixed-ip")
            worked = until(lambda: cluster.get("EgressGateway", "fixed-ip") is None, 25, operator)
    finally:
        operator.stop()
        set_role(cluster, role["rules"], role)
    assert not worked or operator.refused(), "the operator did everything without this permission: drop it"


def test_namespace_editors_manage_runnet_objects_and_only_cluster_admins_bind_projects(
    deployed: Path, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The aggregated roles' content, as a namespace editor and viewer get it (the built-in edit/view roles pick
    them up through their aggregate-to labels; aggregation itself runs in kube-controller-manager, which this
    control plane does not run, so the roles are bound directly here)."""
    kubectl("create", "namespace", "team-rbac", check=False)
    kubectl("-n", "team-rbac", "create", "rolebinding", "alice-edits", "--clusterrole=runnet-edit", "--user=alice")
    kubectl("-n", "team-rbac", "create", "rolebinding", "bob-views", "--clusterrole=runnet-view", "--user=bob")

    def can(who: str, verb: str, resource: str, namespace: str = "team-rbac", subresource: str = "") -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={who}"]
        args += ["-n", namespace] if namespace else []
        args += [f"--subresource={subresource}"] if subresource else []
        return kubectl(*args, check=False).stdout.strip() == "yes"

    for kind in ("egressgateways.runnet.dev", "pscexports.runnet.dev", "pscendpoints.runnet.dev"):
        assert can("alice", "create", kind) and can("alice", "delete", kind) and can("alice", "patch", kind)
        assert can("bob", "get", kind) and can("bob", "list", kind) and not can("bob", "create", kind)
        assert not can("alice", "create", kind, "default"), "only in the namespace she edits"
    assert not can("alice", "create", "projectbindings.runnet.dev", "")
    assert not can("alice", "patch", "egressgateways.runnet.dev", subresource="status"), "status is runnet's"
    assert can("bob", "get", "egressgateways.runnet.dev", subresource="status")
    edit = yaml.safe_load(kubectl("get", "clusterrole", "runnet-edit", "-o", "yaml").stdout)
    view = yaml.safe_load(kubectl("get", "clusterrole", "runnet-view", "-o", "yaml").stdout)
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
