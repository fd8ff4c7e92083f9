"""Adapters for Private Service Connect: the producer's service attachment, the consumer's endpoint.

The attachment's accept and reject lists are patched with its fingerprint. The Python client never
sends an empty list, so emptying one (the last consumer removed) goes out as a JSON merge patch
with an explicit ``[]`` on the client's own authorized session. A consumer endpoint is a forwarding
rule whose target is the attachment; its ``pscConnectionStatus`` is what the producer decided.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from google.protobuf import json_format

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import GCPCallError, compute_write, find
from runnet.gcp.context import Context
from runnet.gcp.lb import RegionalAdapter
from runnet.gcp.network import COMPUTE, tail
from runnet.gcp.ownership import owner_of

CONNECTION_STATES = ("ACCEPTED", "PENDING", "REJECTED", "CLOSED", "NEEDS_ATTENTION")
_LISTS = {
    "consumerAcceptLists": "consumer_accept_lists",
    "consumerRejectLists": "consumer_reject_lists",
    "domainNames": "domain_names",
}


def project_of(link: str) -> str:
    """The project a resource URL or path lives in."""
    parts = tail(link).split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "projects" else ""


@dataclass(frozen=True)
class DesiredAttachment:
    preference: str
    accept: tuple[tuple[str, int], ...]
    """(project id or number, or a network's relative path; connection limit), in spec order."""
    reject: tuple[str, ...]
    reconcile: bool
    domain_names: tuple[str, ...]
    nat_subnets: tuple[str, ...]
    """Relative paths, in order: pscNat, then extraPscNat."""
    target: str
    propagated_limit: int = 250
    proxy_protocol: bool = False

    def fields(self) -> dict[str, Any]:
        return {
            "connectionPreference": self.preference,
            "consumerAcceptLists": sorted(self.accept),
            "consumerRejectLists": sorted(self.reject),
            "reconcileConnections": self.reconcile,
            "domainNames": sorted(self.domain_names),
            "natSubnets": list(self.nat_subnets),
            "targetService": self.target,
            "propagatedConnectionLimit": self.propagated_limit,
            "enableProxyProtocol": self.proxy_protocol,
        }

    def to_proto(self) -> compute_v1.ServiceAttachment:
        return compute_v1.ServiceAttachment(
            connection_preference=self.preference,
            consumer_accept_lists=[_limit(value, limit) for value, limit in self.accept],
            consumer_reject_lists=[COMPUTE + r if "/" in r else r for r in self.reject],
            reconcile_connections=self.reconcile,
            domain_names=list(self.domain_names),
            nat_subnets=[COMPUTE + s for s in self.nat_subnets],
            target_service=COMPUTE + self.target,
            enable_proxy_protocol=self.proxy_protocol,
            propagated_connection_limit=self.propagated_limit,
        )


def _limit(value: str, limit: int) -> compute_v1.ServiceAttachmentConsumerProjectLimit:
    if "/networks/" in value:
        return compute_v1.ServiceAttachmentConsumerProjectLimit(network_url=COMPUTE + value, connection_limit=limit)
    return compute_v1.ServiceAttachmentConsumerProjectLimit(project_id_or_num=value, connection_limit=limit)


def observed_fields(sa: compute_v1.ServiceAttachment) -> dict[str, Any]:
    """An attachment in the form of ``DesiredAttachment.fields`` (references as relative paths)."""
    accept = [(e.project_id_or_num or tail(e.network_url), int(e.connection_limit)) for e in sa.consumer_accept_lists]
    return {
        "connectionPreference": sa.connection_preference,
        "consumerAcceptLists": sorted(accept),
        "consumerRejectLists": sorted(tail(r) if "/" in r else r for r in sa.consumer_reject_lists),
        "reconcileConnections": bool(sa.reconcile_connections),
        "domainNames": sorted(sa.domain_names),
        "natSubnets": [tail(s) for s in sa.nat_subnets],
        "targetService": tail(sa.target_service),
        "propagatedConnectionLimit": int(sa.propagated_connection_limit)
        if "propagated_connection_limit" in sa
        else PROPAGATED_LIMIT,
        "enableProxyProtocol": bool(sa.enable_proxy_protocol),
    }


PROPAGATED_LIMIT = 250
"""GCP's default propagatedConnectionLimit."""


def nat_ips_used(sa: compute_v1.ServiceAttachment) -> tuple[int, int]:
    """NAT IPs held by accepted connections (propagated ones included), and connections waiting for one.

    Each accepted endpoint takes natIpsPerEndpoint IPs, and as many again per propagated connection
    (GCP, "About published services": NAT subnet sizing); NEEDS_ATTENTION is a connection accepted
    with no IP left.
    """
    per = int(sa.nat_ips_per_endpoint or 1)
    used = sum(per * (1 + int(e.propagated_connection_count)) for e in sa.connected_endpoints if e.status == "ACCEPTED")
    waiting = sum(1 for e in sa.connected_endpoints if e.status == "NEEDS_ATTENTION")
    return used, waiting


def connections(sa: compute_v1.ServiceAttachment) -> list[dict[str, str]]:
    """The attachment's connected endpoints, each with the consumer project taken from its URL."""
    return [
        {
            "project": project_of(e.endpoint),
            "network": tail(e.consumer_network),
            "endpoint": tail(e.endpoint),
            "pscConnectionId": str(e.psc_connection_id),
            "status": e.status,
        }
        for e in sa.connected_endpoints
    ]


class ServiceAttachmentAdapter(RegionalAdapter):
    kind = "ServiceAttachment"
    client_attr, arg, label = "service_attachments", "service_attachment", "service attachment"

    def __init__(self, ctx: Context, name: str, *, desired: DesiredAttachment) -> None:
        super().__init__(ctx, name, field="spec.attachment.name")
        self.desired = desired

    def observe(self) -> Observation:
        sa = self.read()
        if sa is None:
            return Observation(exists=False, invalid=self._creation_problem())
        obs = self.seen(sa)
        obs.outputs["connections"] = connections(sa)
        obs.outputs["natIpsUsed"], obs.outputs["needsAttention"] = nat_ips_used(sa)
        if observed_fields(sa) != self.desired.fields():
            return self.differs(obs, "is configured differently from spec.attachment")
        return obs

    def _creation_problem(self) -> str:
        """Another attachment already uses the NAT subnet or the load balancer (GCP allows one each)."""
        c = self.ctx
        pages = find("listing service attachments", lambda: self.client().list(project=c.project, region=c.region))
        for other in pages or []:
            taken = [s for s in self.desired.nat_subnets if s in [tail(t) for t in other.nat_subnets]]
            if taken:
                subnet = taken[0].rsplit("/", 1)[-1]
                field = "spec.subnets.pscNat" if taken[0] == self.desired.nat_subnets[0] else "spec.subnets.extraPscNat"
                return (
                    f"{field}: subnetwork {subnet} is already a NAT subnet of service attachment "
                    f"{other.name}; each attachment needs its own PRIVATE_SERVICE_CONNECT subnets"
                )
            if tail(other.target_service) == self.desired.target:
                rule = self.desired.target.rsplit("/", 1)[-1]
                return (
                    f"forwarding rule {rule} is already published by service attachment {other.name}: "
                    "set spec.loadBalancer.forwardingRule to another name"
                )
        return ""

    def create(self) -> None:
        body = self.desired.to_proto()
        body.name = self.name
        self.insert(body)

    def update(self, observed: Observation) -> None:
        patch = self.desired.to_proto()
        patch.fingerprint = observed.body.fingerprint
        current = observed_fields(observed.body)
        wanted = self.desired.fields()
        cleared = [key for key in _LISTS if current[key] and not wanted[key]]
        what = f"updating service attachment {self.name}"
        if cleared:
            self._merge_patch(what, patch, cleared)
            return
        c = self.ctx
        compute_write(
            c.clients,
            what,
            lambda: c.clients.service_attachments.patch_unary(
                project=c.project, region=c.region, service_attachment=self.name, service_attachment_resource=patch
            ),
        )

    def _merge_patch(self, what: str, patch: compute_v1.ServiceAttachment, cleared: list[str]) -> None:
        """The same PATCH with explicit empty lists, which the client cannot express."""
        c = self.ctx
        transport: Any = c.clients.service_attachments._transport
        body = json_format.MessageToDict(compute_v1.ServiceAttachment.pb(patch))
        body.update({key: [] for key in cleared})
        url = f"{transport._host}/compute/v1/projects/{c.project}/regions/{c.region}/serviceAttachments/{self.name}"

        def send() -> compute_v1.Operation:
            response = transport._session.patch(
                url, data=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            if response.status_code >= 400:
                raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]
            op: compute_v1.Operation = compute_v1.Operation.from_json(response.text, ignore_unknown_fields=True)
            return op

        compute_write(c.clients, what, send)


class InternalAddressAdapter(Adapter):
    """The consumer's reserved INTERNAL address: the endpoint's IP."""

    kind = "Address"
    exclusive = True
    field = "spec.address.name"

    def __init__(self, ctx: Context, name: str, *, subnet: str, ip: str | None, user: str) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.subnet = subnet
        self.ip = ip
        self.user = user
        """Relative path of the endpoint's forwarding rule, the only user the address may have."""

    def observe(self) -> Observation:
        c = self.ctx
        addr = c.read(
            c.regional_path("addresses", self.name),
            f"address {self.name}",
            lambda: c.clients.addresses.get(project=c.project, region=c.region, address=self.name),
            lambda: c.clients.addresses.list(project=c.project, region=c.region),
        )
        if addr is None:
            return Observation(exists=False)
        owned = c.owner.owns(addr.description)
        owner = "" if owned else owner_of(addr.description) or ""
        obs = Observation(exists=True, owned=owned, owner=owner, self_link=addr.self_link, body=addr)
        obs.outputs["ip"] = addr.address
        subnet = c.regional_path("subnetworks", self.subnet)
        others = [tail(u) for u in addr.users if tail(u) != self.user]
        if addr.address_type != "INTERNAL":
            obs.invalid = f"address {self.name} is {addr.address_type}: spec.address needs an INTERNAL address"
        elif tail(addr.subnetwork) != subnet:
            where = tail(addr.subnetwork).rsplit("/", 1)[-1]
            obs.invalid = f"address {self.name} is in subnetwork {where}, not {self.subnet}: use another name"
        elif self.ip and addr.address != self.ip:
            obs.invalid = (
                f"address {self.name} holds {addr.address}, not spec.address.ip {self.ip}; an address cannot "
                "change its IP: use another name or remove spec.address.ip"
            )
        elif others:
            obs.invalid = f"address {self.name} is already used by {others[0]}: name a free address"
        return obs

    def create(self) -> None:
        c = self.ctx
        body = compute_v1.Address(
            name=self.name,
            address_type="INTERNAL",
            purpose="GCE_ENDPOINT",
            subnetwork=COMPUTE + c.regional_path("subnetworks", self.subnet),
            description=c.owner.description(),
            labels=c.owner.labels(),
        )
        if self.ip:
            body.address = self.ip
        compute_write(
            c.clients,
            f"reserving address {self.name}",
            lambda: c.clients.addresses.insert_unary(project=c.project, region=c.region, address_resource=body),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        compute_write(
            c.clients,
            f"releasing address {self.name}",
            lambda: c.clients.addresses.delete_unary(project=c.project, region=c.region, address=self.name),
        )


class PscEndpointAdapter(RegionalAdapter):
    """The consumer's forwarding rule targeting the attachment; ready once the producer ACCEPTED it.

    A connection the producer CLOSED (it deleted the attachment) never comes back by itself, even
    when the attachment is re-created: the rule is re-created once the attachment exists again.
    """

    kind = "ForwardingRule"
    client_attr, arg, label = "forwarding_rules", "forwarding_rule", "forwarding rule"

    def __init__(self, ctx: Context, name: str, *, network: str, address: str, attachment: str | None) -> None:
        super().__init__(ctx, name, field="spec.forwardingRule.name")
        self.network = network
        self.address = address
        self.attachment = attachment
        """Relative path of the service attachment (in the producer's project); None: not known yet, only read."""

    def observe(self) -> Observation:
        rule = self.read()
        if self.attachment is None:
            return self._as_it_is(rule)
        if rule is None:
            if self._attachment_exists() is False:
                return Observation(
                    exists=False,
                    invalid=(
                        f"service attachment {self.attachment} does not exist: check spec.target with the producer"
                    ),
                )
            return Observation(exists=False)
        obs = self._as_it_is(rule)
        status = str(obs.outputs["status"])
        if tail(rule.target) != self.attachment:
            return self.differs(obs, f"does not target {self.attachment}")
        obs.ready = status == "ACCEPTED"
        obs.message = f"the connection to {self.attachment} is {status}"
        if status == "CLOSED" and obs.owned and self._attachment_exists():
            obs.up_to_date = False
        return obs

    def _as_it_is(self, rule: compute_v1.ForwardingRule | None) -> Observation:
        """The rule and its connection as GCP has them (while the attachment it should target is unknown)."""
        if rule is None:
            return Observation(exists=False, message="waiting for the service attachment")
        obs = self.seen(rule)
        status = rule.psc_connection_status or "PENDING"
        obs.outputs.update(
            status=status,
            pscConnectionId=str(rule.psc_connection_id or ""),
            ip=rule.I_p_address,
            target=tail(rule.target),
        )
        return obs

    def _attachment_exists(self) -> bool | None:
        """None when it cannot be told (the consumer may not be allowed to read the producer's project)."""
        parts = (self.attachment or "").split("/")
        if len(parts) != 6:
            return None
        try:
            found = find(
                f"reading service attachment {self.attachment}",
                lambda: self.ctx.clients.service_attachments.get(
                    project=parts[1], region=parts[3], service_attachment=parts[5]
                ),
            )
        except GCPCallError:
            return None
        return found is not None

    def create(self) -> None:
        c = self.ctx
        self.insert(
            compute_v1.ForwardingRule(
                name=self.name,
                load_balancing_scheme="",
                network=COMPUTE + c.network_path(self.network),
                I_p_address=COMPUTE + c.regional_path("addresses", self.address),
                target=COMPUTE + (self.attachment or ""),
            )
        )

    def update(self, observed: Observation) -> None:
        """GCP cannot retarget a PSC endpoint (nor revive a CLOSED one): re-create it."""
        self.delete(observed)
        self.create()
