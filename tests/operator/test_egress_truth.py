"""EgressGateway status off the happy path: what runnet owns comes from GCP, natIPs from the NAT itself."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import compute_v1, run_v2

from runnet.controllers import egress
from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.operator.conftest import Driver, deploy_service, example

PROJECT, REGION = "my-project", "asia-northeast1"
ROUTER = "router-cloud-run"


@pytest.fixture
def gateway() -> dict[str, Any]:
    return example("egress-fixed-ip.yaml")


@pytest.fixture
def service(clients: Clients) -> run_v2.Service:
    return deploy_service(clients, PROJECT, REGION, "direct-vpc-egress")


def make(driver_factory: Any, body: dict[str, Any]) -> Driver:
    return driver_factory(egress.reconcile, egress.finalize, body)  # type: ignore[no-any-return]


async def converge(driver: Driver, passes: int = 4) -> None:
    for _ in range(passes):
        await driver.reconcile()
        if driver.condition()["status"] == "True":
            return


async def edit(driver: Driver, **changes: Any) -> Any:
    """A new generation of the spec (dotted paths), reconciled once."""
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = driver.body["spec"]
        for p in parents:
            node = node[p]
        node[leaf] = value
    driver.body["metadata"]["generation"] += 1
    return await driver.reconcile()


def address(clients: Clients, name: str) -> compute_v1.Address:
    return clients.addresses.get(project=PROJECT, region=REGION, address=name)


def reported_by_gcp(clients: Clients, nat: str = "nat-cloud-run") -> list[str]:
    status = clients.routers.get_router_status(project=PROJECT, region=REGION, router=ROUTER).result
    entry = next(s for s in status.nat_status if s.name == nat)
    return [*entry.user_allocated_nat_ips, *entry.auto_allocated_nat_ips]


async def test_an_invalid_pass_or_a_lost_status_never_forgets_a_retained_address(
    driver_factory, gateway, service, clients, gcp: GCPEmulator
) -> None:
    gateway["spec"]["nat"]["addresses"] = ["a1", "a2"]
    gateway["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    driver = make(driver_factory, gateway)
    await converge(driver)
    second = address(clients, "a2").address
    # One apply drops a2 and breaks the spec: nothing is written, a2 stays in the NAT.
    gcp.log.clear()
    await edit(driver, nat__addresses=["a1"], subnet__ipCidrRange="10.10.10.5/24")
    assert driver.condition()["reason"] == "InvalidSpec" and "host bits" in driver.condition()["message"]
    assert gcp.log.writes() == []
    # The status is lost altogether (a restore, a re-created object): GCP still says what runnet owns.
    driver.status = {}
    await edit(driver, subnet__ipCidrRange="10.10.10.0/24")
    await converge(driver)
    assert driver.status["retainedAddresses"] == [{"name": "a2", "ip": second}]
    assert [e.reason for e in driver.events].count("AddressRetained") == 1
    assert address(clients, "a2").status == "RESERVED"
    assert (await driver.finalize()).retry_after is None
    assert [p for p, _ in gcp.store.items() if "/addresses/" in p] == []


async def test_nat_ips_are_what_gcp_reports_for_a_foreign_nat(driver_factory, gateway, service, clients, gcp) -> None:
    theirs = compute_v1.Router(
        name=ROUTER,
        network=f"projects/{PROJECT}/global/networks/vpc-cloud-run",
        nats=[
            compute_v1.RouterNat(
                name="nat-cloud-run",
                nat_ip_allocate_option="AUTO_ONLY",
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            )
        ],
    )
    clients.networks.insert(
        project=PROJECT, network_resource=compute_v1.Network(name="vpc-cloud-run", auto_create_subnetworks=False)
    ).result()
    clients.routers.insert(project=PROJECT, region=REGION, router_resource=theirs).result()
    router_path = f"projects/{PROJECT}/regions/{REGION}/routers/{ROUTER}"
    gcp.extra.setdefault("nat_vm_endpoints", {})[(router_path, "nat-cloud-run")] = 3  # VMs make GCP allocate IPs
    auto = reported_by_gcp(clients)
    assert len(auto) == 1
    driver = make(driver_factory, gateway)
    gcp.log.clear()
    await driver.reconcile()
    ready = driver.condition()
    assert (ready["status"], ready["reason"]) == ("False", "Conflict")
    assert driver.status["natIPs"] == auto and driver.status["summary"]["natIPs"] == ",".join(auto)
    assert f"the NAT translates to {auto[0]}" in ready["message"] and "static-ip (not reserved)" in ready["message"]
    assert gcp.log.writes() == [], "a conflict found while observing stops every write"


async def test_a_blocked_edit_shows_the_ips_the_nat_still_uses(driver_factory, gateway, service, clients, gcp) -> None:
    driver = make(driver_factory, gateway)
    await converge(driver)
    first = address(clients, "static-ip").address
    await edit(driver, nat__addresses=["static-ip-2"], nat__maxPortsPerVm=128)  # invalid without dynamic ports
    assert driver.condition()["reason"] == "InvalidSpec"
    assert reported_by_gcp(clients) == [first]
    # The invalid pass leaves natIPs and the retained list as they were observed last.
    assert driver.status["natIPs"] == [first]
    await edit(driver, nat__maxPortsPerVm=None)
    await converge(driver)
    second = address(clients, "static-ip-2").address
    assert driver.status["natIPs"] == reported_by_gcp(clients) == [second]
    retained = [a["ip"] for a in driver.status["retainedAddresses"]]
    assert retained == [first] and not set(retained) & set(driver.status["natIPs"])


async def test_a_subnet_grows_in_place_and_never_shrinks(driver_factory, gateway, service, clients, gcp) -> None:
    driver = make(driver_factory, gateway)
    await converge(driver)
    await edit(driver, subnet__ipCidrRange="10.10.10.0/23")
    await converge(driver)
    assert driver.condition()["status"] == "True"
    subnet = clients.subnetworks.get(project=PROJECT, region=REGION, subnetwork="subnet-cloud-run")
    assert subnet.ip_cidr_range == "10.10.10.0/23"
    (grown,) = [e for e in driver.events if e.reason == "SubnetExpanded"]
    assert "from 10.10.10.0/24 to 10.10.10.0/23" in grown.message
    gcp.log.clear()
    await edit(driver, subnet__ipCidrRange="10.10.10.0/25")
    message = driver.condition()["message"]
    assert driver.condition()["reason"] == "InvalidSpec" and "never shrink" in message and "10.10.10.0/23" in message
    await edit(driver, subnet__ipCidrRange="10.10.10.8/23")
    assert "has host bits set: use 10.10.10.0/23" in driver.condition()["message"]
    assert gcp.log.writes() == []


async def test_subnet_capacity_names_the_range_to_grow_to(driver_factory, gateway, clients) -> None:
    deploy_service(
        clients, PROJECT, REGION, "direct-vpc-egress", scaling=run_v2.RevisionScaling(max_instance_count=300)
    )
    driver = make(driver_factory, gateway)
    await converge(driver)
    capacity = driver.condition("SubnetCapacity")
    assert capacity["status"] == "False"
    assert "set spec.subnet.ipCidrRange to 10.10.8.0/22" in capacity["message"], capacity
    assert driver.condition()["status"] == "True", "capacity is advice, not a blocker"


async def test_a_small_subnet_only_warns(driver_factory, gateway, service, clients) -> None:
    gateway["spec"]["subnet"]["ipCidrRange"] = "10.10.10.0/28"
    gateway["spec"]["services"] = []
    driver = make(driver_factory, gateway)
    await converge(driver)
    assert driver.condition()["status"] == "True"
    assert driver.condition("SubnetCapacity")["status"] == "False"
    assert "smaller than the /26 GCP recommends" in driver.condition("SubnetCapacity")["message"]


async def test_a_missing_service_waits_and_the_rest_converges(driver_factory, gateway, service, clients, gcp) -> None:
    gateway["spec"]["services"].append({"name": "later"})
    driver = make(driver_factory, gateway)
    await converge(driver)
    ready = driver.condition()
    assert (ready["status"], ready["reason"]) == ("False", "WaitingForService")
    assert "later does not exist" in ready["message"]
    assert driver.status["natIPs"] == [address(clients, "static-ip").address]
    entries = {s["name"]: s for s in driver.status["services"]}
    assert entries["direct-vpc-egress"]["ready"] and entries["direct-vpc-egress"]["message"] == ""
    assert not entries["later"]["ready"] and "does not exist" in entries["later"]["message"]
    assert driver.status["summary"]["services"] == "1/2"
    assert {c["type"] for c in driver.status["conditions"]} >= {"Reconciling"}
    deploy_service(clients, PROJECT, REGION, "later")
    await converge(driver)
    assert driver.condition()["status"] == "True" and driver.status["summary"]["services"] == "2/2"


async def test_a_warning_condition_posts_one_event_not_one_per_pass(driver_factory, gateway, service) -> None:
    gateway["spec"]["subnet"]["ipCidrRange"] = "10.10.10.3/24"
    driver = make(driver_factory, gateway)
    for _ in range(3):
        await driver.reconcile()
    warnings = [e for e in driver.events if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["InvalidSpec"] and "host bits" in warnings[0].message
    stalled = driver.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")


async def test_an_existing_subnet_with_another_range_is_a_conflict(driver_factory, gateway, service, clients, gcp):
    clients.networks.insert(
        project=PROJECT, network_resource=compute_v1.Network(name="vpc-cloud-run", auto_create_subnetworks=False)
    ).result()
    subnet = compute_v1.Subnetwork(
        name="subnet-cloud-run",
        network=f"projects/{PROJECT}/global/networks/vpc-cloud-run",
        ip_cidr_range="10.20.0.0/24",
    )
    clients.subnetworks.insert(project=PROJECT, region=REGION, subnetwork_resource=subnet).result()
    driver = make(driver_factory, gateway)
    gcp.log.clear()
    await driver.reconcile()
    ready = driver.condition()
    assert ready["reason"] == "Conflict"
    assert "10.10.10.0/24" in ready["message"] and "10.20.0.0/24" in ready["message"]
    assert gcp.log.writes() == []


async def test_a_second_nat_beside_an_all_subnetworks_nat_is_a_conflict(driver_factory, gateway, service, clients, gcp):
    first = make(driver_factory, gateway)
    await converge(first)
    other = example("egress-fixed-ip.yaml")
    other["metadata"]["name"] = "second"
    other["spec"]["router"]["name"] = "router-two"
    other["spec"]["nat"].update(name="nat-two", addresses=["ip-two"], coverage="GatewaySubnet")
    other["spec"]["services"] = []
    second = make(driver_factory, other)
    second.body["metadata"]["uid"] = "9a9a9a9a-2222-4c2e-9d55-5d1b0c8a7e21"
    gcp.log.clear()
    await second.reconcile()
    ready = second.condition()
    assert ready["reason"] == "Conflict" and "nat-cloud-run of router router-cloud-run covers all" in ready["message"]
    assert gcp.log.writes() == []


async def test_coverage_defaults_to_the_gateway_subnet_on_someone_elses_network(
    driver_factory, gateway, service, clients
) -> None:
    clients.networks.insert(
        project=PROJECT, network_resource=compute_v1.Network(name="vpc-cloud-run", auto_create_subnetworks=False)
    ).result()
    driver = make(driver_factory, gateway)
    await converge(driver)
    assert driver.condition()["status"] == "True" and driver.status["coverage"] == "GatewaySubnet"
    (nat,) = clients.routers.get(project=PROJECT, region=REGION, router=ROUTER).nats
    assert nat.source_subnetwork_ip_ranges_to_nat == "LIST_OF_SUBNETWORKS"
    assert [s.name.rsplit("/", 1)[-1] for s in nat.subnetworks] == ["subnet-cloud-run"]


async def test_coverage_defaults_to_all_subnetworks_on_its_own_network(driver_factory, gateway, service, clients):
    driver = make(driver_factory, gateway)
    await converge(driver)
    assert driver.status["coverage"] == "AllSubnetworks"
    (nat,) = clients.routers.get(project=PROJECT, region=REGION, router=ROUTER).nats
    assert nat.source_subnetwork_ip_ranges_to_nat == "ALL_SUBNETWORKS_ALL_IP_RANGES"


async def test_a_region_that_does_not_exist_is_refused_before_any_write(driver_factory, gateway, service, gcp) -> None:
    gateway["spec"]["region"] = "asia-northeest1"
    driver = make(driver_factory, gateway)
    gcp.log.clear()
    await driver.reconcile()
    ready = driver.condition()
    assert ready["reason"] == "InvalidSpec"
    assert "asia-northeest1 is not a Google Cloud region (did you mean asia-northeast1?)" in ready["message"]
    assert gcp.log.writes() == []


async def test_an_address_of_another_gateway_is_a_conflict_naming_it(driver_factory, gateway, service, gcp) -> None:
    first = make(driver_factory, gateway)
    await converge(first)
    other = example("egress-fixed-ip.yaml")
    other["metadata"]["name"] = "thief"
    other["spec"].update(network={"name": "vpc-two"}, subnet={"name": "sub-two", "ipCidrRange": "10.30.0.0/24"})
    other["spec"]["router"]["name"] = "router-two"
    other["spec"]["nat"]["name"] = "nat-two"
    other["spec"]["services"] = []
    thief = make(driver_factory, other)
    gcp.log.clear()
    await thief.reconcile()
    ready = thief.condition()
    assert ready["reason"] == "Conflict"
    assert "Address static-ip is managed by EgressGateway default/fixed-ip" in ready["message"]
    assert gcp.log.writes() == []


async def test_teardown_events_follow_the_order_of_deletion(driver_factory, gateway, service) -> None:
    driver = make(driver_factory, gateway)
    await converge(driver)
    outcome = await driver.finalize()
    order = [e.message.split()[1] for e in outcome.events if e.reason == "Deleted"]
    assert order.index("Subnetwork") < order.index("Network") and order.index("Router") < order.index("Network")
    assert order.index("CloudNAT") < order.index("Router")
    (kept,) = [e.message for e in outcome.events if e.reason == "AddressesRetained"]
    assert f"gcloud compute addresses delete static-ip --region {REGION} --project {PROJECT}" in kept
