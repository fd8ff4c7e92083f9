"""The census of invalid specs: what a hostile (or hurried) user applies, and the sentence each gets back.

Each case starts from an example, changes it, and says where the refusal must come from:
``schema`` (the API server refuses the object with the message) or ``status`` (the operator sets
Ready=False with the reason and message, and writes nothing to GCP). ``setup`` prepares GCP the
way the case needs (an existing subnet, another owner's resource...) in the case's own project.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.cloud import compute_v1, run_v2

from runnet.gcp.clients import Clients

REGION = "asia-northeast1"
BASE = "https://www.googleapis.com/compute/v1/projects"
Mutate = Callable[[dict[str, Any]], None]
Setup = Callable[[Clients, str], None]


@dataclass
class Case:
    example: str
    name: str
    mutate: Mutate
    where: str
    """schema or status"""
    message: str
    reason: str = ""
    setup: Setup | None = None


def put(path: str, value: Any) -> Mutate:
    """Set ``spec.<path>`` (dots; list indexes as numbers); None removes the field."""

    def mutate(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = spec
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value

    return mutate


def both(*mutations: Mutate) -> Mutate:
    def mutate(spec: dict[str, Any]) -> None:
        for m in mutations:
            m(spec)

    return mutate


# -- GCP preparations (each in the case's own project) ---------------------------------------------


def marker(kind: str, name: str) -> str:
    return f"Managed by runnet.dev owner={kind}/default/{name} uid=00000000-0000-4000-8000-000000000000."


def _network(clients: Clients, project: str, name: str, *, description: str = "") -> str:
    body = compute_v1.Network(name=name, auto_create_subnetworks=False, description=description)
    clients.networks.insert(project=project, network_resource=body).result()
    return f"{BASE}/{project}/global/networks/{name}"


def _subnet(clients: Clients, project: str, name: str, cidr: str, vpc: str, **extra: Any) -> str:
    body = compute_v1.Subnetwork(name=name, ip_cidr_range=cidr, network=vpc, **extra)
    clients.subnetworks.insert(project=project, region=REGION, subnetwork_resource=body).result()
    return f"{BASE}/{project}/regions/{REGION}/subnetworks/{name}"


def _address(clients: Clients, project: str, name: str, region: str = REGION, **extra: Any) -> None:
    clients.addresses.insert(
        project=project, region=region, address_resource=compute_v1.Address(name=name, **extra)
    ).result()


def _service(clients: Clients, project: str, name: str, region: str = REGION, **annotations: str) -> None:
    service = run_v2.Service(
        annotations=annotations,
        template=run_v2.RevisionTemplate(
            containers=[run_v2.Container(image="us-docker.pkg.dev/cloudrun/container/hello")]
        ),
    )
    op = clients.run_services.create_service(
        parent=f"projects/{project}/locations/{region}", service=service, service_id=name
    )
    op.result(timeout=30)


def subnet_with_another_range(clients: Clients, project: str) -> None:
    _subnet(clients, project, "subnet-cloud-run", "10.20.0.0/24", _network(clients, project, "vpc-cloud-run"))


def subnet_of_another_network(clients: Clients, project: str) -> None:
    _network(clients, project, "vpc-cloud-run")
    _subnet(clients, project, "subnet-cloud-run", "10.10.10.0/24", _network(clients, project, "elsewhere"))


def special_purpose_subnet(clients: Clients, project: str) -> None:
    vpc = _network(clients, project, "vpc-cloud-run")
    _subnet(clients, project, "subnet-cloud-run", "10.10.10.0/24", vpc, purpose="PRIVATE_SERVICE_CONNECT")


def internal_address(clients: Clients, project: str) -> None:
    vpc = _network(clients, project, "other")
    sub = _subnet(clients, project, "other-sub", "10.99.0.0/24", vpc)
    _address(clients, project, "static-ip", address_type="INTERNAL", subnetwork=sub)


def address_in_another_region(clients: Clients, project: str) -> None:
    _address(clients, project, "static-ip", region="us-central1")


def address_of_another_gateway(clients: Clients, project: str) -> None:
    _address(clients, project, "static-ip", description=marker("EgressGateway", "someone-else"))


def address_used_by_another_nat(clients: Clients, project: str) -> None:
    _address(clients, project, "static-ip")
    vpc = _network(clients, project, "elsewhere")
    router = compute_v1.Router(
        name="their-router",
        network=vpc,
        nats=[
            compute_v1.RouterNat(
                name="their-nat",
                nat_ip_allocate_option="MANUAL_ONLY",
                nat_ips=[f"projects/{project}/regions/{REGION}/addresses/static-ip"],
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            )
        ],
    )
    clients.routers.insert(project=project, region=REGION, router_resource=router).result()


def _router(clients: Clients, project: str, name: str, vpc: str, nat: str, mode: str) -> None:
    body = compute_v1.Router(
        name=name,
        network=vpc,
        nats=[
            compute_v1.RouterNat(name=nat, nat_ip_allocate_option="AUTO_ONLY", source_subnetwork_ip_ranges_to_nat=mode)
        ],
    )
    clients.routers.insert(project=project, region=REGION, router_resource=body).result()


def all_subnetworks_nat_beside(clients: Clients, project: str) -> None:
    vpc = _network(clients, project, "vpc-cloud-run")
    _router(clients, project, "platform-router", vpc, "platform-nat", "ALL_SUBNETWORKS_ALL_IP_RANGES")


def foreign_nat_of_that_name(clients: Clients, project: str) -> None:
    vpc = _network(clients, project, "vpc-cloud-run")
    _router(clients, project, "router-cloud-run", vpc, "nat-cloud-run", "ALL_SUBNETWORKS_ALL_IP_RANGES")


def router_of_another_network(clients: Clients, project: str) -> None:
    _network(clients, project, "vpc-cloud-run")
    body = compute_v1.Router(name="router-cloud-run", network=_network(clients, project, "elsewhere"))
    clients.routers.insert(project=project, region=REGION, router_resource=body).result()


def service_attached_elsewhere(clients: Clients, project: str) -> None:
    _service(clients, project, "direct-vpc-egress", **{"runnet.dev/egress-gateway": "team-b/their-gateway"})


def producer_service(clients: Clients, project: str) -> None:
    _service(clients, project, "hello-service")


def service_in_another_region(clients: Clients, project: str) -> None:
    _service(clients, project, "hello-service", region="us-central1")


def attachment_of_another_export(clients: Clients, project: str) -> None:
    """A service attachment named like the export's, owned (by its marker) by another PSCExport."""
    producer_service(clients, project)
    vpc = _network(clients, project, "their-vpc")
    main = _subnet(clients, project, "their-subnet", "10.50.1.0/24", vpc)
    _subnet(clients, project, "their-proxy", "10.50.2.0/24", vpc, purpose="REGIONAL_MANAGED_PROXY", role="ACTIVE")
    nat = _subnet(clients, project, "their-psc", "10.50.3.0/24", vpc, purpose="PRIVATE_SERVICE_CONNECT")
    regional = f"{BASE}/{project}/regions/{REGION}"
    neg = compute_v1.NetworkEndpointGroup(
        name="their-neg",
        network_endpoint_type="SERVERLESS",
        cloud_run=compute_v1.NetworkEndpointGroupCloudRun(service="x"),
    )
    clients.network_endpoint_groups.insert(project=project, region=REGION, network_endpoint_group_resource=neg).result()
    backend = compute_v1.BackendService(
        name="their-bs",
        load_balancing_scheme="INTERNAL_MANAGED",
        protocol="HTTP",
        backends=[compute_v1.Backend(group=f"{regional}/networkEndpointGroups/their-neg")],
    )
    clients.backend_services.insert(project=project, region=REGION, backend_service_resource=backend).result()
    url_map = compute_v1.UrlMap(name="their-map", default_service=f"{regional}/backendServices/their-bs")
    clients.url_maps.insert(project=project, region=REGION, url_map_resource=url_map).result()
    proxy = compute_v1.TargetHttpProxy(name="their-proxy", url_map=f"{regional}/urlMaps/their-map")
    clients.target_http_proxies.insert(project=project, region=REGION, target_http_proxy_resource=proxy).result()
    rule = compute_v1.ForwardingRule(
        name="their-rule",
        load_balancing_scheme="INTERNAL_MANAGED",
        network=vpc,
        subnetwork=main,
        target=f"{regional}/targetHttpProxies/their-proxy",
        port_range="80",
    )
    clients.forwarding_rules.insert(project=project, region=REGION, forwarding_rule_resource=rule).result()
    attachment = compute_v1.ServiceAttachment(
        name="hello-service-attachment",
        description=marker("PSCExport", "someone-else"),
        connection_preference="ACCEPT_MANUAL",
        target_service=f"{regional}/forwardingRules/their-rule",
        nat_subnets=[nat],
    )
    clients.service_attachments.insert(project=project, region=REGION, service_attachment_resource=attachment).result()


