"""Regional addresses in the GCP emulator: IP allocation, IN_USE/users, labels, in-use deletes."""

from __future__ import annotations

import ipaddress

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1 as c

from runnet.emulator.gcp import EmulatorConfig, GCPEmulator, ids
from runnet.gcp.clients import Clients
from tests.support.compute import WWW, P, R, address, network, raw, subnet

SUBNET = f"projects/{P}/regions/{R}/subnetworks/sn"


@pytest.fixture
def gcp_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    return getattr(request, "param", None) or EmulatorConfig(seed=1)


def internal(clients: Clients, name: str, ip: str = "") -> c.Address:
    fields = {"address": ip} if ip else {}
    return address(clients, name, address_type="INTERNAL", subnetwork=SUBNET, **fields)


def test_external_address_defaults(gcp: GCPEmulator, clients: Clients) -> None:
    response = raw(gcp, "POST", f"regions/{R}/addresses", {"name": "static-ip"})  # what gcloud sends
    assert response.json()["operationType"] == "insert"
    ip = clients.addresses.get(project=P, region=R, address="static-ip")
    assert (ip.address_type, ip.network_tier, ip.status, ip.description) == ("EXTERNAL", "PREMIUM", "RESERVED", "")
    assert ip.label_fingerprint == ids.EMPTY_LABEL_FINGERPRINT and not ip.users and not ip.purpose
    assert ipaddress.ip_address(ip.address) in ipaddress.ip_network("34.146.0.0/16")
    assert ip.self_link == f"{WWW}projects/{P}/regions/{R}/addresses/static-ip"


@pytest.mark.parametrize("gcp_config", [EmulatorConfig(nat_ip_prefix="35.200")], indirect=True)
def test_external_pool_follows_config_and_never_reuses_an_ip(clients: Clients) -> None:
    first = address(clients, "a").address
    assert first.startswith("35.200.")
    clients.addresses.delete(project=P, region=R, address="a").result(timeout=10)
    second = address(clients, "b").address
    assert second != first  # a released IP is not handed out again (allowlists must notice)
    assert address(clients, "a-again", address=first).address == first  # asked for explicitly: honoured
    with pytest.raises(gexc.BadRequest, match=r"in-use"):
        address(clients, "thief", address=second)
    with pytest.raises(gexc.NotFound):
        clients.addresses.get(project=P, region=R, address="thief")


def test_internal_address_allocation(clients: Clients) -> None:
    network(clients)
    subnet(clients, "sn", "10.1.0.0/24")
    wanted = internal(clients, "psc-endpoint-ip", "10.1.0.5")
    assert (wanted.address, wanted.purpose, wanted.network_tier) == ("10.1.0.5", "GCE_ENDPOINT", "PREMIUM")
    assert wanted.subnetwork == SUBNET  # echoed exactly as sent (relative), as GCP does
    assert [internal(clients, n).address for n in ("x", "y")] == ["10.1.0.2", "10.1.0.3"]
    with pytest.raises(gexc.Conflict, match=r"IP '10.1.0.5' is already being used"):
        internal(clients, "dup", "10.1.0.5")
    for outside in ("10.1.0.1", "10.1.0.255", "10.2.0.5"):  # gateway, broadcast, other range
        with pytest.raises(gexc.BadRequest, match=rf"'resource.address': '{outside}'. Requested internal IP"):
            internal(clients, "bad", outside)
    with pytest.raises(gexc.BadRequest, match=r"'resource.subnetwork'"):
        address(clients, "nosubnet", address_type="INTERNAL")


def test_address_in_use_by_a_forwarding_rule(gcp: GCPEmulator, clients: Clients) -> None:
    ip = address(clients, "lb-ip").address
    # Forwarding rules belong to compute_lb; seeded here as it stores them (IPAddress = the literal IP).
    rule = f"projects/{P}/regions/{R}/forwardingRules/fr"
    gcp.store.put(rule, {"kind": "compute#forwardingRule", "name": "fr", "IPAddress": ip, "selfLink": WWW + rule})
    used = clients.addresses.get(project=P, region=R, address="lb-ip")
    assert (used.status, list(used.users)) == ("IN_USE", [WWW + rule])
    with pytest.raises(gexc.BadRequest, match=rf"already being used by '{rule}'") as err:
        clients.addresses.delete(project=P, region=R, address="lb-ip")
    assert err.value.errors[0]["reason"] == "resourceInUseByAnotherResource"
    gcp.store.delete(rule)
    assert clients.addresses.get(project=P, region=R, address="lb-ip").status == "RESERVED"
    clients.addresses.delete(project=P, region=R, address="lb-ip").result(timeout=10)


