"""Compute networks (custom mode only) and subnetworks.

Addresses live in ``compute_address``, routers and Cloud NAT in ``compute_router``. Field sets
and defaults follow the real-GCP recordings (NOTES.md section 4): the server fills what a
purpose implies (a proxy-only subnet has ``role``/``state`` but no ``stackType`` or flow-log fields).
"""

from __future__ import annotations

import copy
import ipaddress
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.compute_common import (
    Collection,
    base_fields,
    check_fingerprint,
    refresh_fingerprint,
    register_crud,
    resolve,
)
from runnet.emulator.gcp.errors import GCPError, invalid, not_found
from runnet.emulator.gcp.ipam import gateway, parse_range
from runnet.emulator.gcp.store import Resource, relative

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

NETWORKS = Collection("networks", "compute#network", False, "network", "compute.networks", "compute.networks")
SUBNETWORKS = Collection(
    "subnetworks", "compute#subnetwork", True, "subnetwork", "compute.subnetworks", "compute.subnetworks"
)

OUTPUT_ONLY = frozenset(
    {"kind", "id", "selfLink", "selfLinkWithId", "creationTimestamp", "region", "fingerprint", "state"}
)
ROUTING_MODES = ("REGIONAL", "GLOBAL")
ENFORCEMENT_ORDERS = ("AFTER_CLASSIC_FIREWALL", "BEFORE_CLASSIC_FIREWALL")
REGIONAL_PROXY = frozenset({"REGIONAL_MANAGED_PROXY", "INTERNAL_HTTPS_LOAD_BALANCER"})
PROXY_PURPOSES = REGIONAL_PROXY | {"GLOBAL_MANAGED_PROXY"}
PURPOSES = PROXY_PURPOSES | {"PRIVATE", "PRIVATE_RFC_1918", "PRIVATE_SERVICE_CONNECT", "PRIVATE_NAT"}
SUBNET_IMMUTABLE = ("network", "ipCidrRange", "purpose")


def field_error(field: str, value: Any, why: str) -> GCPError:
    """GCP's 400 for a bad field: ``Invalid value for field 'resource.x': 'v'. why``."""
    shown = str(value).lower() if isinstance(value, bool) else value
    return invalid(f"Invalid value for field '{field}': '{shown}'. {why}")


def referenced(call: Call, value: Any, collection: str, field: str, *, regional: bool) -> str:
    """The relative path a reference field points at; 400 naming the field when it does not exist."""
    label = {"addresses": "address"}.get(collection, collection[:-1])
    if not value:
        raise field_error(field, "", f"The referenced {label} resource cannot be found.")
    path = resolve(call, str(value), collection, regional=regional)
    if call.emu.store.get(path) is None or f"/{collection}/" not in f"/{path}":
        raise field_error(field, value, f"The referenced {label} resource cannot be found.")
    return path


# -- networks -----------------------------------------------------------------------------------