def address_of_another_endpoint(clients: Clients, project: str) -> None:
    vpc = _network(clients, project, "consumer-vpc")
    sub = _subnet(clients, project, "consumer-subnet", "10.1.0.0/24", vpc)
    _address(
        clients,
        project,
        "psc-endpoint-ip",
        address_type="INTERNAL",
        address="10.1.0.5",
        subnetwork=sub,
        description=marker("PSCEndpoint", "someone-else"),
    )


def external_endpoint_address(clients: Clients, project: str) -> None:
    _address(clients, project, "psc-endpoint-ip")


def endpoint_address_with_another_ip(clients: Clients, project: str) -> None:
    vpc = _network(clients, project, "consumer-vpc")
    sub = _subnet(clients, project, "consumer-subnet", "10.1.0.0/24", vpc)
    _address(clients, project, "psc-endpoint-ip", address_type="INTERNAL", address="10.1.0.9", subnetwork=sub)


def consumer_subnet_overlapped(clients: Clients, project: str) -> None:
    _subnet(clients, project, "legacy", "10.0.0.0/8", _network(clients, project, "consumer-vpc"))


EGW, PSCX, PSCE = "egress-fixed-ip.yaml", "psc-export.yaml", "psc-endpoint.yaml"
URI = "projects/producer-project/regions/asia-northeast1/serviceAttachments/hello-service-attachment"
NET = "projects/consumer-project/global/networks/consumer-vpc"
PROJECT_WORDS = "must be a GCP project id: 6 to 30 lowercase letters"
REGION_WORDS = "must be a GCP region such as asia-northeast1"
NAME_WORDS = "must be a GCP resource name: 1 to 63 lowercase letters"
CIDR_WORDS = "must be an IPv4 range in CIDR notation with a prefix from /8 to /29"
MEMBER_WORDS = "must be an IAM member such as serviceAccount:"


