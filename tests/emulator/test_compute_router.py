"""Cloud Routers and Cloud NAT in the GCP emulator: PATCH/PUT semantics, validation, router status."""

from __future__ import annotations

import re
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1 as c

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.support.compute import R2, WWW, P, R, address, address_path, nat, network, raw, router, subnet, wait

ROUTER = f"regions/{R}/routers/rt"
ROUTER_PATH = f"projects/{P}/{ROUTER}"


@pytest.fixture
def vpc(clients: Clients) -> Clients:
    """A network with a subnet, a router and two static IPs (the fixed-egress reference topology)."""
    network(clients)
    subnet(clients, "sn", "10.10.10.0/24")
    subnet(clients, "sn2", "10.10.20.0/24")
    router(clients)
    address(clients, "ip1")
    address(clients, "ip2")
    return clients


def patch(gcp: GCPEmulator, body: dict[str, Any], path: str = ROUTER) -> dict[str, Any]:
    response = raw(gcp, "PATCH", path, body)
    assert response.status_code == 200, response.text
    return wait(gcp, response.json())


def listed(name: str, ip: str, subnet_name: str) -> dict[str, Any]:
    """A NAT over one subnetwork (a router's public NATs may not cover the same subnets)."""
    entry = nat(name, address_path(ip), sourceSubnetworkIpRangesToNat="LIST_OF_SUBNETWORKS")
    entry["subnetworks"] = [{"name": f"projects/{P}/regions/{R}/subnetworks/{subnet_name}"}]
    return entry


def nats_of(gcp: GCPEmulator) -> list[dict[str, Any]]:
    body: dict[str, Any] = raw(gcp, "GET", ROUTER).json()
    return list(body.get("nats", []))


def test_router_insert_get_and_errors(clients: Clients) -> None:
    network(clients)
    rt = router(clients, description="egress")
    assert (rt.encrypted_interconnect_router, rt.description) == (False, "egress")
    assert rt.network == f"{WWW}projects/{P}/global/networks/vpc" and not rt.nats
    assert "fingerprint" not in c.Router.to_dict(rt)
    with pytest.raises(gexc.Conflict):
        router(clients)
    with pytest.raises(gexc.BadRequest, match=r"'resource.network'.*cannot be found"):
        router(clients, "orphan", net="missing")
    with pytest.raises(gexc.NotFound):
        clients.routers.get(project=P, region=R, router="missing")


def test_nat_fills_server_fields_and_marks_its_address_in_use(gcp: GCPEmulator, vpc: Clients) -> None:
    body = c.Router(
        nats=[
            c.RouterNat(
                name="nat",
                nat_ip_allocate_option="MANUAL_ONLY",
                nat_ips=[address_path("ip1")],
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                min_ports_per_vm=128,
                log_config=c.RouterNatLogConfig(enable=True, filter="ERRORS_ONLY"),
            )
        ]
    )
    vpc.routers.patch(project=P, region=R, router="rt", router_resource=body).result(timeout=10)
    [entry] = vpc.routers.get(project=P, region=R, router="rt").nats
    assert (entry.type_, entry.auto_network_tier, list(entry.endpoint_types)) == (
        "PUBLIC",
        "PREMIUM",
        ["ENDPOINT_TYPE_VM"],
    )
    assert (entry.effective_tcp_time_wait_timeout_sec, entry.min_ports_per_vm) == (120, 128)
    assert list(entry.nat_ips) == [address_path("ip1")]  # echoed as sent (relative)
    assert (entry.log_config.enable, entry.log_config.filter) == (True, "ERRORS_ONLY")
    used = vpc.addresses.get(project=P, region=R, address="ip1")
    assert (used.status, list(used.users)) == ("IN_USE", [f"{WWW}{ROUTER_PATH}"])
    with pytest.raises(gexc.BadRequest, match=r"already being used by"):
        vpc.addresses.delete(project=P, region=R, address="ip1")
    vpc.routers.delete(project=P, region=R, router="rt").result(timeout=10)
    assert vpc.addresses.get(project=P, region=R, address="ip1").status == "RESERVED"


