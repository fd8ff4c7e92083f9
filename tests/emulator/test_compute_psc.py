"""Private Service Connect in the GCP emulator: service attachments and consumer endpoints.

The reference topology of DESIGN.md end to end, then each rule of the connection policy:
accept/reject lists, connection limits, policy changes with and without reconcileConnections,
and what deleting either side does. Always through google-cloud-compute over HTTP.
"""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions
from google.cloud import compute_v1

from runnet.emulator.gcp import GCPEmulator, ids
from runnet.gcp.clients import Clients
from tests.emulator import lb_topology as t
from tests.emulator.lb_topology import CONSUMER, PRODUCER, REGION

P, R = PRODUCER, REGION
SA = "hello-service-attachment"


def attachment(clients: Clients, name: str = SA) -> compute_v1.ServiceAttachment:
    return clients.service_attachments.get(project=P, region=R, service_attachment=name)


def states(clients: Clients, name: str = SA) -> dict[str, str]:
    """Endpoint name -> status, as the attachment lists them."""
    return {e.endpoint.rsplit("/", 1)[1]: e.status for e in attachment(clients, name).connected_endpoints}


def rule_state(clients: Clients, project: str, name: str) -> str:
    return str(clients.forwarding_rules.get(project=project, region=R, forwarding_rule=name).psc_connection_status)


def consumer(clients: Clients, project: str, target: str, *names: str) -> None:
    """A consumer VPC in ``project`` with one endpoint per name (10.1.0.10, .11, ...)."""
    vpc, _ = t.consumer_network(clients, project)
    for i, name in enumerate(names):
        t.endpoint(clients, project, name, target, vpc, f"10.1.0.{10 + i}")


def patch(clients: Clients, **fields: object) -> None:
    current = attachment(clients)
    body = compute_v1.ServiceAttachment(fingerprint=current.fingerprint, **fields)  # type: ignore[arg-type]
    clients.service_attachments.patch(
        project=P, region=R, service_attachment=SA, service_attachment_resource=body
    ).result()


def test_reference_topology_is_accepted_on_both_sides(clients: Clients, gcp: GCPEmulator) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, accept=[t.limit(CONSUMER, 10)])
    vpc, subnet = t.consumer_network(clients)
    address = t.internal_address(clients, CONSUMER, "psc-endpoint-ip", "10.1.0.5", subnet)
    rule = t.endpoint(clients, CONSUMER, "psc-endpoint", sa_url, vpc, address)

    assert rule.I_p_address == "10.1.0.5" and rule.psc_connection_status == "ACCEPTED"
    assert rule.psc_connection_id > 0 and rule.target == sa_url and rule.network == vpc
    assert not rule.load_balancing_scheme  # empty scheme: not returned
    sa = attachment(clients)
    [connected] = sa.connected_endpoints
    assert connected.status == "ACCEPTED" and connected.psc_connection_id == rule.psc_connection_id
    assert connected.endpoint == t.link(CONSUMER, "forwardingRules", "psc-endpoint")
    assert connected.endpoint_with_id == rule.self_link_with_id and connected.consumer_network == vpc
    assert connected.nat_ips[0].startswith("10.0.3.")  # from producer-psc-subnet
    assert sa.region == f"{t.BASE}/{P}/regions/{R}" and sa.fingerprint
    assert sa.psc_service_attachment_id.high > 0 and sa.psc_service_attachment_id.low > 0
    assert (sa.target_service, list(sa.nat_subnets)) == (p.rule, [p.psc_subnet])
    address_now = clients.addresses.get(project=CONSUMER, region=R, address="psc-endpoint-ip")
    assert address_now.status == "IN_USE" and list(address_now.users) == [connected.endpoint]
    assert gcp.store.get(f"projects/{CONSUMER}/regions/{R}/forwardingRules/psc-endpoint")["IPAddress"] == "10.1.0.5"
    inserts = [
        e.response_body["operationType"] for e in gcp.log.snapshot() if e.method_id.endswith("forwardingRules.insert")
    ]
    assert inserts == ["insert", "createRegionPscForwardingRule"]  # the producer's rule, then the endpoint


