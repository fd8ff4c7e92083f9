"""Fixtures for the Kubernetes stand-in: in the test's loop (for aiohttp probes) or in a thread."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runnet.emulator.kube import KubeEmulator, KubeEmulatorThread, write_kubeconfig

CRDS = Path(__file__).parent / "crds"
WIDGETS = "/apis/test.runnet.dev/v1/namespaces/default/widgets"


def widget(obj_name: str = "w1", /, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.runnet.dev/v1",
        "kind": "Widget",
        "metadata": {"name": obj_name},
        "spec": {"zone": "zone-a", **spec},
    }


class Http:
    """A thin JSON client over aiohttp: every call returns (status, body, headers)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **headers: str
    ) -> tuple[int, Any, Any]:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
        async with self.session.request(method, self.base + path, data=data, headers=hdrs) as rsp:
            text = await rsp.text()
            return rsp.status, json.loads(text) if text.startswith(("{", "[")) else text, rsp.headers

    async def get(self, path: str, **headers: str) -> Any:
        status, body, _ = await self.call("GET", path, **headers)
        assert status == 200, body
        return body

    async def create(self, obj: dict[str, Any], path: str = WIDGETS) -> dict[str, Any]:
        status, body, _ = await self.call("POST", path, obj)
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def merge(self, path: str, patch: Any) -> tuple[int, Any, Any]:
        return await self.call("PATCH", path, patch, "application/merge-patch+json")

    async def watch(self, query: str, count: int, path: str = WIDGETS) -> list[dict[str, Any]]:
        """The first ``count`` events of a watch (``query`` adds to ``watch=true``)."""
        events = []
        async with self.session.get(f"{self.base}{path}?watch=true&{query}") as rsp:
            while len(events) < count:
                line = await asyncio.wait_for(rsp.content.readline(), 3)
                events.append(json.loads(line))
        return events


@pytest.fixture
async def emu() -> AsyncIterator[KubeEmulator]:
    """The stand-in on the test's own event loop (only non-blocking clients may call it)."""
    emulator = KubeEmulator(crds_dir=CRDS)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def http(emu: KubeEmulator) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(session, emu.base_url)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """The stand-in in its own thread, for blocking clients (kubectl, the kubernetes client)."""
    with KubeEmulatorThread(crds_dir=CRDS).running() as emulator:
        yield emulator


@pytest.fixture
def kubeconfig(kube: KubeEmulator, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", kube.base_url)
