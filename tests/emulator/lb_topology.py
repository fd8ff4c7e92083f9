"""Builds the reference PSC export topology (DESIGN.md) through the official clients.

Shared by test_compute_lb.py and test_compute_psc.py: producer VPC, subnets, serverless NEG,
INTERNAL_MANAGED backend service, URL map, target HTTP proxy, forwarding rule, and helpers for
service attachments and consumer endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.cloud import compute_v1

from runnet.gcp.clients import Clients

REGION = "asia-northeast1"
PRODUCER = "producer-project"
CONSUMER = "consumer-project"
BASE = "https://www.googleapis.com/compute/v1/projects"


def link(project: str, collection: str, name: str, *, region: str | None = REGION) -> str:
    scope = f"regions/{region}" if region else "global"
    return f"{BASE}/{project}/{scope}/{collection}/{name}"


def network(clients: Clients, project: str, name: str) -> str:
    body = compute_v1.Network(name=name, auto_create_subnetworks=False)
    clients.networks.insert(project=project, network_resource=body).result()
    return link(project, "networks", name, region=None)


def subnet(clients: Clients, project: str, name: str, cidr: str, vpc: str, purpose: str = "", role: str = "") -> str:
    body = compute_v1.Subnetwork(name=name, ip_cidr_range=cidr, network=vpc)
    if purpose:
        body.purpose = purpose
    if role:
        body.role = role
    clients.subnetworks.insert(project=project, region=REGION, subnetwork_resource=body).result()
    return link(project, "subnetworks", name)


def internal_address(clients: Clients, project: str, name: str, ip: str, subnetwork: str) -> str:
    body = compute_v1.Address(name=name, address_type="INTERNAL", address=ip, subnetwork=subnetwork)
    clients.addresses.insert(project=project, region=REGION, address_resource=body).result()
    return link(project, "addresses", name)


@dataclass
class Producer:
    vpc: str
    subnet: str
    proxy_subnet: str
    psc_subnet: str
    neg: str
    backend: str
    url_map: str
    proxy: str
    rule: str


def producer_network(clients: Clients, *, proxy_subnet: bool = True) -> tuple[str, str, str, str]:
    vpc = network(clients, PRODUCER, "producer-vpc")
    main = subnet(clients, PRODUCER, "producer-subnet", "10.0.1.0/24", vpc)
    proxy = ""
    if proxy_subnet:
        proxy = subnet(
            clients, PRODUCER, "producer-proxy-subnet", "10.0.2.0/24", vpc, "REGIONAL_MANAGED_PROXY", "ACTIVE"
        )
    psc = subnet(clients, PRODUCER, "producer-psc-subnet", "10.0.3.0/24", vpc, "PRIVATE_SERVICE_CONNECT")
    return vpc, main, proxy, psc


def backend_chain(clients: Clients) -> tuple[str, str, str, str]:
    """NEG → backend service → URL map → target HTTP proxy; returns their URLs."""
    neg = compute_v1.NetworkEndpointGroup(
        name="hello-serverless-neg",
        network_endpoint_type="SERVERLESS",
        cloud_run=compute_v1.NetworkEndpointGroupCloudRun(service="hello-service"),
    )
    clients.network_endpoint_groups.insert(
        project=PRODUCER, region=REGION, network_endpoint_group_resource=neg
    ).result()
    neg_url = link(PRODUCER, "networkEndpointGroups", "hello-serverless-neg")
    backend = compute_v1.BackendService(
        name="hello-backend-service",
        load_balancing_scheme="INTERNAL_MANAGED",
        protocol="HTTP",
        backends=[compute_v1.Backend(group=neg_url)],
    )
    clients.backend_services.insert(project=PRODUCER, region=REGION, backend_service_resource=backend).result()
    backend_url = link(PRODUCER, "backendServices", "hello-backend-service")
    url_map = compute_v1.UrlMap(name="hello-url-map", default_service=backend_url)
    clients.url_maps.insert(project=PRODUCER, region=REGION, url_map_resource=url_map).result()
    url_map_url = link(PRODUCER, "urlMaps", "hello-url-map")
    proxy = compute_v1.TargetHttpProxy(name="hello-http-proxy", url_map=url_map_url)
    clients.target_http_proxies.insert(project=PRODUCER, region=REGION, target_http_proxy_resource=proxy).result()
    return neg_url, backend_url, url_map_url, link(PRODUCER, "targetHttpProxies", "hello-http-proxy")


def proxy_rule(clients: Clients, name: str, vpc: str, main: str, proxy: str, **extra: str) -> str:
    fields = {"port_range": "80", **extra}
    rule = compute_v1.ForwardingRule(
        name=name, load_balancing_scheme="INTERNAL_MANAGED", network=vpc, subnetwork=main, target=proxy, **fields
    )
    clients.forwarding_rules.insert(project=PRODUCER, region=REGION, forwarding_rule_resource=rule).result()
    return link(PRODUCER, "forwardingRules", name)


def producer(clients: Clients) -> Producer:
    vpc, main, proxy_subnet, psc = producer_network(clients)
    neg, backend, url_map, proxy = backend_chain(clients)
    rule = proxy_rule(clients, "hello-forwarding-rule", vpc, main, proxy)
    return Producer(vpc, main, proxy_subnet, psc, neg, backend, url_map, proxy, rule)


def attachment(
    clients: Clients,
    p: Producer,
    *,
    name: str = "hello-service-attachment",
    preference: str = "ACCEPT_MANUAL",
    accept: list[compute_v1.ServiceAttachmentConsumerProjectLimit] | None = None,
    reject: list[str] | None = None,
    nat_subnets: list[str] | None = None,
) -> str:
    body = compute_v1.ServiceAttachment(
        name=name,
        connection_preference=preference,
        target_service=p.rule,
        nat_subnets=nat_subnets or [p.psc_subnet],
        consumer_accept_lists=accept or [],
        consumer_reject_lists=reject or [],
    )
    clients.service_attachments.insert(project=PRODUCER, region=REGION, service_attachment_resource=body).result()
    return link(PRODUCER, "serviceAttachments", name)


def limit(project_or_network: str, connections: int) -> compute_v1.ServiceAttachmentConsumerProjectLimit:
    if "/networks/" in project_or_network:
        return compute_v1.ServiceAttachmentConsumerProjectLimit(
            network_url=project_or_network, connection_limit=connections
        )
    return compute_v1.ServiceAttachmentConsumerProjectLimit(
        project_id_or_num=project_or_network, connection_limit=connections
    )


def consumer_network(clients: Clients, project: str = CONSUMER) -> tuple[str, str]:
    vpc = network(clients, project, "consumer-vpc")
    return vpc, subnet(clients, project, "consumer-subnet", "10.1.0.0/24", vpc)


def endpoint(clients: Clients, project: str, name: str, target: str, vpc: str, ip: str) -> compute_v1.ForwardingRule:
    """A PSC consumer endpoint at ``ip`` (a reserved address name/URL or a literal IP)."""
    rule = compute_v1.ForwardingRule(name=name, load_balancing_scheme="", network=vpc, I_p_address=ip, target=target)
    clients.forwarding_rules.insert(project=project, region=REGION, forwarding_rule_resource=rule).result()
    return clients.forwarding_rules.get(project=project, region=REGION, forwarding_rule=name)