def test_patch_merges_and_nats_replace_as_a_whole(gcp: GCPEmulator, vpc: Clients) -> None:
    patch(gcp, {"nats": [listed("ours", "ip1", "sn"), listed("theirs", "ip2", "sn2")]})
    patch(gcp, {})  # an empty PATCH changes nothing
    patch(gcp, {"description": "shared"})  # other fields leave the NATs alone
    assert [n["name"] for n in nats_of(gcp)] == ["ours", "theirs"]
    # gcloud style: GET, edit one NAT, PATCH the whole router back with its output-only fields.
    whole = raw(gcp, "GET", ROUTER).json()
    whole["nats"][0]["minPortsPerVm"] = 256
    patch(gcp, whole)
    ours, theirs = nats_of(gcp)
    assert ours["minPortsPerVm"] == 256 and theirs == whole["nats"][1]
    rt = raw(gcp, "GET", ROUTER).json()
    assert (rt["id"], rt["description"]) == (whole["id"], "shared")
    patch(gcp, {"nats": [theirs]})  # present: replaces the list, dropping "ours"
    assert [n["name"] for n in nats_of(gcp)] == ["theirs"]
    patch(gcp, {"nats": []})  # explicit empty list: clears (what `gcloud ... nats delete` sends)
    assert "nats" not in raw(gcp, "GET", ROUTER).json()


def test_patch_without_nats_from_the_client_keeps_them(vpc: Clients, gcp: GCPEmulator) -> None:
    patch(gcp, {"nats": [nat("keep", address_path("ip1"))]})
    vpc.routers.patch(project=P, region=R, router="rt", router_resource=c.Router(nats=[])).result(timeout=10)
    assert [n["name"] for n in nats_of(gcp)] == ["keep"]  # the client never sends an empty list


def test_update_replaces_the_router(gcp: GCPEmulator, vpc: Clients) -> None:
    patch(gcp, {"description": "old", "nats": [nat("nat", address_path("ip1"))]})
    current = vpc.routers.get(project=P, region=R, router="rt")
    body = c.Router(name="rt", network=current.network)
    vpc.routers.update(project=P, region=R, router="rt", router_resource=body).result(timeout=10)
    replaced = raw(gcp, "GET", ROUTER).json()
    assert "nats" not in replaced and "description" not in replaced
    assert (replaced["id"], replaced["creationTimestamp"]) == (str(current.id), current.creation_timestamp)
    assert gcp.log.writes()[-1].response_body["operationType"] == "update"
    with pytest.raises(gexc.BadRequest, match=r"resource.network"):
        other = c.Router(name="rt", network=f"projects/{P}/global/networks/other")
        vpc.routers.update(project=P, region=R, router="rt", router_resource=other)


BAD_NATS = [
    ([nat("a", address_path("ip1")), nat("a", address_path("ip2"))], r"nats\[1\].name"),
    ([nat("a", natIpAllocateOption="MANUAL_ONLY")], r"nats\[0\].natIps"),
    ([nat("a", natIps=[address_path("ip1")])], r"nats\[0\].natIps"),
    ([nat("a", address_path("missing"))], r"nats\[0\].natIps\[0\]"),
    ([nat("a", address_path("ip1", R2))], r"nats\[0\].natIps\[0\]"),
    ([nat("a", "ip1")], r"nats\[0\].natIps\[0\]"),
    ([nat("a", address_path("internal"))], r"nats\[0\].natIps\[0\]"),
    ([listed("a", "ip1", "sn"), listed("b", "ip1", "sn2")], r"nats\[1\].natIps\[0\]"),
    ([listed("a", "ip1", "sn"), listed("b", "ip2", "sn")], r"nats':"),
    ([listed("a", "ip1", "isn")], r"nats\[0\].subnetworks\[0\].name"),
    ([nat("a", sourceSubnetworkIpRangesToNat="SOME")], r"nats\[0\].sourceSubnetworkIpRangesToNat"),
    ([nat("a", sourceSubnetworkIpRangesToNat="LIST_OF_SUBNETWORKS")], r"nats\[0\].subnetworks"),
    ([nat("a", enableDynamicPortAllocation=True, minPortsPerVm=100)], r"nats\[0\].minPortsPerVm"),
    ([nat("a", enableDynamicPortAllocation=True, maxPortsPerVm=48)], r"nats\[0\].maxPortsPerVm"),
    (
        [nat("a", enableDynamicPortAllocation=True, enableEndpointIndependentMapping=True)],
        r"nats\[0\].enableEndpointIndependentMapping",
    ),
    ([nat("a", logConfig={"enable": True, "filter": "SOME"})], r"nats\[0\].logConfig.filter"),
    ([nat("a", address_path("ip1")), listed("b", "ip2", "sn")], r"nats':"),
]


