"""Adapters for Cloud Routers and the Cloud NAT that lives inside one.

Cloud NAT is not its own API resource: every change is a read-modify-write of ``router.nats``
that keeps the other NATs intact. Routers have no fingerprint, so there is no optimistic lock;
the write is as narrow as the API allows (only ``nats``, plus the description when it carries
runnet's NAT marker). A NAT has no description of its own: when runnet creates one in a router it
does not own, the router's description gets a line naming the NAT's owner, in the same write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from google.cloud import compute_v1

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import GCPCallError, compute_write, find
from runnet.gcp.context import Context
from runnet.gcp.network import COMPUTE, read_network, tail
from runnet.gcp.ownership import Owner, owner_of

PORTS_PER_IP = 64512
NAT_STATUS_TTL = 3600.0
"""Seconds a NAT's status (getRouterStatus, which has no list form) is kept while its configuration is unchanged:
the IPs in use follow the configuration, so only GCP's count of IPs still needed can be this old."""


class RouterAdapter(Adapter):
    kind = "Router"

    def __init__(self, ctx: Context, name: str, *, network: str) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.network = network

    def observe(self) -> Observation:
        router = read_router(self.ctx, self.name)
        if router is None:
            return Observation(exists=False)
        obs = Observation(
            exists=True,
            owned=self.ctx.owner.owns(router.description),
            owner=owner_of(router.description) or "",
            self_link=router.self_link,
            body=router,
        )
        if tail(router.network) != self.ctx.network_path(self.network):
            obs.conflict = (
                f"router {self.name} belongs to network {tail(router.network).rsplit('/', 1)[-1]}, "
                f"not {self.network}: name another router in spec.router.name"
            )
        return obs

    def create(self) -> None:
        c = self.ctx
        body = compute_v1.Router(
            name=self.name, network=COMPUTE + c.network_path(self.network), description=c.owner.description()
        )
        c.touch(_key(c, self.name))
        compute_write(
            c.clients,
            f"creating router {self.name}",
            lambda: c.clients.routers.insert_unary(project=c.project, region=c.region, router_resource=body),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        c.touch(_key(c, self.name))
        compute_write(
            c.clients,
            f"deleting router {self.name}",
            lambda: c.clients.routers.delete_unary(project=c.project, region=c.region, router=self.name),
        )


def _key(ctx: Context, router: str) -> str:
    return ctx.regional_path("routers", router)


def read_router(ctx: Context, name: str) -> compute_v1.Router | None:
    return ctx.read(
        _key(ctx, name),
        f"router {name}",
        lambda: ctx.clients.routers.get(project=ctx.project, region=ctx.region, router=name),
        lambda: ctx.clients.routers.list(project=ctx.project, region=ctx.region),
    )


@dataclass(frozen=True)
class DesiredNat:
    name: str
    addresses: tuple[str, ...]
    """Relative paths of the reserved external addresses, in spec order."""
    min_ports_per_vm: int = 64
    max_ports_per_vm: int | None = None
    dynamic_port_allocation: bool = False
    endpoint_independent_mapping: bool = False
    log_enabled: bool = False
    log_filter: str = "ALL"
    subnetwork: str | None = None
    """Relative path of the only subnet to NAT; None NATs all subnetworks' ranges."""
    drain: tuple[str, ...] = ()
    """Relative paths of addresses in the drain pool (drainNatIps): no new connections, open ones continue."""

    def managed_fields(self) -> dict[str, object]:
        """What runnet sets, in the form GCP returns it once its defaults are filled."""
        return {
            "natIpAllocateOption": "MANUAL_ONLY",
            "natIps": sorted(self.addresses),
            "drainNatIps": sorted(self.drain),
            "sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS"
            if self.subnetwork
            else "ALL_SUBNETWORKS_ALL_IP_RANGES",
            "subnetworks": [self.subnetwork] if self.subnetwork else [],
            "minPortsPerVm": self.min_ports_per_vm,
            "maxPortsPerVm": self.max_ports_per_vm if self.dynamic_port_allocation else None,
            "enableDynamicPortAllocation": self.dynamic_port_allocation,
            "enableEndpointIndependentMapping": self.endpoint_independent_mapping,
            "logConfig": (self.log_enabled, self.log_filter if self.log_enabled else "ALL"),
        }

    def to_proto(self) -> compute_v1.RouterNat:
        nat = compute_v1.RouterNat(
            name=self.name,
            nat_ip_allocate_option="MANUAL_ONLY",
            nat_ips=[COMPUTE + a for a in self.addresses],
            drain_nat_ips=[COMPUTE + a for a in self.drain],
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS"
            if self.subnetwork
            else "ALL_SUBNETWORKS_ALL_IP_RANGES",
            min_ports_per_vm=self.min_ports_per_vm,
            enable_dynamic_port_allocation=self.dynamic_port_allocation,
            enable_endpoint_independent_mapping=self.endpoint_independent_mapping,
            log_config=compute_v1.RouterNatLogConfig(enable=self.log_enabled, filter=self.log_filter),
        )
        if self.dynamic_port_allocation and self.max_ports_per_vm:
            nat.max_ports_per_vm = self.max_ports_per_vm
        if self.subnetwork:
            nat.subnetworks = [
                compute_v1.RouterNatSubnetworkToNat(
                    name=COMPUTE + self.subnetwork, source_ip_ranges_to_nat=["ALL_IP_RANGES"]
                )
            ]
        return nat


def observed_fields(nat: compute_v1.RouterNat) -> dict[str, object]:
    """An observed NAT in the same form as ``DesiredNat.managed_fields`` (GCP defaults filled)."""
    log_enabled = bool(nat.log_config.enable) if nat.log_config else False
    return {
        "natIpAllocateOption": nat.nat_ip_allocate_option or "AUTO_ONLY",
        "natIps": sorted(tail(ip) for ip in nat.nat_ips),
        "drainNatIps": sorted(tail(ip) for ip in nat.drain_nat_ips),
        "sourceSubnetworkIpRangesToNat": nat.source_subnetwork_ip_ranges_to_nat,
        "subnetworks": [tail(s.name) for s in nat.subnetworks],
        "minPortsPerVm": nat.min_ports_per_vm or 64,
        "maxPortsPerVm": (nat.max_ports_per_vm or None) if nat.enable_dynamic_port_allocation else None,
        "enableDynamicPortAllocation": bool(nat.enable_dynamic_port_allocation),
        "enableEndpointIndependentMapping": bool(nat.enable_endpoint_independent_mapping),
        "logConfig": (log_enabled, (nat.log_config.filter or "ALL") if log_enabled else "ALL"),
    }


def nat_marker(owner: Owner, nat: str) -> str:
    return f"runnet.dev nat={nat} owner={owner.kind}/{owner.namespace}/{owner.name}"


def _nat_owner(description: str | None, nat: str) -> str:
    """Who a NAT belongs to: its marker line in the router's description, else the router's owner."""
    for line in (description or "").splitlines():
        if line.strip().startswith(f"runnet.dev nat={nat} owner="):
            kind, namespace, name = line.strip().split("owner=", 1)[1].split("/", 2)
            return f"{kind} {namespace}/{name}"
    return owner_of(description) or ""


ALL_SUBNETWORKS = ("ALL_SUBNETWORKS_ALL_IP_RANGES", "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES")


class NatAdapter(Adapter):
    """The NAT; with ``coverage`` None, it covers all subnetworks only when this object owns the network."""

    kind = "CloudNAT"
    exclusive = True
    field = "spec.nat.name"

    def __init__(
        self, ctx: Context, desired: DesiredNat, *, router: str, network: str, subnet: str, coverage: str | None
    ) -> None:
        super().__init__(desired.name)
        self.ctx = ctx
        self.base = desired
        self.desired = desired
        self.router = router
        self.network = network
        self.subnet = subnet
        self.coverage = coverage
        """AllSubnetworks, GatewaySubnet, or None: decided from who owns the network."""

    def _router(self) -> compute_v1.Router:
        router = read_router(self.ctx, self.router)
        if router is None:
            raise LookupError(f"router {self.router} disappeared")
        return router

    def _effective(self) -> str:
        if self.coverage:
            return self.coverage
        net = read_network(self.ctx, self.network)
        return "AllSubnetworks" if net is None or self.ctx.owner.owns(net.description) else "GatewaySubnet"

    def observe(self) -> Observation:
        coverage = self._effective()
        subnet = self.ctx.regional_path("subnetworks", self.subnet) if coverage == "GatewaySubnet" else None
        self.desired = replace(self.base, subnetwork=subnet)
        router = read_router(self.ctx, self.router)
        if router is None:
            return Observation(exists=False, outputs={"coverage": coverage}, conflict=self._coverage_conflict())
        nat = next((n for n in router.nats if n.name == self.name), None)
        owned = self.ctx.owner.owns(router.description) or nat_marker(self.ctx.owner, self.name) in (
            router.description or ""
        )
        obs = Observation(exists=nat is not None, owned=owned, self_link=router.self_link, body=router)
        obs.outputs["coverage"] = coverage
        if nat is not None:
            obs.owner = "" if owned else _nat_owner(router.description, self.name)
            obs.up_to_date = observed_fields(nat) == self.desired.managed_fields()
            obs.outputs["natIps"] = [tail(ip) for ip in nat.nat_ips]
            obs.outputs["drainNatIps"] = [tail(ip) for ip in nat.drain_nat_ips]
        if nat is None or (owned and not obs.up_to_date):
            obs.conflict = self._coverage_conflict()
        return obs

    def _coverage_conflict(self) -> str:
        """GCP allows a NAT covering all subnetworks only as the only NAT of the network in the region."""
        c = self.ctx
        pages = find(
            f"listing routers in {c.region}", lambda: c.clients.routers.list(project=c.project, region=c.region)
        )
        network = c.network_path(self.network)
        wants_all = self.desired.subnetwork is None
        for router in pages or []:
            if tail(router.network) != network:
                continue
            for nat in router.nats:
                if router.name == self.router and nat.name == self.name:
                    continue
                if wants_all:
                    return (
                        f"NAT {self.name} would cover all subnetworks of network {self.network}, but router "
                        f"{router.name} already has NAT {nat.name} there and GCP allows no other NAT beside such a "
                        "NAT: set spec.nat.coverage: GatewaySubnet"
                    )
                if nat.source_subnetwork_ip_ranges_to_nat in ALL_SUBNETWORKS:
                    return (
                        f"NAT {nat.name} of router {router.name} covers all subnetworks of network {self.network} "
                        f"in {c.region}, and GCP allows no other NAT beside it: change that NAT to cover chosen "
                        "subnets, or attach the services to it"
                    )
        return ""

    def create(self) -> None:
        self._write(add=True)

    def update(self, observed: Observation) -> None:
        self._write(add=True)

    def delete(self, observed: Observation) -> None:
        self._write(add=False)

    def _write(self, *, add: bool) -> None:
        c = self.ctx
        c.touch(_key(c, self.router))  # a read-modify-write without a fingerprint: read GCP itself, never a snapshot
        router = self._router()
        others = [n for n in router.nats if n.name != self.name]
        nats = [*others, self.desired.to_proto()] if add else others
        description = router.description
        if not c.owner.owns(router.description):
            description = _with_marker(router.description, nat_marker(c.owner, self.name), keep=add)
        c.touch(_key(c, self.router))
        if nats:
            patch = compute_v1.Router(nats=nats, description=description)
            compute_write(
                c.clients,
                f"{'configuring' if add else 'removing'} NAT {self.name} in router {self.router}",
                lambda: c.clients.routers.patch_unary(
                    project=c.project, region=c.region, router=self.router, router_resource=patch
                ),
            )
            return
        # The client never sends an empty list, so clearing the last NAT needs a full replace.
        router.nats = []
        router.description = description
        compute_write(
            c.clients,
            f"removing NAT {self.name} from router {self.router}",
            lambda: c.clients.routers.update_unary(
                project=c.project, region=c.region, router=self.router, router_resource=router
            ),
        )

    def adopt(self, observed: Observation) -> None:
        self._write(add=True)


def _with_marker(description: str | None, marker: str, *, keep: bool) -> str:
    lines = [line for line in (description or "").splitlines() if line.strip() != marker]
    if keep:
        lines.append(marker)
    return "\n".join(lines)


class NatStatusAdapter(Adapter):
    """Read-only: the NAT as GCP reports it running (getRouterStatus): the IPs it translates to."""

    kind = "NATStatus"

    def __init__(self, ctx: Context, *, router: str, nat: str) -> None:
        super().__init__(nat)
        self.ctx = ctx
        self.router = router

    def observe(self) -> Observation:
        c = self.ctx
        router = read_router(c, self.router)
        if router is None:  # nothing to ask GCP about (its answer would be a 404)
            return Observation(exists=False, message=f"router {self.router} does not exist yet")
        configured = next((n for n in router.nats if n.name == self.name), None)
        version = (router.self_link, compute_v1.RouterNat.to_json(configured) if configured else "")
        status = c.clients.inventory.derived(
            _key(c, self.router) + "#status",
            version,
            lambda: find(
                f"reading status of router {self.router}",
                lambda: c.clients.routers.get_router_status(project=c.project, region=c.region, router=self.router),
            ),
            ttl=NAT_STATUS_TTL,
            settled=lambda found: self._agrees(found, configured),
        )
        entry = next((s for s in status.result.nat_status if s.name == self.name), None) if status else None
        if entry is None:
            return Observation(exists=False, message=f"router {self.router} reports no NAT {self.name}")
        obs = Observation(exists=True)
        obs.outputs.update(
            ips=[*entry.user_allocated_nat_ips, *entry.auto_allocated_nat_ips],
            drainIps=[*entry.drain_user_allocated_nat_ips, *entry.drain_auto_allocated_nat_ips],
            minExtraNatIpsNeeded=int(entry.min_extra_nat_ips_needed),
        )
        return obs

    def _agrees(self, status: compute_v1.RouterStatusResponse | None, configured: compute_v1.RouterNat | None) -> bool:
        """Whether the status shows exactly the IPs the configuration lists (GCP's status may trail a change): only
        then is it kept. The addresses' IPs come from the pass's reads (the shared snapshot)."""
        entry = next((s for s in status.result.nat_status if s.name == self.name), None) if status else None
        if entry is None or configured is None or entry.auto_allocated_nat_ips or entry.drain_auto_allocated_nat_ips:
            return False

        def ips(links: list[str]) -> list[str] | None:
            found = [self._address_ip(tail(link)) for link in links]
            return None if None in found else sorted(str(ip) for ip in found)

        active, draining = ips(list(configured.nat_ips)), ips(list(configured.drain_nat_ips))
        return (
            active is not None
            and draining is not None
            and active == sorted(entry.user_allocated_nat_ips)
            and draining == sorted(entry.drain_user_allocated_nat_ips)
        )

    def _address_ip(self, path: str) -> str | None:
        c = self.ctx
        parts = path.split("/")
        if len(parts) != 6 or parts[2] != "regions":
            return None
        project, region, name = parts[1], parts[3], parts[5]
        addr = c.read(
            path,
            f"address {name}",
            lambda: c.clients.addresses.get(project=project, region=region, address=name),
            lambda: c.clients.addresses.list(project=project, region=region),
        )
        return str(addr.address) if addr is not None else None

    def create(self) -> None:
        raise GCPCallError(f"router {self.router} reports no NAT {self.name}", retryable=True)

    def delete(self, observed: Observation) -> None:
        """A view, nothing to delete."""


def nat_addresses(ctx: Context, router: str, nat: str) -> tuple[list[str], list[str]]:
    """Names of the addresses a NAT translates to (natIps) and drains (drainNatIps), from the pass's router read."""
    found = read_router(ctx, router)
    entry = next((n for n in found.nats if n.name == nat), None) if found else None
    if entry is None:
        return [], []
    return [tail(ip).rsplit("/", 1)[-1] for ip in entry.nat_ips], [
        tail(ip).rsplit("/", 1)[-1] for ip in entry.drain_nat_ips
    ]


def unused_nat_ips(ctx: Context, router: str, nat: str) -> set[str]:
    """The NAT's IPs that getNatIpInfo reports UNUSED (no endpoint holds a mapping on them)."""
    c = ctx
    info = find(
        f"reading NAT IP usage of router {router}",
        lambda: c.clients.routers.get_nat_ip_info(
            request=compute_v1.GetNatIpInfoRouterRequest(
                project=c.project, region=c.region, router=router, nat_name=nat
            )
        ),
    )
    out = set()
    for result in info.result if info else []:
        if result.nat_name == nat:
            out |= {m.nat_ip for m in result.nat_ip_info_mappings if m.usage == "UNUSED"}
    return out


def instances_supported(addresses: int, min_ports_per_vm: int) -> int:
    """How many instances the NAT can serve at the minimum port allocation."""
    return addresses * PORTS_PER_IP // max(min_ports_per_vm, 1)


def extra_ips_needed(instances: int, addresses: int, min_ports_per_vm: int) -> int:
    return max(0, math.ceil(instances * min_ports_per_vm / PORTS_PER_IP) - addresses)
