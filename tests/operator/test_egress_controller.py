"""EgressGateway reconcile against the GCP emulator, through the official clients over HTTP."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from google.cloud import compute_v1, run_v2

from runnet.controllers import egress
from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.operator.conftest import Driver, deploy_service, example

PROJECT, REGION = "my-project", "asia-northeast1"


@pytest.fixture
def gateway() -> dict[str, Any]:
    return example("egress-fixed-ip.yaml")


@pytest.fixture
def service(clients: Clients) -> run_v2.Service:
    return deploy_service(clients, PROJECT, REGION, "direct-vpc-egress")


def make(driver_factory: Any, body: dict[str, Any]) -> Driver:
    return driver_factory(egress.reconcile, egress.finalize, body)  # type: ignore[no-any-return]


async def converge(driver: Driver, passes: int = 3) -> None:
    for _ in range(passes):
        await driver.reconcile()
        if driver.condition()["status"] == "True":
            return


async def test_reference_topology_gets_a_fixed_egress_ip(driver_factory, gateway, service, clients, gcp) -> None:
    driver = make(driver_factory, gateway)
    await converge(driver)
    assert driver.condition()["status"] == "True", driver.condition()
    address = clients.addresses.get(project=PROJECT, region=REGION, address="static-ip")
    assert driver.status["natIPs"] == [address.address]
    assert driver.status["summary"] == {"natIPs": address.address, "draining": "", "services": "1/1"}
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    (nat,) = router.nats
    assert nat.name == "nat-cloud-run" and nat.nat_ips[0].endswith("/addresses/static-ip")
    assert nat.source_subnetwork_ip_ranges_to_nat == "ALL_SUBNETWORKS_ALL_IP_RANGES"
    svc = clients.run_services.get_service(name=service.name)
    iface = svc.template.vpc_access.network_interfaces[0]
    assert (iface.network, iface.subnetwork) == ("vpc-cloud-run", "subnet-cloud-run")
    assert svc.template.vpc_access.egress == run_v2.VpcAccess.VpcEgress.ALL_TRAFFIC
    assert {c["type"]: c["status"] for c in driver.status["conditions"]} == {
        "Ready": "True",
        "SubnetCapacity": "True",
        "NATCapacity": "True",
    }
    owned = {r["kind"]: r["owned"] for r in driver.status["resources"]}
    assert owned["Network"] and owned["CloudNAT"] and not owned["CloudRunService"]


async def test_converged_gateway_costs_zero_writes(driver_factory, gateway, service, gcp: GCPEmulator) -> None:
    driver = make(driver_factory, gateway)
    await converge(driver)
    gcp.log.clear()
    outcome = await driver.reconcile()
    assert gcp.log.writes() == []
    managed = len(driver.status["resources"])
    assert len(gcp.log.reads()) <= managed, [e.path for e in gcp.log.reads()]
    assert outcome.events == []


async def test_drift_is_repaired(driver_factory, gateway, service, clients, gcp) -> None:
    driver = make(driver_factory, gateway)
    await converge(driver)
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    router.nats = []
    clients.routers.update(project=PROJECT, region=REGION, router="router-cloud-run", router_resource=router).result()
    svc = clients.run_services.get_service(name=service.name)
    svc.template.vpc_access.egress = run_v2.VpcAccess.VpcEgress.PRIVATE_RANGES_ONLY
    clients.run_services.update_service(service=svc).result(timeout=30)
    await driver.reconcile()
    assert driver.condition()["status"] == "True"
    assert len(clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run").nats) == 1
    svc = clients.run_services.get_service(name=service.name)
    assert svc.template.vpc_access.egress == run_v2.VpcAccess.VpcEgress.ALL_TRAFFIC
    assert {e.reason for e in driver.events} >= {"DriftRepaired"}


async def test_deleting_keeps_the_allowlisted_ip_by_default(driver_factory, gateway, service, clients, gcp) -> None:
    driver = make(driver_factory, gateway)
    await converge(driver)
    ip = driver.status["natIPs"][0]
    outcome = await driver.finalize()
    assert outcome.retry_after is None
    assert clients.addresses.get(project=PROJECT, region=REGION, address="static-ip").address == ip
    left = sorted(p for p, _ in gcp.store.items() if p.startswith(f"projects/{PROJECT}/") and "/operations/" not in p)
    assert left == [
        f"projects/{PROJECT}/locations/{REGION}/services/direct-vpc-egress",
        f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip",
    ]
    svc = clients.run_services.get_service(name=service.name)
    assert not svc.template.vpc_access.network_interfaces and "runnet.dev/egress-gateway" not in svc.annotations
    assert "AddressesRetained" in {e.reason for e in driver.events}
    # A gateway re-created under the same name takes the same IP back.
    again = make(driver_factory, gateway)
    await converge(again)
    assert again.status["natIPs"] == [ip]


async def test_deleting_releases_addresses_when_asked(driver_factory, gateway, service, clients, gcp) -> None:
    gateway["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    driver = make(driver_factory, gateway)
    await converge(driver)
    assert (await driver.finalize()).retry_after is None
    assert gcp.store.get(f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip") is None


async def test_orphan_deletes_nothing(driver_factory, gateway, service, gcp) -> None:
    gateway["spec"]["deletionPolicy"] = "Orphan"
    driver = make(driver_factory, gateway)
    await converge(driver)
    gcp.log.clear()
    await driver.finalize()
    assert gcp.log.writes() == []


async def test_existing_unowned_resources_are_used_not_modified(driver_factory, gateway, service, clients) -> None:
    net = compute_v1.Network(name="vpc-cloud-run", auto_create_subnetworks=False, description="platform team")
    clients.networks.insert(project=PROJECT, network_resource=net).result()
    driver = make(driver_factory, gateway)
    await converge(driver)
    assert driver.condition()["status"] == "True"
    await driver.finalize()
    assert clients.networks.get(project=PROJECT, network="vpc-cloud-run").description == "platform team"


async def test_foreign_nat_is_a_conflict_until_adopted(driver_factory, gateway, service, clients, gcp) -> None:
    gateway["spec"]["nat"]["coverage"] = "GatewaySubnet"
    clients.networks.insert(
        project=PROJECT, network_resource=compute_v1.Network(name="vpc-cloud-run", auto_create_subnetworks=False)
    ).result()
    for name, cidr in (("subnet-cloud-run", "10.10.10.0/24"), ("batch", "10.20.0.0/24")):
        sub = compute_v1.Subnetwork(
            name=name, network=f"projects/{PROJECT}/global/networks/vpc-cloud-run", ip_cidr_range=cidr
        )
        clients.subnetworks.insert(project=PROJECT, region=REGION, subnetwork_resource=sub).result()

    def only(subnet: str) -> dict[str, Any]:
        return {
            "source_subnetwork_ip_ranges_to_nat": "LIST_OF_SUBNETWORKS",
            "subnetworks": [
                compute_v1.RouterNatSubnetworkToNat(
                    name=f"projects/{PROJECT}/regions/{REGION}/subnetworks/{subnet}",
                    source_ip_ranges_to_nat=["ALL_IP_RANGES"],
                )
            ],
        }

    router = compute_v1.Router(
        name="router-cloud-run",
        network=f"projects/{PROJECT}/global/networks/vpc-cloud-run",
        nats=[
            compute_v1.RouterNat(name="nat-cloud-run", nat_ip_allocate_option="AUTO_ONLY", **only("subnet-cloud-run")),
            compute_v1.RouterNat(name="someone-elses", nat_ip_allocate_option="AUTO_ONLY", **only("batch")),
        ],
    )
    clients.routers.insert(project=PROJECT, region=REGION, router_resource=router).result()
    driver = make(driver_factory, gateway)
    await driver.reconcile()
    ready = driver.condition()
    assert (ready["status"], ready["reason"]) == ("False", "Conflict")
    assert "nat-cloud-run" in ready["message"] and "adopt" in ready["message"]
    driver.body["spec"]["nat"]["adopt"] = True
    await converge(driver)
    assert driver.condition()["status"] == "True"
    nats = {n.name: n for n in clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run").nats}
    assert set(nats) == {"nat-cloud-run", "someone-elses"}
    assert nats["nat-cloud-run"].nat_ip_allocate_option == "MANUAL_ONLY"
    # Deleting the gateway removes only its NAT; the router and the other NAT stay.
    await driver.finalize()
    left = clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    assert [n.name for n in left.nats] == ["someone-elses"]


async def test_service_leaving_the_list_is_restored(driver_factory, gateway, service, clients) -> None:
    connector = f"projects/{PROJECT}/locations/{REGION}/connectors/old-connector"
    other = deploy_service(clients, PROJECT, REGION, "second", vpc_access=run_v2.VpcAccess(connector=connector))
    gateway["spec"]["services"].append({"name": "second"})
    driver = make(driver_factory, gateway)
    await converge(driver)
    entry = next(s for s in driver.status["services"] if s["name"] == "second")
    assert "old-connector" in entry["message"] and "delete the connector" in entry["message"]
    driver.body["spec"]["services"] = gateway["spec"]["services"][:1]
    await driver.reconcile()
    restored = clients.run_services.get_service(name=other.name)
    assert restored.template.vpc_access.connector == connector
    assert not restored.template.vpc_access.network_interfaces


def _bad(mutate: Any) -> dict[str, Any]:
    body = example("egress-fixed-ip.yaml")
    mutate(body["spec"])
    return body


def _set(path: str, value: Any) -> Any:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for p in parents:
            node = node[p]
        node[leaf] = value

    return mutate


INVALID = [
    ("host bits set", _set("subnet.ipCidrRange", "10.10.10.7/24"), "has host bits set: use 10.10.10.0/24"),
    ("missing range for a new subnet", _set("subnet.ipCidrRange", None), "ipCidrRange is required"),
    ("max ports without dynamic allocation", _set("nat.maxPortsPerVm", 128), "enableDynamicPortAllocation"),
    ("loopback range", _set("subnet.ipCidrRange", "127.0.0.0/24"), "overlaps 127.0.0.0/8"),
]


@pytest.mark.parametrize(("reason", "mutate", "message"), INVALID, ids=[i[0] for i in INVALID])
async def test_invalid_spec_is_refused_without_writes(driver_factory, service, gcp, reason, mutate, message) -> None:
    driver = make(driver_factory, _bad(mutate))
    gcp.log.clear()
    await driver.reconcile()
    ready = driver.condition()
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), ready
    assert message in ready["message"]
    assert gcp.log.writes() == []


async def test_internal_or_foreign_region_or_used_addresses_are_refused(driver_factory, service, clients, gcp) -> None:
    clients.networks.insert(
        project=PROJECT, network_resource=compute_v1.Network(name="other", auto_create_subnetworks=False)
    ).result()
    clients.subnetworks.insert(
        project=PROJECT,
        region=REGION,
        subnetwork_resource=compute_v1.Subnetwork(
            name="other-sub", network=f"projects/{PROJECT}/global/networks/other", ip_cidr_range="10.99.0.0/24"
        ),
    ).result()
    internal = compute_v1.Address(
        name="internal-ip",
        address_type="INTERNAL",
        subnetwork=f"projects/{PROJECT}/regions/{REGION}/subnetworks/other-sub",
    )
    clients.addresses.insert(project=PROJECT, region=REGION, address_resource=internal).result()
    clients.addresses.insert(
        project=PROJECT, region="us-central1", address_resource=compute_v1.Address(name="far-ip")
    ).result()
    cases = {"internal-ip": "is INTERNAL", "far-ip": "exists in us-central1"}
    for name, message in cases.items():
        body = copy.deepcopy(example("egress-fixed-ip.yaml"))
        body["spec"]["nat"]["addresses"] = [name]
        driver = make(driver_factory, body)
        gcp.log.clear()
        await driver.reconcile()
        assert driver.condition()["reason"] == "InvalidSpec" and message in driver.condition()["message"]
        assert gcp.log.writes() == []


def _nat_addresses(clients: Clients) -> list[str]:
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    return [ip.rsplit("/", 1)[-1] for nat in router.nats for ip in nat.nat_ips]


def _give_to_another_nat(clients: Clients, address: str) -> None:
    """Someone uses the address in a NAT of their own, in another network."""
    clients.networks.insert(
        project=PROJECT, network_resource=compute_v1.Network(name="elsewhere", auto_create_subnetworks=False)
    ).result()
    theirs = compute_v1.Router(
        name="their-router",
        network=f"projects/{PROJECT}/global/networks/elsewhere",
        nats=[
            compute_v1.RouterNat(
                name="their-nat",
                nat_ip_allocate_option="MANUAL_ONLY",
                nat_ips=[f"projects/{PROJECT}/regions/{REGION}/addresses/{address}"],
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            )
        ],
    )
    clients.routers.insert(project=PROJECT, region=REGION, router_resource=theirs).result()


async def _respec(driver: Driver, addresses: list[str]) -> None:
    driver.body["spec"]["nat"]["addresses"] = addresses
    driver.body["metadata"]["generation"] += 1
    await converge(driver)
    assert driver.condition()["status"] == "True", driver.condition()


async def test_an_unlisted_address_stays_reserved_is_reported_and_goes_with_the_gateway(
    driver_factory, gateway, service, clients, gcp
) -> None:
    gateway["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2"]
    gateway["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    gateway["spec"]["nat"]["drainTimeout"] = "0s"  # no drain (tests/operator/test_egress_drain.py covers it)
    driver = make(driver_factory, gateway)
    await converge(driver)
    first, second = driver.status["natIPs"]
    assert driver.status["retainedAddresses"] == []
    await _respec(driver, ["static-ip"])
    assert driver.status["natIPs"] == [first] and _nat_addresses(clients) == ["static-ip"]
    assert driver.status["retainedAddresses"] == [{"name": "static-ip-2", "ip": second}]
    kept = clients.addresses.get(project=PROJECT, region=REGION, address="static-ip-2")
    assert (kept.address, kept.status) == (second, "RESERVED")
    (event,) = [e for e in driver.events if e.reason == "AddressRetained"]
    assert second in event.message and "gateway's deletion releases it" in event.message
    assert f"gcloud compute addresses delete static-ip-2 --region {REGION} --project {PROJECT}" in event.message
    # Converged: one more read for the retained address, no write, no repeated event.
    gcp.log.clear()
    outcome = await driver.reconcile()
    assert gcp.log.writes() == [] and outcome.events == []
    assert len(gcp.log.reads()) <= len(driver.status["resources"]) + 1
    # Listed again, it is the same IP.
    await _respec(driver, ["static-ip", "static-ip-2"])
    assert driver.status["natIPs"] == [first, second] and driver.status["retainedAddresses"] == []
    # Unlisted again, then the gateway is deleted under addressDeletionPolicy Delete: nothing is left.
    await _respec(driver, ["static-ip"])
    assert (await driver.finalize()).retry_after is None
    left = [p for p, _ in gcp.store.items() if "/addresses/" in p]
    assert left == []


async def test_unlisted_addresses_outlive_the_gateway_under_retain_unless_taken_over(
    driver_factory, gateway, service, clients, gcp
) -> None:
    gateway["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2", "static-ip-3"]
    gateway["spec"]["nat"]["drainTimeout"] = "0s"
    driver = make(driver_factory, gateway)
    await converge(driver)
    ips = driver.status["natIPs"]
    await _respec(driver, ["static-ip"])
    assert [a["name"] for a in driver.status["retainedAddresses"]] == ["static-ip-2", "static-ip-3"]
    (event, _) = [e for e in driver.events if e.reason == "AddressRetained"]
    assert "outlives the gateway (addressDeletionPolicy Retain)" in event.message
    # Someone gives static-ip-3 to a NAT of their own: still runnet's (its marker says so), reported with its user.
    _give_to_another_nat(clients, "static-ip-3")
    await driver.reconcile()
    assert driver.status["retainedAddresses"] == [
        {"name": "static-ip-2", "ip": ips[1]},
        {"name": "static-ip-3", "ip": ips[2], "usedBy": f"projects/{PROJECT}/regions/{REGION}/routers/their-router"},
    ]
    assert (await driver.finalize()).retry_after is None
    left = {a.name: a.address for a in clients.addresses.list(project=PROJECT, region=REGION)}
    assert left == {"static-ip": ips[0], "static-ip-2": ips[1], "static-ip-3": ips[2]}


async def test_teardown_keeps_an_owned_address_someone_else_now_uses(driver_factory, gateway, service, clients) -> None:
    gateway["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    driver = make(driver_factory, gateway)
    await converge(driver)
    # The gateway's NAT is removed by hand and the IP given to another NAT: GCP would refuse its deletion.
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    router.nats = []
    clients.routers.update(project=PROJECT, region=REGION, router="router-cloud-run", router_resource=router).result()
    _give_to_another_nat(clients, "static-ip")
    outcome = await driver.finalize()
    assert outcome.retry_after is None
    assert clients.addresses.get(project=PROJECT, region=REGION, address="static-ip").status == "IN_USE"
    kept = [e.message for e in outcome.events if e.reason == "Kept"]
    assert kept == [f"kept Address static-ip, which projects/{PROJECT}/regions/{REGION}/routers/their-router uses"]
    assert "AddressesRetained" not in {e.reason for e in outcome.events}
