"""EgressGateway IP rotation: an address taken out of spec.nat.addresses drains before it leaves the NAT.

Against the GCP emulator: its ``nat_ip_endpoints`` knob says how many endpoints still hold
mappings on an IP (what getNatIpInfo reports as IN_USE), so both ways out of draining show.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from google.cloud import run_v2

from runnet.controllers import egress
from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.operator.conftest import Driver, deploy_service, example

PROJECT, REGION = "my-project", "asia-northeast1"


@pytest.fixture
def service(clients: Clients) -> run_v2.Service:
    return deploy_service(clients, PROJECT, REGION, "direct-vpc-egress")


def gateway(timeout: str | None = None) -> dict[str, Any]:
    body = example("egress-fixed-ip.yaml")
    body["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2"]
    if timeout is not None:
        body["spec"]["nat"]["drainTimeout"] = timeout
    return body


async def respec(driver: Driver, addresses: list[str]) -> Any:
    driver.body["spec"]["nat"]["addresses"] = addresses
    driver.body["metadata"]["generation"] += 1
    return await driver.reconcile()


async def started(driver_factory: Any, body: dict[str, Any]) -> tuple[Driver, list[str]]:
    driver = driver_factory(egress.reconcile, egress.finalize, body)
    for _ in range(3):
        await driver.reconcile()
    assert driver.condition()["status"] == "True", driver.condition()
    return driver, list(driver.status["natIPs"])


def pools(clients: Clients) -> tuple[list[str], list[str]]:
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    (nat,) = router.nats
    return [ip.rsplit("/", 1)[-1] for ip in nat.nat_ips], [ip.rsplit("/", 1)[-1] for ip in nat.drain_nat_ips]


def states(driver: Driver) -> dict[str, str]:
    return {a["name"]: a["state"] for a in driver.status["addresses"]}


def entry(driver: Driver, name: str) -> dict[str, str]:
    return next(a for a in driver.status["addresses"] if a["name"] == name)


def hold(gcp: GCPEmulator, ip: str, endpoints: int) -> None:
    """That many endpoints still hold mappings on the IP (what GCP would see from running instances)."""
    gcp.extra.setdefault("nat_ip_endpoints", {})[ip] = endpoints


async def test_a_removed_address_drains_then_leaves_once_unused(driver_factory, service, clients, gcp) -> None:
    driver, (first, second) = await started(driver_factory, gateway())
    assert states(driver) == {"static-ip": "Active", "static-ip-2": "Active"}
    hold(gcp, second, 3)
    outcome = await respec(driver, ["static-ip"])
    # One router write moved it from natIps to drainNatIps: no new connections, the open ones continue.
    assert pools(clients) == (["static-ip"], ["static-ip-2"])
    assert driver.status["natIPs"] == [first] and driver.status["summary"]["draining"] == second
    assert driver.condition()["status"] == "True" and f"draining {second}" in driver.condition()["message"]
    draining = entry(driver, "static-ip-2")
    assert draining["state"] == "Draining" and draining["since"] and draining["drainUntil"]
    began = datetime.datetime.fromisoformat(draining["since"])
    until = datetime.datetime.fromisoformat(draining["drainUntil"])
    assert until - began == datetime.timedelta(minutes=15)  # the default drainTimeout
    assert driver.status["retainedAddresses"] == []
    (event,) = [e for e in outcome.events if e.reason == "AddressDraining"]
    assert second in event.message and "15m" in event.message
    label = clients.addresses.get(project=PROJECT, region=REGION, address="static-ip-2").labels["runnet-nat-ip"]
    assert label == f"draining-{int(began.timestamp())}"
    # Converged while draining: reads only (the IP's usage among them), no event, and a look again soon.
    gcp.log.clear()
    outcome = await driver.reconcile()
    assert gcp.log.writes() == [] and outcome.events == []
    assert "compute.routers.getNatIpInfo" in {e.method_id for e in gcp.log.reads()}
    assert outcome.retry_after is not None and outcome.retry_after <= 30
    # The last connection closes: GCP reports the IP unused, so it leaves the NAT and is retained.
    hold(gcp, second, 0)
    outcome = await driver.reconcile()
    assert pools(clients) == (["static-ip"], [])
    assert states(driver) == {"static-ip": "Active", "static-ip-2": "Retained"}
    assert driver.status["retainedAddresses"] == [{"name": "static-ip-2", "ip": second}]
    assert driver.status["summary"]["draining"] == ""
    assert [e.reason for e in outcome.events if e.reason.startswith("Address")] == ["AddressRetained"]
    gcp.log.clear()
    outcome = await driver.reconcile()
    assert gcp.log.writes() == [] and outcome.retry_after is None
    assert "compute.routers.getNatIpInfo" not in {e.method_id for e in gcp.log.reads()}


async def test_drain_times_out_and_a_restarted_operator_knows_when_it_began(
    driver_factory, service, clients, gcp
) -> None:
    driver, (_, second) = await started(driver_factory, gateway("2s"))
    hold(gcp, second, 5)  # connections that never close
    outcome = await respec(driver, ["static-ip"])
    began = entry(driver, "static-ip-2")["since"]
    assert entry(driver, "static-ip-2")["state"] == "Draining"
    assert outcome.retry_after is not None and outcome.retry_after <= 3
    # The operator dies: a new one has no status at all, and still reads when the drain began from GCP.
    restarted = driver_factory(egress.reconcile, egress.finalize, driver.body)
    await restarted.reconcile()
    assert entry(restarted, "static-ip-2")["state"] == "Draining"
    assert entry(restarted, "static-ip-2")["since"] == began
    await asyncio.sleep(2.2)
    await restarted.reconcile()
    assert pools(clients) == (["static-ip"], [])
    assert entry(restarted, "static-ip-2")["state"] == "Retained"
    assert restarted.condition()["status"] == "True"


async def test_an_address_listed_again_while_draining_is_active_at_once(driver_factory, service, clients, gcp) -> None:
    driver, ips = await started(driver_factory, gateway())
    hold(gcp, ips[1], 1)
    await respec(driver, ["static-ip"])
    assert pools(clients) == (["static-ip"], ["static-ip-2"])
    outcome = await respec(driver, ["static-ip", "static-ip-2"])
    assert pools(clients) == (["static-ip", "static-ip-2"], [])
    assert driver.status["natIPs"] == ips and states(driver) == {"static-ip": "Active", "static-ip-2": "Active"}
    assert driver.condition()["status"] == "True"
    assert [e.reason for e in outcome.events if e.reason.startswith("Address")] == ["AddressActive"]
    label = clients.addresses.get(project=PROJECT, region=REGION, address="static-ip-2").labels["runnet-nat-ip"]
    assert label.startswith("active-")
    assert entry(driver, "static-ip-2")["since"] != ""
    gcp.log.clear()
    outcome = await driver.reconcile()
    assert gcp.log.writes() == [] and outcome.retry_after is None
    # Out again later: a new drain, from now.
    await respec(driver, ["static-ip"])
    assert pools(clients) == (["static-ip"], ["static-ip-2"])


async def test_zero_drain_timeout_removes_at_once(driver_factory, service, clients, gcp) -> None:
    driver, (_, second) = await started(driver_factory, gateway("0s"))
    hold(gcp, second, 2)  # in use, but the spec asks for no drain
    outcome = await respec(driver, ["static-ip"])
    assert pools(clients) == (["static-ip"], [])
    assert states(driver) == {"static-ip": "Active", "static-ip-2": "Retained"}
    assert [e.reason for e in outcome.events if e.reason.startswith("Address")] == ["AddressRetained"]
    gcp.log.clear()
    assert (await driver.reconcile()).retry_after is None and gcp.log.writes() == []


async def test_deleting_a_gateway_mid_drain_keeps_the_draining_address(driver_factory, service, clients, gcp) -> None:
    driver, (_, second) = await started(driver_factory, gateway())
    hold(gcp, second, 1)
    await respec(driver, ["static-ip"])
    assert (await driver.finalize()).retry_after is None
    left = {a.name: a.address for a in clients.addresses.list(project=PROJECT, region=REGION)}
    assert left["static-ip-2"] == second  # addressDeletionPolicy Retain: allowlisted, never lost
