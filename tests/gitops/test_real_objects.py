"""Flux's kstatus and Argo CD's health scripts judge real runnet objects, read back from a real kube-apiserver.

The operator runs (or is stopped on purpose) against the GCP emulator; each state of the table is
reached the way a user reaches it, the object is read back from the API server, and kstatus (the
real library, tools/kstatus) and the Argo CD script (in gopher-lua, tools/argo-health) are asked.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runnet.emulator.gcp import EmulatorConfig, Fault
from runnet.emulator.stack import Stack, running_stack
from tests.e2e.conftest import operator
from tests.operator.conftest import EXAMPLES, deploy_service
from tests.support import gotools
from tests.support.real_stack import RealKube

pytestmark = pytest.mark.timeout(600)
PROJECT, REGION = "my-project", "asia-northeast1"


@pytest.fixture
def real(real_kube: Any, tmp_path: Path) -> Iterator[Stack]:
    gotools.require("kstatus")
    gotools.require("argo-health")
    # Operations take a second, so that "creating" lasts long enough to be read.
    with running_stack(EmulatorConfig(seed=1, operation_latency=1.0), tmp_path, RealKube(real_kube)) as stack:
        stack.bind(PROJECT)
        yield stack


def gateway(name: str = "fixed-ip", **spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(yaml.safe_load((EXAMPLES / "egress-fixed-ip.yaml").read_text()))
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return body


def judged(stack: Stack, name: str) -> tuple[str, str, str]:
    """(kstatus, Argo CD health, Argo CD message) of the object as the API server returns it."""
    obj = stack.get("EgressGateway", name)
    assert obj is not None
    (flux,) = gotools.kstatus([obj])
    argo = gotools.argo_health("EgressGateway", obj)
    return flux["status"], argo["status"], argo.get("message", "")


async def until(stack: Stack, name: str, check: Any, timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = await asyncio.to_thread(stack.get, "EgressGateway", name) or {}
        if check(obj):
            return obj
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached in {timeout:.0f} s: {obj.get('status')}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


async def test_kstatus_and_argo_cd_read_each_state_of_a_real_object(real: Stack) -> None:
    await asyncio.to_thread(deploy_service, real.clients, PROJECT, REGION, "direct-vpc-egress")
    # Before runnet's first pass: the status schema's default says generation 1 is not observed yet.
    await asyncio.to_thread(real.apply, gateway())
    assert judged(real, "fixed-ip")[:2] == ("InProgress", "Progressing")
    async with operator(real):
        # Creating (operations take a second each): Reconciling.
        await until(real, "fixed-ip", lambda o: condition(o, "Reconciling").get("status") == "True")
        assert judged(real, "fixed-ip")[:2] == ("InProgress", "Progressing")
        await until(real, "fixed-ip", lambda o: condition(o, "Ready").get("status") == "True", timeout=60)
        flux, argo, message = judged(real, "fixed-ip")
        assert (flux, argo) == ("Current", "Healthy") and "egresses from" in message
        # An invalid spec: Stalled, which kstatus calls Failed and Argo CD Degraded, with the sentence.
        await asyncio.to_thread(
            real.apply, gateway(subnet={"name": "subnet-cloud-run", "ipCidrRange": "10.10.10.9/24"})
        )
        await until(real, "fixed-ip", lambda o: condition(o, "Stalled").get("reason") == "InvalidSpec")
        flux, argo, message = judged(real, "fixed-ip")
        assert (flux, argo) == ("Failed", "Degraded") and "has host bits set" in message
        # A conflict: someone else's NAT of the same name in another gateway's router.
        other = gateway("thief", router={"name": "router-cloud-run"}, services=[])
        await asyncio.to_thread(real.apply, other)
        await until(real, "thief", lambda o: condition(o, "Stalled").get("reason") == "Conflict")
        flux, argo, message = judged(real, "thief")
        assert (flux, argo) == ("Failed", "Degraded") and "managed by EgressGateway default/fixed-ip" in message
        await asyncio.to_thread(real.delete, "EgressGateway", "thief")
        await asyncio.to_thread(real.wait_gone, "EgressGateway", "thief")
        # GCP answering 503 to every write while runnet retries: still in progress, not failed.
        real.gcp.config.faults.append(Fault(method="compute.*", rate=1.0, kind="503"))
        await asyncio.to_thread(
            real.apply, gateway(subnet={"name": "subnet-cloud-run", "ipCidrRange": "10.10.10.0/23"})
        )
        await until(real, "fixed-ip", lambda o: condition(o, "Reconciling").get("reason") == "GCPError")
        assert judged(real, "fixed-ip")[:2] == ("InProgress", "Progressing")
        real.gcp.config.faults.clear()
    # The operator is stopped: a spec change it has not seen is in progress.
    await asyncio.to_thread(real.apply, gateway(subnet={"name": "subnet-cloud-run", "ipCidrRange": "10.10.8.0/22"}))
    obj = real.get("EgressGateway", "fixed-ip") or {}
    assert obj["status"]["observedGeneration"] < obj["metadata"]["generation"]
    assert judged(real, "fixed-ip")[:2] == ("InProgress", "Progressing")
    # Being deleted (the finalizer holds it while no operator runs): Terminating.
    await asyncio.to_thread(real.delete, "EgressGateway", "fixed-ip")
    flux, argo, message = judged(real, "fixed-ip")
    assert (flux, argo) == ("Terminating", "Progressing") and "deleted" in message