@pytest.mark.parametrize(("nats", "field"), BAD_NATS)
def test_nat_validation_names_the_field(gcp: GCPEmulator, vpc: Clients, nats: list[Any], field: str) -> None:
    network(vpc, "other")
    subnet(vpc, "isn", "10.20.0.0/24", net="other")
    address(vpc, "internal", address_type="INTERNAL", subnetwork=f"projects/{P}/regions/{R}/subnetworks/isn")
    address(vpc, "ip1", region=R2)
    response = raw(gcp, "PATCH", ROUTER, {"nats": nats})
    assert response.status_code == 400, response.text
    assert re.search(f"field 'resource\\.{field}", response.json()["error"]["message"])
    assert "nats" not in raw(gcp, "GET", ROUTER).json()


def test_an_address_serves_one_router_only(gcp: GCPEmulator, vpc: Clients) -> None:
    patch(gcp, {"nats": [nat("nat", address_path("ip1"))]})
    router(vpc, "rt2")
    response = raw(gcp, "PATCH", f"regions/{R}/routers/rt2", {"nats": [nat("nat", address_path("ip1"))]})
    assert response.status_code == 400 and f"already being used by '{ROUTER_PATH}'" in response.text


def test_list_of_subnetworks_and_subnet_in_use(gcp: GCPEmulator, vpc: Clients) -> None:
    patch(gcp, {"nats": [listed("nat", "ip1", "sn")]})
    [entry] = nats_of(gcp)
    assert entry["subnetworks"] == [
        {"name": f"{WWW}projects/{P}/regions/{R}/subnetworks/sn", "sourceIpRangesToNat": ["ALL_IP_RANGES"]}
    ]
    with pytest.raises(gexc.BadRequest, match=rf"already being used by '{ROUTER_PATH}'"):
        vpc.subnetworks.delete(project=P, region=R, subnetwork="sn")


def test_router_status_reports_nat_ips_and_capacity(gcp: GCPEmulator, vpc: Clients) -> None:
    ip1, ip2 = (vpc.addresses.get(project=P, region=R, address=n).address for n in ("ip1", "ip2"))
    address(vpc, "ip3")
    manual = nat("manual", address_path("ip1"), address_path("ip2"), minPortsPerVm=1024)
    patch(gcp, {"nats": [manual]})
    manual = {**manual, "natIps": [address_path("ip1")], "drainNatIps": [address_path("ip2")]}
    patch(gcp, {"nats": [manual]})  # ip2 drains: moved out of natIps in the same write
    gcp.extra["nat_vm_endpoints"] = {(ROUTER_PATH, "manual"): 100}  # 100 VMs x 1024 ports: 2 IPs
    status = raw(gcp, "GET", f"{ROUTER}/getRouterStatus").json()
    assert status["kind"] == "compute#routerStatusResponse"
    assert status["result"]["network"] == f"{WWW}projects/{P}/global/networks/vpc"
    assert status["result"]["natStatus"] == [
        {
            "name": "manual",
            "userAllocatedNatIps": [ip1],
            "userAllocatedNatIpResources": [f"{WWW}{address_path('ip1')}"],
            "drainUserAllocatedNatIps": [ip2],
            "minExtraNatIpsNeeded": 1,
            "numVmEndpointsWithNatMappings": 100,
        }
    ]
    manual["natIps"].append(address_path("ip3"))
    patch(gcp, {"nats": [manual]})
    result = vpc.routers.get_router_status(project=P, region=R, router="rt").result
    assert (result.nat_status[0].min_extra_nat_ips_needed, len(result.nat_status[0].user_allocated_nat_ips)) == (0, 2)