def test_set_labels_with_fingerprint(gcp: GCPEmulator, clients: Clients) -> None:
    ip = address(clients, "ip", labels={"runnet": "egress"})
    assert ip.label_fingerprint != ids.EMPTY_LABEL_FINGERPRINT
    request = c.RegionSetLabelsRequest(
        labels={"runnet": "egress", "team": "net"}, label_fingerprint=ip.label_fingerprint
    )
    clients.addresses.set_labels(project=P, region=R, resource="ip", region_set_labels_request_resource=request).result(
        timeout=10
    )
    after = clients.addresses.get(project=P, region=R, address="ip")
    assert dict(after.labels) == {"runnet": "egress", "team": "net"}
    assert after.label_fingerprint not in (ip.label_fingerprint, ids.EMPTY_LABEL_FINGERPRINT)
    assert gcp.log.writes()[-1].response_body["operationType"] == "setLabels"
    with pytest.raises(gexc.PreconditionFailed, match=r"Labels fingerprint"):
        clients.addresses.set_labels(project=P, region=R, resource="ip", region_set_labels_request_resource=request)
    bad = raw(
        gcp,
        "POST",
        f"regions/{R}/addresses/ip/setLabels",
        {"labels": {"Bad": "x"}, "labelFingerprint": after.label_fingerprint},
    )
    assert bad.status_code == 400


def test_address_list_and_aggregated_list_show_status(clients: Clients) -> None:
    address(clients, "a")
    address(clients, "b")
    assert [a.name for a in clients.addresses.list(project=P, region=R)] == ["a", "b"]
    scoped = dict(clients.addresses.aggregated_list(project=P))
    assert [a.status for a in scoped[f"regions/{R}"].addresses] == ["RESERVED", "RESERVED"]


def test_set_labels_accepts_the_fingerprint_in_url_safe_base64(gcp) -> None:
    """gcloud (apitools) echoes fingerprints in URL-safe base64; GCP compares the bytes."""
    import base64

    import requests

    base = f"{gcp.base_url}/compute/v1/projects/p/regions/us-central1/addresses"
    assert requests.post(base, json={"name": "a1"}, timeout=10).status_code == 200
    current = requests.get(f"{base}/a1", timeout=10).json()["labelFingerprint"]
    # Find labels whose fingerprint has a '+' or '/' so the URL-safe form differs.
    for i in range(200):
        labels = {"k": f"v{i}"}
        resp = requests.post(f"{base}/a1/setLabels", json={"labels": labels, "labelFingerprint": current}, timeout=10)
        assert resp.status_code == 200, resp.text
        current = requests.get(f"{base}/a1", timeout=10).json()["labelFingerprint"]
        if "+" in current or "/" in current:
            break
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(current)).decode()
    assert urlsafe != current
    resp = requests.post(
        f"{base}/a1/setLabels", json={"labels": {"k": "final"}, "labelFingerprint": urlsafe}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    stale = requests.post(f"{base}/a1/setLabels", json={"labels": {}, "labelFingerprint": urlsafe}, timeout=10)
    assert stale.status_code == 412


def test_an_aggregated_list_applies_its_filter_in_every_region(clients: Clients) -> None:
    address(clients, "a")
    address(clients, "b")
    elsewhere = c.Address(name="a", address_type="EXTERNAL")
    clients.addresses.insert(project=P, region="europe-west1", address_resource=elsewhere).result()
    request = c.AggregatedListAddressesRequest(project=P, filter="name = a")
    scoped = {scope: [a.name for a in found.addresses] for scope, found in clients.addresses.aggregated_list(request)}
    assert scoped == {"regions/europe-west1": ["a"], f"regions/{R}": ["a"]}
