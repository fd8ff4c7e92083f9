"""The stack (runnet.emulator.stack) on a real kube-apiserver instead of the embedded stand-in.

One control plane serves the whole session. Each stack installs runnet's CRDs (they may have
changed, so they are applied every time; the server is asked to serve them before going on) and,
when it stops, removes every runnet object (their finalizers first: the operator is gone by then)
and the events in the namespaces used, so the next test starts from a clean cluster.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import kubernetes

from runnet.api import crds
from runnet.api.common import GROUP, VERSION
from tests.support.control_plane import ControlPlane

UNFINALIZED = {"metadata": {"finalizers": None}}


class RealKube:
    name = "real"

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._client: Any = None

    def start(self, kubeconfig: Path) -> str:
        shutil.copyfile(self.plane.kubeconfig, kubeconfig)
        self._client = kubernetes.config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
        self.clean()  # whatever an interrupted test left behind
        return self.plane.url

    def install(self, crd: dict[str, Any]) -> None:
        api = kubernetes.client.ApiextensionsV1Api(self._client)
        name = crd["metadata"]["name"]
        try:
            current = api.read_custom_resource_definition(name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            api.create_custom_resource_definition(crd)
        else:
            body = {**crd, "metadata": {**crd["metadata"], "resourceVersion": current.metadata.resource_version}}
            api.replace_custom_resource_definition(name, body)
        self._wait_established(api, name)

    def _wait_established(self, api: Any, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            crd = api.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True":
                plural = name.split(".", 1)[0]
                try:  # served, not only established: the first list can still 404 for a moment
                    kubernetes.client.CustomObjectsApi(self._client).list_cluster_custom_object(
                        GROUP, VERSION, plural, limit=1
                    )
                    return
                except kubernetes.client.ApiException as exc:
                    if exc.status not in (404, 503):
                        raise
            time.sleep(0.1)
        raise TimeoutError(f"CRD {name} not served after {timeout:.0f} s")

    def clean(self) -> None:
        """Every runnet object gone (finalizers stripped) and the events of their namespaces deleted."""
        objects = kubernetes.client.CustomObjectsApi(self._client)
        core = kubernetes.client.CoreV1Api(self._client)
        namespaces = {"default"}
        for info in crds.KINDS:
            try:
                found = objects.list_cluster_custom_object(GROUP, VERSION, info.plural)["items"]
            except kubernetes.client.ApiException as exc:
                if exc.status == 404:
                    continue  # the CRD is not installed yet
                raise
            for obj in found:
                meta = obj["metadata"]
                if not info.namespaced:
                    cluster = (GROUP, VERSION, info.plural, meta["name"])
                    _gone_ok(lambda a=cluster: objects.patch_cluster_custom_object(*a, UNFINALIZED))
                    _gone_ok(lambda a=cluster: objects.delete_cluster_custom_object(*a))
                    continue
                namespaces.add(meta["namespace"])
                args = (GROUP, VERSION, meta["namespace"], info.plural, meta["name"])
                _gone_ok(lambda a=args: objects.patch_namespaced_custom_object(*a, UNFINALIZED))
                _gone_ok(lambda a=args: objects.delete_namespaced_custom_object(*a))
        for namespace in namespaces:
            core.delete_collection_namespaced_event(namespace)

    def stop(self) -> None:
        self.clean()


def _gone_ok(call: Any) -> None:
    try:
        call()
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise
