"""PSCExport and PSCEndpoint reconcile against the GCP emulator, through the official clients over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import compute_v1, run_v2
from google.iam.v1 import iam_policy_pb2

from runnet.controllers import psc
from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from runnet.gcp.network import COMPUTE
from tests.emulator import lb_topology
from tests.operator.conftest import Driver, deploy_service, example

PRODUCER, CONSUMER, REGION = "producer-project", "consumer-project", "asia-northeast1"
SERVICE = f"projects/{PRODUCER}/locations/{REGION}/services/hello-service"
ATTACHMENT = f"projects/{PRODUCER}/regions/{REGION}/serviceAttachments/hello-service-attachment"
INVOKER = "serviceAccount:123456789-compute@developer.gserviceaccount.com"


@pytest.fixture
def service(clients: Clients) -> run_v2.Service:
    return deploy_service(clients, PRODUCER, REGION, "hello-service")


class Topology:
    """An export and an endpoint driven like the handlers drive them, the endpoint resolving its exportRef."""

    def __init__(self, driver_factory: Any, export: dict[str, Any], endpoint: dict[str, Any]) -> None:
        self.exports: dict[tuple[str, str], dict[str, Any]] = {}
        self.export: Driver = driver_factory(psc.reconcile_export, psc.finalize_export, export)
        self.export.body["metadata"]["uid"] = "7d1c2f0a-0000-4b1e-8c7d-000000000001"
        controller = psc.EndpointController(psc.MappingResolver(self.exports))
        self.endpoint: Driver = driver_factory(controller.reconcile, controller.finalize, endpoint)
        self.publish()

    def publish(self) -> None:
        """What kopf's index of PSCExports holds: the export's body with its latest status."""
        meta = self.export.body["metadata"]
        self.exports[(meta["namespace"], meta["name"])] = {**self.export.body, "status": self.export.status}

    async def export_pass(self) -> Any:
        outcome = await self.export.reconcile()
        self.publish()
        return outcome

    async def converge(self, passes: int = 4) -> None:
        for _ in range(passes):
            await self.export_pass()
            await self.endpoint.reconcile()
            if self.export.condition()["status"] == self.endpoint.condition()["status"] == "True":
                # One more export pass shows the endpoint's connection; under faults it may fail, so go on.
                await self.export_pass()
                if self.export.condition()["status"] == "True":
                    return


def topology(driver_factory: Any, export: dict[str, Any] | None = None) -> Topology:
    return Topology(
        driver_factory,
        export or example("psc-export.yaml"),
        example("psc-endpoint.yaml"),
    )


def ready(driver: Driver) -> tuple[str, str]:
    cond = driver.condition()
    return cond["status"], cond["reason"]


def owned_inventory(gcp: GCPEmulator) -> list[str]:
    return sorted(p for p, _ in gcp.store.items() if "/operations/" not in p)


async def test_reference_topology_converges_with_the_consumer_accepted(driver_factory, service, clients, gcp) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    assert ready(topo.export) == ("True", "Reconciled"), topo.export.condition()
    assert ready(topo.endpoint) == ("True", "Reconciled"), topo.endpoint.condition()
    status = topo.export.status
    assert status["serviceAttachment"] == f"https://www.googleapis.com/compute/v1/{ATTACHMENT}"
    assert status["summary"] == {"attachment": ATTACHMENT}
    assert (status["accepted"], status["pending"], status["rejected"]) == (1, 0, 0)
    rule = clients.forwarding_rules.get(project=CONSUMER, region=REGION, forwarding_rule="psc-endpoint")
    (conn,) = status["connections"]
    assert conn == {
        "project": CONSUMER,
        "network": f"projects/{CONSUMER}/global/networks/consumer-vpc",
        "endpoint": f"projects/{CONSUMER}/regions/{REGION}/forwardingRules/psc-endpoint",
        "pscConnectionId": str(rule.psc_connection_id),
        "status": "ACCEPTED",
    }
    ep = topo.endpoint.status
    assert (ep["ip"], ep["connectionStatus"], ep["pscConnectionId"]) == (
        "10.1.0.5",
        "ACCEPTED",
        conn["pscConnectionId"],
    )
    assert rule.psc_connection_status == "ACCEPTED" and rule.I_p_address == "10.1.0.5"
    sa = clients.service_attachments.get(project=PRODUCER, region=REGION, service_attachment="hello-service-attachment")
    assert sa.connection_preference == "ACCEPT_MANUAL"
    assert [(a.project_id_or_num, a.connection_limit) for a in sa.consumer_accept_lists] == [(CONSUMER, 10)]
    svc = clients.run_services.get_service(name=SERVICE)
    assert svc.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    assert _invokers(clients) == {INVOKER}
    assert status["grantedInvokers"] == [INVOKER]
    assert {e.reason for e in topo.export.events} >= {"IngressNarrowed", "ConnectionAccepted"}
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "ServiceReady": "True",
        "NATSubnetCapacity": "True",
    }
    names = {(r["kind"], r["name"]) for r in status["resources"] if r["owned"]}
    assert ("ServiceAttachment", "hello-service-attachment") in names
    assert ("Subnetwork", "producer-proxy-subnet") in names


def _invokers(clients: Clients) -> set[str]:
    policy = clients.run_services.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=SERVICE))
    return {m for b in policy.bindings if b.role == "roles/run.invoker" for m in b.members}


async def test_converged_export_and_endpoint_cost_zero_writes(driver_factory, service, gcp) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    for driver in (topo.export, topo.endpoint):
        gcp.log.clear()
        outcome = await driver.reconcile()
        assert gcp.log.writes() == []
        reads = [e.path for e in gcp.log.reads()]
        assert len(reads) <= len(driver.status["resources"]), reads
        assert outcome.events == []
        assert outcome.retry_after is None


async def test_manual_acceptance_then_removal_with_reconcile(driver_factory, service, clients) -> None:
    body = example("psc-export.yaml")
    body["spec"]["attachment"]["consumers"] = []
    topo = topology(driver_factory, body)
    await topo.converge()
    assert ready(topo.export) == ("True", "Reconciled")
    status, reason = ready(topo.endpoint)
    message = topo.endpoint.condition()["message"]
    assert (status, reason) == ("False", "ConnectionPending")
    assert ATTACHMENT in message and CONSUMER in message and "PSCExport default/hello" in message
    await topo.export_pass()
    assert (topo.export.status["accepted"], topo.export.status["pending"]) == (0, 1)
    # The producer accepts the consumer project: the endpoint turns Ready.
    topo.export.body["spec"]["attachment"]["consumers"] = [{"project": CONSUMER, "connectionLimit": 10}]
    await topo.export_pass()
    assert (topo.export.status["accepted"], topo.export.status["pending"]) == (1, 0)
    await topo.endpoint.reconcile()
    assert ready(topo.endpoint) == ("True", "Reconciled")
    assert "ConnectionAccepted" in {e.reason for e in topo.export.events}
    # Removing it again with reconcileConnections takes the accepted connection back (an empty accept list).
    topo.export.body["spec"]["attachment"]["consumers"] = []
    await topo.export_pass()
    sa = clients.service_attachments.get(project=PRODUCER, region=REGION, service_attachment="hello-service-attachment")
    assert list(sa.consumer_accept_lists) == []
    await topo.endpoint.reconcile()
    assert topo.endpoint.status["connectionStatus"] == "PENDING"
    assert ready(topo.endpoint)[0] == "False"
    # Listing it as rejected rejects it.
    topo.export.body["spec"]["attachment"]["rejected"] = [CONSUMER]
    await topo.export_pass()
    await topo.endpoint.reconcile()
    assert ready(topo.endpoint) == ("False", "ConnectionRejected")
    assert topo.export.status["rejected"] == 1
    assert "ConnectionRejected" in {e.reason for e in topo.export.events}


async def test_drift_is_repaired(driver_factory, service, clients) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    sa = clients.service_attachments.get(project=PRODUCER, region=REGION, service_attachment="hello-service-attachment")
    hand = compute_v1.ServiceAttachment(
        fingerprint=sa.fingerprint,
        consumer_accept_lists=[
            compute_v1.ServiceAttachmentConsumerProjectLimit(project_id_or_num="intruder-project", connection_limit=5)
        ],
    )
    clients.service_attachments.patch(
        project=PRODUCER, region=REGION, service_attachment=sa.name, service_attachment_resource=hand
    ).result()
    svc = clients.run_services.get_service(name=SERVICE)
    svc.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
    clients.run_services.update_service(service=svc).result(timeout=30)
    policy = clients.run_services.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=SERVICE))
    del policy.bindings[:]
    clients.run_services.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=SERVICE, policy=policy))
    topo.export.events.clear()
    await topo.export_pass()
    assert ready(topo.export) == ("True", "Reconciled")
    sa = clients.service_attachments.get(project=PRODUCER, region=REGION, service_attachment=sa.name)
    assert [(a.project_id_or_num, a.connection_limit) for a in sa.consumer_accept_lists] == [(CONSUMER, 10)]
    svc = clients.run_services.get_service(name=SERVICE)
    assert svc.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    assert _invokers(clients) == {INVOKER}
    reasons = [e.reason for e in topo.export.events]
    assert reasons.count("DriftRepaired") == 3 and "IngressNarrowed" in reasons


async def test_existing_proxy_only_subnet_is_reused_and_kept(driver_factory, service, clients, gcp) -> None:
    vpc = compute_v1.Network(name="producer-vpc", auto_create_subnetworks=False, description="platform team")
    clients.networks.insert(project=PRODUCER, network_resource=vpc).result()
    shared = compute_v1.Subnetwork(
        name="shared-proxy",
        network=f"projects/{PRODUCER}/global/networks/producer-vpc",
        ip_cidr_range="10.0.9.0/24",
        purpose="REGIONAL_MANAGED_PROXY",
        role="ACTIVE",
    )
    clients.subnetworks.insert(project=PRODUCER, region=REGION, subnetwork_resource=shared).result()
    before = owned_inventory(gcp)
    topo = topology(driver_factory)
    await topo.converge()
    assert ready(topo.export) == ("True", "Reconciled") and ready(topo.endpoint)[0] == "True"
    assert topo.export.status["proxyOnlySubnet"] == {"name": "shared-proxy", "reused": True}
    assert gcp.store.get(f"projects/{PRODUCER}/regions/{REGION}/subnetworks/producer-proxy-subnet") is None
    reused = next(e for e in topo.export.events if e.reason == "ProxyOnlySubnetReused")
    assert "shared-proxy" in reused.message
    assert (await topo.endpoint.finalize()).retry_after is None
    assert (await topo.export.finalize()).retry_after is None
    assert owned_inventory(gcp) == before


async def test_only_runnets_invoker_bindings_are_removed(driver_factory, service, clients, gcp) -> None:
    colleague, already = "user:alice@example.com", "serviceAccount:ci@producer-project.iam.gserviceaccount.com"
    policy = clients.run_services.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=SERVICE))
    policy.bindings.add(role="roles/run.invoker", members=[colleague, already])
    policy.bindings.add(role="roles/run.developer", members=["group:devs@example.com"])
    clients.run_services.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=SERVICE, policy=policy))
    body = example("psc-export.yaml")
    body["spec"]["invokers"] = [INVOKER, already]
    topo = topology(driver_factory, body)
    await topo.converge()
    assert _invokers(clients) == {colleague, already, INVOKER}
    assert topo.export.status["grantedInvokers"] == [INVOKER]
    # Dropping a member from spec.invokers removes runnet's grant only.
    topo.export.body["spec"]["invokers"] = [already]
    await topo.export_pass()
    assert _invokers(clients) == {colleague, already}
    topo.export.body["spec"]["invokers"] = [INVOKER, already]
    await topo.export_pass()
    assert _invokers(clients) == {colleague, already, INVOKER}
    await topo.endpoint.finalize()
    assert (await topo.export.finalize()).retry_after is None
    assert _invokers(clients) == {colleague, already}
    policy = clients.run_services.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=SERVICE))
    assert {b.role for b in policy.bindings} == {"roles/run.invoker", "roles/run.developer"}
    svc = clients.run_services.get_service(name=SERVICE)
    assert "runnet.dev/psc-invokers" not in svc.annotations
    # Deleting the export never widens the service's ingress again.
    assert svc.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY


async def test_deletion_in_reverse_order_leaves_nothing_owned(driver_factory, service, gcp) -> None:
    before = owned_inventory(gcp)
    topo = topology(driver_factory)
    await topo.converge()
    gcp.log.clear()
    assert (await topo.endpoint.finalize()).retry_after is None
    assert (await topo.export.finalize()).retry_after is None
    assert owned_inventory(gcp) == before
    deleted = [e.path.split("/compute/v1/", 1)[-1] for e in gcp.log.writes() if e.method == "DELETE"]

    def at(fragment: str) -> int:
        return next(i for i, p in enumerate(deleted) if p.endswith(fragment))

    chain = [
        "forwardingRules/psc-endpoint",
        "addresses/psc-endpoint-ip",
        "subnetworks/consumer-subnet",
        "global/networks/consumer-vpc",
    ]
    assert [at(f) for f in chain] == sorted(at(f) for f in chain)
    chain = [
        "serviceAttachments/hello-service-attachment",
        "forwardingRules/hello-forwarding-rule",
        "targetHttpProxies/hello-http-proxy",
        "urlMaps/hello-url-map",
        "backendServices/hello-backend-service",
        "networkEndpointGroups/hello-serverless-neg",
    ]
    assert [at(f) for f in chain] == sorted(at(f) for f in chain)
    network = at("global/networks/producer-vpc")
    for subnet in ("producer-subnet", "producer-proxy-subnet"):
        assert at("forwardingRules/hello-forwarding-rule") < at(f"subnetworks/{subnet}") < network
    assert at("serviceAttachments/hello-service-attachment") < at("subnetworks/producer-psc-subnet") < network


async def test_deleting_a_connected_export_closes_the_endpoint_until_it_is_back(
    driver_factory, service, clients
) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    old_id = topo.endpoint.status["pscConnectionId"]
    # GCP deletes an attachment that still has endpoints: they stay, with status CLOSED.
    assert (await topo.export.finalize()).retry_after is None
    closed = next(e for e in topo.export.events if e.reason == "ConnectionsClosed")
    assert closed.type == "Warning" and "psc-endpoint" in closed.message
    rule = clients.forwarding_rules.get(project=CONSUMER, region=REGION, forwarding_rule="psc-endpoint")
    assert rule.psc_connection_status == "CLOSED"
    topo.exports.clear()  # the PSCExport is gone from the cluster
    await topo.endpoint.reconcile()
    assert ready(topo.endpoint) == ("False", "ConnectionClosed")
    assert topo.endpoint.status["connectionStatus"] == "CLOSED"
    # The export comes back (same name): the endpoint re-creates its forwarding rule and reconnects.
    topo.export.status = {}
    await topo.converge()
    assert ready(topo.endpoint) == ("True", "Reconciled")
    assert topo.endpoint.status["pscConnectionId"] != old_id
    assert topo.export.status["accepted"] == 1


async def test_endpoint_builds_its_side_while_the_export_is_not_ready(driver_factory, service, clients, gcp) -> None:
    topo = topology(driver_factory)
    await topo.endpoint.reconcile()
    status, reason = ready(topo.endpoint)
    assert (status, reason) == ("False", "WaitingForExport")
    assert "PSCExport default/hello" in topo.endpoint.condition()["message"]
    address = clients.addresses.get(project=CONSUMER, region=REGION, address="psc-endpoint-ip")
    assert address.address == "10.1.0.5" and topo.endpoint.status["ip"] == "10.1.0.5"
    assert gcp.store.get(f"projects/{CONSUMER}/regions/{REGION}/forwardingRules/psc-endpoint") is None
    await topo.converge()
    assert ready(topo.endpoint) == ("True", "Reconciled")


async def test_endpoint_by_attachment_uri(driver_factory, service, clients) -> None:
    topo = topology(driver_factory)
    topo.endpoint.body["spec"]["target"] = {"serviceAttachment": ATTACHMENT}
    await topo.converge()
    assert ready(topo.endpoint) == ("True", "Reconciled")
    assert topo.endpoint.status["serviceAttachment"].endswith(ATTACHMENT)
    # By URI, runnet cannot know the producer's service: the consumer gives the ID-token audience.
    assert topo.endpoint.status["serviceURL"] == ""
    topo.endpoint.body["spec"]["audience"] = service.uri
    topo.endpoint.body["metadata"]["generation"] += 1
    await topo.endpoint.reconcile()
    assert topo.endpoint.status["serviceURL"] == service.uri


async def test_endpoint_shows_the_service_url_to_call_it_with(driver_factory, service, clients) -> None:
    """The ID-token audience a caller needs is the Cloud Run service's URL, read from the export."""
    topo = topology(driver_factory)
    await topo.converge()
    assert service.uri.startswith("https://hello-service-")
    assert topo.export.status["serviceURL"] == service.uri
    assert topo.endpoint.status["serviceURL"] == service.uri


async def test_foreign_backend_service_is_a_conflict_and_untouched(driver_factory, service, clients, gcp) -> None:
    neg = compute_v1.NetworkEndpointGroup(
        name="someone-elses-neg",
        network_endpoint_type="SERVERLESS",
        cloud_run=compute_v1.NetworkEndpointGroupCloudRun(service="other-service"),
    )
    clients.network_endpoint_groups.insert(
        project=PRODUCER, region=REGION, network_endpoint_group_resource=neg
    ).result()
    backend = compute_v1.BackendService(
        name="hello-backend-service",
        load_balancing_scheme="INTERNAL_MANAGED",
        protocol="HTTP",
        backends=[compute_v1.Backend(group=f"projects/{PRODUCER}/regions/{REGION}/networkEndpointGroups/{neg.name}")],
    )
    clients.backend_services.insert(project=PRODUCER, region=REGION, backend_service_resource=backend).result()
    topo = topology(driver_factory)
    await topo.export_pass()
    cond = topo.export.condition()
    assert (cond["status"], cond["reason"]) == ("False", "Conflict")
    assert "hello-backend-service" in cond["message"] and "spec.loadBalancer.backendService" in cond["message"]
    await topo.export.finalize()
    kept = clients.backend_services.get(project=PRODUCER, region=REGION, backend_service="hello-backend-service")
    assert kept.backends[0].group.endswith("someone-elses-neg")


# -- invalid specs: refused with Ready=False and not a single GCP write ----------------------------

VPC = f"projects/{PRODUCER}/global/networks/producer-vpc"
CONSUMER_VPC = f"projects/{CONSUMER}/global/networks/consumer-vpc"


def _network(clients: Clients, project: str, name: str) -> str:
    clients.networks.insert(
        project=project, network_resource=compute_v1.Network(name=name, auto_create_subnetworks=False)
    ).result()
    return f"projects/{project}/global/networks/{name}"


def _subnet(clients: Clients, project: str, name: str, cidr: str, network: str, purpose: str = "") -> None:
    body = compute_v1.Subnetwork(name=name, network=network, ip_cidr_range=cidr)
    if purpose:
        body.purpose = purpose
    clients.subnetworks.insert(project=project, region=REGION, subnetwork_resource=body).result()


def overlapping_producer_subnet(clients: Clients) -> None:
    _subnet(clients, PRODUCER, "legacy", "10.0.0.0/16", _network(clients, PRODUCER, "producer-vpc"))


def regular_subnet_named_like_the_nat_subnet(clients: Clients) -> None:
    _subnet(clients, PRODUCER, "producer-psc-subnet", "10.0.3.0/24", _network(clients, PRODUCER, "producer-vpc"))


