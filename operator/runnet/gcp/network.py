"""Adapters for VPC networks and subnetworks."""

from __future__ import annotations

import ipaddress

from google.cloud import compute_v1

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import compute_write
from runnet.gcp.context import Context
from runnet.gcp.ownership import owner_of

COMPUTE = "https://www.googleapis.com/compute/v1/"


def tail(link: str) -> str:
    """A reference (URL or relative path) as its relative path."""
    return link.split("/compute/v1/", 1)[-1]


def read_network(ctx: Context, name: str) -> compute_v1.Network | None:
    """The network, read once per pass (the network node and the NAT's coverage both need it)."""
    return ctx.read(
        ctx.network_path(name),
        f"network {name}",
        lambda: ctx.clients.networks.get(project=ctx.project, network=name),
        lambda: ctx.clients.networks.list(project=ctx.project),
    )


class NetworkAdapter(Adapter):
    kind = "Network"
    field = "spec.network.name"

    def __init__(self, ctx: Context, name: str) -> None:
        super().__init__(name)
        self.ctx = ctx

    def observe(self) -> Observation:
        net = read_network(self.ctx, self.name)
        if net is None:
            return Observation(exists=False)
        obs = Observation(
            exists=True,
            owned=self.ctx.owner.owns(net.description),
            owner=owner_of(net.description) or "",
            self_link=net.self_link,
            body=net,
        )
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
        c.touch(c.network_path(self.name))
        compute_write(
            c.clients,
            f"creating network {self.name}",
            lambda: c.clients.networks.insert_unary(project=c.project, network_resource=body),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        c.touch(c.network_path(self.name))
        compute_write(
            c.clients,
            f"deleting network {self.name}",
            lambda: c.clients.networks.delete_unary(project=c.project, network=self.name),
        )


EXPANDABLE = ("PRIVATE",)
"""GCP grows only regular subnets in place (expandIpCidrRange)."""
PROHIBITED = tuple(ipaddress.ip_network(r) for r in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4"))
"""Ranges GCP refuses for subnets: "this" network, loopback, link-local, multicast."""


def range_problem(field: str, cidr: str | None) -> str:
    """What is wrong with a subnet range from the spec alone ('' when nothing): decided before any write."""
    if not cidr:
        return ""
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        base = ipaddress.ip_network(cidr, strict=False)
        return f"{field}.ipCidrRange {cidr} has host bits set: use {base}"
    for prohibited in PROHIBITED:
        if net.overlaps(prohibited):
            return (
                f"{field}.ipCidrRange {cidr} overlaps {prohibited}, which GCP does not allow in subnets: "
                "use a private range"
            )
    return ""


class SubnetAdapter(Adapter):
    """A subnet of the plan's network; runnet creates it (with its range) or uses an existing one.

    An owned subnet whose spec range contains the current one is grown in place with
    expandIpCidrRange (GCP cannot shrink or move a range). An existing subnet runnet does not own
    is used only when its range is the spec's (or the spec gives none): otherwise it is a conflict.
    """

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
    ) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.network = network
        self.ip_cidr_range = ip_cidr_range
        self.field = field
        self.private_ip_google_access = private_ip_google_access
        self.purpose = purpose
        self.role = role
        self.expanded_from = ""
        """Set when this pass grew the subnet (for an Event)."""

    @property
    def path(self) -> str:
        return self.ctx.regional_path("subnetworks", self.name)

    def _get(self) -> compute_v1.Subnetwork | None:
        c = self.ctx
        return c.read(
            self.path,
            f"subnetwork {self.name}",
            lambda: c.clients.subnetworks.get(project=c.project, region=c.region, subnetwork=self.name),
            lambda: c.clients.subnetworks.list(project=c.project, region=c.region),
        )

    def observe(self) -> Observation:
        sub = self._get()
        if sub is None:
            return Observation(exists=False, invalid=self._creation_problem())
        owned = self.ctx.owner.owns(sub.description)
        obs = Observation(
            exists=True, owned=owned, owner=owner_of(sub.description) or "", self_link=sub.self_link, body=sub
        )
        obs.outputs["ipCidrRange"] = sub.ip_cidr_range
        if tail(sub.network) != self.ctx.network_path(self.network):
            obs.conflict = (
                f"subnetwork {self.name} belongs to network {tail(sub.network).rsplit('/', 1)[-1]}, not "
                f"{self.network}: set {self.field}.name to a subnet of {self.network}"
            )
        elif sub.purpose and sub.purpose != self.purpose:
            obs.invalid = (
                f"subnetwork {self.name} has purpose {sub.purpose}; {self.field} needs a {self.purpose} subnet"
            )
        else:
            self._check_range(sub, obs)
        pga_ok = self.purpose != "PRIVATE" or sub.private_ip_google_access == self.private_ip_google_access
        obs.up_to_date = obs.up_to_date and (not owned or pga_ok)
        return obs

    def _check_range(self, sub: compute_v1.Subnetwork, obs: Observation) -> None:
        """The spec's range against the subnet's: equal, grown in place (owned, containing it), or a problem."""
        if not self.ip_cidr_range or sub.ip_cidr_range == self.ip_cidr_range:
            return
        want = ipaddress.IPv4Network(self.ip_cidr_range, strict=False)
        have = ipaddress.IPv4Network(sub.ip_cidr_range)
        where = f"{self.field}.ipCidrRange is {self.ip_cidr_range} but subnetwork {self.name} has {sub.ip_cidr_range}"
        if not obs.owned:
            obs.conflict = (
                f"{where} and was not created by runnet, which never changes it: set {self.field}.ipCidrRange to "
                f"{sub.ip_cidr_range} or name another subnet"
            )
        elif not (want.supernet_of(have) and want.prefixlen < have.prefixlen):
            obs.invalid = (
                f"{where}: GCP can only grow a subnet's range to one that contains it, never shrink or move it; "
                f"set {sub.ip_cidr_range} back or a larger range containing it"
            )
        elif self.purpose not in EXPANDABLE:
            obs.invalid = f"{where}: GCP cannot grow a {self.purpose} subnet; set {sub.ip_cidr_range} back"
        else:
            overlap = self._overlap(want, exclude=self.name)
            if overlap:
                obs.invalid = f"{where}: growing it to {want} {overlap}"
            else:
                obs.up_to_date = False
                obs.outputs["expandTo"] = str(want)

    def _creation_problem(self) -> str:
        """Why this subnet cannot be created from the spec ('' when it can). Read-only checks."""
        if not self.ip_cidr_range:
            return f"{self.field}.ipCidrRange is required because subnetwork {self.name} does not exist yet"
        problem = range_problem(self.field, self.ip_cidr_range)
        if problem:
            return problem
        overlap = self._overlap(ipaddress.ip_network(self.ip_cidr_range), exclude="")
        return f"{self.field}.ipCidrRange {self.ip_cidr_range} {overlap}" if overlap else ""

    def _overlap(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network, *, exclude: str) -> str:
        for other in self._network_subnets():
            if other.name != exclude and net.overlaps(ipaddress.ip_network(other.ip_cidr_range)):
                return (
                    f"overlaps subnetwork {other.name} ({other.ip_cidr_range}) in network {self.network}: "
                    "pick a free range"
                )
        return ""

    def _network_subnets(self) -> list[compute_v1.Subnetwork]:
        """The network's subnets in every region, from the project's shared aggregated snapshot (this check runs
        before every creation and growth: hundreds of gateways created at once share one list)."""
        c = self.ctx
        target = c.network_path(self.network)
        every = c.read_all(
            f"projects/{c.project}/aggregated/subnetworks",
            f"subnetworks of {c.project}",
            lambda: (
                s for _, scoped in c.clients.subnetworks.aggregated_list(project=c.project) for s in scoped.subnetworks
            ),
            name_of=lambda s: f"{tail(s.region).rsplit('/', 1)[-1]}/{s.name}",
        )
        return [s for s in every if tail(s.network) == target]

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
        target = observed.outputs.get("expandTo")
        if target:
            expand = compute_v1.SubnetworksExpandIpCidrRangeRequest(ip_cidr_range=str(target))
            compute_write(
                c.clients,
                f"growing subnetwork {self.name} to {target}",
                lambda: c.clients.subnetworks.expand_ip_cidr_range_unary(
                    project=c.project,
                    region=c.region,
                    subnetwork=self.name,
                    subnetworks_expand_ip_cidr_range_request_resource=expand,
                ),
            )
            self.expanded_from = str(observed.outputs.get("ipCidrRange", ""))
        if self.purpose != "PRIVATE" or observed.body.private_ip_google_access == self.private_ip_google_access:
            return
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
