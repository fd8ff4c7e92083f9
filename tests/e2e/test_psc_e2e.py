"""PSCExport and PSCEndpoint end to end with kopf: each side's state change reaches the other in seconds."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import yaml

from runnet.emulator.stack import Stack
from tests.e2e.conftest import operator
from tests.operator.conftest import EXAMPLES, deploy_service

PRODUCER, REGION = "producer-project", "asia-northeast1"
PROPAGATION = 10.0  # seconds within which one side's change must show on the other


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def status(stack: Stack, kind: str) -> dict[str, Any]:
    return (stack.get(kind, "hello") or {}).get("status", {})


async def until(check: Any, timeout: float) -> float:
    start = time.monotonic()
    while not await asyncio.to_thread(check):
        assert time.monotonic() - start < timeout, "not within the time allowed"
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def test_acceptance_and_removal_propagate_within_seconds(stack: Stack) -> None:
    await asyncio.to_thread(deploy_service, stack.clients, PRODUCER, REGION, "hello-service")
    export = load("psc-export.yaml")
    export["spec"]["attachment"]["consumers"] = []
    async with operator(stack):
        await asyncio.to_thread(stack.apply, export)
        await asyncio.to_thread(stack.apply, load("psc-endpoint.yaml"))
        await until(lambda: status(stack, "PSCEndpoint").get("connectionStatus") == "PENDING", 60)
        pending = stack.condition("PSCEndpoint", "hello")
        assert pending["reason"] == "ConnectionPending" and "consumer-project" in pending["message"]
        await until(lambda: status(stack, "PSCExport").get("pending") == 1, PROPAGATION)
        # The producer accepts the consumer: the endpoint turns Ready without waiting for a resync.
        export["spec"]["attachment"]["consumers"] = [{"project": "consumer-project", "connectionLimit": 10}]
        await asyncio.to_thread(stack.apply, export)
        took = await until(lambda: stack.condition("PSCEndpoint", "hello").get("status") == "True", PROPAGATION)
        assert status(stack, "PSCEndpoint")["ip"] == "10.1.0.5" and took < PROPAGATION
        # How to call it: the Cloud Run URL (the ID-token audience), from the export, in -o wide.
        await until(lambda: status(stack, "PSCEndpoint").get("serviceURL", "").startswith("https://"), PROPAGATION)
        if shutil.which("kubectl"):
            wide = await asyncio.to_thread(stack.kubectl, "get", "psce", "hello", "-o", "wide")
            assert "SERVICE URL" in wide.stdout and "https://hello-service-" in wide.stdout, wide.stdout
        await until(lambda: status(stack, "PSCExport").get("accepted") == 1, PROPAGATION)
        # The producer rejects it: the endpoint says so.
        export["spec"]["attachment"]["consumers"] = []
        export["spec"]["attachment"]["rejected"] = ["consumer-project"]
        await asyncio.to_thread(stack.apply, export)
        await until(lambda: status(stack, "PSCEndpoint").get("connectionStatus") == "REJECTED", PROPAGATION)
        assert stack.condition("PSCEndpoint", "hello")["reason"] == "ConnectionRejected"
        await asyncio.to_thread(stack.delete, "PSCEndpoint", "hello")
        await asyncio.to_thread(stack.delete, "PSCExport", "hello")
        await asyncio.to_thread(stack.wait_gone, "PSCEndpoint", "hello")
        await asyncio.to_thread(stack.wait_gone, "PSCExport", "hello")
    left = sorted(p for p, _ in stack.gcp.store.items() if "/operations/" not in p)
    assert left == [f"projects/{PRODUCER}/locations/{REGION}/services/hello-service"]