def nat_subnet_of_another_attachment(clients: Clients) -> None:
    from tests.emulator import lb_topology

    lb_topology.attachment(clients, lb_topology.producer(clients), name="other-attachment")


def service_in_another_region(clients: Clients) -> None:
    deploy_service(clients, PRODUCER, "us-central1", "far-service")


def external_address(clients: Clients) -> None:
    clients.addresses.insert(
        project=CONSUMER, region=REGION, address_resource=compute_v1.Address(name="psc-endpoint-ip")
    ).result()


def consumer_subnet(clients: Clients) -> None:
    _subnet(clients, CONSUMER, "consumer-subnet", "10.1.0.0/24", _network(clients, CONSUMER, "consumer-vpc"))


def address_with_another_ip(clients: Clients) -> None:
    consumer_subnet(clients)
    body = compute_v1.Address(
        name="psc-endpoint-ip",
        address_type="INTERNAL",
        address="10.1.0.9",
        subnetwork=f"projects/{CONSUMER}/regions/{REGION}/subnetworks/consumer-subnet",
    )
    clients.addresses.insert(project=CONSUMER, region=REGION, address_resource=body).result()


def address_in_another_subnet(clients: Clients) -> None:
    consumer_subnet(clients)
    _subnet(clients, CONSUMER, "other-subnet", "10.2.0.0/24", CONSUMER_VPC)
    body = compute_v1.Address(
        name="psc-endpoint-ip",
        address_type="INTERNAL",
        subnetwork=f"projects/{CONSUMER}/regions/{REGION}/subnetworks/other-subnet",
    )
    clients.addresses.insert(project=CONSUMER, region=REGION, address_resource=body).result()