def test_manual_policy_pending_rejected_and_limit(clients: Clients) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, accept=[t.limit(CONSUMER, 2)], reject=["bad-project"])
    consumer(clients, CONSUMER, sa_url, "ep-1", "ep-2", "ep-3")
    consumer(clients, "bad-project", sa_url, "bad-ep")
    consumer(clients, "unknown-project", sa_url, "unknown-ep")
    expected = {
        "ep-1": "ACCEPTED",
        "ep-2": "ACCEPTED",
        "ep-3": "PENDING",
        "bad-ep": "REJECTED",
        "unknown-ep": "PENDING",
    }
    assert states(clients) == expected
    assert rule_state(clients, CONSUMER, "ep-3") == "PENDING"
    assert rule_state(clients, "bad-project", "bad-ep") == "REJECTED"

    # Deleting an endpoint removes its connection from the attachment.
    op = clients.forwarding_rules.delete(project=CONSUMER, region=R, forwarding_rule="ep-1")
    op.result()
    assert op.operation_type == "deleteRegionPscForwardingRule"
    assert "ep-1" not in states(clients)


def test_accept_list_change_moves_pending_endpoints(clients: Clients) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, accept=[t.limit(CONSUMER, 1)])
    consumer(clients, CONSUMER, sa_url, "ep-1", "ep-2")
    consumer(clients, "late-project", sa_url, "late-ep")
    assert states(clients) == {"ep-1": "ACCEPTED", "ep-2": "PENDING", "late-ep": "PENDING"}
    patch(clients, consumer_accept_lists=[t.limit(CONSUMER, 5), t.limit("late-project", 1)])
    assert states(clients) == {"ep-1": "ACCEPTED", "ep-2": "ACCEPTED", "late-ep": "ACCEPTED"}
    assert rule_state(clients, "late-project", "late-ep") == "ACCEPTED"


@pytest.mark.parametrize("reconcile", [False, True])
def test_policy_flip_with_and_without_reconcile(clients: Clients, reconcile: bool) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, accept=[t.limit("alpha", 5)], reject=["beta"])
    consumer(clients, "alpha", sa_url, "alpha-ep")
    consumer(clients, "beta", sa_url, "beta-ep")
    assert states(clients) == {"alpha-ep": "ACCEPTED", "beta-ep": "REJECTED"}
    patch(
        clients,
        consumer_accept_lists=[t.limit("beta", 5)],
        consumer_reject_lists=["alpha"],
        reconcile_connections=reconcile,
    )
    flipped = {"alpha-ep": "REJECTED", "beta-ep": "ACCEPTED"}
    kept = {"alpha-ep": "ACCEPTED", "beta-ep": "REJECTED"}
    assert states(clients) == (flipped if reconcile else kept)
    assert rule_state(clients, "alpha", "alpha-ep") == (flipped if reconcile else kept)["alpha-ep"]


def test_automatic_preference_accepts_everyone(clients: Clients) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC")
    consumer(clients, "anyone", sa_url, "any-ep")
    assert states(clients) == {"any-ep": "ACCEPTED"}


def test_manual_to_automatic_accepts_pending(clients: Clients) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p)
    consumer(clients, "someone", sa_url, "some-ep")
    assert states(clients) == {"some-ep": "PENDING"}
    patch(clients, connection_preference="ACCEPT_AUTOMATIC")
    assert states(clients) == {"some-ep": "ACCEPTED"}


def test_project_numbers_and_networks_in_lists(clients: Clients) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, accept=[t.limit(ids.project_number(CONSUMER), 1)])
    consumer(clients, CONSUMER, sa_url, "by-number")
    assert states(clients) == {"by-number": "ACCEPTED"}

    vpc = t.link("net-project", "networks", "consumer-vpc", region=None)
    t.attachment(
        clients,
        p,
        name="by-network",
        accept=[t.limit(vpc, 1)],
        nat_subnets=[t.subnet(clients, P, "psc-2", "10.0.4.0/24", p.vpc, "PRIVATE_SERVICE_CONNECT")],
    )
    by_network = t.link(P, "serviceAttachments", "by-network")
    consumer(clients, "net-project", by_network, "in-vpc")
    other_vpc = t.network(clients, "net-project", "other-vpc")
    t.subnet(clients, "net-project", "other-subnet", "10.2.0.0/24", other_vpc)
    t.endpoint(clients, "net-project", "other-ep", by_network, other_vpc, "10.2.0.10")
    assert states(clients, "by-network") == {"in-vpc": "ACCEPTED", "other-ep": "PENDING"}


