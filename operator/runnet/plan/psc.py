"""PSCExport and PSCEndpoint specs → the graphs of GCP resources behind them.

Export (producer project); the subnets and the NEG chain do not wait for each other:

    network ─┬─ load-balancer subnet ─┐
             ├─ proxy-only subnet ────┼─ forwarding rule ─┬─ service attachment
             └─ PSC NAT subnet ───────┼───────────────────┘
    NEG ─ backend service ─ URL map ─ target proxy
    Cloud Run ingress ─ invokers (IAM)

Endpoint (consumer project): network ─ subnet ─ address ─ forwarding rule (→ the attachment).

Pure: builds adapters (which hold the desired state) but calls nothing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from runnet.api.common import GCP_NAME_PATTERN
from runnet.api.egress import SubnetSpec
from runnet.api.psc import MEMBER_PATTERN, PSCEndpointSpec, PSCExportSpec
from runnet.engine import Node, Policy
from runnet.gcp.context import Context
from runnet.gcp.lb import (
    PROXY_ONLY_MAX_PREFIX,
    BackendServiceAdapter,
    InternalRuleAdapter,
    ProxyOnlySubnetAdapter,
    ServerlessNegAdapter,
    TargetHttpProxyAdapter,
    UrlMapAdapter,
)
from runnet.gcp.network import NetworkAdapter, SubnetAdapter, range_problem, tail
from runnet.gcp.psc import DesiredAttachment, InternalAddressAdapter, PscEndpointAdapter, ServiceAttachmentAdapter
from runnet.gcp.region import RegionAdapter
from runnet.gcp.run_access import PUBLIC, RunIngressAdapter, RunInvokersAdapter

MEMBER = re.compile(MEMBER_PATTERN)
NAME = re.compile(GCP_NAME_PATTERN)


@dataclass(frozen=True)
class ExportNames:
    neg: str
    backend_service: str
    url_map: str
    target_proxy: str
    forwarding_rule: str
    attachment: str


def export_names(spec: PSCExportSpec, name: str) -> ExportNames:
    """The GCP names, from the spec or defaulted from metadata.name."""
    lb = spec.load_balancer
    return ExportNames(
        neg=lb.neg or f"{name}-neg",
        backend_service=lb.backend_service or f"{name}-backend-service",
        url_map=lb.url_map or f"{name}-url-map",
        target_proxy=lb.target_proxy or f"{name}-http-proxy",
        forwarding_rule=lb.forwarding_rule or f"{name}-forwarding-rule",
        attachment=spec.attachment.name or f"{name}-attachment",
    )


def export_problems(spec: PSCExportSpec, name: str) -> list[str]:
    """Cross-field rules the schema cannot say, each with its fix."""
    problems = [
        f"metadata.name {name} gives the invalid GCP name {value}: set spec.{field} explicitly"
        for field, value in _defaulted(spec, name).items()
        if len(value) > 63 or not NAME.match(value)
    ]
    ranges = {
        "spec.subnets.loadBalancer": spec.subnets.load_balancer.ip_cidr_range,
        "spec.subnets.proxyOnly": spec.subnets.proxy_only.ip_cidr_range,
        "spec.subnets.pscNat": spec.subnets.psc_nat.ip_cidr_range,
        **{f"spec.subnets.extraPscNat[{i}]": s.ip_cidr_range for i, s in enumerate(spec.subnets.extra_psc_nat)},
    }
    problems += [p for field, cidr in ranges.items() if (p := range_problem(field, cidr))]
    proxy = spec.subnets.proxy_only.ip_cidr_range
    if proxy and int(proxy.split("/")[1]) > PROXY_ONLY_MAX_PREFIX:
        problems.append(
            f"spec.subnets.proxyOnly.ipCidrRange {proxy} is too small: GCP needs a /{PROXY_ONLY_MAX_PREFIX} or larger "
            "proxy-only subnet (a /23 is recommended)"
        )
    problems += _overlaps(ranges)
    for member in spec.invokers:
        if member.lower() in {p.lower() for p in PUBLIC}:
            problems.append(f"spec.invokers must not include {member}: a private export must not be public")
        elif not MEMBER.match(member):
            problems.append(
                f"each entry of spec.invokers must be an IAM member such as serviceAccount:NAME@PROJECT"
                f".iam.gserviceaccount.com (ASCII letters only): {member} is not one"
            )
    return problems + _consumer_problems(spec)


def _defaulted(spec: PSCExportSpec, name: str) -> dict[str, str]:
    lb, names = spec.load_balancer, export_names(spec, name)
    given = {
        "loadBalancer.neg": (lb.neg, names.neg),
        "loadBalancer.backendService": (lb.backend_service, names.backend_service),
        "loadBalancer.urlMap": (lb.url_map, names.url_map),
        "loadBalancer.targetProxy": (lb.target_proxy, names.target_proxy),
        "loadBalancer.forwardingRule": (lb.forwarding_rule, names.forwarding_rule),
        "attachment.name": (spec.attachment.name, names.attachment),
    }
    return {field: value for field, (explicit, value) in given.items() if not explicit}


def _overlaps(ranges: dict[str, str | None]) -> list[str]:
    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    problems = []
    for field, cidr in ranges.items():
        if not cidr:
            continue
        net = ipaddress.ip_network(cidr, strict=False)
        for other, other_net in seen:
            if net.overlaps(other_net):
                problems.append(
                    f"{field}.ipCidrRange {cidr} overlaps {other}.ipCidrRange {other_net}: pick disjoint ranges"
                )
        seen.append((field, net))
    return problems


def _consumer_problems(spec: PSCExportSpec) -> list[str]:
    """GCP's rules for accept/reject lists: one kind of consumer, each named once."""
    att = spec.attachment
    problems = []
    kinds = set()
    for i, consumer in enumerate(att.consumers):
        if (consumer.project is None) == (consumer.network is None):
            problems.append(f"spec.attachment.consumers[{i}] needs exactly one of project or network")
        kinds.add("network" if consumer.network else "project")
    kinds |= {"network" if "/networks/" in r else "project" for r in att.rejected}
    if len(kinds) > 1:
        problems.append(
            "spec.attachment.consumers and spec.attachment.rejected must name only projects or only networks "
            "(a GCP rule): use one kind"
        )
    values = [_consumer_value(c.project, c.network) for c in att.consumers]
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        problems.append(f"spec.attachment.consumers lists {repeated[0]} more than once: merge the entries")
    both = sorted(set(values) & {tail(r) for r in att.rejected})
    if both:
        problems.append(
            f"spec.attachment.rejected names {both[0]}, which spec.attachment.consumers accepts: remove it from one "
            "of the two lists"
        )
    return problems