def overlapping_consumer_subnet(clients: Clients) -> None:
    _subnet(clients, CONSUMER, "legacy", "10.0.0.0/8", _network(clients, CONSUMER, "consumer-vpc"))


def _set(path: str, value: Any) -> Any:
    def mutate(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = body
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value

    return mutate


def _long_name(body: dict[str, Any]) -> None:
    body["metadata"]["name"] = "x" * 60
    body["spec"].pop("loadBalancer")
    body["spec"]["attachment"].pop("name")


NET_CONSUMER = {"network": f"projects/{CONSUMER}/global/networks/consumer-vpc", "connectionLimit": 3}
OTHER_REGION_ATTACHMENT = f"projects/{PRODUCER}/regions/us-central1/serviceAttachments/hello-service-attachment"

EXPORT_CASES: list[tuple[str, Any, Any, str]] = [
    (
        "NAT and load-balancer ranges overlap",
        _set("spec.subnets.pscNat.ipCidrRange", "10.0.1.128/25"),
        None,
        "overlaps",
    ),
    ("proxy-only range overlaps", _set("spec.subnets.proxyOnly.ipCidrRange", "10.0.1.0/24"), None, "overlaps"),
    ("range overlaps an existing subnet", None, overlapping_producer_subnet, "overlaps subnetwork legacy"),
    ("host bits set", _set("spec.subnets.loadBalancer.ipCidrRange", "10.0.1.7/24"), None, "host bits"),
    ("proxy-only subnet too small", _set("spec.subnets.proxyOnly.ipCidrRange", "10.0.2.0/27"), None, "/26 or larger"),
    ("new subnet without a range", _set("spec.subnets.pscNat.ipCidrRange", None), None, "ipCidrRange is required"),
    ("NAT subnet of another attachment", None, nat_subnet_of_another_attachment, "other-attachment"),
    ("service that does not exist", _set("spec.service", "nope"), None, "does not exist"),
    ("service in another region", _set("spec.service", "far-service"), service_in_another_region, "us-central1"),
    ("allUsers invoker", _set("spec.invokers", ["allUsers"]), None, "must not include allUsers"),
    ("allAuthenticatedUsers invoker", _set("spec.invokers", ["allAuthenticatedUsers"]), None, "not be public"),
    ("malformed invoker", _set("spec.invokers", ["serviceAccount:not-an-email"]), None, "must be an IAM member"),
    (
        "consumer with project and network",
        _set("spec.attachment.consumers", [{**NET_CONSUMER, "project": CONSUMER}]),
        None,
        "exactly one of project or network",
    ),
    (
        "projects and networks mixed",
        _set("spec.attachment.consumers", [{"project": CONSUMER}, NET_CONSUMER]),
        None,
        "only projects or only networks",
    ),
    (
        "rejected network with project consumers",
        _set("spec.attachment.rejected", [NET_CONSUMER["network"]]),
        None,
        "only projects or only networks",
    ),
    (
        "consumer listed twice",
        _set("spec.attachment.consumers", [{"project": CONSUMER}, {"project": CONSUMER, "connectionLimit": 2}]),
        None,
        "more than once",
    ),
    (
        "load balancer published by another attachment",
        _set("spec.subnets.pscNat", {"name": "my-psc-subnet", "ipCidrRange": "10.0.4.0/24"}),
        nat_subnet_of_another_attachment,
        "already published by service attachment other-attachment",
    ),
    ("NAT subnet name taken by a regular subnet", None, regular_subnet_named_like_the_nat_subnet, "purpose PRIVATE"),
    ("default names too long", _long_name, None, "set spec.loadBalancer.neg explicitly"),
]

ENDPOINT_CASES: list[tuple[str, Any, Any, str]] = [
    ("address outside the subnet", _set("spec.address.ip", "10.2.0.5"), None, "is not in spec.subnet.ipCidrRange"),
    ("address reserved by GCP", _set("spec.address.ip", "10.1.0.1"), None, "reserved"),
    (
        "attachment in another region",
        _set("spec.target", {"serviceAttachment": OTHER_REGION_ATTACHMENT}),
        None,
        "is in us-central1",
    ),
    (
        "attachment that does not exist",
        _set("spec.target", {"serviceAttachment": ATTACHMENT}),
        None,
        "does not exist",
    ),
    (
        "malformed attachment URI",
        _set("spec.target", {"serviceAttachment": f"projects/{PRODUCER}/serviceAttachments/x"}),
        None,
        "spec.target.serviceAttachment",
    ),
    (
        "both exportRef and attachment",
        _set("spec.target.serviceAttachment", ATTACHMENT),
        None,
        "exactly one of exportRef or serviceAttachment",
    ),
    ("export in another region", _set("spec.target.exportRef.name", "far"), None, "not the region of PSCExport"),
    ("existing EXTERNAL address", None, external_address, "is EXTERNAL"),
    ("address holding another IP", None, address_with_another_ip, "holds 10.1.0.9"),
    ("address in another subnet", None, address_in_another_subnet, "subnetwork other-subnet"),
    ("subnet overlapping the consumer VPC", None, overlapping_consumer_subnet, "overlaps subnetwork legacy"),
]


@pytest.mark.parametrize(("case", "mutate", "setup", "message"), EXPORT_CASES, ids=[c[0] for c in EXPORT_CASES])
async def test_invalid_export_is_refused_without_writes(
    driver_factory, service, clients, gcp, case, mutate, setup, message
) -> None:
    body = example("psc-export.yaml")
    if mutate:
        mutate(body)
    if setup:
        setup(clients)
    driver = driver_factory(psc.reconcile_export, psc.finalize_export, body)
    gcp.log.clear()
    outcome = await driver.reconcile()
    assert ready(driver) == ("False", "InvalidSpec"), driver.condition()
    assert message in driver.condition()["message"]
    assert gcp.log.writes() == []
    assert outcome.retry_after is None


@pytest.mark.parametrize(("case", "mutate", "setup", "message"), ENDPOINT_CASES, ids=[c[0] for c in ENDPOINT_CASES])
async def test_invalid_endpoint_is_refused_without_writes(
    driver_factory, clients, gcp, case, mutate, setup, message
) -> None:
    body = example("psc-endpoint.yaml")
    if mutate:
        mutate(body)
    if setup:
        setup(clients)
    far = {"spec": {**example("psc-export.yaml")["spec"], "region": "us-central1"}, "status": {}}
    controller = psc.EndpointController(psc.MappingResolver({("default", "far"): far}))
    driver = driver_factory(controller.reconcile, controller.finalize, body)
    gcp.log.clear()
    await driver.reconcile()
    assert ready(driver) == ("False", "InvalidSpec"), driver.condition()
    assert message in driver.condition()["message"]
    assert gcp.log.writes() == []


async def test_export_ref_to_nothing_waits_without_writes(driver_factory, gcp) -> None:
    body = example("psc-endpoint.yaml")
    body["spec"]["target"]["exportRef"]["name"] = "nope"
    controller = psc.EndpointController(psc.MappingResolver({}))
    driver = driver_factory(controller.reconcile, controller.finalize, body)
    outcome = await driver.reconcile()
    assert ready(driver) == ("False", "WaitingForExport")
    assert "PSCExport default/nope does not exist" in driver.condition()["message"]
    assert gcp.log.writes() == []
    assert outcome.retry_after is not None


def _foreign_load_balancer(clients: Clients) -> None:
    regional = f"https://www.googleapis.com/compute/v1/projects/{PRODUCER}/regions/{REGION}"
    _subnet(clients, PRODUCER, "other-subnet", "10.0.50.0/24", VPC)
    neg = compute_v1.NetworkEndpointGroup(
        name="other-neg",
        network_endpoint_type="SERVERLESS",
        cloud_run=compute_v1.NetworkEndpointGroupCloudRun(service="other"),
    )
    clients.network_endpoint_groups.insert(
        project=PRODUCER, region=REGION, network_endpoint_group_resource=neg
    ).result()
    backend = compute_v1.BackendService(
        name="other-bs",
        load_balancing_scheme="INTERNAL_MANAGED",
        protocol="HTTP",
        backends=[compute_v1.Backend(group=f"{regional}/networkEndpointGroups/other-neg")],
    )
    clients.backend_services.insert(project=PRODUCER, region=REGION, backend_service_resource=backend).result()
    url_map = compute_v1.UrlMap(name="other-map", default_service=f"{regional}/backendServices/other-bs")
    clients.url_maps.insert(project=PRODUCER, region=REGION, url_map_resource=url_map).result()
    proxy = compute_v1.TargetHttpProxy(name="other-proxy", url_map=f"{regional}/urlMaps/other-map")
    clients.target_http_proxies.insert(project=PRODUCER, region=REGION, target_http_proxy_resource=proxy).result()
    rule = compute_v1.ForwardingRule(
        name="someone-elses-rule",
        load_balancing_scheme="INTERNAL_MANAGED",
        network=VPC,
        subnetwork=f"{regional}/subnetworks/other-subnet",
        target=f"{regional}/targetHttpProxies/other-proxy",
        port_range="8080",
    )
    clients.forwarding_rules.insert(project=PRODUCER, region=REGION, forwarding_rule_resource=rule).result()


async def test_proxy_only_subnet_outlives_other_load_balancers(driver_factory, service, clients, gcp) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    # Someone else's internal load balancer in the same network shares the proxy-only subnet.
    _foreign_load_balancer(clients)
    await topo.endpoint.finalize()
    outcome = await topo.export.finalize()
    assert outcome.retry_after is not None
    cond = outcome.status["conditions"][0]
    assert cond["reason"] == "Deleting" and "someone-elses-rule" in cond["message"], cond
    assert gcp.store.get(f"projects/{PRODUCER}/regions/{REGION}/subnetworks/producer-proxy-subnet") is not None
    clients.forwarding_rules.delete(project=PRODUCER, region=REGION, forwarding_rule="someone-elses-rule").result()
    outcome = await topo.export.finalize()
    assert gcp.store.get(f"projects/{PRODUCER}/regions/{REGION}/subnetworks/producer-proxy-subnet") is None
    # The VPC itself stays until the other team's subnet is gone (GCP: in use).
    assert "other-subnet" in outcome.status["conditions"][0]["message"]


EXPORT_CASES_MORE: list[tuple[str, Any, str]] = [
    (
        "a project both accepted and rejected",
        _set("spec.attachment.rejected", [CONSUMER]),
        "spec.attachment.rejected names consumer-project, which spec.attachment.consumers accepts",
    ),
    # A Cyrillic small a (U+0430) in the address: IAM would grant someone else.
    ("a look-alike letter in an invoker", _set("spec.invokers", ["user:\u0430lice@example.com"]), "ASCII letters only"),
    ("allusers in lower case", _set("spec.invokers", ["allusers"]), "must not include allusers"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), EXPORT_CASES_MORE, ids=[c[0] for c in EXPORT_CASES_MORE])
async def test_more_invalid_exports_are_refused_without_writes(driver_factory, service, gcp, case, mutate, message):
    body = example("psc-export.yaml")
    mutate(body)
    driver = driver_factory(psc.reconcile_export, psc.finalize_export, body)
    gcp.log.clear()
    await driver.reconcile()
    assert ready(driver) == ("False", "InvalidSpec"), driver.condition()
    assert message in driver.condition()["message"]
    assert gcp.log.writes() == []
    assert driver.condition("Stalled")["reason"] == "InvalidSpec"


async def test_an_attachment_name_of_another_export_is_a_conflict_naming_it_before_any_write(
    driver_factory, service, clients, gcp
) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    other = example("psc-export.yaml")
    other["metadata"]["name"] = "copycat"
    other["spec"]["loadBalancer"] = {"forwardingRule": "copy-rule", "port": 80}
    other["spec"]["subnets"]["pscNat"] = {"name": "copy-psc-subnet", "ipCidrRange": "10.0.9.0/24"}
    copycat = driver_factory(psc.reconcile_export, psc.finalize_export, other)
    copycat.body["metadata"]["uid"] = "7d1c2f0a-0000-4b1e-8c7d-000000000099"
    svc_before = clients.run_services.get_service(name=SERVICE)
    gcp.log.clear()
    await copycat.reconcile()
    cond = copycat.condition()
    assert cond["reason"] == "Conflict"
    assert "ServiceAttachment hello-service-attachment is managed by PSCExport default/hello" in cond["message"]
    assert gcp.log.writes() == [], [e.path for e in gcp.log.writes()]
    assert clients.run_services.get_service(name=SERVICE).etag == svc_before.etag


async def test_a_forwarding_rule_of_another_endpoint_is_a_conflict_naming_it(driver_factory, service, gcp) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    second = example("psc-endpoint.yaml")
    second["metadata"]["name"] = "second"
    second["spec"]["address"] = {"name": "second-ip"}
    controller = psc.EndpointController(psc.MappingResolver(topo.exports))
    driver = driver_factory(controller.reconcile, controller.finalize, second)
    driver.body["metadata"]["uid"] = "7d1c2f0a-0000-4b1e-8c7d-000000000077"
    gcp.log.clear()
    await driver.reconcile()
    cond = driver.condition()
    assert cond["reason"] == "Conflict" and "PSCEndpoint default/hello" in cond["message"], cond
    assert driver.status.get("ip", "") == ""
    assert gcp.log.writes() == []


async def test_a_rejected_endpoint_is_told_to_take_the_project_off_the_reject_list(driver_factory, service) -> None:
    body = example("psc-export.yaml")
    body["spec"]["attachment"]["consumers"] = []
    body["spec"]["attachment"]["rejected"] = [CONSUMER]
    topo = topology(driver_factory, body)
    await topo.converge()
    assert ready(topo.endpoint) == ("False", "ConnectionRejected")
    message = topo.endpoint.condition()["message"]
    assert "take consumer-project off spec.attachment.rejected of PSCExport default/hello" in message
    assert topo.endpoint.condition("Stalled")["reason"] == "ConnectionRejected"
    assert topo.export.status["rejected"] == 1


async def test_nat_subnet_capacity_warns_and_an_extra_nat_subnet_is_added_in_place(
    driver_factory, service, clients, gcp
) -> None:
    export = example("psc-export.yaml")
    export["spec"]["subnets"]["pscNat"]["ipCidrRange"] = "10.0.3.0/29"  # 8 addresses, 4 usable
    rule = "projects/consumer-project/regions/asia-northeast1/forwardingRules/psc-endpoint"
    gcp.extra["psc_propagated_spokes"] = {rule: 4}  # the endpoint is propagated to 4 VPC spokes
    topo = topology(driver_factory, export)
    await topo.converge()
    assert ready(topo.export) == ("True", "Reconciled")  # capacity never blocks Ready
    capacity = topo.export.condition("NATSubnetCapacity")
    assert (capacity["status"], capacity["reason"]) == ("False", "NearlyFull")
    assert "use 4 of the 4 NAT IPs" in capacity["message"] and "producer-psc-subnet (10.0.3.0/29" in capacity["message"]
    assert "spec.subnets.extraPscNat" in capacity["message"]
    assert topo.export.status["natSubnets"] == [
        {"name": "producer-psc-subnet", "ipCidrRange": "10.0.3.0/29", "usable": 4}
    ]
    assert [e for e in topo.export.events if e.reason == "NearlyFull"]
    # A second consumer endpoint (made outside this cluster) finds no IP left: NEEDS_ATTENTION.
    attachment = (
        f"{COMPUTE}projects/producer-project/regions/asia-northeast1/serviceAttachments/hello-service-attachment"
    )
    vpc = f"{COMPUTE}projects/consumer-project/global/networks/consumer-vpc"
    lb_topology.endpoint(clients, "consumer-project", "psc-endpoint-2", attachment, vpc, "10.1.0.6")
    await topo.export_pass()
    capacity = topo.export.condition("NATSubnetCapacity")
    assert (capacity["status"], capacity["reason"]) == ("False", "Exhausted")
    assert "1 accepted connection(s) wait for one (NEEDS_ATTENTION)" in capacity["message"]
    assert "add a PRIVATE_SERVICE_CONNECT subnet after producer-psc-subnet" in capacity["message"]
    before = clients.service_attachments.get(
        project="producer-project", region="asia-northeast1", service_attachment="hello-service-attachment"
    )
    # The producer adds a NAT subnet: an update of the attachment, not a re-creation.
    topo.export.body["spec"]["subnets"]["extraPscNat"] = [
        {"name": "producer-psc-subnet-2", "ipCidrRange": "10.0.4.0/29"}
    ]
    topo.export.body["metadata"]["generation"] += 1
    await topo.converge()
    after = clients.service_attachments.get(
        project="producer-project", region="asia-northeast1", service_attachment="hello-service-attachment"
    )
    assert after.id == before.id and [s.rsplit("/", 1)[-1] for s in after.nat_subnets] == [
        "producer-psc-subnet",
        "producer-psc-subnet-2",
    ]
    assert after.connected_endpoints[0].psc_connection_id == before.connected_endpoints[0].psc_connection_id
    assert {e.status for e in after.connected_endpoints} == {"ACCEPTED"}
    capacity = topo.export.condition("NATSubnetCapacity")
    assert capacity["status"] == "True" and "use 6 of the 8 NAT IPs" in capacity["message"], capacity
    assert topo.export.status["natIPsUsed"] == 6
    gcp.log.clear()
    await topo.export_pass()
    assert gcp.log.writes() == []


async def test_attachment_proxy_protocol_and_propagated_limit_reach_gcp(driver_factory, service, clients) -> None:
    export = example("psc-export.yaml")
    export["spec"]["attachment"]["enableProxyProtocol"] = True
    export["spec"]["attachment"]["propagatedConnectionLimit"] = 3
    topo = topology(driver_factory, export)
    await topo.converge()
    sa = clients.service_attachments.get(
        project="producer-project", region="asia-northeast1", service_attachment="hello-service-attachment"
    )
    assert sa.enable_proxy_protocol and sa.propagated_connection_limit == 3
    topo.export.body["spec"]["attachment"]["propagatedConnectionLimit"] = 10
    topo.export.body["metadata"]["generation"] += 1
    await topo.converge()
    sa = clients.service_attachments.get(
        project="producer-project", region="asia-northeast1", service_attachment="hello-service-attachment"
    )
    assert sa.propagated_connection_limit == 10 and ready(topo.export) == ("True", "Reconciled")
    # GCP lets PROXY protocol change on an existing attachment (it applies to new connections).
    topo.export.body["spec"]["attachment"]["enableProxyProtocol"] = False
    topo.export.body["metadata"]["generation"] += 1
    await topo.converge()
    sa = clients.service_attachments.get(
        project="producer-project", region="asia-northeast1", service_attachment="hello-service-attachment"
    )
    assert not sa.enable_proxy_protocol and ready(topo.export) == ("True", "Reconciled")
