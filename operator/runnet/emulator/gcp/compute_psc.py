"""Private Service Connect service attachments: insert, get, list, delete, patch.

What an attachment's consumer connections are doing (policy, NAT IPs) is in ``compute_psc_connections``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from runnet.emulator.gcp import ids, ipam
from runnet.emulator.gcp.compute_common import Collection, must_exist, refresh_fingerprint, register_crud, resolve, url
from runnet.emulator.gcp.compute_lb import base_fields, echo, field_error, reference, register_updates
from runnet.emulator.gcp.compute_psc_connections import LIST_KEYS, attachment_not_found, bindings, is_psc, settle
from runnet.emulator.gcp.compute_psc_nat import DEFAULT_PROPAGATED_LIMIT, capacity, held, per_endpoint
from runnet.emulator.gcp.errors import invalid
from runnet.emulator.gcp.server import Call, GCPEmulator
from runnet.emulator.gcp.store import Resource, relative


class _Attachments(Collection):
    """Service attachments answer 404 in their own words (REAL PSC-NEG log)."""

    def get(self, call: Call, name: str | None = None) -> Resource:
        path = self.path(call, name or call.params["name"])
        resource = call.emu.store.get(path)
        if resource is None:
            raise attachment_not_found(path)
        return resource


SERVICE_ATTACHMENT = _Attachments(
    "serviceAttachments",
    "compute#serviceAttachment",
    True,
    "service_attachment",
    "compute.serviceAttachments",
    "compute.serviceAttachments",
)

# -- service attachments --------------------------------------------------------------------------


def _nat_subnet(call: Call, index: int, ref: Any, own_path: str) -> str:
    field = f"natSubnets[{index}]"
    path = resolve(call, str(ref), "subnetworks", regional=True)
    subnet = must_exist(call, path, field)
    if subnet.get("purpose") != "PRIVATE_SERVICE_CONNECT":
        raise field_error(field, url(path), "The subnetwork must have purpose PRIVATE_SERVICE_CONNECT.")
    if path.split("/")[3] != call.params["region"]:
        raise field_error(field, url(path), "The subnetwork must be in the service attachment's region.")
    scope = own_path.rsplit("/", 1)[0]
    for other in call.emu.store.children(scope):
        other_path = relative(other["selfLink"])
        if other_path != own_path and url(path) in other.get("natSubnets", []):
            raise field_error(field, url(path), f"The subnetwork is already used by '{other_path}'.")
    return path


def _consumer_lists(body: dict[str, Any]) -> None:
    """Accept entries name one consumer each; projects, networks and endpoints cannot be mixed."""
    kinds = set()
    for i, entry in enumerate(body.get("consumerAcceptLists") or []):
        keys = [k for k in LIST_KEYS if isinstance(entry, dict) and entry.get(k)]
        if len(keys) != 1:
            raise field_error(
                f"consumerAcceptLists[{i}]", entry, "Exactly one of projectIdOrNum, networkUrl or endpointUrl."
            )
        kinds.add(keys[0])
    for value in body.get("consumerRejectLists") or []:
        text = str(value)
        kinds.add(
            "endpointUrl" if "/forwardingRules/" in text else "networkUrl" if "/networks/" in text else "projectIdOrNum"
        )
    if len(kinds) > 1:
        raise invalid(
            "Invalid value for field 'resource.consumerAcceptLists': the accept and reject lists of a "
            "service attachment must contain either only projects, only networks or only endpoints."
        )


def _count(body: dict[str, Any], field: str, allowed: range) -> None:
    """An unsigned count field: an integer in ``allowed`` when sent."""
    value = body.get(field)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise field_error(field, value, "Must be a non-negative integer.")
    if int(value) not in allowed:
        raise field_error(field, value, f"Must be between {allowed.start} and {allowed.stop - 1}.")
    body[field] = int(value)


def _bound(call: Call, old: Resource) -> list[dict[str, Any]]:
    """The bindings (NAT IPs) of the consumer endpoints of attachment ``old``."""
    path = relative(old["selfLink"])
    return [b for b in bindings(call.emu).values() if b["attachment"] == path and b["attachmentId"] == old["id"]]


def _check_nat_change(call: Call, old: Resource, new: Resource) -> None:
    """What a PATCH may not do to NAT IPs in use: drop a NAT subnet holding some, or outgrow the subnets.

    natIpsPerEndpoint can only grow (1 to 2), and only if the NAT subnets can give every accepted
    endpoint and propagated connection its extra IPs ("Insufficient IPv4 capacity on NAT
    subnetworks for the requested Service Attachment update", release note of 2026-10-07).
    """
    bound = _bound(call, old)
    in_use = [ip for b in bound for ip in held(b)]
    for ref in set(old.get("natSubnets", [])) - set(new["natSubnets"]):
        subnet = call.emu.store.get(relative(ref))
        net = ipam.subnet_range(subnet) if subnet else None
        if net is not None and any(ipaddress.IPv4Address(ip) in net for ip in in_use):
            raise field_error(
                "natSubnets", ref, "A NAT subnetwork cannot be removed while connected endpoints use its IP addresses."
            )
    before, after = per_endpoint(old), per_endpoint(new)
    if after < before:
        raise field_error("natIpsPerEndpoint", after, f"It cannot be decreased (it is {before}).")
    extra = (after - before) * sum(1 + len(b.get("propagated", [])) for b in bound if b.get("natIps"))
    if extra > capacity(call.emu, new) - len(in_use):
        raise invalid("Insufficient IPv4 capacity on NAT subnetworks for the requested Service Attachment update.")


def build_attachment(call: Call, body: dict[str, Any], path: str) -> Resource:
    preference = body.get("connectionPreference")
    if preference not in ("ACCEPT_AUTOMATIC", "ACCEPT_MANUAL"):
        raise field_error("connectionPreference", preference or "", "Must be ACCEPT_AUTOMATIC or ACCEPT_MANUAL.")
    target = reference(call, body, "targetService", "forwardingRules", regional=True)
    producer = must_exist(call, target, "targetService")
    if producer.get("loadBalancingScheme") not in ("INTERNAL", "INTERNAL_MANAGED") or is_psc(producer):
        raise field_error("targetService", url(target), "The target service must be an internal load balancer.")
    if target.split("/")[3] != call.params["region"]:
        raise field_error("targetService", url(target), "The target service must be in the same region.")
    nat = [_nat_subnet(call, i, s, path) for i, s in enumerate(body.get("natSubnets") or [])]
    if not nat:
        raise field_error("natSubnets", "", "At least one NAT subnetwork is required.")
    _consumer_lists(body)
    _count(body, "natIpsPerEndpoint", range(1, 3))
    _count(body, "propagatedConnectionLimit", range(2**32))
    attachment: Resource = {
        **base_fields(call, SERVICE_ATTACHMENT, path),
        "enableProxyProtocol": False,
        "propagatedConnectionLimit": DEFAULT_PROPAGATED_LIMIT,
        **echo(body),
        "targetService": url(target),
        "natSubnets": [url(n) for n in nat],
        "pscServiceAttachmentId": {"high": ids.numeric_id(), "low": ids.numeric_id()},
    }
    old = call.emu.store.get(path)  # the current version, when this is a PATCH
    if old is not None:
        _check_nat_change(call, old, attachment)
    refresh_fingerprint(attachment)
    return attachment


def render_attachment(call: Call, attachment: Resource) -> Resource:
    """``connectedEndpoints`` from the bound consumer rules, in connection order."""
    path = relative(attachment["selfLink"])
    bound = sorted(
        (b["seq"], rule_path, b)
        for rule_path, b in bindings(call.emu).items()
        if b["attachment"] == path and b["attachmentId"] == attachment["id"]
    )
    endpoints = []
    for _, rule_path, binding in bound:
        rule = call.emu.store.get(rule_path)
        if rule is None:
            continue
        endpoint = {
            "endpoint": url(rule_path),
            "endpointWithId": rule["selfLinkWithId"],
            "pscConnectionId": rule["pscConnectionId"],
            "status": rule.get("pscConnectionStatus", "PENDING"),
            "consumerNetwork": rule["network"],
            "natIps": held(binding),
            "propagatedConnectionCount": len(binding.get("propagated", [])),
        }
        endpoints.append({k: v for k, v in endpoint.items() if v != []})
    return {**attachment, "connectedEndpoints": endpoints} if endpoints else attachment


def attachment_users(call: Call, path: str, attachment: Resource) -> list[str]:
    """Consumer endpoints do not block deletion (they become CLOSED); anything else does."""
    users = []
    for user in call.emu.store.users_of(path):
        other = call.emu.store.get(user) or {}
        if not (user.split("/")[4] == "forwardingRules" and relative(str(other.get("target", ""))) == path):
            users.append(user)
    return users


def attachment_deleted(call: Call, path: str, attachment: Resource) -> None:
    """The producer closed the service: its endpoints stay, with status CLOSED."""
    bound = bindings(call.emu)
    for rule_path in [p for p, b in bound.items() if b["attachment"] == path]:
        rule = call.emu.store.get(rule_path)
        if rule is not None:
            rule["pscConnectionStatus"] = "CLOSED"
        del bound[rule_path]


def attachment_patched(call: Call, path: str, attachment: Resource) -> None:
    settle(call.emu, path, reconcile=bool(attachment.get("reconcileConnections")))


def register(emu: GCPEmulator) -> None:
    """Routes for service attachments, and for the forwarding rules that publish and consume them."""
    from runnet.emulator.gcp import compute_forwarding

    compute_forwarding.register(emu)
    register_crud(
        emu,
        SERVICE_ATTACHMENT,
        build_attachment,
        render=render_attachment,
        users=attachment_users,
        on_delete=attachment_deleted,
        aggregated=True,
    )
    register_updates(
        emu,
        SERVICE_ATTACHMENT,
        build_attachment,
        methods=("PATCH",),
        keep=("pscServiceAttachmentId",),
        after=attachment_patched,
    )