def _consumer_value(project: str | None, network: str | None) -> str:
    return project or tail(network or "")


def desired_attachment(spec: PSCExportSpec, ctx: Context, names: ExportNames) -> DesiredAttachment:
    att = spec.attachment
    return DesiredAttachment(
        preference=att.connection_preference.value,
        accept=tuple((_consumer_value(c.project, c.network), c.connection_limit) for c in att.consumers),
        reject=tuple(tail(r) for r in att.rejected),
        reconcile=att.reconcile_connections,
        domain_names=tuple(att.domain_names),
        nat_subnets=tuple(ctx.regional_path("subnetworks", s.name) for s in nat_subnets(spec)),
        target=ctx.regional_path("forwardingRules", names.forwarding_rule),
        propagated_limit=att.propagated_connection_limit,
        proxy_protocol=att.enable_proxy_protocol,
    )


def nat_subnets(spec: PSCExportSpec) -> list[SubnetSpec]:
    """The attachment's PSC NAT subnets, in order: pscNat, then extraPscNat."""
    return [spec.subnets.psc_nat, *spec.subnets.extra_psc_nat]


def nat_subnet_key(index: int) -> str:
    return "subnet/pscNat" if index == 0 else f"subnet/pscNat/{index}"


def build_export(spec: PSCExportSpec, ctx: Context, *, export: str, name: str) -> list[Node]:
    """The nodes of one export; ``export`` is its namespace/name, ``name`` its metadata.name."""
    names = export_names(spec, name)
    return [
        *_subnet_nodes(spec, ctx),
        *_load_balancer_nodes(spec, ctx, names),
        Node(
            "attachment",
            ServiceAttachmentAdapter(ctx, names.attachment, desired=desired_attachment(spec, ctx, names)),
            depends_on=["forwardingRule", *(nat_subnet_key(i) for i in range(len(nat_subnets(spec))))],
        ),
        *service_nodes(spec, ctx, export=export),
    ]


def _subnet_nodes(spec: PSCExportSpec, ctx: Context) -> list[Node]:
    net, subnets = spec.network.name, spec.subnets
    lb_subnet = SubnetAdapter(
        ctx,
        subnets.load_balancer.name,
        network=net,
        ip_cidr_range=subnets.load_balancer.ip_cidr_range,
        field="spec.subnets.loadBalancer",
        private_ip_google_access=subnets.load_balancer.private_ip_google_access,
    )
    proxy_subnet = ProxyOnlySubnetAdapter(
        ctx, subnets.proxy_only.name, network=net, ip_cidr_range=subnets.proxy_only.ip_cidr_range
    )
    nat = [
        Node(
            nat_subnet_key(i),
            SubnetAdapter(
                ctx,
                s.name,
                network=net,
                ip_cidr_range=s.ip_cidr_range,
                field="spec.subnets.pscNat" if i == 0 else f"spec.subnets.extraPscNat[{i - 1}]",
                purpose="PRIVATE_SERVICE_CONNECT",
            ),
            depends_on=["network"],
        )
        for i, s in enumerate(nat_subnets(spec))
    ]
    return [
        Node("region", RegionAdapter(ctx), policy=Policy.OBSERVE),
        Node("network", NetworkAdapter(ctx, net), depends_on=["region"]),
        Node("subnet/loadBalancer", lb_subnet, depends_on=["network"]),
        Node("subnet/proxyOnly", proxy_subnet, depends_on=["network"]),
        *nat,
    ]


