"""EgressGateway spec (and what runnet owns for it in GCP) → the graph of GCP resources.

    region ─ network ─┬─ subnet ───────────────┐
                      └─ router ─┐             ├─ service (Direct VPC egress, one node per service)
    address x n ─────────────────┴─ NAT ───────┘
    retained address x m ────────┘      └─ NAT status (what GCP reports the NAT uses)
    detached service x k (listed no more: their VPC access is restored)

Pure: builds adapters (which hold the desired state) but calls nothing. What runnet owns is an
input (:class:`Owned`), found in GCP before planning, never remembered in the status.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from runnet.api.common import seconds
from runnet.api.egress import AddressDeletionPolicy, AddressState, EgressGatewaySpec
from runnet.engine import Node, Policy
from runnet.gcp.address import ExternalAddressAdapter, mark, parse_mark
from runnet.gcp.context import Context
from runnet.gcp.network import NetworkAdapter, SubnetAdapter, range_problem
from runnet.gcp.region import RegionAdapter
from runnet.gcp.router import DesiredNat, NatAdapter, NatStatusAdapter, RouterAdapter
from runnet.gcp.run_service import RunEgressAdapter

# Direct VPC egress takes about two IPs per instance, reserved in blocks: GCP recommends a /26 or larger.
DIRECT_EGRESS_RECOMMENDED_PREFIX = 26


@dataclass(frozen=True)
class Owned:
    """What GCP says runnet holds for this gateway, found before planning (see ``controllers.egress``)."""

    addresses: list[str] = field(default_factory=list)
    """Addresses whose owner marker names the gateway."""
    services: list[str] = field(default_factory=list)
    """Cloud Run services carrying the gateway's annotation."""
    marks: dict[str, str] = field(default_factory=dict)
    """Each owned address's NAT state label (``runnet-nat-ip``), '' when it has none."""
    nat_active: list[str] = field(default_factory=list)
    """Addresses in the NAT's natIps when the pass began."""
    nat_draining: list[str] = field(default_factory=list)
    """Addresses in the NAT's drainNatIps when the pass began."""
    unused: list[str] = field(default_factory=list)
    """Draining addresses GCP reports UNUSED (getNatIpInfo): their drain is over."""
    now: float = 0.0
    """When the pass began (epoch seconds): drains are timed against it."""


@dataclass(frozen=True)
class AddressPlan:
    """What one pass makes of an owned address that spec.nat.addresses no longer lists."""

    state: AddressState
    mark: str
    """The state label it must carry (written before the NAT write that puts it in that state)."""
    until: float = 0.0
    """While draining: when drainTimeout ends the drain."""


def spec_problems(spec: EgressGatewaySpec) -> list[str]:
    """Cross-field rules the schema cannot say (each a one-sentence fix)."""
    problems = []
    nat = spec.nat
    if nat.max_ports_per_vm is not None:
        if not nat.enable_dynamic_port_allocation:
            problems.append("spec.nat.maxPortsPerVm needs spec.nat.enableDynamicPortAllocation: true")
        elif nat.max_ports_per_vm < nat.min_ports_per_vm:
            problems.append("spec.nat.maxPortsPerVm must be at least spec.nat.minPortsPerVm")
    if nat.enable_dynamic_port_allocation:
        if nat.min_ports_per_vm & (nat.min_ports_per_vm - 1):
            problems.append("spec.nat.minPortsPerVm must be a power of two with dynamic port allocation")
        if nat.enable_endpoint_independent_mapping:
            problems.append(
                "spec.nat.enableEndpointIndependentMapping cannot be combined with dynamic port allocation: "
                "turn one of them off"
            )
    problem = range_problem("spec.subnet", spec.subnet.ip_cidr_range)
    return [*problems, problem] if problem else problems


def unlisted(owned: Owned, spec: EgressGatewaySpec) -> list[str]:
    """Addresses runnet reserved for the gateway that spec.nat.addresses no longer lists."""
    return [a for a in owned.addresses if a not in spec.nat.addresses]


def unlisted_plan(spec: EgressGatewaySpec, owned: Owned) -> dict[str, AddressPlan]:
    """Draining or retained, for each unlisted owned address.

    An address leaving natIps drains (unless drainTimeout is 0s); a draining one is retained once GCP
    reports it unused or drainTimeout has passed since the drain began (its label says when); a
    retained one stays retained. Only an address the NAT holds can drain (GCP drains an IP only in
    the write that takes it out of natIps).
    """
    timeout = seconds(spec.nat.drain_timeout)
    out = {}
    for name in unlisted(owned, spec):
        label = owned.marks.get(name, "")
        state, at = parse_mark(label)
        in_nat = name in owned.nat_active or name in owned.nat_draining
        retained = AddressPlan(AddressState.RETAINED, mark("retained", owned.now))
        if state == "retained":
            out[name] = AddressPlan(AddressState.RETAINED, label)
        elif not in_nat or timeout == 0:
            out[name] = retained
        elif state == "draining":
            over = owned.now >= at + timeout or name in owned.unused
            out[name] = retained if over else AddressPlan(AddressState.DRAINING, label, at + timeout)
        else:
            out[name] = AddressPlan(AddressState.DRAINING, mark("draining", owned.now), owned.now + timeout)
    return out