def test_router_status_auto_allocated_ips(gcp: GCPEmulator, vpc: Clients) -> None:
    patch(gcp, {"nats": [nat("auto")]})
    status = vpc.routers.get_router_status(project=P, region=R, router="rt").result
    assert (status.nat_status[0].name, list(status.nat_status[0].auto_allocated_nat_ips)) == ("auto", [])
    gcp.extra["nat_vm_endpoints"] = {(ROUTER_PATH, "auto"): 1500}  # 1500 x 64 ports: 2 IPs
    first = list(
        vpc.routers.get_router_status(project=P, region=R, router="rt").result.nat_status[0].auto_allocated_nat_ips
    )
    again = list(
        vpc.routers.get_router_status(project=P, region=R, router="rt").result.nat_status[0].auto_allocated_nat_ips
    )
    assert len(first) == 2 and first == again
    reserved = {a.address for a in vpc.addresses.list(project=P, region=R)}
    assert not reserved & set(first)
    assert address(vpc, "later").address not in first


def ip_info(vpc: Clients, nat_name: str = "") -> dict[str, list[tuple[str, str, str]]]:
    """getNatIpInfo through the client: NAT name -> [(ip, usage, mode)]."""
    request = c.GetNatIpInfoRouterRequest(project=P, region=R, router="rt", nat_name=nat_name or None)
    return {
        info.nat_name: [(m.nat_ip, m.usage, m.mode) for m in info.nat_ip_info_mappings]
        for info in vpc.routers.get_nat_ip_info(request=request).result
    }


def test_nat_ip_info_reports_mode_and_usage(gcp: GCPEmulator, vpc: Clients) -> None:
    ip1, ip2 = (vpc.addresses.get(project=P, region=R, address=n).address for n in ("ip1", "ip2"))
    draining = listed("manual", "ip1", "sn")
    auto = nat("auto", sourceSubnetworkIpRangesToNat="LIST_OF_SUBNETWORKS")
    auto["subnetworks"] = [{"name": f"projects/{P}/regions/{R}/subnetworks/sn2"}]
    patch(gcp, {"nats": [{**draining, "natIps": [address_path("ip1"), address_path("ip2")]}, auto]})
    draining["drainNatIps"] = [address_path("ip2")]
    patch(gcp, {"nats": [draining, auto]})
    # No endpoint uses either NAT yet: the manual IPs serve nothing, no IP was auto-allocated.
    assert ip_info(vpc) == {"manual": [(ip1, "UNUSED", "MANUAL"), (ip2, "UNUSED", "MANUAL")], "auto": []}
    gcp.extra["nat_vm_endpoints"] = {(ROUTER_PATH, "manual"): 1, (ROUTER_PATH, "auto"): 1}
    info = ip_info(vpc)
    assert info["manual"] == [(ip1, "IN_USE", "MANUAL"), (ip2, "UNUSED", "MANUAL")]
    [(auto_ip, usage, mode)] = info["auto"]
    assert (usage, mode) == ("IN_USE", "AUTO")
    status = vpc.routers.get_router_status(project=P, region=R, router="rt").result
    assert list(status.nat_status[1].auto_allocated_nat_ips) == [auto_ip]  # the same IP both views report
    assert list(ip_info(vpc, "auto")) == ["auto"]
    assert ip_info(vpc, "no-such-nat") == {}
    with pytest.raises(gexc.NotFound):
        vpc.routers.get_nat_ip_info(project=P, region=R, router="missing")


def test_nat_mapping_info_lists_no_vm_endpoints(gcp: GCPEmulator, vpc: Clients) -> None:
    """The emulator has no VM instances, so no NAT has per-VM port mappings to show."""
    patch(gcp, {"nats": [nat("nat", address_path("ip1"))]})
    gcp.extra["nat_vm_endpoints"] = {(ROUTER_PATH, "nat"): 3}
    assert list(vpc.routers.get_nat_mapping_info(project=P, region=R, router="rt")) == []
    body = raw(gcp, "GET", f"{ROUTER}/getNatMappingInfo", natName="nat", maxResults="10").json()
    assert body == {
        "kind": "compute#vmEndpointNatMappingsList",
        "id": f"{ROUTER_PATH}/getNatMappingInfo",
        "selfLink": f"{WWW}{ROUTER_PATH}/getNatMappingInfo",
    }
    assert raw(gcp, "GET", f"regions/{R}/routers/missing/getNatMappingInfo").status_code == 404
