"""Adapter for regional static addresses (the NAT IPs partners allowlist).

An address runnet owns carries its NAT state in a label (``runnet-nat-ip``: ``draining-<epoch>``,
``retained-<epoch>`` or ``active-<epoch>``), written when the state changes, before the NAT write
that makes it so: when a drain began is remembered in GCP, not in the status, so a restarted
operator still ends the drain on time.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.cloud import compute_v1

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import compute_write, find
from runnet.gcp.context import Context
from runnet.gcp.network import tail
from runnet.gcp.ownership import owner_of

STATE_LABEL = "runnet-nat-ip"


@dataclass(frozen=True)
class OwnedAddress:
    name: str
    ip: str
    mark: str
    """The address's ``runnet-nat-ip`` label ('' when it has none)."""


def owned_addresses(ctx: Context) -> list[OwnedAddress]:
    """The addresses in the region whose owner marker names this object: what runnet reserved for it.

    Read from GCP on every pass (one list call), so what runnet owns never depends on its own status.
    """
    c = ctx
    listed = c.read_all(
        c.regional_path("addresses", "")[:-1],
        f"addresses in {c.region}",
        lambda: c.clients.addresses.list(project=c.project, region=c.region),
    )
    found = [
        OwnedAddress(a.name, a.address, dict(a.labels).get(STATE_LABEL, ""))
        for a in listed
        if c.owner.owns(a.description)
    ]
    return sorted(found, key=lambda a: a.name)


def mark(state: str, epoch: float) -> str:
    """The label value recording that an address entered ``state`` at ``epoch`` (seconds)."""
    return f"{state}-{int(epoch)}"


def parse_mark(value: str) -> tuple[str, int]:
    """("draining", 1764540000) from a label value; ("", 0) for none or one runnet cannot read."""
    state, _, at = value.rpartition("-")
    return (state, int(at)) if state in ("active", "draining", "retained") and at.isdigit() else ("", 0)


class ExternalAddressAdapter(Adapter):
    """A reserved EXTERNAL IP: created when absent, an existing one is used if it is usable."""

    kind = "Address"
    exclusive = True
    field = "spec.nat.addresses"

    def __init__(
        self, ctx: Context, name: str, *, allowed_user: str, listed: bool = True, mark: str | None = None
    ) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.mark = mark
        """The ``runnet-nat-ip`` label value this pass wants on an owned address (None: leave it as it is)."""
        self.allowed_user = allowed_user
        """Relative path of the router whose NAT may already use this address."""
        self.listed = listed
        """In spec.nat.addresses; otherwise an address runnet reserved earlier (only reported while retained)."""

    def _get(self) -> compute_v1.Address | None:
        c = self.ctx
        return c.read(
            c.regional_path("addresses", self.name),
            f"address {self.name}",
            lambda: c.clients.addresses.get(project=c.project, region=c.region, address=self.name),
            lambda: c.clients.addresses.list(project=c.project, region=c.region),
        )

    def observe(self) -> Observation:
        addr = self._get()
        if addr is None:
            return Observation(exists=False, invalid=self._elsewhere() if self.listed else "")
        obs = Observation(
            exists=True,
            owned=self.ctx.owner.owns(addr.description),
            owner=owner_of(addr.description) or "",
            self_link=addr.self_link,
            body=addr,
        )
        obs.outputs["ip"] = addr.address
        obs.outputs["mark"] = dict(addr.labels).get(STATE_LABEL, "")
        obs.outputs["created"] = addr.creation_timestamp
        if self.mark is not None and obs.owned:
            obs.up_to_date = obs.outputs["mark"] == self.mark
        if addr.address_type and addr.address_type != "EXTERNAL":
            obs.invalid = (
                f"address {self.name} is {addr.address_type}: spec.nat.addresses needs EXTERNAL addresses, "
                "so use another name"
            )
        obs.outputs["users"] = [tail(u) for u in addr.users]
        others = [tail(u) for u in addr.users if tail(u) != self.allowed_user]
        if others:
            obs.held_by = others[0]
            if self.listed:
                obs.invalid = f"address {self.name} is already used by {others[0]}: list a free address instead"
        return obs

    def _elsewhere(self) -> str:
        """An address of that name in another region of the project is a user error, not a new IP."""
        c = self.ctx
        pages = find(
            f"looking for address {self.name}",
            lambda: c.clients.addresses.aggregated_list(
                request=compute_v1.AggregatedListAddressesRequest(project=c.project, filter=f"name = {self.name}")
            ),
        )
        for scope, scoped in pages or []:
            for addr in scoped.addresses:
                if addr.name == self.name and scope != f"regions/{c.region}":
                    return (
                        f"address {self.name} exists in {scope.removeprefix('regions/')}, not {c.region}: "
                        "NAT addresses must be in the gateway's region"
                    )
        return ""

    def create(self) -> None:
        c = self.ctx
        body = compute_v1.Address(
            name=self.name,
            address_type="EXTERNAL",
            network_tier="PREMIUM",
            description=c.owner.description(),
            labels=c.owner.labels(),
        )
        compute_write(
            c.clients,
            f"reserving address {self.name}",
            lambda: c.clients.addresses.insert_unary(project=c.project, region=c.region, address_resource=body),
        )

    def update(self, observed: Observation) -> None:
        """Record the address's NAT state in its label (the only field runnet changes on an existing address)."""
        c = self.ctx
        addr: compute_v1.Address = observed.body
        labels = {**dict(addr.labels), STATE_LABEL: self.mark or ""}
        request = compute_v1.RegionSetLabelsRequest(labels=labels, label_fingerprint=addr.label_fingerprint)
        compute_write(
            c.clients,
            f"recording the NAT state of address {self.name}",
            lambda: c.clients.addresses.set_labels_unary(
                project=c.project, region=c.region, resource=self.name, region_set_labels_request_resource=request
            ),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        compute_write(
            c.clients,
            f"releasing address {self.name}",
            lambda: c.clients.addresses.delete_unary(project=c.project, region=c.region, address=self.name),
        )
