"""The project's CRDs and deploy/ on a real kube-apiserver (tools/control-plane), driven by the real kubectl."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from runnet.api.crds import KINDS
from tests.realkube.conftest import Kubectl
from tests.support import control_plane
from tests.support.control_plane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CRDS = sorted(p for p in (REPO / "crds").glob("*.yaml") if p.name != "kustomization.yaml")

# The first test may build tools/bin/kube-control-plane (minutes from a cold Go cache), inside its timeout.
pytestmark = pytest.mark.timeout(900)


def get(plane: ControlPlane, path: str, token: str) -> tuple[int, dict[str, Any]]:
    """GET ``path`` with only a bearer token (no client certificate), trusting the kubeconfig's CA.

    A 429 is retried after its Retry-After, as client-go does: the apiserver answers 429 while the
    storage of a CRD it just (re)built initializes (a CRD updated by `kubectl apply`, say).
    """
    config = yaml.safe_load(plane.kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    context = ssl.create_default_context(cadata=ca)
    request = urllib.request.Request(plane.url + path, headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as rsp:
                return rsp.status, json.loads(rsp.read())
        except urllib.error.HTTPError as err:
            if err.code != 429 or time.monotonic() > deadline:
                return err.code, json.loads(err.read())
            time.sleep(float(err.headers.get("Retry-After", "1")))


def test_server_reports_the_version_built(kubectl: Kubectl) -> None:
    major, minor, patch = control_plane.kubernetes_version()
    server = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert (server["major"], server["minor"]) == (str(major), str(minor))
    assert server["gitVersion"] == f"v{major}.{minor}.{patch}"


def test_crds_are_accepted_and_established(kubectl: Kubectl) -> None:
    assert [p.name for p in CRDS] == sorted(f"{info.crd_name}.yaml" for info in KINDS)
    kubectl("apply", "--server-side", *(f"--filename={p}" for p in CRDS))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    names = kubectl("get", "crd", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    names = [n for n in names if n.split(".", 1)[1] == "runnet.dev"]  # the server serves other tests' CRDs too
    assert sorted(names) == sorted(info.crd_name for info in KINDS)
    assert "projectbindings.runnet.dev" in names


def test_deploy_applies_and_its_service_account_gets_what_rbac_grants(
    real_kube: ControlPlane, kubectl: Kubectl
) -> None:
    kubectl("apply", "-k", str(REPO / "deploy"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kubectl("-n", "runnet-system", "get", "deployment/runnet", "serviceaccount/runnet")
    kubectl("-n", "runnet-system", "get", "pdb/runnet", "service/runnet-metrics", "role/runnet-leader-election")
    token = kubectl("-n", "runnet-system", "create", "token", "runnet").stdout.strip()

    status, body = get(real_kube, "/apis/runnet.dev/v1alpha1/egressgateways", token)
    assert status == 200, body.get("message")
    status, body = get(real_kube, "/api/v1/namespaces", token)
    assert status == 403, body.get("message")  # kopf in cluster-wide mode does not need namespaces
    status, body = get(real_kube, "/api/v1/secrets", token)
    assert status == 403, body.get("message")
    assert 'User "system:serviceaccount:runnet-system:runnet" cannot list resource "secrets"' in body["message"]


def test_token_request_tokens_authenticate_and_rbac_denies(real_kube: ControlPlane, kubectl: Kubectl) -> None:
    kubectl("-n", "default", "create", "serviceaccount", "x")
    token = kubectl("-n", "default", "create", "token", "x").stdout.strip()
    status, body = get(real_kube, "/api/v1/namespaces", token)
    assert status == 403, body.get("message")
    assert 'User "system:serviceaccount:default:x" cannot list resource "namespaces"' in body["message"]
    status, body = get(real_kube, "/api/v1/namespaces", "not-a-token")
    assert status == 401, body.get("message")


def test_sigterm_exits_0_and_frees_the_port(control_plane_binary: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with control_plane.running(control_plane_binary, tmp_path / "data", port=port) as plane:
        assert plane.url == f"https://127.0.0.1:{port}"
        assert plane.kubeconfig.is_file()
        assert plane.stop() == 0
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with socket.socket() as server:  # another server can listen there again (TIME_WAIT needs SO_REUSEADDR)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
