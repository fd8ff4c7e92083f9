"""VPC firewall rules (``gcloud compute firewall-rules``): insert, get, list, patch, delete.

The emulator enforces no traffic; it keeps the rules, validates them the way users meet GCP's
checks (a network that does not exist is the 404 gcloud prints as "Could not fetch resource"),
and a rule keeps its network in use (deleting the network fails in its operation, as recorded
on real GCE). Defaults are those ``describe`` shows: priority 1000, INGRESS from 0.0.0.0/0 when
no source is given, ``logConfig: {enable: false}``, ``disabled: false``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.compute_common import Collection, base_fields, register_crud, resolve
from runnet.emulator.gcp.compute_network import field_error
from runnet.emulator.gcp.errors import not_found
from runnet.emulator.gcp.store import Resource

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

FIREWALLS = Collection("firewalls", "compute#firewall", False, "firewall", "compute.firewalls", "compute.firewalls")

PROTOCOLS = frozenset({"tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all"})
WITH_PORTS = frozenset({"tcp", "udp", "sctp", "all", "6", "17", "132"})
_PORT_RANGE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
SETTABLE = (
    "description",
    "priority",
    "direction",
    "sourceRanges",
    "destinationRanges",
    "sourceTags",
    "targetTags",
    "sourceServiceAccounts",
    "targetServiceAccounts",
    "allowed",
    "denied",
    "disabled",
    "logConfig",
)


def build_firewall(call: Call, body: dict[str, Any], path: str) -> Resource:
    network_ref = body.get("network") or "global/networks/default"
    network = resolve(call, str(network_ref), "networks", regional=False)
    if call.emu.store.get(network) is None:
        raise not_found(network)
    resource = base_fields(call, FIREWALLS, body["name"], path)
    resource.update(
        description="",
        network=ids.self_link(network),
        priority=1000,
        direction="INGRESS",
        logConfig={"enable": False},
        disabled=False,
    )
    resource.update({k: body[k] for k in SETTABLE if body.get(k) is not None})
    check_rule(resource)
    return resource


def check_rule(rule: Resource) -> None:
    """What GCP refuses in a firewall rule, with the field it names."""
    if rule["direction"] not in ("INGRESS", "EGRESS"):
        raise field_error("resource.direction", rule["direction"], "Must be INGRESS or EGRESS.")
    if not 0 <= int(rule["priority"]) <= 65535:
        raise field_error("resource.priority", rule["priority"], "Must be between 0 and 65535.")
    if bool(rule.get("allowed")) == bool(rule.get("denied")):
        raise field_error("resource.allowed", "", "Exactly one of 'allowed' or 'denied' must be specified.")
    sources = ("sourceRanges", "sourceTags", "sourceServiceAccounts")
    if rule["direction"] == "EGRESS":
        for key in ("sourceTags", "sourceServiceAccounts"):
            if rule.get(key):
                raise field_error(f"resource.{key}", rule[key][0], "Source tags and service accounts apply to INGRESS.")
        rule.setdefault("destinationRanges", ["0.0.0.0/0"])
    elif not any(rule.get(key) for key in sources):
        rule["sourceRanges"] = ["0.0.0.0/0"]
    for key in ("sourceRanges", "destinationRanges"):
        for i, text in enumerate(rule.get(key) or []):
            try:
                ipaddress.ip_network(str(text), strict=False)
            except ValueError:
                raise field_error(f"resource.{key}[{i}]", text, "Must be a valid CIDR address range.") from None
    for action in ("allowed", "denied"):
        for i, entry in enumerate(rule.get(action) or []):
            _check_protocol(f"resource.{action}[{i}]", entry)


def _check_protocol(where: str, entry: Any) -> None:
    protocol = str((entry or {}).get("IPProtocol", "")).lower()
    if protocol not in PROTOCOLS and not (protocol.isdigit() and int(protocol) <= 255):
        raise field_error(f"{where}.IPProtocol", protocol, "Must be a protocol name or an IP protocol number.")
    entry["IPProtocol"] = protocol
    for j, port in enumerate(entry.get("ports") or []):
        if protocol not in WITH_PORTS:
            raise field_error(
                f"{where}.ports[{j}]", port, "Ports may only be specified on rules whose protocol is TCP, UDP or SCTP."
            )
        match = _PORT_RANGE.match(str(port))
        low, high = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (1, 0)
        if not 0 <= low <= high <= 65535:
            raise field_error(f"{where}.ports[{j}]", port, "Invalid port range specification.")


async def patch_firewall(call: Call) -> Any:
    current = FIREWALLS.get(call)
    path = FIREWALLS.path(call, call.params["name"])
    body = call.body if isinstance(call.body, dict) else {}
    if body.get("name", current["name"]) != current["name"]:
        raise field_error("resource.name", body["name"], "The name of a firewall rule cannot be changed.")
    if body.get("network") and resolve(call, str(body["network"]), "networks", regional=False) != _network(current):
        raise field_error("resource.network", body["network"], "The network of a firewall rule cannot be changed.")
    updated = {**current, **{k: v for k, v in body.items() if k in SETTABLE and v is not None}}
    if body.get("allowed") and "denied" not in body:
        updated.pop("denied", None)
    if body.get("denied") and "allowed" not in body:
        updated.pop("allowed", None)
    check_rule(updated)

    def apply() -> None:
        if call.emu.store.get(path) is None:
            raise not_found(path)
        call.emu.store.put(path, updated)

    return call.compute_operation(operation_type="patch", target_path=path, apply=apply, target_id=current["id"])


def _network(rule: Resource) -> str:
    return str(rule["network"]).removeprefix(ids.COMPUTE_BASE)


def register(emu: GCPEmulator) -> None:
    register_crud(emu, FIREWALLS, build_firewall)
    emu.route(
        "PATCH",
        FIREWALLS.pattern("/{name}"),
        patch_firewall,
        method_id="compute.firewalls.patch",
        permission="compute.firewalls.update",
        mutating=True,
    )