def listed_mark(owned: Owned, name: str) -> str | None:
    """An owned address listed again after draining or being retained is marked active again."""
    state, _ = parse_mark(owned.marks.get(name, ""))
    return mark("active", owned.now) if state in ("draining", "retained") else None


def build(spec: EgressGatewaySpec, ctx: Context, *, gateway: str, owned: Owned, teardown: bool = False) -> list[Node]:
    """The nodes for one gateway; ``gateway`` is its namespace/name (recorded on services).

    Retained addresses are only read while the gateway lives, and deleted after the NAT by a
    teardown under addressDeletionPolicy Delete. Services runnet attached that are no longer listed
    are detached in the same pass.
    """
    router_path = ctx.regional_path("routers", spec.router.name)
    retain = spec.nat.address_deletion_policy is AddressDeletionPolicy.RETAIN
    plans = {} if teardown else unlisted_plan(spec, owned)
    addresses = [
        Node(
            f"address/{name}",
            ExternalAddressAdapter(
                ctx, name, allowed_user=router_path, mark=None if teardown else listed_mark(owned, name)
            ),
            retain=retain,
        )
        for name in spec.nat.addresses
    ]
    kept = [
        Node(
            f"retained/{name}",
            ExternalAddressAdapter(
                ctx, name, allowed_user=router_path, listed=False, mark=plans[name].mark if plans else None
            ),
            policy=Policy.MANAGE if teardown else Policy.OBSERVE,
            retain=retain,
        )
        for name in unlisted(owned, spec)
    ]
    draining = tuple(ctx.regional_path("addresses", n) for n, p in plans.items() if p.state is AddressState.DRAINING)
    nodes = [
        Node("region", RegionAdapter(ctx), policy=Policy.OBSERVE),
        Node("network", NetworkAdapter(ctx, spec.network.name), depends_on=["region"]),
        Node("subnet", _subnet(spec, ctx), depends_on=["network"]),
        Node("router", RouterAdapter(ctx, spec.router.name, network=spec.network.name), depends_on=["network"]),
        *addresses,
        *kept,
        Node(
            "nat",
            _nat(spec, ctx, draining),
            policy=Policy.CONFIGURE,
            adopt=spec.nat.adopt,
            depends_on=["router", "subnet", *(a.key for a in [*addresses, *kept])],
        ),
    ]
    if not teardown:
        status = NatStatusAdapter(ctx, router=spec.router.name, nat=spec.nat.name)
        nodes.append(Node("natStatus", status, policy=Policy.OBSERVE, depends_on=["nat"]))
    return nodes + _services(spec, ctx, gateway=gateway, owned=owned)


def _subnet(spec: EgressGatewaySpec, ctx: Context) -> SubnetAdapter:
    return SubnetAdapter(
        ctx,
        spec.subnet.name,
        network=spec.network.name,
        ip_cidr_range=spec.subnet.ip_cidr_range,
        field="spec.subnet",
        private_ip_google_access=spec.subnet.private_ip_google_access,
    )


def _nat(spec: EgressGatewaySpec, ctx: Context, draining: tuple[str, ...] = ()) -> NatAdapter:
    nat = spec.nat
    desired = DesiredNat(
        name=nat.name,
        addresses=tuple(ctx.regional_path("addresses", a) for a in nat.addresses),
        drain=draining,
        min_ports_per_vm=nat.min_ports_per_vm,
        max_ports_per_vm=nat.max_ports_per_vm,
        dynamic_port_allocation=nat.enable_dynamic_port_allocation,
        endpoint_independent_mapping=nat.enable_endpoint_independent_mapping,
        log_enabled=nat.logging.enabled,
        log_filter=nat.logging.filter.value,
    )
    return NatAdapter(
        ctx,
        desired,
        router=spec.router.name,
        network=spec.network.name,
        subnet=spec.subnet.name,
        coverage=nat.coverage.value if nat.coverage else None,
    )


def _services(spec: EgressGatewaySpec, ctx: Context, *, gateway: str, owned: Owned) -> list[Node]:
    nodes = []
    for svc in spec.services:
        adapter = RunEgressAdapter(
            ctx, svc.name, network=spec.network.name, subnet=spec.subnet.name, egress=svc.egress.value, gateway=gateway
        )
        nodes.append(Node(f"service/{svc.name}", adapter, policy=Policy.ATTACH, depends_on=["subnet", "nat"]))
    listed = {s.name for s in spec.services}
    for name in owned.services:
        if name not in listed:
            adapter = RunEgressAdapter(
                ctx, name, network=spec.network.name, subnet=spec.subnet.name, egress="", gateway=gateway
            )
            nodes.append(Node(f"detached/{name}", adapter, policy=Policy.DETACH, depends_on=["region"]))
    return nodes


def usable_ips(cidr: str) -> int:
    """Addresses a subnet's instances can use: GCP reserves four in every primary range."""
    return ipaddress.ip_network(cidr, strict=False).num_addresses - 4


def range_for(cidr: str, needed: int) -> str:
    """The smallest range containing ``cidr`` with at least ``needed`` usable IPs (what to grow to)."""
    net = ipaddress.ip_network(cidr, strict=False)
    while net.num_addresses - 4 < needed and net.prefixlen > 8:
        net = net.supernet()
    return str(net)
