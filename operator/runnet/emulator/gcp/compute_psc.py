"""Private Service Connect: service attachments and the state of their consumer connections.

Each PSC consumer forwarding rule (compute_forwarding) is bound to its attachment in
``emu.extra["psc_bindings"]`` (creation order, NAT IP). Its state lives in the rule's
``pscConnectionStatus`` and is decided by ``settle`` only, from the attachment's accept/reject
policy, so the attachment's ``connectedEndpoints`` and the rule always agree.
"""

from __future__ import annotations

from typing import Any

from runnet.emulator.gcp import ids, ipam
from runnet.emulator.gcp.compute_common import Collection, must_exist, refresh_fingerprint, register_crud, resolve, url
from runnet.emulator.gcp.compute_lb import base_fields, echo, field_error, reference, register_updates
from runnet.emulator.gcp.errors import GCPError, invalid
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

_LIST_KEYS = ("projectIdOrNum", "networkUrl", "endpointUrl")


def attachment_not_found(path: str) -> GCPError:
    return GCPError(404, "notFound", f'serviceAttachment "{path}" not found')


def is_psc(rule: Resource) -> bool:
    return "/serviceAttachments/" in str(rule.get("target", ""))


# -- PSC connections ------------------------------------------------------------------------------


def _bindings(emu: GCPEmulator) -> dict[str, dict[str, Any]]:
    """Rule path -> {attachment, attachmentId, seq, natIp}: which endpoints an attachment serves."""
    return emu.extra.setdefault("psc_bindings", {})  # type: ignore[no-any-return]


def _matches(entry: str, project: str, network: str, rule: Resource) -> bool:
    """Does one accept/reject list value name this consumer (project id or number, network, endpoint)?"""
    if "/forwardingRules/" in entry:
        return relative(entry) in (relative(rule["selfLink"]), relative(rule["selfLinkWithId"]))
    if "/networks/" in entry:
        return relative(entry) == relative(network)
    return entry in (project, ids.project_number(project))


def _accept_index(attachment: Resource, project: str, rule: Resource) -> int | None:
    for i, entry in enumerate(attachment.get("consumerAcceptLists") or []):
        value = next((str(entry[k]) for k in _LIST_KEYS if entry.get(k)), "")
        if _matches(value, project, str(rule.get("network", "")), rule):
            return i
    return None


def _decide(attachment: Resource, rule_path: str, rule: Resource, accepted: dict[int, int]) -> str:
    """The state one endpoint gets under the attachment's current policy."""
    if attachment.get("connectionPreference") == "ACCEPT_AUTOMATIC":
        return "ACCEPTED"
    project = rule_path.split("/")[1]
    network = str(rule.get("network", ""))
    if any(_matches(str(e), project, network, rule) for e in attachment.get("consumerRejectLists") or []):
        return "REJECTED"
    index = _accept_index(attachment, project, rule)
    if index is None:
        return "PENDING"
    limit = int((attachment["consumerAcceptLists"][index]).get("connectionLimit") or 0)
    if accepted.get(index, 0) >= limit:
        return "PENDING"
    accepted[index] = accepted.get(index, 0) + 1
    return "ACCEPTED"


def settle(
    emu: GCPEmulator,
    attachment_path: str,
    *,
    fresh: dict[str, Resource] | None = None,
    reconcile: bool = False,
) -> None:
    """Re-decide endpoint states after an endpoint arrives (``fresh``) or the policy changes.

    PENDING endpoints are always re-decided; ACCEPTED/REJECTED ones only with ``reconcile``
    (GCE's reconcileConnections). Connection limits count ACCEPTED endpoints in creation order,
    kept ones first.
    """
    attachment = emu.store.get(attachment_path)
    if attachment is None:
        return
    fresh = fresh or {}
    bound = sorted((b["seq"], path) for path, b in _bindings(emu).items() if b["attachment"] == attachment_path)
    rules = [(path, fresh.get(path) or emu.store.get(path)) for _, path in bound]
    accepted: dict[int, int] = {}
    revisit = []
    for path, rule in rules:
        if rule is None:
            continue
        status = rule.get("pscConnectionStatus")
        if path in fresh or reconcile or status == "PENDING":
            revisit.append((path, rule))
        elif status == "ACCEPTED":
            index = _accept_index(attachment, path.split("/")[1], rule)
            if index is not None:
                accepted[index] = accepted.get(index, 0) + 1
    for path, rule in revisit:
        rule["pscConnectionStatus"] = _decide(attachment, path, rule, accepted)


def _nat_ip(emu: GCPEmulator, attachment: Resource) -> str:
    """A NAT IP for a new connection, from the attachment's first NAT subnet."""
    taken = {b["natIp"] for b in _bindings(emu).values()}
    subnet = emu.store.get(relative(attachment["natSubnets"][0]))
    hosts = ipam.usable_hosts(ipam.subnet_range(subnet)) if subnet else iter(())
    ip = next((h for h in hosts if h not in taken), None)
    if ip is None:
        raise GCPError(400, "ipSpaceExhausted", "The NAT subnetworks of the service attachment are full.")
    return ip


def connect(call: Call, path: str, rule: Resource) -> None:
    """A new PSC endpoint: bind it to its attachment (in creation order) and decide its state."""
    target = relative(str(rule["target"]))
    attachment = call.emu.store.get(target)
    if attachment is None:
        raise attachment_not_found(target)
    seq = int(call.emu.extra.get("psc_seq", 0)) + 1
    call.emu.extra["psc_seq"] = seq
    _bindings(call.emu)[path] = {
        "attachment": target,
        "attachmentId": attachment["id"],
        "seq": seq,
        "natIp": _nat_ip(call.emu, attachment),
    }
    settle(call.emu, target, fresh={path: rule})


def disconnect(call: Call, path: str) -> None:
    """A PSC endpoint is gone: its attachment no longer lists it."""
    _bindings(call.emu).pop(path, None)


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
        keys = [k for k in _LIST_KEYS if isinstance(entry, dict) and entry.get(k)]
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
    attachment: Resource = {
        **base_fields(call, SERVICE_ATTACHMENT, path),
        "enableProxyProtocol": False,
        **echo(body),
        "targetService": url(target),
        "natSubnets": [url(n) for n in nat],
        "pscServiceAttachmentId": {"high": ids.numeric_id(), "low": ids.numeric_id()},
    }
    refresh_fingerprint(attachment)
    return attachment


def render_attachment(call: Call, attachment: Resource) -> Resource:
    """``connectedEndpoints`` from the bound consumer rules, in connection order."""
    path = relative(attachment["selfLink"])
    bound = sorted(
        (b["seq"], rule_path, b)
        for rule_path, b in _bindings(call.emu).items()
        if b["attachment"] == path and b["attachmentId"] == attachment["id"]
    )
    endpoints = []
    for _, rule_path, binding in bound:
        rule = call.emu.store.get(rule_path)
        if rule is None:
            continue
        endpoints.append(
            {
                "endpoint": url(rule_path),
                "endpointWithId": rule["selfLinkWithId"],
                "pscConnectionId": rule["pscConnectionId"],
                "status": rule.get("pscConnectionStatus", "PENDING"),
                "consumerNetwork": rule["network"],
                "natIps": [binding["natIp"]],
                "propagatedConnectionCount": 0,
            }
        )
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
    bindings = _bindings(call.emu)
    for rule_path in [p for p, b in bindings.items() if b["attachment"] == path]:
        rule = call.emu.store.get(rule_path)
        if rule is not None:
            rule["pscConnectionStatus"] = "CLOSED"
        del bindings[rule_path]


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