def s(example: str, name: str, mutate: Mutate, message: str) -> Case:
    return Case(example, name, mutate, "schema", message)


def st(example: str, name: str, mutate: Mutate, reason: str, message: str, setup: Setup | None = None) -> Case:
    return Case(example, name, mutate, "status", message, reason, setup)


def noop(spec: dict[str, Any]) -> None:
    """The example as it is (the GCP preparation is the point)."""


EGRESS: list[Case] = [
    s(EGW, "project with a space", put("project", "My Project"), f"spec.project {PROJECT_WORDS}"),
    s(EGW, "project too short", put("project", "abc"), f"spec.project {PROJECT_WORDS}"),
    s(EGW, "project ending with a hyphen", put("project", "my-project-"), f"spec.project {PROJECT_WORDS}"),
    s(EGW, "project too long", put("project", "p" * 31), "spec.project"),
    s(EGW, "region as a city", put("region", "tokyo"), f"spec.region {REGION_WORDS}"),
    s(EGW, "region in capitals", put("region", "ASIA-NORTHEAST1"), f"spec.region {REGION_WORDS}"),
    s(EGW, "region without a number", put("region", "us-central"), f"spec.region {REGION_WORDS}"),
    s(EGW, "network name with an underscore", put("network.name", "VPC_Cloud"), f"spec.network.name {NAME_WORDS}"),
    s(EGW, "network name too long", put("network.name", "n" * 64), "spec.network.name"),
    s(EGW, "subnet name starting with a hyphen", put("subnet.name", "-sub"), f"spec.subnet.name {NAME_WORDS}"),
    s(EGW, "router name with punctuation", put("router.name", "router!"), f"spec.router.name {NAME_WORDS}"),
    s(EGW, "NAT name empty", put("nat.name", ""), f"spec.nat.name {NAME_WORDS}"),
    s(EGW, "prefix /33", put("subnet.ipCidrRange", "10.10.10.0/33"), f"spec.subnet.ipCidrRange {CIDR_WORDS}"),
    s(EGW, "range that is not an IP", put("subnet.ipCidrRange", "ten/24"), f"spec.subnet.ipCidrRange {CIDR_WORDS}"),
    s(EGW, "range /30, smaller than GCP allows", put("subnet.ipCidrRange", "10.10.10.0/30"), CIDR_WORDS),
    s(EGW, "range /7, larger than GCP allows", put("subnet.ipCidrRange", "10.0.0.0/7"), CIDR_WORDS),
    s(EGW, "range 0.0.0.0/0", put("subnet.ipCidrRange", "0.0.0.0/0"), f"spec.subnet.ipCidrRange {CIDR_WORDS}"),
    s(EGW, "range without a prefix", put("subnet.ipCidrRange", "10.10.10.0"), CIDR_WORDS),
    s(EGW, "no NAT address", put("nat.addresses", []), "spec.nat.addresses"),
    s(EGW, "an address twice", put("nat.addresses", ["a-ip", "a-ip"]), "spec.nat.addresses must not repeat"),
    s(EGW, "address name in capitals", put("nat.addresses", ["Static_IP"]), f"spec.nat.addresses {NAME_WORDS}"),
    s(EGW, "301 NAT addresses", put("nat.addresses", [f"ip-{i}" for i in range(301)]), "spec.nat.addresses"),
    s(EGW, "one port per VM", put("nat.minPortsPerVm", 1), "spec.nat.minPortsPerVm"),
    s(EGW, "more ports than exist", put("nat.minPortsPerVm", 70000), "spec.nat.minPortsPerVm"),
    s(EGW, "maxPortsPerVm under 64", put("nat.maxPortsPerVm", 32), "spec.nat.maxPortsPerVm"),
    s(EGW, "unknown log filter", put("nat.logging", {"enabled": True, "filter": "SOME"}), "spec.nat.logging.filter"),
    s(EGW, "unknown NAT coverage", put("nat.coverage", "Everything"), "spec.nat.coverage"),
    s(
        EGW,
        "drainTimeout in words",
        put("nat.drainTimeout", "15 minutes"),
        "spec.nat.drainTimeout must be a duration in hours, minutes and seconds such as 15m",
    ),
    s(EGW, "drainTimeout over a day", put("nat.drainTimeout", "25h"), "spec.nat.drainTimeout must be at most 24h"),
    s(EGW, "drainTimeout negative", put("nat.drainTimeout", "-5m"), "spec.nat.drainTimeout must be a duration"),
    s(EGW, "unknown address deletion policy", put("nat.addressDeletionPolicy", "Keep"), "addressDeletionPolicy"),
    s(EGW, "unknown deletion policy", put("deletionPolicy", "Keep"), "spec.deletionPolicy"),
    s(EGW, "a service twice", put("services", [{"name": "svc"}, {"name": "svc"}]), "must not list a service twice"),
    s(EGW, "unknown egress", put("services.0.egress", "SOME_TRAFFIC"), "spec.services[0].egress"),
    s(
        EGW,
        "service name in capitals",
        put("services.0.name", "Direct"),
        f"the name of each spec.services entry {NAME_WORDS}",
    ),
    s(EGW, "101 services", put("services", [{"name": f"s{i}"} for i in range(101)]), "spec.services"),
    s(EGW, "no NAT at all", put("nat", None), "spec.nat"),
    s(EGW, "no project", put("project", None), "spec.project"),
    st(
        EGW,
        "host bits set",
        put("subnet.ipCidrRange", "10.10.10.5/24"),
        "InvalidSpec",
        "has host bits set: use 10.10.10.0/24",
    ),
    st(EGW, "loopback range", put("subnet.ipCidrRange", "127.0.0.0/24"), "InvalidSpec", "overlaps 127.0.0.0/8"),
    st(EGW, "link-local range", put("subnet.ipCidrRange", "169.254.0.0/24"), "InvalidSpec", "overlaps 169.254.0.0/16"),
    st(EGW, "multicast range", put("subnet.ipCidrRange", "224.0.0.0/24"), "InvalidSpec", "overlaps 224.0.0.0/4"),
    st(EGW, "0.0.0.0/8", put("subnet.ipCidrRange", "0.0.0.0/8"), "InvalidSpec", "overlaps 0.0.0.0/8"),
    st(
        EGW,
        "maxPortsPerVm without dynamic ports",
        put("nat.maxPortsPerVm", 128),
        "InvalidSpec",
        "needs spec.nat.enableDynamicPortAllocation",
    ),
    st(
        EGW,
        "maxPortsPerVm under minPortsPerVm",
        both(
            put("nat.enableDynamicPortAllocation", True), put("nat.minPortsPerVm", 256), put("nat.maxPortsPerVm", 128)
        ),
        "InvalidSpec",
        "must be at least spec.nat.minPortsPerVm",
    ),
    st(
        EGW,
        "dynamic ports need a power of two",
        both(put("nat.enableDynamicPortAllocation", True), put("nat.minPortsPerVm", 100)),
        "InvalidSpec",
        "must be a power of two",
    ),
    st(
        EGW,
        "dynamic ports with endpoint-independent mapping",
        both(put("nat.enableDynamicPortAllocation", True), put("nat.enableEndpointIndependentMapping", True)),
        "InvalidSpec",
        "cannot be combined with dynamic port allocation",
    ),
    st(EGW, "a new subnet without a range", put("subnet.ipCidrRange", None), "InvalidSpec", "ipCidrRange is required"),
    st(
        EGW,
        "a region that does not exist",
        put("region", "asia-northeest1"),
        "InvalidSpec",
        "did you mean asia-northeast1?",
    ),
    st(EGW, "existing subnet with another range", noop, "Conflict", "10.20.0.0/24", subnet_with_another_range),
    st(
        EGW,
        "existing subnet of another network",
        noop,
        "Conflict",
        "belongs to network elsewhere",
        subnet_of_another_network,
    ),
    st(
        EGW,
        "a PSC subnet of that name",
        noop,
        "InvalidSpec",
        "has purpose PRIVATE_SERVICE_CONNECT",
        special_purpose_subnet,
    ),
    st(EGW, "an INTERNAL address", noop, "InvalidSpec", "is INTERNAL", internal_address),
    st(EGW, "an address in another region", noop, "InvalidSpec", "exists in us-central1", address_in_another_region),
    st(
        EGW,
        "another gateway's address",
        noop,
        "Conflict",
        "managed by EgressGateway default/someone-else",
        address_of_another_gateway,
    ),
    st(EGW, "an address another NAT uses", noop, "InvalidSpec", "already used by", address_used_by_another_nat),
    st(
        EGW,
        "beside an all-subnetworks NAT",
        put("nat.coverage", "GatewaySubnet"),
        "Conflict",
        "covers all subnetworks",
        all_subnetworks_nat_beside,
    ),
    st(
        EGW,
        "all subnetworks beside another NAT",
        put("nat.coverage", "AllSubnetworks"),
        "Conflict",
        "GatewaySubnet",
        all_subnetworks_nat_beside,
    ),
    st(EGW, "someone else's NAT of that name", noop, "Conflict", "set adopt: true", foreign_nat_of_that_name),
    st(EGW, "a router of another network", noop, "Conflict", "belongs to network elsewhere", router_of_another_network),
    st(
        EGW,
        "a service attached to another gateway",
        noop,
        "Conflict",
        "team-b/their-gateway",
        service_attached_elsewhere,
    ),
]

