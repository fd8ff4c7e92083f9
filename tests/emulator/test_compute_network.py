"""Compute networks and subnetworks in the GCP emulator, through google-cloud-compute (and raw HTTP)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1 as c

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.support.compute import R2, WWW, P, R, address, network, raw, router, subnet


def test_network_insert_fills_server_fields(clients: Clients) -> None:
    op = clients.networks.insert(project=P, network_resource=c.Network(name="vpc", auto_create_subnetworks=False))
    op.result(timeout=10)
    net = clients.networks.get(project=P, network="vpc")
    assert net.auto_create_subnetworks is False
    assert net.routing_config.routing_mode == "REGIONAL"
    assert net.routing_config.bgp_best_path_selection_mode == "LEGACY"
    assert net.network_firewall_policy_enforcement_order == "AFTER_CLASSIC_FIREWALL"
    assert net.self_link == f"{WWW}projects/{P}/global/networks/vpc"
    assert net.self_link_with_id == f"{WWW}projects/{P}/global/networks/{net.id}"
    assert not net.subnetworks
    assert [n.name for n in clients.networks.list(project=P)] == ["vpc"]


def test_network_lists_its_subnetworks_in_every_region(clients: Clients) -> None:
    network(clients)
    network(clients, "other")
    subnet(clients, "a", "10.0.0.0/24")
    subnet(clients, "b", "10.0.1.0/24", region=R2)
    subnet(clients, "elsewhere", "10.0.2.0/24", net="other")
    assert clients.networks.get(project=P, network="vpc").subnetworks == [
        f"{WWW}projects/{P}/regions/{R}/subnetworks/a",
        f"{WWW}projects/{P}/regions/{R2}/subnetworks/b",
    ]


@pytest.mark.parametrize("auto", [True, None])
def test_network_must_be_custom_mode(clients: Clients, auto: bool | None) -> None:
    body = c.Network(name="vpc") if auto is None else c.Network(name="vpc", auto_create_subnetworks=auto)
    with pytest.raises(gexc.BadRequest, match=r"resource.autoCreateSubnetworks"):
        clients.networks.insert(project=P, network_resource=body)


def test_network_not_found_and_conflict(clients: Clients) -> None:
    with pytest.raises(gexc.NotFound, match=rf"projects/{P}/global/networks/nope' was not found"):
        clients.networks.get(project=P, network="nope")
    network(clients)
    with pytest.raises(gexc.Conflict, match=r"already exists") as err:
        network(clients)
    assert err.value.errors[0]["reason"] == "alreadyExists"


def test_network_patch_merges_routing_config(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    body = c.Network(routing_config=c.NetworkRoutingConfig(routing_mode="GLOBAL"))
    op = clients.networks.patch(project=P, network="vpc", network_resource=body)
    op.result(timeout=10)
    net = clients.networks.get(project=P, network="vpc")
    assert (net.routing_config.routing_mode, net.routing_config.bgp_best_path_selection_mode) == ("GLOBAL", "LEGACY")
    assert [e.response_body["operationType"] for e in gcp.log.writes()][-1] == "patch"
    bad = raw(gcp, "PATCH", "global/networks/vpc", {"routingConfig": {"routingMode": "SIDEWAYS"}})
    assert bad.status_code == 400 and "routingConfig.routingMode" in bad.json()["error"]["message"]


def test_network_delete_in_use_fails_inside_the_operation(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    router(clients)
    subnet(clients, "sn", "10.0.0.0/24")
    response = raw(gcp, "DELETE", "global/networks/vpc")
    assert response.status_code == 200  # accepted: the failure is reported by the operation
    op = response.json()
    assert (op["status"], op["httpErrorStatusCode"], op["httpErrorMessage"]) == ("DONE", 400, "BAD REQUEST")
    [error] = op["error"]["errors"]
    assert error["code"] == "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE"
    assert f"network resource 'projects/{P}/global/networks/vpc' is already being used by" in error["message"]
    with pytest.raises(gexc.BadRequest):
        clients.networks.delete(project=P, network="vpc").result(timeout=10)
    clients.subnetworks.delete(project=P, region=R, subnetwork="sn").result(timeout=10)
    with pytest.raises(gexc.BadRequest):  # the router still uses it
        clients.networks.delete(project=P, network="vpc").result(timeout=10)
    clients.routers.delete(project=P, region=R, router="rt").result(timeout=10)
    clients.networks.delete(project=P, network="vpc").result(timeout=10)
    with pytest.raises(gexc.NotFound):
        clients.networks.get(project=P, network="vpc")


# -- subnetworks ---------------------------------------------------------------------------------


def test_private_subnet_defaults(clients: Clients) -> None:
    network(clients)
    sn = subnet(clients, "sn", "10.10.10.0/24")
    assert (sn.gateway_address, sn.purpose, sn.stack_type) == ("10.10.10.1", "PRIVATE", "IPV4_ONLY")
    assert sn.private_ip_google_access is False and sn.enable_flow_logs is False
    assert sn.allow_subnet_cidr_routes_overlap is False
    assert sn.private_ipv6_google_access == "DISABLE_GOOGLE_ACCESS"
    assert sn.network == f"{WWW}projects/{P}/global/networks/vpc"
    assert sn.region == f"{WWW}projects/{P}/regions/{R}"
    assert len(sn.fingerprint) == 12 and not sn.role and not sn.state


def test_proxy_only_and_psc_subnet_fields(clients: Clients) -> None:
    network(clients)
    proxy = subnet(clients, "proxy", "10.0.2.0/24", purpose="REGIONAL_MANAGED_PROXY", role="ACTIVE")
    assert (proxy.role, proxy.state, proxy.gateway_address) == ("ACTIVE", "READY", "10.0.2.1")
    assert not proxy.stack_type and "enable_flow_logs" not in proxy and "log_config" not in proxy
    psc = subnet(clients, "psc", "10.0.3.0/24", purpose="PRIVATE_SERVICE_CONNECT")
    assert (psc.purpose, psc.stack_type) == ("PRIVATE_SERVICE_CONNECT", "IPV4_ONLY")
    assert not psc.role and not psc.state and "enable_flow_logs" not in psc
    with pytest.raises(gexc.BadRequest, match=r"resource.role"):
        subnet(clients, "norole", "10.0.4.0/24", purpose="REGIONAL_MANAGED_PROXY")
    with pytest.raises(gexc.BadRequest, match=r"resource.logConfig"):
        subnet(
            clients,
            "logged",
            "10.0.5.0/24",
            purpose="REGIONAL_MANAGED_PROXY",
            role="BACKUP",
            log_config=c.SubnetworkLogConfig(enable=False),
        )


@pytest.mark.parametrize("cidr", ["10.0.0.1/24", "10.0.0.0/30", "10.0.0.0/7", "not-a-range", "10.0.0.0"])
def test_subnet_range_must_be_a_valid_cidr(clients: Clients, cidr: str) -> None:
    network(clients)
    with pytest.raises(gexc.BadRequest, match=rf"'resource.ipCidrRange': '{cidr}'"):
        subnet(clients, "sn", cidr)


def test_subnet_ranges_may_not_overlap_within_a_network(clients: Clients) -> None:
    network(clients)
    network(clients, "other")
    subnet(clients, "wide", "10.0.0.0/16")
    with pytest.raises(gexc.BadRequest, match=rf"conflicts with existing subnetwork 'wide' in region '{R}'"):
        subnet(clients, "inner", "10.0.1.0/24", region=R2)
    subnet(clients, "same-range-other-network", "10.0.0.0/16", net="other")
    secondary = [c.SubnetworkSecondaryRange(range_name="pods", ip_cidr_range="10.0.128.0/20")]
    with pytest.raises(gexc.BadRequest, match=r"secondaryIpRanges\[0\].ipCidrRange"):
        subnet(clients, "sec", "10.1.0.0/24", secondary_ip_ranges=secondary)


def test_subnet_network_must_exist(clients: Clients) -> None:
    with pytest.raises(gexc.BadRequest, match=r"'resource.network'.*cannot be found"):
        subnet(clients, "sn", "10.0.0.0/24", net="missing")


def test_one_active_proxy_only_subnet_per_network_and_region(clients: Clients) -> None:
    network(clients)
    proxy = {"purpose": "REGIONAL_MANAGED_PROXY"}
    subnet(clients, "active", "10.0.2.0/24", role="ACTIVE", **proxy)
    with pytest.raises(gexc.BadRequest, match=r"resource.role"):
        subnet(clients, "second", "10.0.3.0/24", role="ACTIVE", **proxy)
    backup = subnet(clients, "backup", "10.0.3.0/24", role="BACKUP", **proxy)
    subnet(clients, "other-region", "10.0.4.0/24", role="ACTIVE", region=R2, **proxy)
    body = c.Subnetwork(role="ACTIVE", fingerprint=backup.fingerprint)
    clients.subnetworks.patch(project=P, region=R, subnetwork="backup", subnetwork_resource=body).result(timeout=10)
    assert clients.subnetworks.get(project=P, region=R, subnetwork="backup").role == "ACTIVE"
    assert clients.subnetworks.get(project=P, region=R, subnetwork="active").role == "BACKUP"


def test_subnet_patch_needs_the_current_fingerprint(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    sn = subnet(clients, "sn", "10.0.0.0/24")
    path = f"regions/{R}/subnetworks/sn"
    missing = raw(gcp, "PATCH", path, {"description": "x"})
    assert missing.status_code == 412 and missing.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    stale = c.Subnetwork(description="x", fingerprint="AAAAAAAAAAA=")
    with pytest.raises(gexc.PreconditionFailed):
        clients.subnetworks.patch(project=P, region=R, subnetwork="sn", subnetwork_resource=stale)
    moved = c.Subnetwork(ip_cidr_range="10.9.0.0/24", fingerprint=sn.fingerprint)
    with pytest.raises(gexc.BadRequest, match=r"resource.ipCidrRange"):
        clients.subnetworks.patch(project=P, region=R, subnetwork="sn", subnetwork_resource=moved)
    good = c.Subnetwork(description="x", fingerprint=sn.fingerprint, log_config=c.SubnetworkLogConfig(enable=True))
    clients.subnetworks.patch(project=P, region=R, subnetwork="sn", subnetwork_resource=good).result(timeout=10)
    after = clients.subnetworks.get(project=P, region=R, subnetwork="sn")
    assert (after.description, after.enable_flow_logs, after.log_config.enable) == ("x", True, True)
    assert after.log_config.aggregation_interval == "INTERVAL_5_SEC"
    assert after.fingerprint != sn.fingerprint


def test_set_private_ip_google_access(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    before = subnet(clients, "sn", "10.0.0.0/24")
    request = c.SubnetworksSetPrivateIpGoogleAccessRequest(private_ip_google_access=True)
    clients.subnetworks.set_private_ip_google_access(
        project=P, region=R, subnetwork="sn", subnetworks_set_private_ip_google_access_request_resource=request
    ).result(timeout=10)
    after = clients.subnetworks.get(project=P, region=R, subnetwork="sn")
    assert after.private_ip_google_access is True and after.fingerprint != before.fingerprint
    assert gcp.log.writes()[-1].response_body["operationType"] == "setPrivateIpGoogleAccess"


def test_subnet_aggregated_list(clients: Clients) -> None:
    network(clients)
    subnet(clients, "a", "10.0.0.0/24")
    subnet(clients, "b", "10.0.1.0/24", region=R2)
    pairs = {
        scope: [s.name for s in scoped.subnetworks]
        for scope, scoped in clients.subnetworks.aggregated_list(project=P)
        if scoped.subnetworks
    }
    assert pairs == {f"regions/{R}": ["a"], f"regions/{R2}": ["b"]}


def test_subnet_in_use_by_an_address_cannot_be_deleted(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    subnet(clients, "sn", "10.0.0.0/24")
    address(clients, "ip", address_type="INTERNAL", subnetwork=f"projects/{P}/regions/{R}/subnetworks/sn")
    with pytest.raises(gexc.BadRequest, match=rf"already being used by 'projects/{P}/regions/{R}/addresses/ip'") as err:
        clients.subnetworks.delete(project=P, region=R, subnetwork="sn")
    assert err.value.errors[0]["reason"] == "resourceInUseByAnotherResource"
    clients.addresses.delete(project=P, region=R, address="ip").result(timeout=10)
    clients.subnetworks.delete(project=P, region=R, subnetwork="sn").result(timeout=10)
    assert raw(gcp, "GET", f"regions/{R}/subnetworks/sn").status_code == 404


def expand(clients: Clients, name: str, cidr: str) -> None:
    request = c.SubnetworksExpandIpCidrRangeRequest(ip_cidr_range=cidr)
    clients.subnetworks.expand_ip_cidr_range(
        project=P, region=R, subnetwork=name, subnetworks_expand_ip_cidr_range_request_resource=request
    ).result(timeout=10)


def test_expand_ip_cidr_range_grows_the_primary_range(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    before = subnet(clients, "sn", "10.0.1.0/24")
    subnet(clients, "other", "10.0.64.0/24", region=R2)  # the same network, another region
    expand(clients, "sn", "10.0.0.0/18")  # contains 10.0.1.0/24: gcloud masks the address like this
    after = clients.subnetworks.get(project=P, region=R, subnetwork="sn")
    assert (after.ip_cidr_range, after.gateway_address) == ("10.0.0.0/18", "10.0.1.1")
    assert after.fingerprint != before.fingerprint
    assert gcp.log.writes()[-1].response_body["operationType"] == "expandIpCidrRange"
    # The new range is taken: a new subnet inside it conflicts with sn.
    with pytest.raises(gexc.BadRequest, match=rf"conflicts with existing subnetwork 'sn' in region '{R}'"):
        subnet(clients, "inside", "10.0.32.0/24", region=R2)


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.0.0/17", r"'resource.ipCidrRange': '10.0.0.0/17'.*conflicts with existing subnetwork 'other'"),
        ("10.0.1.0/24", r"must contain the current range 10.0.1.0/24 with a shorter prefix"),
        ("10.0.1.0/25", r"must contain the current range"),
        ("10.8.0.0/16", r"must contain the current range"),
        ("10.0.0.1/16", r"'resource.ipCidrRange': '10.0.0.1/16'. Must be a CIDR"),
        ("10.0.0.0/16", r"overlaps with secondary range 'pods'"),
    ],
)
def test_expand_ip_cidr_range_errors_name_the_field(clients: Clients, cidr: str, message: str) -> None:
    network(clients)
    pods = [c.SubnetworkSecondaryRange(range_name="pods", ip_cidr_range="10.0.128.0/21")]
    subnet(clients, "sn", "10.0.1.0/24", secondary_ip_ranges=pods)
    subnet(clients, "other", "10.0.64.0/24")
    with pytest.raises(gexc.BadRequest, match=message):
        expand(clients, "sn", cidr)
    assert clients.subnetworks.get(project=P, region=R, subnetwork="sn").ip_cidr_range == "10.0.1.0/24"


def test_only_private_subnets_can_be_expanded(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    subnet(clients, "proxy", "10.0.2.0/24", purpose="REGIONAL_MANAGED_PROXY", role="ACTIVE")
    with pytest.raises(gexc.BadRequest, match=r"purpose REGIONAL_MANAGED_PROXY and cannot be expanded"):
        expand(clients, "proxy", "10.0.0.0/22")
    missing = raw(gcp, "POST", f"regions/{R}/subnetworks/missing/expandIpCidrRange", {"ipCidrRange": "10.0.0.0/8"})
    assert missing.status_code == 404