def _load_balancer_nodes(spec: PSCExportSpec, ctx: Context, names: ExportNames) -> list[Node]:
    """NEG → backend service → URL map → proxy, independent of the subnets; then the forwarding rule."""
    path = ctx.regional_path
    rule = InternalRuleAdapter(
        ctx,
        names.forwarding_rule,
        network=spec.network.name,
        subnet=spec.subnets.load_balancer.name,
        proxy=path("targetHttpProxies", names.target_proxy),
        port=spec.load_balancer.port,
    )
    return [
        Node("neg", ServerlessNegAdapter(ctx, names.neg, service=spec.service)),
        Node(
            "backendService",
            BackendServiceAdapter(ctx, names.backend_service, neg=path("networkEndpointGroups", names.neg)),
            depends_on=["neg"],
        ),
        Node(
            "urlMap",
            UrlMapAdapter(ctx, names.url_map, backend_service=path("backendServices", names.backend_service)),
            depends_on=["backendService"],
        ),
        Node(
            "targetProxy",
            TargetHttpProxyAdapter(ctx, names.target_proxy, url_map=path("urlMaps", names.url_map)),
            depends_on=["urlMap"],
        ),
        Node("forwardingRule", rule, depends_on=["targetProxy", "subnet/loadBalancer", "subnet/proxyOnly"]),
    ]


def service_nodes(spec: PSCExportSpec, ctx: Context, *, export: str) -> list[Node]:
    ingress = RunIngressAdapter(ctx, spec.service, ingress=spec.ingress.value)
    invokers = RunInvokersAdapter(ctx, spec.service, invokers=spec.invokers, export=export)
    return [
        Node("service/ingress", ingress, policy=Policy.ATTACH),
        # After the ingress: both write the same Cloud Run service.
        Node("service/invokers", invokers, policy=Policy.ATTACH, depends_on=["service/ingress"]),
    ]


def teardown_export(spec: PSCExportSpec, ctx: Context, *, export: str, name: str) -> list[Node]:
    """What deleting an export undoes: everything but the ingress, which is never widened again."""
    nodes = [n for n in build_export(spec, ctx, export=export, name=name) if n.key != "service/ingress"]
    for node in nodes:
        node.depends_on = [d for d in node.depends_on if d != "service/ingress"]
    return nodes


# -- endpoint ---------------------------------------------------------------------------------


def endpoint_problems(spec: PSCEndpointSpec) -> list[str]:
    problems = []
    target = spec.target
    if (target.export_ref is None) == (target.service_attachment is None):
        problems.append("spec.target needs exactly one of exportRef or serviceAttachment")
    if target.service_attachment:
        region = tail(target.service_attachment).split("/")[3]
        if region != spec.region:
            problems.append(
                f"spec.target.serviceAttachment is in {region}, not spec.region {spec.region}: a PSC endpoint "
                "must be in its service attachment's region"
            )
    ip, cidr = spec.address.ip, spec.subnet.ip_cidr_range
    problem = range_problem("spec.subnet", cidr)
    if problem:
        problems.append(problem)
    elif ip and cidr:
        net = ipaddress.ip_network(cidr, strict=False)
        host = ipaddress.ip_address(ip)
        # GCP reserves the network, gateway, second-to-last and broadcast addresses of a subnet.
        reserved = {net.network_address, net.network_address + 1, net.broadcast_address - 1, net.broadcast_address}
        if host not in net:
            problems.append(f"spec.address.ip {ip} is not in spec.subnet.ipCidrRange {cidr}")
        elif host in reserved:
            problems.append(f"spec.address.ip {ip} is reserved by GCP in {cidr}: pick another address")
    return problems


def build_endpoint(
    spec: PSCEndpointSpec, ctx: Context, *, attachment: str | None, teardown: bool = False
) -> list[Node]:
    """The consumer's nodes. While the attachment is not known (None) the forwarding rule is only read:
    whatever it targets is reported, nothing is written to it."""
    rule_path = ctx.regional_path("forwardingRules", spec.forwarding_rule.name)
    nodes = [
        Node("region", RegionAdapter(ctx), policy=Policy.OBSERVE),
        Node("network", NetworkAdapter(ctx, spec.network.name), depends_on=["region"]),
        Node(
            "subnet",
            SubnetAdapter(
                ctx,
                spec.subnet.name,
                network=spec.network.name,
                ip_cidr_range=spec.subnet.ip_cidr_range,
                field="spec.subnet",
                private_ip_google_access=spec.subnet.private_ip_google_access,
            ),
            depends_on=["network"],
        ),
        Node(
            "address",
            InternalAddressAdapter(ctx, spec.address.name, subnet=spec.subnet.name, ip=spec.address.ip, user=rule_path),
            depends_on=["subnet"],
        ),
    ]
    rule = PscEndpointAdapter(
        ctx, spec.forwarding_rule.name, network=spec.network.name, address=spec.address.name, attachment=attachment
    )
    policy = Policy.OBSERVE if attachment is None and not teardown else Policy.MANAGE
    nodes.append(Node("forwardingRule", rule, policy=policy, depends_on=["address"]))
    return nodes
