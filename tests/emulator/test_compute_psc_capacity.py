"""PSC NAT subnet capacity in the GCP emulator: NAT IPs per connection, NEEDS_ATTENTION, growing the subnets.

GCP ("About published services", NAT subnet sizing): each connected endpoint takes one IP of the
attachment's NAT subnets (natIpsPerEndpoint of them), each propagated connection as many more, and
four addresses of every NAT subnet are unusable: a /29 serves four endpoints. Beyond that an
accepted connection NEEDS_ATTENTION, on the attachment and on the consumer's forwarding rule, until
the producer adds a NAT subnet. Also propagatedConnectionLimit and enableProxyProtocol.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.cloud import compute_v1

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.emulator import lb_topology as t
from tests.emulator.lb_topology import CONSUMER, PRODUCER, REGION

P, R = PRODUCER, REGION
SA = "hello-service-attachment"


def small_subnets(clients: Clients, p: t.Producer, *names: str) -> list[str]:
    """/29 PSC NAT subnets (four usable IPs each): 10.0.4.0/29, 10.0.5.0/29, ..."""
    return [
        t.subnet(clients, P, name, f"10.0.{4 + i}.0/29", p.vpc, "PRIVATE_SERVICE_CONNECT")
        for i, name in enumerate(names)
    ]


def endpoints(clients: Clients, count: int, target: str, project: str = CONSUMER, first: int = 0) -> None:
    """Consumer endpoints ep-<first>... at 10.1.0.<10 + n>, in a consumer VPC made on first use."""
    vpc = t.link(project, "networks", "consumer-vpc", region=None)
    if first == 0:
        vpc, _ = t.consumer_network(clients, project)
    for n in range(first, first + count):
        t.endpoint(clients, project, f"ep-{n}", target, vpc, f"10.1.0.{10 + n}")


def connected(clients: Clients) -> dict[str, tuple[str, list[str], int]]:
    """Endpoint name -> (status, NAT IPs, propagated connections), as the attachment lists them."""
    sa = clients.service_attachments.get(project=P, region=R, service_attachment=SA)
    return {
        e.endpoint.rsplit("/", 1)[1]: (e.status, list(e.nat_ips), e.propagated_connection_count)
        for e in sa.connected_endpoints
    }


def rule_state(clients: Clients, name: str, project: str = CONSUMER) -> str:
    return str(clients.forwarding_rules.get(project=project, region=R, forwarding_rule=name).psc_connection_status)


def patch(clients: Clients, **fields: Any) -> None:
    current = clients.service_attachments.get(project=P, region=R, service_attachment=SA)
    body = compute_v1.ServiceAttachment(fingerprint=current.fingerprint, **fields)
    clients.service_attachments.patch(
        project=P, region=R, service_attachment=SA, service_attachment_resource=body
    ).result()


def raw_patch(gcp: GCPEmulator, clients: Clients, body: dict[str, Any]) -> requests.Response:
    current = clients.service_attachments.get(project=P, region=R, service_attachment=SA)
    url = f"{gcp.base_url}/compute/v1/projects/{P}/regions/{R}/serviceAttachments/{SA}"
    return requests.patch(url, json={**body, "fingerprint": current.fingerprint}, timeout=10)


def test_a_29_serves_four_endpoints_and_the_fifth_needs_attention(clients: Clients) -> None:
    p = t.producer(clients)
    small, more = small_subnets(clients, p, "psc-small", "psc-more")
    sa = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC", nat_subnets=[small])
    endpoints(clients, 5, sa)
    now = connected(clients)
    assert [now[f"ep-{n}"] for n in range(4)] == [("ACCEPTED", [f"10.0.4.{2 + n}"], 0) for n in range(4)]
    assert now["ep-4"] == ("NEEDS_ATTENTION", [], 0)  # accepted, but no NAT IP is left
    assert rule_state(clients, "ep-4") == "NEEDS_ATTENTION"
    # Growing the NAT subnets is a PATCH that keeps every connection; the waiting one gets its IP.
    patch(clients, nat_subnets=[small, more])
    assert connected(clients)["ep-4"] == ("ACCEPTED", ["10.0.5.2"], 0) and rule_state(clients, "ep-4") == "ACCEPTED"
    assert {n: s[1] for n, s in connected(clients).items() if n != "ep-4"} == {
        f"ep-{n}": [f"10.0.4.{2 + n}"] for n in range(4)
    }


def test_a_freed_ip_goes_to_the_endpoint_waiting_longest(clients: Clients) -> None:
    p = t.producer(clients)
    [small] = small_subnets(clients, p, "psc-small")
    sa = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC", nat_subnets=[small])
    endpoints(clients, 6, sa)
    assert [s[0] for s in connected(clients).values()] == ["ACCEPTED"] * 4 + ["NEEDS_ATTENTION"] * 2
    clients.forwarding_rules.delete(project=CONSUMER, region=R, forwarding_rule="ep-1").result()
    now = connected(clients)
    assert (now["ep-4"], now["ep-5"][0]) == (("ACCEPTED", ["10.0.4.3"], 0), "NEEDS_ATTENTION")
    assert rule_state(clients, "ep-4") == "ACCEPTED"


def test_only_accepted_connections_take_nat_ips(clients: Clients) -> None:
    p = t.producer(clients)
    [small] = small_subnets(clients, p, "psc-small")
    sa = t.attachment(clients, p, accept=[t.limit(CONSUMER, 1)], reject=["bad-project"], nat_subnets=[small])
    endpoints(clients, 2, sa)
    bad_vpc, _ = t.consumer_network(clients, "bad-project")
    t.endpoint(clients, "bad-project", "bad-ep", sa, bad_vpc, "10.1.0.50")
    assert connected(clients) == {
        "ep-0": ("ACCEPTED", ["10.0.4.2"], 0),
        "ep-1": ("PENDING", [], 0),
        "bad-ep": ("REJECTED", [], 0),
    }
    patch(clients, consumer_accept_lists=[t.limit(CONSUMER, 5)])  # the pending one is accepted: next IP
    assert connected(clients)["ep-1"] == ("ACCEPTED", ["10.0.4.3"], 0)
    patch(clients, consumer_reject_lists=["bad-project", CONSUMER], reconcile_connections=True)
    assert [connected(clients)[n] for n in ("ep-0", "ep-1")] == [("REJECTED", [], 0)] * 2  # IPs given back
    patch(clients, consumer_reject_lists=["bad-project"], reconcile_connections=True)
    assert [connected(clients)[n][1] for n in ("ep-0", "ep-1")] == [["10.0.4.2"], ["10.0.4.3"]]


def test_removing_a_nat_subnet_in_use_is_refused(gcp: GCPEmulator, clients: Clients) -> None:
    p = t.producer(clients)
    small, more, spare = small_subnets(clients, p, "psc-small", "psc-more", "psc-spare")
    sa = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC", nat_subnets=[small, more, spare])
    endpoints(clients, 5, sa)  # four IPs of psc-small, one of psc-more
    for kept in ([more, spare], [small, spare]):
        refused = raw_patch(gcp, clients, {"natSubnets": kept})
        assert refused.status_code == 400, refused.text
        assert "field 'resource.natSubnets'" in refused.text and "cannot be removed" in refused.text
    patch(clients, nat_subnets=[small, more])  # psc-spare holds no IP: it can go
    clients.forwarding_rules.delete(project=CONSUMER, region=R, forwarding_rule="ep-4").result()
    patch(clients, nat_subnets=[small])  # nor does psc-more any longer
    assert len(connected(clients)) == 4


def test_nat_ips_per_endpoint(gcp: GCPEmulator, clients: Clients) -> None:
    p = t.producer(clients)
    small, more = small_subnets(clients, p, "psc-small", "psc-more")
    sa = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC", nat_subnets=[small])
    endpoints(clients, 3, sa)  # three of the four IPs
    for bad in (0, 3, "two"):
        response = raw_patch(gcp, clients, {"natIpsPerEndpoint": bad})
        assert response.status_code == 400 and "natIpsPerEndpoint" in response.text, response.text
    short = raw_patch(gcp, clients, {"natIpsPerEndpoint": 2})  # three more IPs needed, one free
    assert short.status_code == 400 and "Insufficient IPv4 capacity" in short.text, short.text
    patch(clients, nat_ips_per_endpoint=2, nat_subnets=[small, more])
    now = connected(clients)
    assert [len(ips) for _, ips, _ in now.values()] == [2, 2, 2]
    assert now["ep-0"][1] == ["10.0.4.2", "10.0.4.5"]  # the first IP stays; the second is new
    back = raw_patch(gcp, clients, {"natIpsPerEndpoint": 1})
    assert back.status_code == 400 and "cannot be decreased" in back.text, back.text
    endpoints(clients, 2, sa, first=3)  # two IPs left: one more endpoint fits
    assert [s for s, _, _ in connected(clients).values()] == ["ACCEPTED"] * 4 + ["NEEDS_ATTENTION"]
    assert clients.service_attachments.get(project=P, region=R, service_attachment=SA).nat_ips_per_endpoint == 2


def test_propagated_connections_take_ips_within_the_limit(gcp: GCPEmulator, clients: Clients) -> None:
    p = t.producer(clients)
    small, more = small_subnets(clients, p, "psc-small", "psc-more")
    rule = f"projects/{CONSUMER}/regions/{R}/forwardingRules"
    gcp.extra["psc_propagated_spokes"] = {f"{rule}/ep-0": 3, f"{rule}/ep-1": 1}  # NCC spokes per endpoint
    body = compute_v1.ServiceAttachment(
        name=SA,
        connection_preference="ACCEPT_AUTOMATIC",
        target_service=p.rule,
        nat_subnets=[small],
        propagated_connection_limit=2,
    )
    clients.service_attachments.insert(project=P, region=R, service_attachment_resource=body).result()
    endpoints(clients, 2, t.link(P, "serviceAttachments", SA))
    # ep-0: its own IP and two propagated ones (the limit is per consumer project); ep-1: only its own.
    assert connected(clients) == {
        "ep-0": ("ACCEPTED", ["10.0.4.2", "10.0.4.3", "10.0.4.4"], 2),
        "ep-1": ("ACCEPTED", ["10.0.4.5"], 0),
    }
    # Raising the limit makes the pending propagated connections, given IPs (GCP's NCC troubleshooting page).
    patch(clients, propagated_connection_limit=10, nat_subnets=[small, more])
    assert connected(clients) == {
        "ep-0": ("ACCEPTED", ["10.0.4.2", "10.0.4.3", "10.0.4.4", "10.0.5.2"], 3),
        "ep-1": ("ACCEPTED", ["10.0.4.5", "10.0.5.3"], 1),
    }
    gcp.extra["psc_propagated_spokes"][f"{rule}/ep-0"] = 1  # the consumer propagates ep-0 to one spoke only
    patch(clients, propagated_connection_limit=1)  # lowering the limit ends nothing already made
    assert connected(clients) == {
        "ep-0": ("ACCEPTED", ["10.0.4.2", "10.0.4.3"], 1),
        "ep-1": ("ACCEPTED", ["10.0.4.5", "10.0.5.3"], 1),
    }


def test_propagated_connection_limit_and_proxy_protocol_fields(gcp: GCPEmulator, clients: Clients) -> None:
    p = t.producer(clients)
    sa = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC")
    endpoints(clients, 1, sa)
    fresh = clients.service_attachments.get(project=P, region=R, service_attachment=SA)
    assert (fresh.propagated_connection_limit, fresh.enable_proxy_protocol) == (250, False)  # GCP's defaults
    for bad in (-1, 2**32, "many"):
        response = raw_patch(gcp, clients, {"propagatedConnectionLimit": bad})
        assert response.status_code == 400 and "propagatedConnectionLimit" in response.text, response.text
    before = connected(clients)
    patch(clients, enable_proxy_protocol=True, propagated_connection_limit=0)  # 0: no propagation at all
    after = clients.service_attachments.get(project=P, region=R, service_attachment=SA)
    assert (after.enable_proxy_protocol, after.propagated_connection_limit) == (True, 0)
    assert connected(clients) == before  # PROXY protocol applies to new connections only: nothing moves
    assert raw_patch(gcp, clients, {"enableProxyProtocol": False}).status_code == 200
    assert clients.service_attachments.get(project=P, region=R, service_attachment=SA).enable_proxy_protocol is False


@pytest.mark.parametrize(("field", "value"), [("natIpsPerEndpoint", 5), ("propagatedConnectionLimit", -1)])
def test_bad_counts_are_refused_at_insert(gcp: GCPEmulator, clients: Clients, field: str, value: int) -> None:
    p = t.producer(clients)
    body = {
        "name": SA,
        "connectionPreference": "ACCEPT_AUTOMATIC",
        "targetService": p.rule,
        "natSubnets": [p.psc_subnet],
        field: value,
    }
    url = f"{gcp.base_url}/compute/v1/projects/{P}/regions/{R}/serviceAttachments"
    response = requests.post(url, json=body, timeout=10)
    assert response.status_code == 400 and f"field 'resource.{field}'" in response.text, response.text
    with pytest.raises(exceptions.NotFound):
        clients.service_attachments.get(project=P, region=R, service_attachment=SA)