def _routing_config(sent: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    config = dict(current or {"routingMode": "REGIONAL", "bgpBestPathSelectionMode": "LEGACY"})
    config.update({k: v for k, v in (sent or {}).items() if v is not None})
    if config.get("routingMode") not in ROUTING_MODES:
        raise field_error(
            "resource.routingConfig.routingMode", config.get("routingMode"), "Must be REGIONAL or GLOBAL."
        )
    return config


def _network_settings(body: dict[str, Any], current: Resource | None) -> dict[str, Any]:
    """Validated settable fields of a network body (insert or patch)."""
    out: dict[str, Any] = {}
    if body.get("autoCreateSubnetworks") is True:
        raise field_error(
            "resource.autoCreateSubnetworks",
            True,
            "The emulator serves custom-mode VPC networks only: set autoCreateSubnetworks to false "
            "and create subnetworks explicitly.",
        )
    order = body.get("networkFirewallPolicyEnforcementOrder")
    if order is not None and order not in ENFORCEMENT_ORDERS:
        raise field_error("resource.networkFirewallPolicyEnforcementOrder", order, "Unknown value.")
    if order is not None:
        out["networkFirewallPolicyEnforcementOrder"] = order
    if "routingConfig" in body or current is None:
        out["routingConfig"] = _routing_config(body.get("routingConfig"), (current or {}).get("routingConfig"))
    mtu = body.get("mtu")
    if mtu is not None and not 1300 <= int(mtu) <= 8896:
        raise field_error("resource.mtu", mtu, "Must be between 1300 and 8896.")
    for key in ("mtu", "description", "enableUlaInternalIpv6", "internalIpv6Range"):
        if body.get(key) is not None:
            out[key] = body[key]
    return out


def build_network(call: Call, body: dict[str, Any], path: str) -> Resource:
    if "IPv4Range" in body:
        raise field_error("resource.IPv4Range", body["IPv4Range"], "Legacy networks are not supported.")
    if body.get("autoCreateSubnetworks") is None:
        # Without it GCP creates a legacy network, which cannot hold subnetworks: refuse early.
        raise field_error(
            "resource.autoCreateSubnetworks", "", "Must be set to false to create a custom-mode VPC network."
        )
    resource = base_fields(call, NETWORKS, body["name"], path)
    resource["selfLinkWithId"] = ids.self_link(f"projects/{call.project}/global/networks/{resource['id']}")
    resource["autoCreateSubnetworks"] = False
    resource["networkFirewallPolicyEnforcementOrder"] = "AFTER_CLASSIC_FIREWALL"
    resource.update(_network_settings(body, None))
    return resource


def render_network(call: Call, network: Resource) -> Resource:
    """A network lists its subnetworks as URLs (computed: storing them would make each subnet "used")."""
    shown = copy.deepcopy(network)
    subnets = sorted(
        r["selfLink"]
        for path, r in call.emu.store.under("projects/", "subnetworks")
        if path.split("/")[4:5] == ["subnetworks"] and r.get("network") == network["selfLink"]
    )
    if subnets:
        shown["subnetworks"] = subnets
    return shown


async def patch_network(call: Call) -> Any:
    current = NETWORKS.get(call)
    path = NETWORKS.path(call, call.params["name"])
    body = {k: v for k, v in (call.body or {}).items() if k not in OUTPUT_ONLY}
    if body.get("name", current["name"]) != current["name"]:
        raise field_error("resource.name", body["name"], "The name of a network cannot be changed.")
    changes = _network_settings(body, current)

    def apply() -> None:
        latest = call.emu.store.get(path)
        if latest is None:
            raise not_found(path)
        call.emu.store.put(path, {**latest, **changes})

    operation = "updateNetwork" if "enableUlaInternalIpv6" in body else "patch"
    return call.compute_operation(operation_type=operation, target_path=path, apply=apply, target_id=current["id"])


# -- subnetworks --------------------------------------------------------------------------------


def _is_subnet(path: str) -> bool:
    return path.count("/") == 5 and path.split("/")[4] == "subnetworks"


def _ranges(subnet: Resource) -> list[tuple[str, Any]]:
    """(field, network) for the primary and every secondary range of a subnet body."""
    ranges = [("resource.ipCidrRange", parse_range(subnet.get("ipCidrRange"), "resource.ipCidrRange"))]
    for i, secondary in enumerate(subnet.get("secondaryIpRanges") or []):
        field = f"resource.secondaryIpRanges[{i}].ipCidrRange"
        if not secondary.get("rangeName"):
            raise field_error(f"resource.secondaryIpRanges[{i}].rangeName", "", "Must be specified.")
        ranges.append((field, parse_range(secondary.get("ipCidrRange"), field)))
    for i, (field, net) in enumerate(ranges):
        for _, other in ranges[:i]:
            if net.overlaps(other):
                raise field_error(field, net, f"Invalid IPCidrRange: {net} overlaps with {other}.")
    return ranges


def _stored_ranges(subnet: Resource) -> list[ipaddress.IPv4Network]:
    """The ranges of an existing subnet; anything unparsable (seeded by hand) is skipped."""
    texts = [subnet.get("ipCidrRange"), *(r.get("ipCidrRange") for r in subnet.get("secondaryIpRanges") or [])]
    nets = []
    for text in texts:
        try:
            nets.append(ipaddress.IPv4Network(str(text)))
        except ValueError:
            continue
    return nets


def check_overlap(emu: GCPEmulator, subnet: Resource, own_path: str) -> None:
    """No range may overlap another subnet of the same network, in any region."""
    mine = _ranges(subnet)
    for path, other in emu.store.under("projects/", "subnetworks"):
        if path == own_path or not _is_subnet(path) or other.get("network") != subnet["network"]:
            continue
        for theirs in _stored_ranges(other):
            for field, net in mine:
                if net.overlaps(theirs):
                    raise field_error(
                        field,
                        net,
                        f"Invalid IPCidrRange: {net} conflicts with existing subnetwork "
                        f"'{other['name']}' in region '{path.split('/')[3]}'.",
                    )


def check_single_active(emu: GCPEmulator, subnet: Resource, own_path: str) -> None:
    """At most one ACTIVE proxy-only subnet per network and region (and family of purposes)."""
    if subnet.get("purpose") not in PROXY_PURPOSES or subnet.get("role") != "ACTIVE":
        return
    family = REGIONAL_PROXY if subnet["purpose"] in REGIONAL_PROXY else PROXY_PURPOSES - REGIONAL_PROXY
    scope = own_path.rsplit("/", 1)[0] + "/"
    for path, other in emu.store.under(scope, "subnetworks"):
        if path == own_path or not path.startswith(scope) or path.count("/") != 5:
            continue
        same_family = other.get("network") == subnet["network"] and other.get("purpose") in family
        if same_family and other.get("role") == "ACTIVE":
            raise field_error(
                "resource.role",
                "ACTIVE",
                f"An ACTIVE subnetwork with purpose {other['purpose']} already exists in this "
                f"network and region: '{other['name']}'. Create it with role BACKUP instead.",
            )


def _check_purpose(body: dict[str, Any], purpose: str) -> None:
    if purpose not in PURPOSES:
        raise field_error("resource.purpose", purpose, "Unknown subnetwork purpose.")
    role = body.get("role")
    if purpose in PROXY_PURPOSES:
        if role not in ("ACTIVE", "BACKUP"):
            raise field_error(
                "resource.role",
                role or "UNSPECIFIED_ROLE",
                f"Subnetwork role must be specified when purpose set to {purpose}.",
            )
        if body.get("logConfig") is not None or body.get("enableFlowLogs") is not None:
            raise field_error(
                "resource.logConfig",
                body.get("logConfig"),
                f"Invalid field set in subnetwork with purpose {purpose}.",
            )
    elif role is not None:
        raise field_error("resource.role", role, "Role can only be set on proxy-only subnetworks.")


def _log_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Flow-log fields: ``enableFlowLogs`` mirrors ``logConfig.enable``; an enabled config gets defaults."""
    config = body.get("logConfig")
    enabled = bool(body.get("enableFlowLogs", (config or {}).get("enable", False)))
    out: dict[str, Any] = {"enableFlowLogs": enabled}
    if config is not None or enabled:
        config = {**(config or {}), "enable": enabled}
        if enabled:
            config.setdefault("aggregationInterval", "INTERVAL_5_SEC")
            config.setdefault("flowSampling", 0.5)
            config.setdefault("metadata", "INCLUDE_ALL_METADATA")
        out["logConfig"] = config
    return out


def build_subnetwork(call: Call, body: dict[str, Any], path: str) -> Resource:
    purpose = body.get("purpose") or "PRIVATE"
    _check_purpose(body, purpose)
    network = referenced(call, body.get("network"), "networks", "resource.network", regional=False)
    resource = base_fields(call, SUBNETWORKS, body["name"], path)
    resource.update(
        network=ids.self_link(network),
        ipCidrRange=body.get("ipCidrRange"),
        purpose=purpose,
        privateIpGoogleAccess=bool(body.get("privateIpGoogleAccess", False)),
        privateIpv6GoogleAccess=body.get("privateIpv6GoogleAccess") or "DISABLE_GOOGLE_ACCESS",
    )
    for key in ("description", "secondaryIpRanges"):
        if body.get(key):
            resource[key] = body[key]
    net = dict(_ranges(resource))["resource.ipCidrRange"]
    resource["gatewayAddress"] = gateway(net)
    if purpose in PROXY_PURPOSES:
        resource.update(role=body["role"], state="READY", allowSubnetCidrRoutesOverlap=False)
    else:
        if purpose != "PRIVATE_NAT":
            resource["stackType"] = body.get("stackType") or "IPV4_ONLY"
        if purpose == "PRIVATE_SERVICE_CONNECT":
            if body.get("logConfig") is not None:
                resource["logConfig"] = body["logConfig"]
        else:
            resource["allowSubnetCidrRoutesOverlap"] = bool(body.get("allowSubnetCidrRoutesOverlap", False))
            resource.update(_log_fields(body))
    check_subnet_conflicts(call, path, resource)
    refresh_fingerprint(resource)
    return resource


def check_subnet_conflicts(call: Call, path: str, resource: Resource) -> None:
    """Run at request time and again when the insert completes (another insert may have won)."""
    check_overlap(call.emu, resource, path)
    check_single_active(call.emu, resource, path)


def _subnet_changes(current: Resource, body: dict[str, Any]) -> dict[str, Any]:
    """The fields a subnetwork PATCH changes, validated; output-only fields are ignored."""
    changes = {k: v for k, v in body.items() if k not in OUTPUT_ONLY and k != "gatewayAddress"}
    changes.pop("name", None)
    for key in SUBNET_IMMUTABLE:
        if key in changes:
            same = relative(str(changes[key])) == relative(str(current.get(key)))
            if not same:
                raise field_error(f"resource.{key}", changes[key], "This field cannot be changed.")
            changes.pop(key)
    if "role" in changes and current.get("purpose") not in PROXY_PURPOSES:
        raise field_error("resource.role", changes["role"], "Role can only be set on proxy-only subnetworks.")
    if "role" in changes and changes["role"] not in ("ACTIVE", "BACKUP"):
        raise field_error("resource.role", changes["role"], "Must be ACTIVE or BACKUP.")
    if current.get("purpose") in PROXY_PURPOSES and changes.get("logConfig") is not None:
        raise field_error("resource.logConfig", changes["logConfig"], "Invalid field set in proxy-only subnetwork.")
    if "logConfig" in changes or "enableFlowLogs" in changes:
        # A new logConfig decides enableFlowLogs unless the legacy flag itself was sent.
        merged = {"logConfig": changes.get("logConfig", current.get("logConfig"))}
        if "enableFlowLogs" in changes:
            merged["enableFlowLogs"] = changes["enableFlowLogs"]
        changes.update(_log_fields(merged))
    return {k: v for k, v in changes.items() if v is not None}


async def patch_subnetwork(call: Call) -> Any:
    current = SUBNETWORKS.get(call)
    path = SUBNETWORKS.path(call, call.params["name"])
    check_fingerprint(call, current, path)
    changes = _subnet_changes(current, call.body or {})
    if "secondaryIpRanges" in changes:
        check_overlap(call.emu, {**current, **changes}, path)

    def apply() -> None:
        latest = call.emu.store.get(path)
        if latest is None:
            raise not_found(path)
        updated = {**latest, **changes}
        if changes.get("role") == "ACTIVE" and latest.get("role") != "ACTIVE":
            _demote_active(call.emu, updated, path)
        refresh_fingerprint(updated)
        call.emu.store.put(path, updated)

    return call.compute_operation(operation_type="patch", target_path=path, apply=apply, target_id=current["id"])


def _demote_active(emu: GCPEmulator, promoted: Resource, own_path: str) -> None:
    """Promoting a BACKUP proxy-only subnet to ACTIVE makes the former ACTIVE one the BACKUP."""
    scope = own_path.rsplit("/", 1)[0] + "/"
    for path, other in emu.store.under(scope, "subnetworks"):
        same_net = other.get("network") == promoted["network"] and other.get("purpose") in PROXY_PURPOSES
        if path.startswith(scope) and path != own_path and same_net and other.get("role") == "ACTIVE":
            demoted = {**other, "role": "BACKUP"}
            refresh_fingerprint(demoted)
            emu.store.put(path, demoted)


async def set_private_ip_google_access(call: Call) -> Any:
    current = SUBNETWORKS.get(call)
    path = SUBNETWORKS.path(call, call.params["name"])
    value = bool((call.body or {}).get("privateIpGoogleAccess", False))

    def apply() -> None:
        latest = call.emu.store.get(path)
        if latest is None:
            raise not_found(path)
        updated = {**latest, "privateIpGoogleAccess": value}
        refresh_fingerprint(updated)
        call.emu.store.put(path, updated)

    return call.compute_operation(
        operation_type="setPrivateIpGoogleAccess", target_path=path, apply=apply, target_id=current["id"]
    )


def register(emu: GCPEmulator) -> None:
    """Networks and subnetworks."""
    register_crud(emu, NETWORKS, build_network, delete_in_use_sync=False, render=render_network)
    emu.route(
        "PATCH",
        NETWORKS.pattern("/{name}"),
        patch_network,
        method_id="compute.networks.patch",
        permission="compute.networks.update",
        mutating=True,
    )
    register_crud(emu, SUBNETWORKS, build_subnetwork, aggregated=True, on_create=check_subnet_conflicts)
    emu.route(
        "PATCH",
        SUBNETWORKS.pattern("/{name}"),
        patch_subnetwork,
        method_id="compute.subnetworks.patch",
        permission="compute.subnetworks.update",
        mutating=True,
    )
    emu.route(
        "POST",
        SUBNETWORKS.pattern("/{name}/setPrivateIpGoogleAccess"),
        set_private_ip_google_access,
        method_id="compute.subnetworks.setPrivateIpGoogleAccess",
        permission="compute.subnetworks.setPrivateIpGoogleAccess",
        mutating=True,
    )