EXPORT: list[Case] = [
    s(PSCX, "project in capitals", put("project", "Producer"), f"spec.project {PROJECT_WORDS}"),
    s(PSCX, "region as a city", put("region", "osaka"), f"spec.region {REGION_WORDS}"),
    s(
        PSCX,
        "Cloud Run name with an underscore",
        put("service", "Hello_Service"),
        "spec.service must be a Cloud Run service name",
    ),
    s(PSCX, "Cloud Run name too long", put("service", "s" * 50), "spec.service"),
    s(PSCX, "network name with a dot", put("network.name", "vpc.one"), f"spec.network.name {NAME_WORDS}"),
    s(PSCX, "port too high", put("loadBalancer.port", 70000), "spec.loadBalancer.port"),
    s(PSCX, "port zero", put("loadBalancer.port", 0), "spec.loadBalancer.port"),
    s(PSCX, "NEG name in capitals", put("loadBalancer.neg", "Neg_1"), f"spec.loadBalancer.neg {NAME_WORDS}"),
    s(PSCX, "attachment name in capitals", put("attachment.name", "Hello"), f"spec.attachment.name {NAME_WORDS}"),
    s(
        PSCX,
        "NAT subnet prefix /33",
        put("subnets.pscNat.ipCidrRange", "10.0.3.0/33"),
        f"spec.subnets.pscNat.ipCidrRange {CIDR_WORDS}",
    ),
    s(
        PSCX,
        "malformed consumer project",
        put("attachment.consumers", [{"project": "Bad_P"}]),
        "must be a GCP project id",
    ),
    s(
        PSCX,
        "network that is not a URL",
        put("attachment.consumers", [{"network": "vpc"}]),
        "must be a VPC network as projects/PROJECT",
    ),
    s(
        PSCX,
        "projects and networks mixed",
        put("attachment.consumers", [{"project": "consumer-project"}, {"network": NET}]),
        "cannot mix projects and networks",
    ),
    s(
        PSCX,
        "consumer with project and network",
        put("attachment.consumers", [{"project": "consumer-project", "network": NET}]),
        "exactly one of project or network",
    ),
    s(
        PSCX,
        "negative connection limit",
        put("attachment.consumers", [{"project": "consumer-project", "connectionLimit": -1}]),
        "connectionLimit",
    ),
    s(
        PSCX,
        "a project accepted and rejected",
        put("attachment.rejected", ["consumer-project"]),
        "must not name a consumer that spec.attachment.consumers accepts",
    ),
    s(
        PSCX,
        "malformed rejected entry",
        put("attachment.rejected", ["Bad Project"]),
        "each entry of spec.attachment.rejected must be",
    ),
    s(
        PSCX,
        "domain without the final dot",
        put("attachment.domainNames", ["example.com"]),
        "must be a DNS domain name ending with a dot",
    ),
    s(PSCX, "two domains", put("attachment.domainNames", ["a.example.", "b.example."]), "spec.attachment.domainNames"),
    s(PSCX, "unknown connection preference", put("attachment.connectionPreference", "MAYBE"), "connectionPreference"),
    s(PSCX, "allUsers invoker", put("invokers", ["allUsers"]), "must not include allUsers or allAuthenticatedUsers"),
    s(
        PSCX,
        "allusers in lower case",
        put("invokers", ["allusers"]),
        "must not include allUsers or allAuthenticatedUsers",
    ),
    s(
        PSCX,
        "invoker without a type",
        put("invokers", ["alice@example.com"]),
        f"each entry of spec.invokers {MEMBER_WORDS}",
    ),
    s(PSCX, "service account that is not an email", put("invokers", ["serviceAccount:not-an-email"]), MEMBER_WORDS),
    s(PSCX, "invoker with a look-alike letter", put("invokers", ["user:\u0430lice@example.com"]), "ASCII letters only"),
    s(PSCX, "unknown ingress", put("ingress", "ALL"), "spec.ingress"),
    s(PSCX, "no subnets", put("subnets", None), "spec.subnets"),
    st(
        PSCX,
        "NAT and load-balancer ranges overlap",
        put("subnets.pscNat.ipCidrRange", "10.0.1.128/25"),
        "InvalidSpec",
        "overlaps spec.subnets.loadBalancer",
    ),
    st(
        PSCX,
        "proxy-only range overlaps",
        put("subnets.proxyOnly.ipCidrRange", "10.0.1.0/24"),
        "InvalidSpec",
        "overlaps",
    ),
    st(
        PSCX,
        "host bits in the load-balancer range",
        put("subnets.loadBalancer.ipCidrRange", "10.0.1.7/24"),
        "InvalidSpec",
        "has host bits set: use 10.0.1.0/24",
    ),
    st(
        PSCX,
        "proxy-only subnet too small",
        put("subnets.proxyOnly.ipCidrRange", "10.0.2.0/27"),
        "InvalidSpec",
        "/26 or larger",
    ),
    st(
        PSCX,
        "NAT subnet in loopback",
        put("subnets.pscNat.ipCidrRange", "127.0.3.0/24"),
        "InvalidSpec",
        "overlaps 127.0.0.0/8",
    ),
    st(
        PSCX,
        "a new NAT subnet without a range",
        put("subnets.pscNat.ipCidrRange", None),
        "InvalidSpec",
        "ipCidrRange is required",
    ),
    st(
        PSCX,
        "a consumer listed twice",
        put(
            "attachment.consumers",
            [{"project": "consumer-project"}, {"project": "consumer-project", "connectionLimit": 2}],
        ),
        "InvalidSpec",
        "more than once",
    ),
    st(
        PSCX,
        "a rejected network with project consumers",
        put("attachment.rejected", [NET]),
        "InvalidSpec",
        "only projects or only networks",
    ),
    st(
        PSCX,
        "a region that does not exist",
        put("region", "europe-west99"),
        "InvalidSpec",
        "is not a Google Cloud region",
        producer_service,
    ),
    st(PSCX, "a service that does not exist", noop, "InvalidSpec", "hello-service does not exist"),
    st(PSCX, "a service in another region", noop, "InvalidSpec", "is in us-central1", service_in_another_region),
    st(
        PSCX,
        "another export's attachment",
        noop,
        "Conflict",
        "managed by PSCExport default/someone-else",
        attachment_of_another_export,
    ),
]

