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
        # kubectl describe's "From" column: the operator, not the framework it is built on.
        assert "reportingComponent: runnet" in events.stdout and "component: kopf" not in events.stdout
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


async def test_delete_while_a_resync_is_writing_finishes_promptly_and_recreates_nothing(stack: Stack) -> None:
    """A deletion that lands while the timer's drift repair waits on a GCP operation.

    kopf will not release the finalizer until the timer has stopped; the deletion must not wait for
    a long poll, and the repair that was in flight must not bring anything back after the teardown.
    """
    await asyncio.to_thread(deploy_service, stack.clients, PROJECT, REGION, "direct-vpc-egress")
    body = yaml.safe_load(Path(EXAMPLE).read_text())
    body["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    async with operator(stack, resync=1):
        await asyncio.to_thread(stack.apply, body)
        await asyncio.to_thread(stack.wait_ready, "EgressGateway", "fixed-ip")
        # Slow every operation down so the repair is still running at deletion, then drift by hand.
        stack.gcp.config.operation_latency = 1.0
        stack.gcp.log.clear()
        router = stack.clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
        router.nats[0].min_ports_per_vm = 2048
        await asyncio.to_thread(
            lambda: stack.clients.routers.update(
                project=PROJECT, region=REGION, router="router-cloud-run", router_resource=router
            ).result()
        )
        for _ in range(100):
            if any(e.method_id == "compute.routers.patch" for e in stack.gcp.log.writes()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the resync did not start repairing the NAT")
        await asyncio.to_thread(stack.delete, "EgressGateway", "fixed-ip")
        # About 6 s here; kopf's default poll of a stopping timer held it for over 60 s.
        await asyncio.to_thread(stack.wait_gone, "EgressGateway", "fixed-ip", 30)
        await asyncio.sleep(3)  # anything still running in the operator would write by now
    left = sorted(p for p, _ in stack.gcp.store.items() if "/operations/" not in p)
    assert left == [f"projects/{PROJECT}/locations/{REGION}/services/direct-vpc-egress"]


def drain_pool(stack: Stack) -> list[str]:
    router = stack.clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    return [ip.rsplit("/", 1)[-1] for n in router.nats for ip in n.drain_nat_ips]


@needs_kubectl
async def test_rotation_drains_then_retains_without_another_edit(stack: Stack) -> None:
    """The operator looks again when a drain ends (not a resync later): the IP leaves the NAT on time."""
    await asyncio.to_thread(deploy_service, stack.clients, PROJECT, REGION, "direct-vpc-egress")
    body = yaml.safe_load(Path(EXAMPLE).read_text())
    body["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2"]
    body["spec"]["nat"]["drainTimeout"] = "3s"
    async with operator(stack):  # resync 120 s: only the drain's own requeue can end it within the test
        await asyncio.to_thread(stack.apply, body)
        ready = await asyncio.to_thread(stack.wait_ready, "EgressGateway", "fixed-ip")
        old = ready["status"]["natIPs"][1]
        stack.gcp.extra["nat_ip_endpoints"] = {old: 4}  # connections that stay open: only the timeout ends it
        body["spec"]["nat"]["addresses"] = ["static-ip"]
        await asyncio.to_thread(stack.apply, body)
        for _ in range(100):
            if drain_pool(stack) == ["static-ip-2"]:
                break
            await asyncio.sleep(0.05)
        wide = await asyncio.to_thread(stack.kubectl, "get", "egw", "fixed-ip", "-o", "wide")
        assert wide.returncode == 0, wide.stderr
        assert "DRAINING" in wide.stdout.splitlines()[0] and old in wide.stdout, wide.stdout
        plain = await asyncio.to_thread(stack.kubectl, "get", "egw", "fixed-ip")
        assert plain.stdout.split()[:5] == ["NAME", "READY", "NAT", "IPS", "SERVICES"], plain.stdout
        for _ in range(200):
            if drain_pool(stack) == []:
                break
            await asyncio.sleep(0.05)
        assert drain_pool(stack) == [] and nat_ips(stack) == ["static-ip"]
        for _ in range(100):
            got = await asyncio.to_thread(stack.get, "EgressGateway", "fixed-ip")
            states = {a["name"]: a["state"] for a in (got or {}).get("status", {}).get("addresses", [])}
            if states.get("static-ip-2") == "Retained":
                break
            await asyncio.sleep(0.05)
        assert states == {"static-ip": "Active", "static-ip-2": "Retained"}
