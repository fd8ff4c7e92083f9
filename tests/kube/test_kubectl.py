"""The real kubectl against the stand-in: apply (validating), get, watch, describe, wait, patch, delete."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.kube.conftest import Cluster, widget

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (needs kubectl >= 1.27 on PATH)"
)

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def env(kubeconfig: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(tmp_path / "cache")}


@pytest.fixture
def kubectl(env: dict[str, str], tmp_path: Path) -> Kubectl:
    def run(
        *args: str, stdin: str | None = None, check: bool = True, timeout: float = 20
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", *args], input=stdin, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    return run


def manifest(obj: dict[str, object]) -> str:
    return yaml.safe_dump(obj)


def later(delay: float, fn: Callable[[], object]) -> threading.Thread:
    """Do something from another thread after a while (as a controller would)."""

    def run() -> None:
        time.sleep(delay)
        fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


READY = '{"status":{"natIPs":["34.1.2.3","34.1.2.4"],"conditions":[{"type":"Ready","status":"True","reason":"Done"}]}}'


def test_apply_validates_on_the_server_and_get_prints_columns(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", "-", stdin=manifest(widget(tags=["a"])))
    assert out.stdout.strip() == "widget.test.runnet.dev/w1 created"
    kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", READY)
    lines = kubectl("get", "widgets").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "IPS", "SIZE", "AGE"]
    assert lines[1].split()[:4] == ["w1", "True", '["34.1.2.3","34.1.2.4"]', "3"]  # a list prints as JSON
    wide = kubectl("get", "wd", "-o", "wide").stdout.splitlines()
    assert "ZONE" in wide[0].split() and "zone-a" in wide[1].split()
    unchanged = kubectl("apply", "-f", "-", stdin=manifest(widget(tags=["a"])))
    assert unchanged.stdout.strip() == "widget.test.runnet.dev/w1 unchanged"


def test_apply_a_crd_file_then_an_object(kubectl: Kubectl, tmp_path: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.runnet.dev"},
        "spec": {
            "group": "test.runnet.dev",
            "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{
                "name": "v1alpha1", "served": True, "storage": True,
                "additionalPrinterColumns": [{"name": "Level", "type": "integer", "jsonPath": ".spec.level"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"level": {"type": "integer", "minimum": 0}}}}}},
            }],
        },
    }  # fmt: skip
    (tmp_path / "crd.yaml").write_text(manifest(crd))
    assert "created" in kubectl("apply", "-f", "crd.yaml").stdout
    gadget = {
        "apiVersion": "test.runnet.dev/v1alpha1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {"level": 4},
    }
    assert "gadget.test.runnet.dev/g1 created" in kubectl("apply", "-f", "-", stdin=manifest(gadget)).stdout
    assert kubectl("get", "gadgets").stdout.splitlines()[1].split() == ["g1", "4"]
    bad = kubectl("apply", "-f", "-", stdin=manifest({**gadget, "spec": {"level": -1}}), check=False)
    assert bad.returncode != 0 and "spec.level in body should be greater than or equal to 0" in bad.stderr


def test_get_yaml_shows_defaults_and_server_fields(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest(widget()))
    obj = yaml.safe_load(kubectl("get", "widget", "w1", "-o", "yaml").stdout)
    assert obj["spec"] == {"zone": "zone-a", "color": "red", "size": 3}
    assert obj["metadata"]["generation"] == 1 and obj["metadata"]["uid"]


def test_get_watch_streams_changes(kubectl: Kubectl, env: dict[str, str]) -> None:
    kubectl("apply", "-f", "-", stdin=manifest(widget()))
    proc = subprocess.Popen(["kubectl", "get", "widgets", "-w"], env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    try:
        assert lines.get(timeout=10).split()[0] == "NAME"
        assert lines.get(timeout=10).split()[:2] == ["w1", "3"]
        kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":7}}')
        assert lines.get(timeout=10).split()[:2] == ["w1", "7"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_describe_shows_spec_status_and_events(kubectl: Kubectl, cluster: Cluster) -> None:
    kubectl("apply", "-f", "-", stdin=manifest(widget()))
    uid = kubectl("get", "widget", "w1", "-o", "jsonpath={.metadata.uid}").stdout
    event = {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "w1.1"}, "type": "Normal", "reason": "Reconciled",
        "message": "all good", "count": 1, "source": {"component": "runnet"}, "lastTimestamp": "2024-01-01T00:00:00Z",
        "involvedObject": {"apiVersion": "test.runnet.dev/v1", "kind": "Widget", "name": "w1", "namespace": cluster.ns,
                           "uid": uid},
    }  # fmt: skip
    kubectl("create", "-f", "-", stdin=manifest(event))
    out = kubectl("describe", "widget", "w1").stdout
    assert re.search(r"^Kind:\s+Widget$", out, re.M) and re.search(r"^  Zone:\s+zone-a$", out, re.M)
    assert "Reconciled" in out and "all good" in out


def test_wait_for_ready_condition_set_by_another_client(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest(widget()))
    later(0.5, lambda: kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", READY))
    started = time.monotonic()
    out = kubectl("wait", "--for=condition=Ready", "widget/w1", "--timeout=15s")
    assert out.stdout.strip() == "widget.test.runnet.dev/w1 condition met"
    assert time.monotonic() - started >= 0.4


def test_patch_status_subresource_leaves_spec(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest(widget()))
    kubectl(
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"spec":{"size":9},"status":{"natIPs":["1.1.1.1"]}}',
    )
    obj = yaml.safe_load(kubectl("get", "widget", "w1", "-o", "yaml").stdout)
    assert obj["spec"]["size"] == 3 and obj["status"]["natIPs"] == ["1.1.1.1"]


def test_delete_wait_without_and_with_finalizers(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest(widget()))
    assert (
        kubectl("delete", "widget", "w1", "--wait=true", timeout=15).stdout.strip()
        == 'widget.test.runnet.dev "w1" deleted'
    )
    held = widget()
    held["metadata"]["finalizers"] = ["test.runnet.dev/hold"]  # type: ignore[index]
    kubectl("apply", "-f", "-", stdin=manifest(held))
    release = '[{"op":"remove","path":"/metadata/finalizers"}]'
    later(0.6, lambda: kubectl("patch", "widget", "w1", "--type=json", "-p", release))
    started = time.monotonic()
    kubectl("delete", "widget", "w1", "--wait=true", "--timeout=15s", timeout=20)
    assert time.monotonic() - started >= 0.5  # kubectl waited for the finalizer to go
    gone = kubectl("get", "widget", "w1", check=False)
    assert gone.returncode != 0 and 'widgets.test.runnet.dev "w1" not found' in gone.stderr


def test_invalid_objects_are_rejected_with_the_rule_message(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest(widget()))
    moved = kubectl("apply", "-f", "-", stdin=manifest(widget(zone="zone-b")), check=False)
    assert moved.returncode != 0
    assert 'The Widget "w1" is invalid: spec.zone: Invalid value: "zone-b": zone is immutable' in moved.stderr
    pink = kubectl("apply", "-f", "-", stdin=manifest(widget("w2", color="pink")), check=False)
    assert 'spec.color: Unsupported value: "pink"' in pink.stderr
    unknown = kubectl("apply", "-f", "-", stdin=manifest(widget("w3", colour="red")), check=False)
    assert 'strict decoding error: unknown field "spec.colour"' in unknown.stderr


def test_typed_create_commands_send_protobuf_and_work(kubectl: Kubectl, cluster: Cluster) -> None:
    team = f"{cluster.ns}-y"
    cluster.namespaces.add(team)
    kubectl("create", "namespace", team)
    kubectl("create", "configmap", "c1", "-n", team, "--from-literal=a=b")
    kubectl("create", "secret", "generic", "s1", "-n", team, "--from-literal=password=hunter2")
    secret = yaml.safe_load(kubectl("get", "secret", "s1", "-n", team, "-o", "yaml").stdout)
    assert secret["data"] == {"password": "aHVudGVyMg=="} and secret["type"] == "Opaque"
    assert yaml.safe_load(kubectl("get", "cm", "c1", "-n", team, "-o", "yaml").stdout)["data"] == {"a": "b"}
    assert kubectl("get", "namespaces", "-o", "name").stdout.count(f"namespace/{team}\n") == 1
    kubectl("delete", "-n", team, "configmap/c1", "secret/s1", "--wait=true", timeout=15)
    gone = kubectl("get", "-n", team, "configmaps,secrets", "-o", "name").stdout
    assert "configmap/c1" not in gone and "secret/s1" not in gone
