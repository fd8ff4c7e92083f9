"""EgressGateway spec → the graph of GCP resources that gives Cloud Run a fixed egress IP.

    network ─┬─ subnet ───────────────┐
             └─ router ─┐             ├─ service (Direct VPC egress, one node per service)
    address x n ────────┴─ NAT ───────┘

Pure: builds adapters (which hold the desired state) but calls nothing.
"""

from __future__ import annotations

from typing import Any

from runnet.api.egress import AddressDeletionPolicy, EgressGatewaySpec, NatCoverage
from runnet.engine import Node, Policy
from runnet.gcp.address import ExternalAddressAdapter
from runnet.gcp.context import Context
from runnet.gcp.network import NetworkAdapter, SubnetAdapter
from runnet.gcp.router import DesiredNat, NatAdapter, RouterAdapter
from runnet.gcp.run_service import RunEgressAdapter

# Direct VPC egress takes about two IPs per instance, reserved in blocks: GCP asks for a /26 or larger.
DIRECT_EGRESS_MAX_PREFIX = 26


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
    return problems


def build(spec: EgressGatewaySpec, ctx: Context, *, gateway: str, retained: list[str] | None = None) -> list[Node]:
    """The nodes for one gateway; ``gateway`` is its namespace/name (recorded on services).

    ``retained`` adds the gateway's unlisted addresses (see :func:`retained_addresses`) for a teardown, which
    deletes them after the NAT, and only under addressDeletionPolicy Delete.
    """
    router_path = ctx.regional_path("routers", spec.router.name)
    addresses = [
        Node(
            key=f"address/{name}",
            adapter=ExternalAddressAdapter(ctx, name, allowed_user=router_path),
            retain=spec.nat.address_deletion_policy is AddressDeletionPolicy.RETAIN,
        )
        for name in spec.nat.addresses
    ]
    kept = retained_addresses(retained or [], spec, ctx, teardown=True)
    nat = spec.nat
    desired_nat = DesiredNat(
        name=nat.name,
        addresses=tuple(ctx.regional_path("addresses", a) for a in nat.addresses),
        min_ports_per_vm=nat.min_ports_per_vm,
        max_ports_per_vm=nat.max_ports_per_vm,
        dynamic_port_allocation=nat.enable_dynamic_port_allocation,
        endpoint_independent_mapping=nat.enable_endpoint_independent_mapping,
        log_enabled=nat.logging.enabled,
        log_filter=nat.logging.filter.value,
        subnetwork=ctx.regional_path("subnetworks", spec.subnet.name)
        if nat.coverage is NatCoverage.GATEWAY_SUBNET
        else None,
    )
    nodes = [
        Node("network", NetworkAdapter(ctx, spec.network.name)),
        Node(
            "subnet",
            SubnetAdapter(
                ctx,
                spec.subnet.name,
                network=spec.network.name,
                ip_cidr_range=spec.subnet.ip_cidr_range,
                field="spec.subnet",
                private_ip_google_access=spec.subnet.private_ip_google_access,
                max_prefix=DIRECT_EGRESS_MAX_PREFIX,
            ),
            depends_on=["network"],
        ),
        Node("router", RouterAdapter(ctx, spec.router.name, network=spec.network.name), depends_on=["network"]),
        *addresses,
        *kept,
        Node(
            "nat",
            NatAdapter(ctx, desired_nat, router=spec.router.name),
            policy=Policy.CONFIGURE,
            adopt=nat.adopt,
            depends_on=["router", "subnet", *(a.key for a in [*addresses, *kept])],
        ),
    ]
    for svc in spec.services:
        adapter = RunEgressAdapter(
            ctx,
            svc.name,
            network=spec.network.name,
            subnet=spec.subnet.name,
            egress=svc.egress.value,
            gateway=gateway,
        )
        nodes.append(Node(f"service/{svc.name}", adapter, policy=Policy.ATTACH, depends_on=["subnet", "nat"]))
    return nodes


def detached_services(previous: list[str], spec: EgressGatewaySpec, ctx: Context, *, gateway: str) -> list[Node]:
    """Nodes for services that were attached before but are no longer listed: to restore them."""
    listed = {s.name for s in spec.services}
    return [
        Node(
            f"service/{name}",
            RunEgressAdapter(ctx, name, network=spec.network.name, subnet=spec.subnet.name, egress="", gateway=gateway),
            policy=Policy.ATTACH,
        )
        for name in previous
        if name not in listed
    ]


def unlisted_addresses(status: dict[str, Any], spec: EgressGatewaySpec) -> list[str]:
    """Addresses the gateway reserved before that ``spec.nat.addresses`` no longer lists.

    Remembered in the status: owned addresses of the last pass, and those already retained.
    """
    before = [r["name"] for r in status.get("resources", []) if r.get("kind") == "Address" and r.get("owned")]
    before += [a["name"] for a in status.get("retainedAddresses", [])]
    listed = set(spec.nat.addresses)
    return sorted({name for name in before if name not in listed})


def retained_addresses(names: list[str], spec: EgressGatewaySpec, ctx: Context, *, teardown: bool) -> list[Node]:
    """Nodes for unlisted addresses: only read while the gateway lives; deleted with it under Delete."""
    router_path = ctx.regional_path("routers", spec.router.name)
    return [
        Node(
            key=f"retained/{name}",
            adapter=ExternalAddressAdapter(ctx, name, allowed_user=router_path),
            policy=Policy.MANAGE if teardown else Policy.OBSERVE,
            retain=spec.nat.address_deletion_policy is AddressDeletionPolicy.RETAIN,
        )
        for name in names
    ]
