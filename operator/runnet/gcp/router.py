"""Adapters for Cloud Routers and the Cloud NAT that lives inside one.

Cloud NAT is not its own API resource: every change is a read-modify-write of ``router.nats``
that keeps the other NATs intact. Routers have no fingerprint, so there is no optimistic lock;
the write is as narrow as the API allows (only ``nats``, plus the description when it carries
runnet's NAT marker). A NAT has no description of its own: when runnet creates one in a router it
does not own, the router's description gets a line naming the NAT's owner, in the same write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.cloud import compute_v1

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import compute_write, find
from runnet.gcp.context import Context
from runnet.gcp.network import COMPUTE, tail
from runnet.gcp.ownership import Owner

PORTS_PER_IP = 64512


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
        c.cache.invalidate(_key(c, self.name))
        compute_write(
            c.clients,
            f"creating router {self.name}",
            lambda: c.clients.routers.insert_unary(project=c.project, region=c.region, router_resource=body),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        c.cache.invalidate(_key(c, self.name))
        compute_write(
            c.clients,
            f"deleting router {self.name}",
            lambda: c.clients.routers.delete_unary(project=c.project, region=c.region, router=self.name),
        )


def _key(ctx: Context, router: str) -> str:
    return ctx.regional_path("routers", router)


def read_router(ctx: Context, name: str) -> compute_v1.Router | None:
    return ctx.cache.get(
        _key(ctx, name),
        lambda: find(
            f"reading router {name}",
            lambda: ctx.clients.routers.get(project=ctx.project, region=ctx.region, router=name),
        ),
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

    def managed_fields(self) -> dict[str, object]:
        """What runnet sets, in the form GCP returns it once its defaults are filled."""
        return {
            "natIpAllocateOption": "MANUAL_ONLY",
            "natIps": sorted(self.addresses),
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


class NatAdapter(Adapter):
    kind = "CloudNAT"

    def __init__(self, ctx: Context, desired: DesiredNat, *, router: str) -> None:
        super().__init__(desired.name)
        self.ctx = ctx
        self.desired = desired
        self.router = router

    def _router(self) -> compute_v1.Router:
        router = read_router(self.ctx, self.router)
        if router is None:
            raise LookupError(f"router {self.router} disappeared")
        return router

    def observe(self) -> Observation:
        router = read_router(self.ctx, self.router)
        if router is None:
            return Observation(exists=False)
        nat = next((n for n in router.nats if n.name == self.name), None)
        owned = self.ctx.owner.owns(router.description) or nat_marker(self.ctx.owner, self.name) in (
            router.description or ""
        )
        if nat is None:
            return Observation(exists=False, body=router)
        up_to_date = observed_fields(nat) == self.desired.managed_fields()
        obs = Observation(exists=True, owned=owned, up_to_date=up_to_date, self_link=router.self_link, body=router)
        obs.outputs["natIps"] = [tail(ip) for ip in nat.nat_ips]
        return obs

    def create(self) -> None:
        self._write(add=True)

    def update(self, observed: Observation) -> None:
        self._write(add=True)

    def delete(self, observed: Observation) -> None:
        self._write(add=False)

    def _write(self, *, add: bool) -> None:
        c = self.ctx
        c.cache.invalidate(_key(c, self.router))
        router = self._router()
        others = [n for n in router.nats if n.name != self.name]
        nats = [*others, self.desired.to_proto()] if add else others
        description = router.description
        if not c.owner.owns(router.description):
            description = _with_marker(router.description, nat_marker(c.owner, self.name), keep=add)
        c.cache.invalidate(_key(c, self.router))
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


def nat_status(ctx: Context, router: str, nat: str) -> compute_v1.RouterStatusNatStatus | None:
    """The NAT's entry in getRouterStatus (IPs in use, minExtraNatIpsNeeded)."""
    status = find(
        f"reading status of router {router}",
        lambda: ctx.clients.routers.get_router_status(project=ctx.project, region=ctx.region, router=router),
    )
    if status is None:
        return None
    return next((s for s in status.result.nat_status if s.name == nat), None)


def instances_supported(addresses: int, min_ports_per_vm: int) -> int:
    """How many instances the NAT can serve at the minimum port allocation."""
    return addresses * PORTS_PER_IP // max(min_ports_per_vm, 1)


def extra_ips_needed(instances: int, addresses: int, min_ports_per_vm: int) -> int:
    return max(0, math.ceil(instances * min_ports_per_vm / PORTS_PER_IP) - addresses)
