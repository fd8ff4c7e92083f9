"""Fixtures for the probes: each test runs against the stand-in and against a real kube-apiserver.

``backend`` is ``standin`` or ``real`` (every test that uses a backend fixture gets both, unless marked
``standin_only`` with a reason). The stand-in is fresh per test: in the test's loop for the aiohttp
probes (``http``), in a thread for blocking clients (``cluster``: kubectl, the kubernetes client, kopf).
The real server is one per session (``real_kube``), with the test CRDs installed once; each test gets
its own namespace on both backends, and on the real server its objects (finalizers stripped) and the
CRDs it created are deleted at teardown, so that no test sees another's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from runnet.emulator.kube import KubeEmulator, KubeEmulatorThread, write_kubeconfig
from tests.support.control_plane import ControlPlane
from tests.support.kube_access import CRD_PATH, Rest, kubeconfig_for, ssl_context

CRDS = Path(__file__).parent / "crds"
GROUP = "test.runnet.dev"
BACKENDS = ("standin", "real")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "standin_only(reason): the test runs against the stand-in only (the reason says why the real "
        "kube-apiserver cannot take it)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("standin_only")
        if only is not None and not (only.args or only.kwargs.get("reason")):
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: standin_only needs a reason")
        metafunc.parametrize("backend", ["standin"] if only else list(BACKENDS), indirect=True)


def widget(obj_name: str = "w1", /, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": obj_name},
        "spec": {"zone": "zone-a", **spec},
    }


def widgets_path(namespace: str) -> str:
    return f"/apis/{GROUP}/v1/namespaces/{namespace}/widgets"


def load_test_crds() -> list[dict[str, Any]]:
    return [doc for p in sorted(CRDS.glob("*.yaml")) for doc in yaml.safe_load_all(p.read_text()) if doc]


# -- the real server, once per session --------------------------------------------------------


@dataclass
class RealCluster:
    """The session's real kube-apiserver with the test CRDs installed, and how to clean up after a test."""

    plane: ControlPlane
    rest: Rest
    baseline: dict[str, int]  # CRDs every test may rely on: name → generation

    def crds(self) -> dict[str, dict[str, Any]]:
        return {c["metadata"]["name"]: c for c in self.rest.get(CRD_PATH)["items"]}

    def clean(self, namespaces: set[str], crds_before: set[str]) -> None:
        """Delete what a test left: objects of every CRD in its namespaces, and the CRDs it created."""
        for name, crd in self.crds().items():
            if name in crds_before:
                self.rest.delete_objects(crd, namespaces)
            else:
                self.rest.delete_crd(name)
        changed = {n: c["metadata"]["generation"] for n, c in self.crds().items() if n in self.baseline}
        if changed != self.baseline:  # a test changed a shared CRD: later tests would not see the file
            for crd in load_test_crds():
                self.rest.install_crd(crd)
            self.baseline = {n: c["metadata"]["generation"] for n, c in self.crds().items() if n in self.baseline}
            raise AssertionError(f"the test changed the session's CRDs (restored): {self.baseline} -> {changed}")


@pytest.fixture(scope="session")
def real_cluster(real_kube: ControlPlane) -> RealCluster:
    rest = Rest(real_kube.url, ssl_context(real_kube.kubeconfig))
    for crd in load_test_crds():
        rest.install_crd(crd)
    names = {crd["metadata"]["name"] for crd in load_test_crds()}
    baseline = {
        n: c["metadata"]["generation"] for n, c in RealCluster(real_kube, rest, {}).crds().items() if n in names
    }
    return RealCluster(real_kube, rest, baseline)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def real(backend: str, request: pytest.FixtureRequest) -> RealCluster | None:
    """The session's real server when the backend is ``real``, else None."""
    return request.getfixturevalue("real_cluster") if backend == "real" else None  # type: ignore[no-any-return]