def test_lists_cannot_mix_projects_and_networks(clients: Clients) -> None:
    p = t.producer(clients)
    vpc = t.link(CONSUMER, "networks", "consumer-vpc", region=None)
    with pytest.raises(exceptions.BadRequest, match=r"only projects, only networks"):
        t.attachment(clients, p, accept=[t.limit(CONSUMER, 1), t.limit(vpc, 1)])
    with pytest.raises(exceptions.BadRequest, match=r"only projects, only networks"):
        t.attachment(clients, p, accept=[t.limit(CONSUMER, 1)], reject=[vpc])


def test_nat_subnets_need_psc_purpose_and_one_attachment_each(clients: Clients) -> None:
    p = t.producer(clients)
    with pytest.raises(exceptions.BadRequest, match=r"PRIVATE_SERVICE_CONNECT"):
        t.attachment(clients, p, nat_subnets=[p.subnet])
    t.attachment(clients, p)
    with pytest.raises(exceptions.BadRequest, match=r"already used by"):
        t.attachment(clients, p, name="second")
    gone = compute_v1.ServiceAttachment(
        name="dangling",
        connection_preference="ACCEPT_AUTOMATIC",
        target_service=t.link(P, "forwardingRules", "nope"),
        nat_subnets=[p.psc_subnet],
    )
    with pytest.raises(exceptions.NotFound, match=r"forwardingRules/nope"):
        clients.service_attachments.insert(project=P, region=R, service_attachment_resource=gone)


def test_patch_requires_the_current_fingerprint(clients: Clients) -> None:
    p = t.producer(clients)
    t.attachment(clients, p)
    before = attachment(clients)
    stale = compute_v1.ServiceAttachment(fingerprint="c3RhbGU=", connection_preference="ACCEPT_AUTOMATIC")
    with pytest.raises(exceptions.PreconditionFailed):
        clients.service_attachments.patch(project=P, region=R, service_attachment=SA, service_attachment_resource=stale)
    patch(clients, connection_preference="ACCEPT_AUTOMATIC")
    after = attachment(clients)
    assert after.connection_preference == "ACCEPT_AUTOMATIC" and after.fingerprint != before.fingerprint
    assert after.psc_service_attachment_id == before.psc_service_attachment_id and after.id == before.id


def test_deleting_the_attachment_closes_its_endpoints(clients: Clients) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC")
    consumer(clients, CONSUMER, sa_url, "psc-endpoint")
    with pytest.raises(exceptions.BadRequest, match=r"is already being used by"):
        clients.forwarding_rules.delete(project=P, region=R, forwarding_rule="hello-forwarding-rule")
    clients.service_attachments.delete(project=P, region=R, service_attachment=SA).result()
    assert rule_state(clients, CONSUMER, "psc-endpoint") == "CLOSED"
    with pytest.raises(
        exceptions.NotFound, match=f'serviceAttachment "projects/{P}/regions/{R}/serviceAttachments/{SA}" not found'
    ):
        attachment(clients)
    clients.forwarding_rules.delete(project=P, region=R, forwarding_rule="hello-forwarding-rule").result()
    # A new attachment with the same name is another service: the old endpoint stays CLOSED.
    p.rule = t.proxy_rule(clients, "hello-forwarding-rule", p.vpc, p.subnet, p.proxy)
    t.attachment(clients, p, preference="ACCEPT_AUTOMATIC")
    assert states(clients) == {} and rule_state(clients, CONSUMER, "psc-endpoint") == "CLOSED"