ENDPOINT: list[Case] = [
    s(PSCE, "project with capitals", put("project", "Consumer"), f"spec.project {PROJECT_WORDS}"),
    s(PSCE, "region as a city", put("region", "tokyo"), f"spec.region {REGION_WORDS}"),
    s(PSCE, "subnet prefix /33", put("subnet.ipCidrRange", "10.1.0.0/33"), f"spec.subnet.ipCidrRange {CIDR_WORDS}"),
    s(PSCE, "IP out of range", put("address.ip", "10.1.0.300"), "spec.address.ip must be an IPv4 address"),
    s(PSCE, "address name in capitals", put("address.name", "PSC-IP"), f"spec.address.name {NAME_WORDS}"),
    s(PSCE, "forwarding rule name too long", put("forwardingRule.name", "r" * 64), "spec.forwardingRule.name"),
    s(
        PSCE,
        "export name with an underscore",
        put("target.exportRef.name", "hello_x"),
        f"spec.target.exportRef.name {NAME_WORDS}",
    ),
    s(
        PSCE,
        "malformed attachment URI",
        put("target", {"serviceAttachment": "projects/p/serviceAttachments/x"}),
        "spec.target.serviceAttachment must be a service attachment as projects/PROJECT/regions/REGION",
    ),
    s(
        PSCE,
        "exportRef and URI",
        put("target", {"exportRef": {"name": "hello"}, "serviceAttachment": URI}),
        "exactly one of exportRef or serviceAttachment",
    ),
    s(PSCE, "no target", put("target", {}), "exactly one of exportRef or serviceAttachment"),
    s(PSCE, "unknown deletion policy", put("deletionPolicy", "Never"), "spec.deletionPolicy"),
    s(PSCE, "audience not a URL", put("audience", "hello-service"), "spec.audience must be an https URL"),
    s(PSCE, "audience over plain HTTP", put("audience", "http://hello.run.app"), "spec.audience must be an https URL"),
    s(
        PSCX,
        "an extra NAT subnet twice",
        put("subnets.extraPscNat", [{"name": "nat-2", "ipCidrRange": "10.0.4.0/29"}] * 2),
        "spec.subnets.extraPscNat must not list a subnet twice",
    ),
    s(
        PSCX,
        "negative propagated connection limit",
        put("attachment.propagatedConnectionLimit", -1),
        "spec.attachment.propagatedConnectionLimit",
    ),
    st(
        PSCE,
        "address outside the subnet",
        put("address.ip", "10.2.0.5"),
        "InvalidSpec",
        "is not in spec.subnet.ipCidrRange",
    ),
    st(PSCE, "address reserved by GCP", put("address.ip", "10.1.0.1"), "InvalidSpec", "reserved by GCP"),
    st(PSCE, "broadcast address", put("address.ip", "10.1.0.255"), "InvalidSpec", "reserved by GCP"),
    st(PSCE, "host bits in the subnet", put("subnet.ipCidrRange", "10.1.0.9/24"), "InvalidSpec", "has host bits set"),
    st(
        PSCE,
        "attachment in another region",
        put("target", {"serviceAttachment": URI.replace("asia-northeast1", "us-central1")}),
        "InvalidSpec",
        "is in us-central1",
    ),
    st(
        PSCE,
        "attachment that does not exist",
        put("target", {"serviceAttachment": URI}),
        "InvalidSpec",
        "does not exist: check spec.target",
    ),
    st(
        PSCE,
        "a region that does not exist",
        both(
            put("region", "asia-northeast9"),
            put("target", {"serviceAttachment": URI.replace("asia-northeast1", "asia-northeast9")}),
        ),
        "InvalidSpec",
        "asia-northeast9 is not a Google Cloud region",
    ),
    st(
        PSCE,
        "an EXTERNAL address",
        put("target", {"serviceAttachment": URI}),
        "InvalidSpec",
        "is EXTERNAL",
        external_endpoint_address,
    ),
    st(
        PSCE,
        "an address holding another IP",
        put("target", {"serviceAttachment": URI}),
        "InvalidSpec",
        "holds 10.1.0.9",
        endpoint_address_with_another_ip,
    ),
    st(
        PSCE,
        "another endpoint's address",
        noop,
        "Conflict",
        "managed by PSCEndpoint default/someone-else",
        address_of_another_endpoint,
    ),
    st(
        PSCE,
        "a subnet overlapping the VPC's",
        put("target", {"serviceAttachment": URI}),
        "InvalidSpec",
        "overlaps subnetwork legacy",
        consumer_subnet_overlapped,
    ),
]

CASES = [*EGRESS, *EXPORT, *ENDPOINT]
