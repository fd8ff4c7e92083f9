"""EgressGateway end to end: kopf + the Kubernetes stand-in + the GCP emulator, as a user drives it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from runnet.emulator.stack import Stack
from tests.e2e.conftest import needs_kubectl, operator
from tests.operator.conftest import EXAMPLES, deploy_service

PROJECT, REGION = "my-project", "asia-northeast1"
EXAMPLE = EXAMPLES / "egress-fixed-ip.yaml"


def nat_ips(stack: Stack) -> list[str]:
    router = stack.clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    return [ip.rsplit("/", 1)[-1] for n in router.nats for ip in n.nat_ips]


@needs_kubectl
async def test_apply_get_wait_drift_delete_with_kubectl(stack: Stack) -> None:
    await asyncio.to_thread(deploy_service, stack.clients, PROJECT, REGION, "direct-vpc-egress")
    async with operator(stack, resync=1):
        applied = await asyncio.to_thread(stack.kubectl, "apply", "-f", str(EXAMPLE))
        assert applied.returncode == 0, applied.stderr
        waited = await asyncio.to_thread(
            stack.kubectl, "wait", "--for=condition=Ready", "egressgateway/fixed-ip", "--timeout=60s"
        )
        assert waited.returncode == 0, waited.stderr
        ip = stack.clients.addresses.get(project=PROJECT, region=REGION, address="static-ip").address
        shown = await asyncio.to_thread(stack.kubectl, "get", "egw")
        header, row = shown.stdout.splitlines()
        assert header.split() == ["NAME", "READY", "NAT", "IPS", "SERVICES", "AGE"]
        assert row.split()[:4] == ["fixed-ip", "True", ip, "1/1"]
        # Drift: someone deletes the NAT by hand; the resync puts it back.
        router = stack.clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
        router.nats = []
        await asyncio.to_thread(
            lambda: stack.clients.routers.update(
                project=PROJECT, region=REGION, router="router-cloud-run", router_resource=router
            ).result()
        )
        for _ in range(100):
            if nat_ips(stack):
                break
            await asyncio.sleep(0.1)
        assert nat_ips(stack) == ["static-ip"]
        for _ in range(50):  # kopf posts events in the background
            events = await asyncio.to_thread(stack.kubectl, "get", "events", "-o", "yaml")
            if "DriftRepaired" in events.stdout:
                break
            await asyncio.sleep(0.1)
        assert "DriftRepaired" in events.stdout, events.stdout
        deleted = await asyncio.to_thread(stack.kubectl, "delete", "-f", str(EXAMPLE), "--wait", "--timeout=60s")
        assert deleted.returncode == 0, deleted.stderr
    left = sorted(p for p, _ in stack.gcp.store.items() if "/operations/" not in p)
    assert left == [
        f"projects/{PROJECT}/locations/{REGION}/services/direct-vpc-egress",
        f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip",
    ]


async def test_spec_change_updates_the_nat_and_status(stack: Stack) -> None:
    await asyncio.to_thread(deploy_service, stack.clients, PROJECT, REGION, "direct-vpc-egress")
    body = yaml.safe_load(Path(EXAMPLE).read_text())
    async with operator(stack):
        await asyncio.to_thread(stack.apply, body)
        first = await asyncio.to_thread(stack.wait_ready, "EgressGateway", "fixed-ip")
        assert len(first["status"]["natIPs"]) == 1 and first["status"]["observedGeneration"] == 1
        body["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2"]
        await asyncio.to_thread(stack.apply, body)
        second = await asyncio.to_thread(stack.wait_ready, "EgressGateway", "fixed-ip")
        assert second["status"]["observedGeneration"] == 2
        assert len(second["status"]["natIPs"]) == 2 and second["status"]["natIPs"][0] == first["status"]["natIPs"][0]
        assert sorted(nat_ips(stack)) == ["static-ip", "static-ip-2"]


async def test_immutable_fields_and_bad_values_are_refused_by_the_api_server(stack: Stack) -> None:
    body = yaml.safe_load(Path(EXAMPLE).read_text())
    await asyncio.to_thread(stack.apply, body)
    body["spec"]["region"] = "us-central1"
    try:
        await asyncio.to_thread(stack.apply, body)
    except Exception as exc:  # the kubernetes client's ApiException
        assert "spec.region is immutable" in str(exc)
    else:
        raise AssertionError("changing spec.region was accepted")
    assert stack.gcp.log.writes() == []
