"""Private Service Connect connections: which consumer endpoints an attachment serves, and in what state.

Each PSC consumer forwarding rule (compute_forwarding) is bound to its attachment in
``emu.extra["psc_bindings"]`` (creation order, NAT IP). Its state lives in the rule's
``pscConnectionStatus`` and is decided by ``settle`` only, from the attachment's accept/reject
policy, so the attachment's ``connectedEndpoints`` and the rule always agree.
"""

from __future__ import annotations

from typing import Any

from runnet.emulator.gcp import ids, ipam
from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.server import Call, GCPEmulator
from runnet.emulator.gcp.store import Resource, relative

LIST_KEYS = ("projectIdOrNum", "networkUrl", "endpointUrl")


def attachment_not_found(path: str) -> GCPError:
    return GCPError(404, "notFound", f'serviceAttachment "{path}" not found')


def is_psc(rule: Resource) -> bool:
    return "/serviceAttachments/" in str(rule.get("target", ""))


def bindings(emu: GCPEmulator) -> dict[str, dict[str, Any]]:
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
        value = next((str(entry[k]) for k in LIST_KEYS if entry.get(k)), "")
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
    bound = sorted((b["seq"], path) for path, b in bindings(emu).items() if b["attachment"] == attachment_path)
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
    taken = {b["natIp"] for b in bindings(emu).values()}
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
    bindings(call.emu)[path] = {
        "attachment": target,
        "attachmentId": attachment["id"],
        "seq": seq,
        "natIp": _nat_ip(call.emu, attachment),
    }
    settle(call.emu, target, fresh={path: rule})


def disconnect(call: Call, path: str) -> None:
    """A PSC endpoint is gone: its attachment no longer lists it."""
    bindings(call.emu).pop(path, None)
