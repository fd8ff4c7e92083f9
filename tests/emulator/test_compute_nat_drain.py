"""Cloud NAT drain in the GCP emulator: ``drainNatIps``, its rules, and how draining IPs are reported.

GCP's rules (Cloud NAT docs, "Drain external IP addresses assigned to NAT"; RouterNat.drainNatIps):
an IP is drained by moving it from natIps to drainNatIps in one write; an IP removed from natIps
without that is released at once and cannot be drained later; a new NAT drains nothing; dropping an
IP from drainNatIps releases it. getRouterStatus lists draining IPs; getNatIpInfo says whether each
IP still serves endpoints, which the ``nat_ip_endpoints`` knob sets.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from google.cloud import compute_v1 as c

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.support.compute import R2, WWW, P, R, address, address_path, nat, network, raw, router, subnet, wait

ROUTER = f"regions/{R}/routers/rt"
ROUTER_PATH = f"projects/{P}/{ROUTER}"


@pytest.fixture
def ips(clients: Clients) -> dict[str, str]:
    """A router with NAT ``nat`` on ip1 and ip2, a third address never used; name -> IP."""
    network(clients)
    subnet(clients, "sn", "10.10.10.0/24")
    router(clients)
    found = {name: str(address(clients, name).address) for name in ("ip1", "ip2", "ip3")}
    write(clients, nat_ips=["ip1", "ip2"])
    return found


def write(clients: Clients, *, nat_ips: list[str], drain: tuple[str, ...] = (), update: bool = False) -> None:
    """The NAT ``nat`` through the official client (PATCH, or PUT with ``update``), waiting for it."""
    entry = c.RouterNat(
        name="nat",
        nat_ip_allocate_option="MANUAL_ONLY",
        source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
        nat_ips=[address_path(n) for n in nat_ips],
        drain_nat_ips=[address_path(n) for n in drain],
    )
    if update:
        current = clients.routers.get(project=P, region=R, router="rt")
        body = c.Router(name="rt", network=current.network, nats=[entry])
        clients.routers.update(project=P, region=R, router="rt", router_resource=body).result(timeout=10)
    else:
        body = c.Router(nats=[entry])
        clients.routers.patch(project=P, region=R, router="rt", router_resource=body).result(timeout=10)


def status(clients: Clients) -> c.RouterStatusNatStatus:
    [entry] = clients.routers.get_router_status(project=P, region=R, router="rt").result.nat_status
    return entry


def ip_info(clients: Clients) -> list[tuple[str, str, str]]:
    [info] = clients.routers.get_nat_ip_info(project=P, region=R, router="rt").result
    return [(m.nat_ip, m.usage, m.mode) for m in info.nat_ip_info_mappings]


def address_state(clients: Clients, name: str) -> tuple[str, list[str]]:
    found = clients.addresses.get(project=P, region=R, address=name)
    return found.status, list(found.users)


def test_draining_keeps_the_ip_on_the_nat_and_reports_it(
    gcp: GCPEmulator, clients: Clients, ips: dict[str, str]
) -> None:
    write(clients, nat_ips=["ip2"], drain=("ip1",))
    [entry] = clients.routers.get(project=P, region=R, router="rt").nats
    assert (list(entry.nat_ips), list(entry.drain_nat_ips)) == ([address_path("ip2")], [address_path("ip1")])
    now = status(clients)
    assert list(now.user_allocated_nat_ips) == [ips["ip2"]]
    assert list(now.user_allocated_nat_ip_resources) == [f"{WWW}{address_path('ip2')}"]
    assert list(now.drain_user_allocated_nat_ips) == [ips["ip1"]] and not now.drain_auto_allocated_nat_ips
    # Still the NAT's: the address stays in use by the router, and cannot go elsewhere.
    assert address_state(clients, "ip1") == ("IN_USE", [f"{WWW}{ROUTER_PATH}"])
    router(clients, "rt2")
    taken = raw(gcp, "PATCH", f"regions/{R}/routers/rt2", {"nats": [nat("other", address_path("ip1"))]})
    assert taken.status_code == 400 and f"already being used by '{ROUTER_PATH}'" in taken.text
    # Dropping it from drainNatIps releases it: the last step of a rotation.
    write(clients, nat_ips=["ip2"])
    assert address_state(clients, "ip1") == ("RESERVED", [])
    assert not status(clients).drain_user_allocated_nat_ips
    assert [ip for ip, _, _ in ip_info(clients)] == [ips["ip2"]]


def test_a_draining_ip_can_return_to_nat_ips(clients: Clients, ips: dict[str, str]) -> None:
    write(clients, nat_ips=["ip2"], drain=("ip1",))
    write(clients, nat_ips=["ip1", "ip2"], update=True)  # PUT applies the same rules as PATCH
    now = status(clients)
    assert (list(now.user_allocated_nat_ips), list(now.drain_user_allocated_nat_ips)) == ([ips["ip1"], ips["ip2"]], [])
    write(clients, nat_ips=["ip1"], drain=("ip2",), update=True)
    write(clients, nat_ips=["ip1"], drain=("ip2",))  # sending the same state again is fine
    assert list(status(clients).drain_user_allocated_nat_ips) == [ips["ip2"]]


def test_the_two_ways_out_of_draining(gcp: GCPEmulator, clients: Clients, ips: dict[str, str]) -> None:
    """Connections still on the IP keep it IN_USE for as long as they last; then it is UNUSED."""
    gcp.extra["nat_vm_endpoints"] = {(ROUTER_PATH, "nat"): 1}  # one VM: the first active IP serves it
    assert ip_info(clients) == [(ips["ip1"], "IN_USE", "MANUAL"), (ips["ip2"], "UNUSED", "MANUAL")]
    write(clients, nat_ips=["ip2"], drain=("ip1",))
    gcp.extra["nat_ip_endpoints"] = {ips["ip1"]: 3}  # three endpoints still hold mappings on ip1
    in_use = [(ips["ip2"], "IN_USE", "MANUAL"), (ips["ip1"], "IN_USE", "MANUAL")]
    assert ip_info(clients) == in_use  # the VM moved to ip2; ip1 drains
    assert ip_info(clients) == in_use  # and stays IN_USE while the knob holds: the timeout exit
    gcp.extra["nat_ip_endpoints"] = {ips["ip1"]: 0}  # the last connection ended: the unused exit
    assert ip_info(clients) == [(ips["ip2"], "IN_USE", "MANUAL"), (ips["ip1"], "UNUSED", "MANUAL")]
    gcp.extra["nat_vm_endpoints"] = {}
    gcp.extra["nat_ip_endpoints"] = {ips["ip2"]: 1}  # on an active IP the knob counts too
    assert ip_info(clients) == [(ips["ip2"], "IN_USE", "MANUAL"), (ips["ip1"], "UNUSED", "MANUAL")]


def drained(first: str, *rest: str, **fields: Any) -> dict[str, Any]:
    """NAT ``nat`` as JSON with natIps ``rest`` and drainNatIps (``first`` is a name, or a whole path)."""
    paths = [n if "/" in n else address_path(n) for n in (first,)]
    entry = nat("nat", *(address_path(n) for n in rest), **fields)
    entry["drainNatIps"] = paths
    return entry


BAD_DRAINS = [
    ([drained("ip1", "ip1", "ip2")], r"nats\[0\].drainNatIps\[0\]", "still in natIps"),
    ([drained("ip3", "ip1", "ip2")], r"nats\[0\].drainNatIps\[0\]", "not previously a NAT IP"),
    ([{**drained("ip1", "ip2"), "drainNatIps": [address_path("ip1")] * 2}], r"nats\[0\].drainNatIps\[1\]", "twice"),
    ([drained("ip1", "ip2"), drained("ip2", "ip3") | {"name": "new"}], r"nats\[1\].drainNatIps", "new NAT"),
    ([drained("ip1", "ip2") | {"natIps": []}], r"nats\[0\].natIps", "At least one NAT IP"),
    ([drained("ip1") | {"natIpAllocateOption": "AUTO_ONLY"}], r"nats\[0\].drainNatIps", "MANUAL_ONLY"),
    ([drained("internal", "ip1", "ip2")], r"nats\[0\].drainNatIps\[0\]", "EXTERNAL"),
    ([drained(address_path("far", R2), "ip1", "ip2")], r"nats\[0\].drainNatIps\[0\]", "region"),
    ([drained("missing", "ip1", "ip2")], r"nats\[0\].drainNatIps\[0\]", "cannot be found"),
]


@pytest.mark.parametrize(("nats", "field", "why"), BAD_DRAINS)
def test_drain_rules_name_the_field(
    gcp: GCPEmulator, clients: Clients, ips: dict[str, str], nats: list[Any], field: str, why: str
) -> None:
    subnet(clients, "sn2", "10.10.20.0/24")
    address(clients, "internal", address_type="INTERNAL", subnetwork=f"projects/{P}/regions/{R}/subnetworks/sn2")
    address(clients, "far", region=R2)
    before = raw(gcp, "GET", ROUTER).json()["nats"]
    response = raw(gcp, "PATCH", ROUTER, {"nats": nats})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert re.search(f"field 'resource\\.{field}", message) and why in message, message
    assert raw(gcp, "GET", ROUTER).json()["nats"] == before


def test_an_ip_released_earlier_cannot_be_drained_later(
    gcp: GCPEmulator, clients: Clients, ips: dict[str, str]
) -> None:
    """Removing an IP without draining it cuts its connections at once; draining it later is refused."""
    write(clients, nat_ips=["ip2"])
    assert address_state(clients, "ip1") == ("RESERVED", [])
    response = raw(gcp, "PATCH", ROUTER, {"nats": [drained("ip1", "ip2")]})
    assert response.status_code == 400 and "not previously a NAT IP" in response.text, response.text
    write(clients, nat_ips=["ip1"], drain=("ip2",))
    write(clients, nat_ips=["ip1"])  # ip2 leaves the drain pool: released
    response = raw(gcp, "PATCH", ROUTER, {"nats": [drained("ip2", "ip1")]})
    assert response.status_code == 400 and "not previously a NAT IP" in response.text, response.text


def test_a_new_router_cannot_start_with_drain_ips(gcp: GCPEmulator, clients: Clients, ips: dict[str, str]) -> None:
    body = {"name": "fresh", "network": f"projects/{P}/global/networks/vpc", "nats": [drained("ip3", "ip2")]}
    response = raw(gcp, "POST", f"regions/{R}/routers", body)
    assert response.status_code == 400 and "A new NAT cannot have drain IPs" in response.text, response.text


def test_a_draining_ip_serves_no_other_nat(gcp: GCPEmulator, clients: Clients, ips: dict[str, str]) -> None:
    subnet(clients, "sn2", "10.10.20.0/24")
    write(clients, nat_ips=["ip2"], drain=("ip1",))
    ours = raw(gcp, "GET", ROUTER).json()["nats"][0]
    ours |= {"sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS", "subnetworks": [{"name": "sn"}]}
    theirs = nat("theirs", address_path("ip1"), sourceSubnetworkIpRangesToNat="LIST_OF_SUBNETWORKS")
    theirs["subnetworks"] = [{"name": f"projects/{P}/regions/{R}/subnetworks/sn2"}]
    response = raw(gcp, "PATCH", ROUTER, {"nats": [theirs, ours]})
    assert response.status_code == 400, response.text
    assert "field 'resource.nats[1].drainNatIps[0]'" in response.text and "used by NAT 'theirs'" in response.text
    wait(gcp, raw(gcp, "PATCH", ROUTER, {"description": "other fields leave the drain alone"}).json())
    assert raw(gcp, "GET", ROUTER).json()["nats"][0]["drainNatIps"] == [address_path("ip1")]
