"""subnetworks.expandIpCidrRange: a subnetwork's primary range grows in place, never shrinks or moves.

The new range must strictly contain the current one (gcloud sends the current address with the
new prefix, masked: 10.0.1.0/24 expanded to /16 is sent as 10.0.0.0/16) and overlap no other range
of the network. ``gatewayAddress`` stays; the fingerprint changes. Proxy-only subnets cannot be
expanded (gcloud's help says so); the emulator refuses the other special purposes (Private Service
Connect, private NAT) as well, which is not confirmed for real GCP.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp.compute_common import refresh_fingerprint
from runnet.emulator.gcp.compute_network import SUBNETWORKS, check_overlap, field_error
from runnet.emulator.gcp.errors import invalid, not_found
from runnet.emulator.gcp.ipam import parse_range
from runnet.emulator.gcp.store import Resource

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

EXPANDABLE = frozenset({"PRIVATE", "PRIVATE_RFC_1918"})
"""The regular purposes (PRIVATE_RFC_1918 is the legacy name of PRIVATE)."""
FIELD = "resource.ipCidrRange"


def expanded(call: Call, current: Resource, path: str) -> Resource:
    """``current`` with the requested range; 400 naming ``ipCidrRange`` when it cannot be expanded so."""
    purpose = current.get("purpose", "PRIVATE")
    if purpose not in EXPANDABLE:
        raise invalid(
            f"The subnetwork '{path}' has purpose {purpose} and cannot be expanded: only PRIVATE "
            "subnetworks can; create another subnetwork with the larger range instead."
        )
    body: dict[str, Any] = call.body if isinstance(call.body, dict) else {}
    new = parse_range(body.get("ipCidrRange"), FIELD)
    old = ipaddress.IPv4Network(current["ipCidrRange"])
    if new.prefixlen >= old.prefixlen or not new.supernet_of(old):
        raise field_error(
            FIELD, new, f"The new range must contain the current range {old} with a shorter prefix length."
        )
    for secondary in current.get("secondaryIpRanges") or []:
        if new.overlaps(ipaddress.IPv4Network(secondary["ipCidrRange"])):
            raise field_error(
                FIELD,
                new,
                f"Invalid IPCidrRange: {new} overlaps with secondary range '{secondary['rangeName']}' "
                f"({secondary['ipCidrRange']}) of this subnetwork.",
            )
    updated = {**current, "ipCidrRange": str(new)}
    check_overlap(call.emu, updated, path)
    return updated


async def expand_ip_cidr_range(call: Call) -> Any:
    current = SUBNETWORKS.get(call)
    path = SUBNETWORKS.path(call, call.params["name"])
    expanded(call, current, path)

    def apply() -> None:
        latest = call.emu.store.get(path)
        if latest is None:
            raise not_found(path)
        # Checked again: another subnet may have taken the space while the operation ran.
        updated = expanded(call, latest, path)
        refresh_fingerprint(updated)
        call.emu.store.put(path, updated)

    return call.compute_operation(
        operation_type="expandIpCidrRange", target_path=path, apply=apply, target_id=current["id"]
    )


def register(emu: GCPEmulator) -> None:
    """expandIpCidrRange on subnetworks (the collection itself is in ``compute_network``)."""
    emu.route(
        "POST",
        SUBNETWORKS.pattern("/{name}/expandIpCidrRange"),
        expand_ip_cidr_range,
        method_id="compute.subnetworks.expandIpCidrRange",
        permission="compute.subnetworks.expandIpCidrRange",
        mutating=True,
    )
