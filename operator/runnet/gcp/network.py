"""Adapters for VPC networks and subnetworks."""

from __future__ import annotations

import ipaddress

from google.cloud import compute_v1

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import compute_write, find
from runnet.gcp.context import Context
from runnet.gcp.ownership import owner_of

COMPUTE = "https://www.googleapis.com/compute/v1/"


def tail(link: str) -> str:
    """A reference (URL or relative path) as its relative path."""
    return link.split("/compute/v1/", 1)[-1]


class NetworkAdapter(Adapter):
    kind = "Network"

    def __init__(self, ctx: Context, name: str) -> None:
        super().__init__(name)
        self.ctx = ctx

    def _get(self) -> compute_v1.Network | None:
        c = self.ctx
        return find(
            f"reading network {self.name}",
            lambda: c.clients.networks.get(project=c.project, network=self.name),
        )

    def observe(self) -> Observation:
        net = self._get()
        if net is None:
            return Observation(exists=False)
        obs = Observation(exists=True, owned=self.ctx.owner.owns(net.description), self_link=net.self_link, body=net)
        if net.auto_create_subnetworks:
            obs.invalid = f"network {self.name} is an auto-mode network: runnet needs a custom-mode VPC network"
        return obs

    def create(self) -> None:
        c = self.ctx
        body = compute_v1.Network(
            name=self.name,
            auto_create_subnetworks=False,
            description=c.owner.description(),
            routing_config=compute_v1.NetworkRoutingConfig(routing_mode="REGIONAL"),
        )
        compute_write(
            c.clients,
            f"creating network {self.name}",
            lambda: c.clients.networks.insert_unary(project=c.project, network_resource=body),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        compute_write(
            c.clients,
            f"deleting network {self.name}",
            lambda: c.clients.networks.delete_unary(project=c.project, network=self.name),
        )


class SubnetAdapter(Adapter):
    """A subnet of the plan's network; runnet creates it (with its range) or uses an existing one."""

    kind = "Subnetwork"

    def __init__(
        self,
        ctx: Context,
        name: str,
        *,
        network: str,
        ip_cidr_range: str | None,
        field: str,
        private_ip_google_access: bool = True,
        purpose: str = "PRIVATE",
        role: str | None = None,
        max_prefix: int = 29,
    ) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.network = network
        self.ip_cidr_range = ip_cidr_range
        self.field = field
        self.private_ip_google_access = private_ip_google_access
        self.purpose = purpose
        self.role = role
        self.max_prefix = max_prefix

    @property
    def path(self) -> str:
        return self.ctx.regional_path("subnetworks", self.name)

    def _get(self) -> compute_v1.Subnetwork | None:
        c = self.ctx
        return find(
            f"reading subnetwork {self.name}",
            lambda: c.clients.subnetworks.get(project=c.project, region=c.region, subnetwork=self.name),
        )

    def observe(self) -> Observation:
        sub = self._get()
        if sub is None:
            return Observation(exists=False, invalid=self._creation_problem())
        owned = self.ctx.owner.owns(sub.description)
        obs = Observation(exists=True, owned=owned, self_link=sub.self_link, body=sub)
        obs.outputs["ipCidrRange"] = sub.ip_cidr_range
        if tail(sub.network) != self.ctx.network_path(self.network):
            obs.conflict = (
                f"subnetwork {self.name} belongs to network {tail(sub.network).rsplit('/', 1)[-1]}, not {self.network}"
            )
        elif sub.purpose and sub.purpose != self.purpose:
            obs.invalid = (
                f"subnetwork {self.name} has purpose {sub.purpose}; {self.field} needs a {self.purpose} subnet"
            )
        elif owned and self.ip_cidr_range and sub.ip_cidr_range != self.ip_cidr_range:
            obs.invalid = (
                f"{self.field}.ipCidrRange is {self.ip_cidr_range} but subnetwork {self.name} has "
                f"{sub.ip_cidr_range}: GCP cannot change a subnet's range; restore it or use a new subnet name"
            )
        obs.up_to_date = (
            not owned or self.purpose != "PRIVATE" or (sub.private_ip_google_access == self.private_ip_google_access)
        )
        return obs

    def _creation_problem(self) -> str:
        """Why this subnet cannot be created from the spec ('' when it can). Read-only checks."""
        if not self.ip_cidr_range:
            return f"{self.field}.ipCidrRange is required because subnetwork {self.name} does not exist yet"
        try:
            net = ipaddress.ip_network(self.ip_cidr_range, strict=True)
        except ValueError:
            return f"{self.field}.ipCidrRange {self.ip_cidr_range} has host bits set: use the network address"
        if net.prefixlen > self.max_prefix:
            return (
                f"{self.field}.ipCidrRange {self.ip_cidr_range} is too small: use a /{self.max_prefix} or larger range"
            )
        for other in self._network_subnets():
            if net.overlaps(ipaddress.ip_network(other.ip_cidr_range)):
                return (
                    f"{self.field}.ipCidrRange {self.ip_cidr_range} overlaps subnetwork {other.name} "
                    f"({other.ip_cidr_range}) in network {self.network}: pick a free range"
                )
        return ""

    def _network_subnets(self) -> list[compute_v1.Subnetwork]:
        c = self.ctx
        target = c.network_path(self.network)
        found: list[compute_v1.Subnetwork] = []
        pages = find(
            "listing subnetworks",
            lambda: c.clients.subnetworks.aggregated_list(project=c.project),
        )
        for _scope, scoped in pages or []:
            found.extend(s for s in scoped.subnetworks if tail(s.network) == target)
        return found

    def create(self) -> None:
        c = self.ctx
        body = compute_v1.Subnetwork(
            name=self.name,
            network=COMPUTE + c.network_path(self.network),
            ip_cidr_range=self.ip_cidr_range,
            description=c.owner.description(),
            purpose=self.purpose,
        )
        if self.purpose == "PRIVATE":
            body.private_ip_google_access = self.private_ip_google_access
        if self.role:
            body.role = self.role
        compute_write(
            c.clients,
            f"creating subnetwork {self.name}",
            lambda: c.clients.subnetworks.insert_unary(project=c.project, region=c.region, subnetwork_resource=body),
        )

    def update(self, observed: Observation) -> None:
        c = self.ctx
        request = compute_v1.SubnetworksSetPrivateIpGoogleAccessRequest(
            private_ip_google_access=self.private_ip_google_access
        )
        compute_write(
            c.clients,
            f"updating subnetwork {self.name}",
            lambda: c.clients.subnetworks.set_private_ip_google_access_unary(
                project=c.project,
                region=c.region,
                subnetwork=self.name,
                subnetworks_set_private_ip_google_access_request_resource=request,
            ),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        compute_write(
            c.clients,
            f"deleting subnetwork {self.name}",
            lambda: c.clients.subnetworks.delete_unary(project=c.project, region=c.region, subnetwork=self.name),
        )


def describe_owner(description: str | None) -> str:
    who = owner_of(description)
    return f"owned by {who}" if who else "not created by runnet"
