"""Private Service Connect connections: which consumer endpoints an attachment serves, and in what state.

Each PSC consumer forwarding rule (compute_forwarding) is bound to its attachment in
``emu.extra["psc_bindings"]`` (creation order, NAT IPs). Its state lives in the rule's
``pscConnectionStatus`` and is decided by ``settle`` only: the attachment's accept/reject policy
first, then the NAT IPs (``compute_psc_nat``: accepted without an IP is NEEDS_ATTENTION), so the
attachment's ``connectedEndpoints`` and the rule always agree.
"""

from __future__ import annotations

from typing import Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.compute_psc_nat import CONNECTED, Connection, allocate
from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.server import Call, GCPEmulator
from runnet.emulator.gcp.store import Resource, relative

LIST_KEYS = ("projectIdOrNum", "networkUrl", "endpointUrl")


def attachment_not_found(path: str) -> GCPError:
    return GCPError(404, "notFound", f'serviceAttachment "{path}" not found')


def is_psc(rule: Resource) -> bool:
    return "/serviceAttachments/" in str(rule.get("target", ""))


def bindings(emu: GCPEmulator) -> dict[str, dict[str, Any]]:
    """Rule path -> {attachment, attachmentId, seq, natIps, propagated}: which endpoints an attachment serves."""
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
    policy: bool = True,
) -> None:
    """Re-decide endpoint states after an endpoint arrives (``fresh``) or goes, or the attachment changes.

    With ``policy``, PENDING endpoints are re-decided, and ACCEPTED/REJECTED ones with ``reconcile``
    (GCE's reconcileConnections); connection limits count accepted endpoints in creation order,
    kept ones first. Then NAT IPs are handed out (``compute_psc_nat.allocate``).
    """
    attachment = emu.store.get(attachment_path)
    if attachment is None:
        return
    fresh = fresh or {}
    bound = sorted((b["seq"], path) for path, b in bindings(emu).items() if b["attachment"] == attachment_path)
    found = [(path, fresh.get(path) or emu.store.get(path)) for _, path in bound]
    rules = [(path, rule) for path, rule in found if rule is not None]
    if policy:
        _apply_policy(attachment, rules, fresh, reconcile)
    connections = [
        Connection(path, rule, bindings(emu)[path], _consumer(attachment, path, rule)) for path, rule in rules
    ]
    allocate(emu, attachment, connections)


def _apply_policy(
    attachment: Resource, rules: list[tuple[str, Resource]], fresh: dict[str, Resource], reconcile: bool
) -> None:
    accepted: dict[int, int] = {}
    revisit = []
    for path, rule in rules:
        status = rule.get("pscConnectionStatus")
        if path in fresh or reconcile or status == "PENDING":
            revisit.append((path, rule))
        elif status in CONNECTED:
            index = _accept_index(attachment, path.split("/")[1], rule)
            if index is not None:
                accepted[index] = accepted.get(index, 0) + 1
    for path, rule in revisit:
        rule["pscConnectionStatus"] = _decide(attachment, path, rule, accepted)


def _consumer(attachment: Resource, path: str, rule: Resource) -> str:
    """Who ``propagatedConnectionLimit`` counts per: the accept-list entry (ACCEPT_MANUAL) or the project."""
    project = path.split("/")[1]
    if attachment.get("connectionPreference") == "ACCEPT_MANUAL":
        index = _accept_index(attachment, project, rule)
        if index is not None:
            return f"accept:{index}"
    return f"project:{project}"


def connect(call: Call, path: str, rule: Resource) -> None:
    """A new PSC endpoint: bind it to its attachment (in creation order) and decide its state."""
    target = relative(str(rule["target"]))
    attachment = call.emu.store.get(target)
    if attachment is None:
        raise attachment_not_found(target)
    seq = int(call.emu.extra.get("psc_seq", 0)) + 1
    call.emu.extra["psc_seq"] = seq
    bindings(call.emu)[path] = {"attachment": target, "attachmentId": attachment["id"], "seq": seq}
    settle(call.emu, target, fresh={path: rule})


def disconnect(call: Call, path: str) -> None:
    """A PSC endpoint is gone: its attachment no longer lists it, and its NAT IPs go to whoever waits."""
    binding = bindings(call.emu).pop(path, None)
    if binding is not None:
        settle(call.emu, binding["attachment"], policy=False)
