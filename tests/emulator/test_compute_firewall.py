"""VPC firewall rules and subnet flow logs through google-cloud-compute (what the recipes' gcloud lines do)."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1 as c

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.support.compute import WWW, P, R, network, subnet


@pytest.fixture
def firewalls(gcp: GCPEmulator) -> c.FirewallsClient:
    options = {"api_endpoint": gcp.base_url}
    return c.FirewallsClient(transport="rest", credentials=AnonymousCredentials(), client_options=options)


def insert(clients: Clients, firewalls: c.FirewallsClient, **fields: Any) -> c.Firewall:
    op = firewalls.insert_unary(project=P, firewall_resource=c.Firewall(**fields))
    done = clients.global_operations.wait(project=P, operation=op.name)
    assert done.status == c.Operation.Status.DONE and not done.error.errors, done
    return firewalls.get(project=P, firewall=fields["name"])


def ssh(**fields: Any) -> dict[str, Any]:
    """``gcloud compute firewall-rules create allow-iap-ssh --network=vpc --allow=tcp:22 --source-ranges=...``."""
    return {
        "name": "allow-iap-ssh",
        "network": f"projects/{P}/global/networks/vpc",
        "allowed": [c.Allowed(I_p_protocol="tcp", ports=["22"])],
        "source_ranges": ["35.235.240.0/20"],
        **fields,
    }


def test_a_rule_gets_the_defaults_describe_shows(clients: Clients, firewalls: c.FirewallsClient) -> None:
    network(clients)
    rule = insert(clients, firewalls, **ssh())
    assert (rule.priority, rule.direction, rule.disabled, rule.log_config.enable) == (1000, "INGRESS", False, False)
    assert rule.network == f"{WWW}projects/{P}/global/networks/vpc"
    assert [(a.I_p_protocol, list(a.ports)) for a in rule.allowed] == [("tcp", ["22"])]
    assert list(rule.source_ranges) == ["35.235.240.0/20"]
    assert [r.name for r in firewalls.list(project=P)] == ["allow-iap-ssh"]
    open_rule = insert(
        clients, firewalls, name="all-in", network=rule.network, allowed=[c.Allowed(I_p_protocol="icmp")]
    )
    assert list(open_rule.source_ranges) == ["0.0.0.0/0"]  # an INGRESS rule without a source


def test_an_unknown_network_is_the_404_gcloud_prints(clients: Clients, firewalls: c.FirewallsClient) -> None:
    with pytest.raises(gexc.NotFound) as missing:
        firewalls.insert_unary(project=P, firewall_resource=c.Firewall(**ssh(network="global/networks/nope")))
    assert f"The resource 'projects/{P}/global/networks/nope' was not found" in str(missing.value)
    with pytest.raises(gexc.NotFound) as default:
        firewalls.insert_unary(project=P, firewall_resource=c.Firewall(**ssh(network="")))
    assert f"projects/{P}/global/networks/default" in str(default.value)  # gcloud's default network


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source_ranges": ["35.235.240.0/33"]}, "'resource.sourceRanges[0]': '35.235.240.0/33'"),
        ({"allowed": [c.Allowed(I_p_protocol="icmp", ports=["22"])]}, "'resource.allowed[0].ports[0]'"),
        ({"allowed": [c.Allowed(I_p_protocol="tcp", ports=["0..65535"])]}, "Invalid port range specification"),
        ({"allowed": [c.Allowed(I_p_protocol="gre2")]}, "'resource.allowed[0].IPProtocol'"),
        ({"denied": [c.Denied(I_p_protocol="all")]}, "Exactly one of 'allowed' or 'denied'"),
        ({"priority": 70000}, "'resource.priority'"),
    ],
)
def test_a_bad_rule_is_a_400_naming_the_field(
    clients: Clients, firewalls: c.FirewallsClient, fields: dict[str, Any], message: str
) -> None:
    network(clients)
    with pytest.raises(gexc.BadRequest) as refused:
        firewalls.insert_unary(project=P, firewall_resource=c.Firewall(**ssh(**fields)))
    assert message in str(refused.value)


def test_a_rule_keeps_its_network_in_use_until_deleted(clients: Clients, firewalls: c.FirewallsClient) -> None:
    network(clients)
    insert(clients, firewalls, **ssh())
    patch = firewalls.patch_unary(project=P, firewall="allow-iap-ssh", firewall_resource=c.Firewall(priority=900))
    clients.global_operations.wait(project=P, operation=patch.name)
    assert firewalls.get(project=P, firewall="allow-iap-ssh").priority == 900
    with pytest.raises(gexc.BadRequest) as in_use:
        clients.networks.delete(project=P, network="vpc").result(timeout=10)
    assert f"is already being used by 'projects/{P}/global/firewalls/allow-iap-ssh'" in str(in_use.value)
    clients.global_operations.wait(
        project=P, operation=firewalls.delete_unary(project=P, firewall="allow-iap-ssh").name
    )
    clients.networks.delete(project=P, network="vpc").result(timeout=10)


def test_flow_logs_are_switched_on_with_a_fingerprinted_patch(clients: Clients) -> None:
    network(clients)
    current = subnet(clients, "consumer-subnet", "10.1.0.0/24")
    assert current.enable_flow_logs is False
    body = c.Subnetwork(fingerprint=current.fingerprint, log_config=c.SubnetworkLogConfig(enable=True))
    clients.subnetworks.patch(project=P, region=R, subnetwork="consumer-subnet", subnetwork_resource=body).result(
        timeout=10
    )
    updated = clients.subnetworks.get(project=P, region=R, subnetwork="consumer-subnet")
    assert updated.enable_flow_logs is True and updated.log_config.enable is True
    assert updated.log_config.aggregation_interval == "INTERVAL_5_SEC" and updated.fingerprint != current.fingerprint
    with pytest.raises(gexc.PreconditionFailed):  # the fingerprint read before the patch is stale now
        clients.subnetworks.patch(project=P, region=R, subnetwork="consumer-subnet", subnetwork_resource=body)
