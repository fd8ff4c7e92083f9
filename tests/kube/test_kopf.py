"""A tiny kopf operator in-process against the stand-in, logged in through the kubernetes client.

The emulator runs in its own thread; kopf runs in the test's loop; the test drives objects with
the blocking kubernetes client off the loop. Peering: standalone, auto-detected without the
peering CRDs, and with kopf's ClusterKopfPeering CRD and default object installed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kopf
import kubernetes
import pytest

from tests.kube.conftest import Cluster, widget

GROUP, VERSION, PLURAL = "test.runnet.dev", "v1", "widgets"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"

PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "group": "kopf.dev",
        "scope": "Cluster",
        "names": {"plural": "clusterkopfpeerings", "singular": "clusterkopfpeering", "kind": "ClusterKopfPeering"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
        }],
    },
}  # fmt: skip


@pytest.fixture
def client(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> kubernetes.client.CustomObjectsApi:
    """kopf's default login reads $KUBECONFIG through the kubernetes client: point both at ours."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    return kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(kubeconfig)))


def widget_operator(calls: list[tuple[str, Any]]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(name: str, meta: Any, patch: kopf.Patch, **_: Any) -> None:
        calls.append(("create", name))
        patch.status["natIPs"] = ["34.0.0.1"]
        patch.status["observedGeneration"] = meta["generation"]
        patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Reconciled"}]

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def updated(name: str, meta: Any, patch: kopf.Patch, **_: Any) -> None:
        calls.append(("update", meta["generation"]))
        patch.status["observedGeneration"] = meta["generation"]

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def deleted(name: str, **_: Any) -> None:
        calls.append(("delete", name))

    return registry


@contextlib.asynccontextmanager
async def running(registry: kopf.OperatorRegistry, **options: Any) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(registry=registry, stop_flag=stop, ready_flag=ready, **options))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


class Widgets:
    """The blocking kubernetes client, called off the event loop, on the widgets of one namespace."""

    def __init__(self, api: kubernetes.client.CustomObjectsApi, namespace: str) -> None:
        self.api, self.ns = api, namespace

    async def call(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.api, method), *args)

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.call("get_namespaced_custom_object", GROUP, VERSION, self.ns, PLURAL, name)  # type: ignore[no-any-return]
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise


MODES = {
    "standalone": {"standalone": True, "clusterwide": True},
    "no-peering-crds": {"clusterwide": True},  # auto-detection finds no peering resources: runs alone
    "peering-crd": {"clusterwide": True},  # finds ClusterKopfPeering and keeps the default one alive
    "namespaced": {"standalone": True},  # watches the namespaces that match a glob (the test's own)
}


def options(mode: str, namespace: str) -> dict[str, Any]:
    if mode == "namespaced":
        return {**MODES[mode], "namespaces": [namespace.rsplit("-", 1)[0] + "-*"]}
    return MODES[mode]


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest, cluster: Cluster) -> str:
    if request.param == "peering-crd":  # removed at teardown on the real server (a CRD the test made)
        cluster.rest.install_crd(PEERING_CRD)
        default = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "default"}}
        cluster.rest.ok("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", default)
    return str(request.param)


async def test_kopf_lifecycle(cluster: Cluster, client: kubernetes.client.CustomObjectsApi, mode: str) -> None:
    calls: list[tuple[str, Any]] = []
    widgets = Widgets(client, cluster.ns)
    peers: dict[str, Any] = {}
    async with running(widget_operator(calls), **options(mode, cluster.ns)):
        await widgets.call("create_namespaced_custom_object", GROUP, VERSION, cluster.ns, PLURAL, widget("w1"))

        async def ready() -> bool:
            obj = await widgets.get("w1")
            return bool(obj and obj.get("status", {}).get("conditions"))

        await eventually(ready)
        obj = await widgets.get("w1")
        assert obj is not None and obj["status"]["natIPs"] == ["34.0.0.1"] and obj["status"]["observedGeneration"] == 1
        assert FINALIZER in obj["metadata"]["finalizers"]
        await widgets.call(
            "patch_namespaced_custom_object", GROUP, VERSION, cluster.ns, PLURAL, "w1", {"spec": {"size": 5}}
        )

        async def observed() -> bool:
            obj = await widgets.get("w1")
            return bool(obj and obj["status"].get("observedGeneration") == 2)

        await eventually(observed)
        await widgets.call("delete_namespaced_custom_object", GROUP, VERSION, cluster.ns, PLURAL, "w1")

        async def gone() -> bool:
            return await widgets.get("w1") is None

        await eventually(gone)
        await asyncio.sleep(0.2)  # room for a duplicate handler run to show up
        if mode == "peering-crd":  # kopf announces itself in the default peering object's status
            peering = await asyncio.to_thread(cluster.rest.get, "/apis/kopf.dev/v1/clusterkopfpeerings/default")
            peers = peering.get("status") or {}
    assert calls == [("create", "w1"), ("update", 2), ("delete", "w1")]
    assert bool(peers) == (mode == "peering-crd")
    if cluster.emulator is not None:  # the stand-in's request log shows what the real server cannot
        kube = cluster.emulator
        assert not kube.errors
        status_patches = [r for r in kube if r.method == "PATCH" and r.subresource == "status" and r.name == "w1"]
        assert status_patches and all("spec" not in (r.data or {}) for r in status_patches)
        peered = [
            r
            for r in kube
            if r.method == "PATCH" and r.resource is not None and r.resource.plural == "clusterkopfpeerings"
        ]
        assert bool(peered) == (mode == "peering-crd"), "kopf keeps its peering object alive iff the CRD exists"