_NAMESPACES = itertools.count(1)


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    """A namespace name of the test's own, unique in the session (a DNS label)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")
    return f"{slug[:52].rstrip('-')}-{next(_NAMESPACES)}"


# -- raw HTTP (aiohttp), in the test's event loop ---------------------------------------------


class Http:
    """A thin JSON client over aiohttp: every call returns (status, body, headers).

    ``ns`` is the test's namespace (created), ``widgets`` the path of its widgets; ``emulator`` is the
    stand-in when that is the backend (None on the real server).
    """

    def __init__(
        self, session: aiohttp.ClientSession, base: str, ns: str, emulator: KubeEmulator | None = None
    ) -> None:
        self.session, self.base, self.ns, self.emulator = session, base, ns, emulator
        self.widgets = widgets_path(ns)
        self.namespaces: set[str] = set()

    @property
    def real(self) -> bool:
        return self.emulator is None

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **headers: str
    ) -> tuple[int, Any, Any]:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
        for _ in range(50):
            async with self.session.request(method, self.base + path, data=data, headers=hdrs) as rsp:
                text = await rsp.text()
                if rsp.status == 429:  # a CRD's storage initializing: retried as client-go does
                    await asyncio.sleep(float(rsp.headers.get("Retry-After") or "1"))
                    continue
                return rsp.status, json.loads(text) if text.startswith(("{", "[")) else text, rsp.headers
        raise AssertionError(f"{method} {path}: still 429 after 50 tries")

    async def get(self, path: str, **headers: str) -> Any:
        status, body, _ = await self.call("GET", path, **headers)
        assert status == 200, body
        return body

    async def create(self, obj: dict[str, Any], path: str | None = None) -> dict[str, Any]:
        status, body, _ = await self.call("POST", path or self.widgets, obj)
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def merge(self, path: str, patch: Any) -> tuple[int, Any, Any]:
        return await self.call("PATCH", path, patch, "application/merge-patch+json")

    async def namespace(self, name: str) -> str:
        """Create a namespace (recorded for clean-up); its name."""
        await self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, "/api/v1/namespaces")
        self.namespaces.add(name)
        return name

    async def watch(self, query: str, count: int, path: str | None = None) -> list[dict[str, Any]]:
        """The first ``count`` events of a watch (``query`` adds to ``watch=true``)."""
        events = []
        async with self.session.get(f"{self.base}{path or self.widgets}?watch=true&{query}") as rsp:
            assert rsp.status == 200, await rsp.text()
            while len(events) < count:
                line = await asyncio.wait_for(rsp.content.readline(), 5)
                events.append(json.loads(line))
        return events

    async def established(self, name: str, timeout: float = 30) -> dict[str, Any]:
        """A CRD once it is Established (the real server establishes a new CRD a moment after creating it)."""
        async with asyncio.timeout(timeout):
            while True:
                crd = await self.get(f"{CRD_PATH}/{name}")
                conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
                if conditions.get("Established") == "True":
                    return crd  # type: ignore[no-any-return]
                await asyncio.sleep(0.05)


@pytest.fixture
async def http(real: RealCluster | None, ns: str) -> AsyncIterator[Http]:
    emulator = None
    if real is None:
        emulator = KubeEmulator(crds_dir=CRDS)
        base = await emulator.start()
        connector = aiohttp.TCPConnector()
        crds_before: set[str] = set()
    else:
        base, connector = real.plane.url, aiohttp.TCPConnector(ssl=real.rest.context)
        crds_before = set(real.crds())
    namespaces: set[str] = {ns}
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            client = Http(session, base, ns, emulator)
            client.namespaces = namespaces
            await client.namespace(ns)
            yield client
    finally:
        if emulator is not None:
            await emulator.stop()
        if real is not None:
            real.clean(namespaces, crds_before)


@pytest.fixture
def emu(http: Http) -> KubeEmulator:
    """The stand-in object behind ``http`` (tests using it are ``standin_only``)."""
    assert http.emulator is not None, "the emu fixture needs a standin_only test"
    return http.emulator


# -- blocking clients (kubectl, the kubernetes client, kopf) ----------------------------------


@dataclass
class Cluster:
    """An API server for blocking clients: ``kubeconfig`` defaults to the test's namespace ``ns``."""

    backend: str
    url: str
    kubeconfig: Path
    ns: str
    rest: Rest
    emulator: KubeEmulator | None = None  # the stand-in (None on the real server)
    namespaces: set[str] = field(default_factory=set)

    def namespace(self, name: str) -> str:
        self.rest.create_namespace(name)
        self.namespaces.add(name)
        return name


@pytest.fixture
def cluster(real: RealCluster | None, ns: str, tmp_path: Path) -> Iterator[Cluster]:
    if real is None:
        with KubeEmulatorThread(crds_dir=CRDS).running() as emulator:
            config = write_kubeconfig(tmp_path / "kubeconfig", emulator.base_url, ns)
            found = Cluster("standin", emulator.base_url, config, ns, Rest(emulator.base_url, None), emulator)
            found.namespace(ns)
            yield found
        return
    config = kubeconfig_for(real.plane.kubeconfig, tmp_path / "kubeconfig", ns)
    crds_before = set(real.crds())
    found = Cluster("real", real.plane.url, config, ns, real.rest)
    try:
        found.namespace(ns)
        yield found
    finally:
        real.clean(found.namespaces, crds_before)


@pytest.fixture
def kube(cluster: Cluster) -> KubeEmulator:
    """The stand-in behind ``cluster`` (tests using it are ``standin_only``)."""
    assert cluster.emulator is not None, "the kube fixture needs a standin_only test"
    return cluster.emulator


@pytest.fixture
def kubeconfig(cluster: Cluster) -> Path:
    return cluster.kubeconfig