def test_consumer_endpoint_validation(clients: Clients) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, preference="ACCEPT_AUTOMATIC")
    vpc, subnet = t.consumer_network(clients)
    with pytest.raises(exceptions.BadRequest, match=r"IPAddress"):
        t.endpoint(clients, CONSUMER, "outside", sa_url, vpc, "10.9.0.5")
    with pytest.raises(exceptions.NotFound, match=r"not found"):
        t.endpoint(clients, CONSUMER, "nowhere", t.link(P, "serviceAttachments", "nope"), vpc, "10.1.0.7")
    external = compute_v1.Address(name="public-ip")
    clients.addresses.insert(project=CONSUMER, region=R, address_resource=external).result()
    with pytest.raises(exceptions.BadRequest, match=r"INTERNAL"):
        t.endpoint(clients, CONSUMER, "public", sa_url, vpc, t.link(CONSUMER, "addresses", "public-ip"))
    scheme = compute_v1.ForwardingRule(
        name="external-scheme", load_balancing_scheme="EXTERNAL", network=vpc, I_p_address="10.1.0.7", target=sa_url
    )
    with pytest.raises(exceptions.BadRequest, match=r"loadBalancingScheme"):
        clients.forwarding_rules.insert(project=CONSUMER, region=R, forwarding_rule_resource=scheme)
    t.endpoint(clients, CONSUMER, "literal", sa_url, vpc, "10.1.0.7")
    with pytest.raises(exceptions.Conflict, match=r"10\.1\.0\.7"):
        t.endpoint(clients, CONSUMER, "same-ip", sa_url, vpc, "10.1.0.7")
    other_vpc = t.network(clients, CONSUMER, "other-vpc")  # another VPC may reuse the range and the IP
    t.subnet(clients, CONSUMER, "other-subnet", "10.1.0.0/24", other_vpc)
    assert t.endpoint(clients, CONSUMER, "same-ip-other-vpc", sa_url, other_vpc, "10.1.0.7").I_p_address == "10.1.0.7"
    listed = clients.forwarding_rules.aggregated_list(project=CONSUMER)
    found = {r.name: r.psc_connection_status for _, scoped in listed for r in scoped.forwarding_rules}
    assert found == {"literal": "ACCEPTED", "same-ip-other-vpc": "ACCEPTED"}
    assert subnet.endswith("/consumer-subnet")


def test_endpoint_connects_when_its_operation_completes(clients: Clients, gcp: GCPEmulator) -> None:
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, accept=[t.limit(CONSUMER, 1)])
    vpc, _ = t.consumer_network(clients)
    gcp.config.operation_latency = 0.3
    body = compute_v1.ForwardingRule(
        name="slow-ep", load_balancing_scheme="", network=vpc, I_p_address="10.1.0.9", target=sa_url
    )
    op = clients.forwarding_rules.insert(project=CONSUMER, region=R, forwarding_rule_resource=body)
    assert states(clients) == {}  # not connected before the insert is DONE
    op.result()
    assert states(clients) == {"slow-ep": "ACCEPTED"} and rule_state(clients, CONSUMER, "slow-ep") == "ACCEPTED"


def test_patch_with_an_explicit_empty_list_clears_it(clients: Clients, gcp: GCPEmulator) -> None:
    """The Python client cannot send ``[]``; a raw merge patch can, and it empties the list."""
    p = t.producer(clients)
    sa_url = t.attachment(clients, p, accept=[t.limit(CONSUMER, 1)], reject=["gamma"])
    consumer(clients, "gamma", sa_url, "gamma-ep")
    assert states(clients) == {"gamma-ep": "REJECTED"}
    body = {"fingerprint": attachment(clients).fingerprint, "consumerRejectLists": [], "reconcileConnections": True}
    url = f"{gcp.base_url}/compute/v1/projects/{P}/regions/{R}/serviceAttachments/{SA}"
    assert requests.patch(url, json=body, timeout=5).status_code == 200
    after = attachment(clients)
    assert not after.consumer_reject_lists and [e.project_id_or_num for e in after.consumer_accept_lists] == [CONSUMER]
    assert states(clients) == {"gamma-ep": "PENDING"}  # reconciled: no longer rejected, not accepted either
