"""Both stand-ins together, as the demo, the end-to-end tests and the benchmarks use them.

A GCP emulator and a Kubernetes stand-in (with runnet's CRDs installed from the models), each in
its own thread, a kubeconfig for them, and blocking helpers to apply, read and wait on objects
the way a user does with kubectl.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import kubernetes

from runnet.api import crds
from runnet.api.common import GROUP, VERSION
from runnet.emulator.gcp import EmulatorConfig, EmulatorThread, GCPEmulator, gcloud_config
from runnet.emulator.kube import KubeEmulator, KubeEmulatorThread, write_kubeconfig
from runnet.gcp.clients import Clients, GCPSettings

PLURALS = {info.kind: info.plural for info in crds.KINDS}
CLUSTER_SCOPED = {info.kind for info in crds.KINDS if not info.namespaced}
TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"


class KubeBackend(Protocol):
    """Where the Kubernetes API comes from: the embedded stand-in, or (in tests) a real kube-apiserver."""

    name: str

    def start(self, kubeconfig: Path) -> str:
        """Start (or join) the server, write a kubeconfig for it at ``kubeconfig``; returns its URL."""
        ...

    def install(self, crd: dict[str, Any]) -> None:
        """Install (or update) a CustomResourceDefinition and wait until it serves."""
        ...

    def stop(self) -> None: ...


class StandIn:
    """The embedded Kubernetes stand-in (runnet.emulator.kube) in a thread of its own."""

    name = "stand-in"

    def __init__(self) -> None:
        self._thread = KubeEmulatorThread()
        self.emulator: KubeEmulator

    def start(self, kubeconfig: Path) -> str:
        self.emulator = self._thread.start()
        write_kubeconfig(kubeconfig, str(self.emulator.base_url))
        return str(self.emulator.base_url)

    def install(self, crd: dict[str, Any]) -> None:
        self._thread.call(lambda: self.emulator.apply_crd(crd))

    def stop(self) -> None:
        self._thread.stop()


class Stack:
    def __init__(
        self, gcp_config: EmulatorConfig | None = None, workdir: Path | None = None, kube: KubeBackend | None = None
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="runnet-"))
        self._gcp_thread = EmulatorThread(gcp_config or EmulatorConfig())
        self.backend: KubeBackend = kube or StandIn()
        self.gcp: GCPEmulator
        self.kubeconfig = self.workdir / "kubeconfig"
        self.kube_url = ""
        self.clients: Clients
        self.api: kubernetes.client.CustomObjectsApi

    def start(self) -> Stack:
        self.gcp = self._gcp_thread.start()
        self.kube_url = self.backend.start(self.kubeconfig)
        for info in crds.KINDS:
            self.backend.install(crds.crd(info))
        self.clients = Clients(GCPSettings(endpoint=self.gcp.base_url))
        api_client = kubernetes.config.new_client_from_config(str(self.kubeconfig))  # type: ignore[no-untyped-call]
        self.api = kubernetes.client.CustomObjectsApi(api_client)
        return self

    def stop(self) -> None:
        self.backend.stop()
        self._gcp_thread.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- objects ----------------------------------------------------------------------------------

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the object, or replace its spec when it exists (like kubectl apply)."""
        kind, name = body["kind"], body["metadata"]["name"]
        plural, api = PLURALS[kind], self.api
        ns = body["metadata"].get("namespace", "default")
        try:
            if kind in CLUSTER_SCOPED:
                return api.create_cluster_custom_object(GROUP, VERSION, plural, body)  # type: ignore[no-any-return,return-value]
            return api.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)  # type: ignore[no-any-return,return-value]
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
        patch = {"spec": body["spec"]}
        if kind in CLUSTER_SCOPED:
            return api.patch_cluster_custom_object(GROUP, VERSION, plural, name, patch)  # type: ignore[no-any-return,return-value]
        return api.patch_namespaced_custom_object(GROUP, VERSION, ns, plural, name, patch)  # type: ignore[no-any-return,return-value]

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        try:
            if kind in CLUSTER_SCOPED:
                return self.api.get_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name)  # type: ignore[no-any-return,return-value]
            return self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)  # type: ignore[no-any-return,return-value]
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        if kind in CLUSTER_SCOPED:
            self.api.delete_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name)
        else:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)

    def bind(
        self, project: str, namespaces: list[str] | None = None, service_account: str | None = None, name: str = ""
    ) -> dict[str, Any]:
        """A ProjectBinding (as a cluster administrator writes it) letting ``namespaces`` manage ``project``."""
        spec: dict[str, Any] = {"project": project, "namespaces": namespaces or ["default"]}
        if service_account:
            spec["serviceAccount"] = service_account
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ProjectBinding",
            "metadata": {"name": name or project},
            "spec": spec,
        }
        return self.apply(body)

    def namespace(self, name: str) -> None:
        """Create a namespace (a no-op when it exists)."""
        core = kubernetes.client.CoreV1Api(self.api.api_client)
        try:
            core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise

    def condition(self, kind: str, name: str, type_: str = "Ready", namespace: str = "default") -> dict[str, Any]:
        obj = self.get(kind, name, namespace) or {}
        return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})

    def wait_ready(self, kind: str, name: str, timeout: float = 60, namespace: str = "default") -> dict[str, Any]:
        """Ready at its current generation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            obj = self.get(kind, name, namespace) or {}
            status = obj.get("status", {})
            ready: dict[str, Any] = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
            if ready.get("status") == "True" and status.get("observedGeneration") == obj["metadata"].get("generation"):
                return obj
            time.sleep(0.1)
        raise TimeoutError(f"{kind} {namespace}/{name} not Ready after {timeout:.0f} s: {self.condition(kind, name)}")

    def wait_gone(self, kind: str, name: str, timeout: float = 60, namespace: str = "default") -> None:
        deadline = time.monotonic() + timeout
        while self.get(kind, name, namespace) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind} {namespace}/{name} still there after {timeout:.0f} s")
            time.sleep(0.1)

    def table(self, kind: str, namespace: str = "default") -> str:
        """What ``kubectl get <kind>`` prints, from the API server's Table (the printer columns)."""
        scope = "" if kind in CLUSTER_SCOPED else f"/namespaces/{namespace}"
        path = f"/apis/{GROUP}/{VERSION}{scope}/{PLURALS[kind]}"
        client = self.api.api_client
        request = client.param_serialize(
            method="GET", resource_path=path, header_params={"Accept": TABLE}, auth_settings=["BearerToken"]
        )
        response = client.call_api(*request, _request_timeout=10)
        response.read()
        table = json.loads(response.data)
        columns = [c for c in table["columnDefinitions"] if c.get("priority", 0) == 0]
        keep = [i for i, c in enumerate(table["columnDefinitions"]) if c.get("priority", 0) == 0]
        rows = [[_cell(row["cells"][i], table["columnDefinitions"][i]) for i in keep] for row in table["rows"]]
        header = [c["name"].upper() for c in columns]
        widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=True)]
        lines = [
            "   ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in [header, *rows]
        ]
        return "\n".join(lines)

    # -- command-line tools -----------------------------------------------------------------------

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.workdir / "kube-cache")}
        return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)

    def gcloud_env(self) -> dict[str, str]:
        """Environment for a gcloud aimed at the GCP emulator (a throwaway config directory).

        The settings are ``gcloud_config``'s, as ``CLOUDSDK_*`` variables: the same as the
        ``gcloud config set`` lines the demo prints, without seconds of gcloud per line.
        """
        config = self.workdir / "gcloud"
        return {
            **os.environ,
            "CLOUDSDK_CONFIG": str(config),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            **gcloud_config.environment(self.gcp.base_url),
        }


def _cell(value: Any, column: dict[str, Any]) -> str:
    if value is None or value == "":
        return "<none>" if column.get("type") != "date" else "<unknown>"
    if column.get("type") == "date":
        return age(str(value))
    return str(value)


def age(timestamp: str) -> str:
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    seconds = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


@contextmanager
def running_stack(
    gcp_config: EmulatorConfig | None = None, workdir: Path | None = None, kube: KubeBackend | None = None
) -> Iterator[Stack]:
    stack = Stack(gcp_config, workdir, kube).start()
    try:
        yield stack
    finally:
        stack.stop()
