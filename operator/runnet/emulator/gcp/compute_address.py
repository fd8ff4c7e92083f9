"""Regional Compute addresses: EXTERNAL (allocated from a public pool) and INTERNAL (from a subnet).

``status`` and ``users`` are computed on every read: an address is IN_USE while anything refers
to it (a Cloud NAT's ``natIps``, a forwarding rule's ``IPAddress``), RESERVED otherwise. The IP is
chosen when the insert operation completes, so concurrent inserts never get the same IP.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids, ipam
from runnet.emulator.gcp.compute_common import Collection, base_fields, register_crud, same_fingerprint
from runnet.emulator.gcp.compute_network import field_error, referenced
from runnet.emulator.gcp.errors import GCPError, invalid, not_found
from runnet.emulator.gcp.store import Resource, relative

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

ADDRESSES = Collection("addresses", "compute#address", True, "address", "compute.addresses", "compute.addresses")
ADDRESS_TYPES = ("EXTERNAL", "INTERNAL")
NETWORK_TIERS = ("PREMIUM", "STANDARD")
PROXY_ONLY = ("REGIONAL_MANAGED_PROXY", "GLOBAL_MANAGED_PROXY", "INTERNAL_HTTPS_LOAD_BALANCER")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def check_labels(labels: Any, field: str = "resource.labels") -> dict[str, str]:
    """Compute label rules: at most 64; keys start with a lowercase letter; lowercase values."""
    if not labels:
        return {}
    if not isinstance(labels, dict) or len(labels) > 64:
        raise invalid(f"Invalid value for field '{field}': at most 64 labels are allowed.")
    for key, value in labels.items():
        if not LABEL_KEY.match(str(key)) or not LABEL_VALUE.match(str(value)):
            raise field_error(
                f"{field}.{key}",
                value,
                "Label keys must start with a lowercase letter; keys and values may contain only "
                "lowercase letters, digits, '_' and '-', up to 63 characters.",
            )
    return {str(k): str(v) for k, v in labels.items()}


def _subnet_path(resource: Resource, path: str) -> str:
    parts = path.split("/")
    return ipam.ref_path(str(resource["subnetwork"]), parts[1], parts[3], "subnetworks")


def _internal(call: Call, body: dict[str, Any], resource: Resource) -> None:
    subnet_path = referenced(call, body.get("subnetwork"), "subnetworks", "resource.subnetwork", regional=True)
    if subnet_path.split("/")[3] != call.params["region"]:
        raise field_error("resource.subnetwork", body["subnetwork"], "The subnetwork must be in the address's region.")
    subnet = call.emu.store.get(subnet_path) or {}
    if subnet.get("purpose") in PROXY_ONLY:
        raise field_error(
            "resource.subnetwork", body["subnetwork"], "Addresses cannot be reserved in a proxy-only subnetwork."
        )
    # Echoed exactly as sent (relative in the recordings), unlike most references.
    resource["subnetwork"] = body["subnetwork"]
    resource["purpose"] = body.get("purpose") or "GCE_ENDPOINT"
    if body.get("address"):
        ip = ipam.parse_ip(body["address"], "resource.address")
        if not ipam.is_usable(ipam.subnet_range(subnet), ip):
            raise field_error("resource.address", ip, "Requested internal IP is outside the subnetwork CIDR range.")
        resource["address"] = ip


def _external(body: dict[str, Any], resource: Resource) -> None:
    if body.get("subnetwork") or body.get("network"):
        field = "resource.subnetwork" if body.get("subnetwork") else "resource.network"
        raise field_error(field, body.get("subnetwork") or body.get("network"), "Must be empty for EXTERNAL.")
    if body.get("purpose"):
        resource["purpose"] = body["purpose"]
    if body.get("address"):
        resource["address"] = ipam.parse_ip(body["address"], "resource.address")


def build_address(call: Call, body: dict[str, Any], path: str) -> Resource:
    kind = body.get("addressType") or "EXTERNAL"
    if kind not in ADDRESS_TYPES:
        raise field_error("resource.addressType", kind, "Must be EXTERNAL or INTERNAL.")
    tier = body.get("networkTier") or "PREMIUM"
    if tier not in NETWORK_TIERS or (kind == "INTERNAL" and tier != "PREMIUM"):
        raise field_error("resource.networkTier", tier, "Unsupported network tier for this address.")
    labels = check_labels(body.get("labels"))
    resource = base_fields(call, ADDRESSES, body["name"], path)
    resource.update(
        addressType=kind,
        description=body.get("description") or "",
        networkTier=tier,
        status="RESERVED",
        labelFingerprint=ids.label_fingerprint(labels),
    )
    if labels:
        resource["labels"] = labels
    if kind == "INTERNAL":
        _internal(call, body, resource)
    else:
        _external(body, resource)
    return resource


def take_ip(call: Call, path: str, resource: Resource) -> None:
    """When the insert completes: check the requested IP is free, or allocate the next free one."""
    internal = resource["addressType"] == "INTERNAL"
    requested = resource.get("address")
    if internal:
        subnet_path = _subnet_path(resource, path)
        if call.emu.store.get(subnet_path) is None:
            raise not_found(subnet_path)
        if requested:
            if requested in ipam.internal_ips_in_use(call.emu, subnet_path):
                raise ipam.ip_in_use(requested, internal=True)
            return
        ip = ipam.allocate_internal(call.emu, subnet_path)
        if ip is None:
            raise GCPError(
                400,
                "ipSpaceExhausted",
                f"IP space of '{subnet_path}' is exhausted.",
                operation_code="IP_SPACE_EXHAUSTED",
            )
        resource["address"] = ip
        return
    if requested:
        if requested in ipam.external_ips_in_use(call.emu):
            raise ipam.ip_in_use(requested, internal=False)
        return
    resource["address"] = ipam.allocate_external(call.emu)


def address_users(call: Call, path: str, resource: Resource) -> list[str]:
    """What refers to the address: any resource naming it, and forwarding rules holding its IP."""
    parts = path.split("/")
    users = call.emu.store.users_of(path)
    ip = resource.get("address")
    if ip:
        users += ipam.forwarding_rules_with_ip(call.emu, parts[1], parts[3], ip)
    return sorted(set(users) - {path})


def render_address(call: Call, resource: Resource) -> Resource:
    shown = copy.deepcopy(resource)
    users = address_users(call, relative(resource["selfLink"]), resource)
    shown["status"] = "IN_USE" if users else "RESERVED"
    if users:
        shown["users"] = [ids.self_link(u) for u in users]
    return shown


async def set_labels(call: Call) -> Any:
    current = ADDRESSES.get(call)
    path = ADDRESSES.path(call, call.params["name"])
    body = call.body or {}
    if not same_fingerprint(body.get("labelFingerprint"), current.get("labelFingerprint")):
        raise GCPError(412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed")
    labels = check_labels(body.get("labels"), "labels")

    def apply() -> None:
        latest = call.emu.store.get(path)
        if latest is None:
            raise not_found(path)
        updated = {k: v for k, v in latest.items() if k != "labels"}
        if labels:
            updated["labels"] = labels
        updated["labelFingerprint"] = ids.label_fingerprint(labels)
        call.emu.store.put(path, updated)

    return call.compute_operation(operation_type="setLabels", target_path=path, apply=apply, target_id=current["id"])


def register(emu: GCPEmulator) -> None:
    """Regional addresses."""
    register_crud(
        emu,
        ADDRESSES,
        build_address,
        aggregated=True,
        on_create=take_ip,
        render=render_address,
        users=address_users,
    )
    emu.route(
        "POST",
        ADDRESSES.pattern("/{name}/setLabels"),
        set_labels,
        method_id="compute.addresses.setLabels",
        permission="compute.addresses.setLabels",
        mutating=True,
    )
