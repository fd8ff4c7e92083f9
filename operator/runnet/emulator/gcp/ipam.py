"""IP address management shared by the Compute kinds: subnet ranges and address allocation.

Kept apart from the kind modules so that forwarding rules (compute_lb, compute_psc) can allocate
internal IPs from a subnet with the same rules as addresses, and see the same conflicts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from runnet.emulator.gcp.errors import GCPError, invalid
from runnet.emulator.gcp.server import GCPEmulator
from runnet.emulator.gcp.store import Resource, relative

Net = ipaddress.IPv4Network

MIN_PREFIX, MAX_PREFIX = 8, 29
"""GCP's limits for an IPv4 subnet range: no larger than /8, no smaller than /29."""


PROHIBITED = tuple(ipaddress.IPv4Network(r) for r in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4"))
"""Ranges GCP's documentation lists as prohibited for subnets (this network, loopback, link-local, multicast)."""


def parse_range(value: object, field: str) -> Net:
    """A subnet range as GCP accepts it: IPv4 CIDR with the host bits zero, /8 to /29."""
    text = str(value or "")
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        net = None
    if net is None or "/" not in text:
        raise invalid(f"Invalid value for field '{field}': '{text}'. Must be a CIDR address range.")
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise invalid(
            f"Invalid value for field '{field}': '{text}'. The prefix length of an IPv4 subnetwork "
            f"range must be between /{MIN_PREFIX} and /{MAX_PREFIX}."
        )
    for prohibited in PROHIBITED:
        if net.overlaps(prohibited):
            raise invalid(
                f"Invalid value for field '{field}': '{text}'. The range overlaps {prohibited}, which cannot be "
                "used for subnetworks."
            )
    return net


def parse_ip(value: object, field: str) -> str:
    """A single IPv4 address, as given in ``address`` / ``IPAddress`` fields."""
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise invalid(f"Invalid value for field '{field}': '{value}'. Must be a valid IPv4 address.") from None


def is_ip(value: object) -> bool:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


def gateway(net: Net) -> str:
    """The first host of a subnet: GCP's default gateway (``gatewayAddress``)."""
    return str(net.network_address + 1)


def usable_hosts(net: Net) -> Iterator[str]:
    """Hosts a VM or address may take: GCP reserves the network, gateway, second-to-last and broadcast."""
    first = int(net.network_address) + 2
    last = int(net.broadcast_address) - 2
    for value in range(first, last + 1):
        yield str(ipaddress.IPv4Address(value))


def is_usable(net: Net, ip: str) -> bool:
    address = ipaddress.IPv4Address(ip)
    return int(net.network_address) + 2 <= int(address) <= int(net.broadcast_address) - 2


def ref_path(ref: str, project: str, region: str | None, collection: str) -> str:
    """A reference (name, partial path, relative path or URL) as a relative path."""
    if "/" not in ref:
        scope = f"regions/{region}" if region else "global"
        return f"projects/{project}/{scope}/{collection}/{ref}"
    path = relative(ref)
    if path.startswith(("global/", "regions/")):
        return f"projects/{project}/{path}"
    return path


def _parts(path: str) -> tuple[str, str]:
    """(project, region) of a regional resource path."""
    parts = path.split("/")
    return parts[1], parts[3]


def subnet_range(subnet: Resource) -> Net:
    return ipaddress.IPv4Network(subnet["ipCidrRange"])


def internal_ips_in_use(emu: GCPEmulator, subnet_path: str) -> dict[str, str]:
    """IP → path of the address or forwarding rule holding it, inside one subnet."""
    project, region = _parts(subnet_path)
    subnet = emu.store.get(subnet_path)
    if subnet is None:
        return {}
    net = subnet_range(subnet)
    held: dict[str, str] = {}
    prefix = f"projects/{project}/regions/{region}/"
    in_region = emu.store.under(prefix, "addresses") + emu.store.under(prefix, "forwardingRules")
    for path, resource in sorted(in_region, key=lambda item: item[0]):
        if not path.startswith(prefix):
            continue
        collection = path.split("/")[4]
        if collection == "addresses" and resource.get("addressType") == "INTERNAL":
            sub = ref_path(str(resource.get("subnetwork", "")), project, region, "subnetworks")
            if sub == subnet_path and resource.get("address"):
                held[str(resource["address"])] = path
        elif collection == "forwardingRules":
            ip = str(resource.get("IPAddress"))
            ref = resource.get("subnetwork")
            same = ref is None or ref_path(str(ref), project, region, "subnetworks") == subnet_path
            if is_ip(ip) and same and ipaddress.IPv4Address(ip) in net:
                held.setdefault(ip, path)
    return held


def allocate_internal(emu: GCPEmulator, subnet_path: str) -> str | None:
    """The first free usable IP of a subnet, or None when the subnet is full."""
    subnet = emu.store.get(subnet_path)
    if subnet is None:
        return None
    held = internal_ips_in_use(emu, subnet_path)
    return next((ip for ip in usable_hosts(subnet_range(subnet)) if ip not in held), None)


def forwarding_rules_with_ip(emu: GCPEmulator, project: str, region: str, ip: str) -> list[str]:
    """Paths of the regional forwarding rules whose IPAddress is ``ip`` (they store the literal IP)."""
    prefix = f"projects/{project}/regions/{region}/forwardingRules/"
    return [
        path
        for path, resource in emu.store.under(prefix, "forwardingRules")
        if path.startswith(prefix) and path.count("/") == 5 and resource.get("IPAddress") == ip
    ]


# -- external (public) addresses -------------------------------------------------------------


def external_pool(emu: GCPEmulator) -> Net:
    """The pool external IPs come from: ``EmulatorConfig.nat_ip_prefix`` (``34.146`` → 34.146.0.0/16)."""
    octets = [o for o in emu.config.nat_ip_prefix.strip(".").split(".") if o]
    padded = octets + ["0"] * (4 - len(octets))
    return ipaddress.IPv4Network(f"{'.'.join(padded)}/{8 * len(octets)}")


def external_ips_in_use(emu: GCPEmulator) -> set[str]:
    """Every public IP held: external addresses (all projects) and auto-allocated NAT IPs."""
    held = {
        str(r.get("address"))
        for path, r in emu.store.under("projects/", "addresses")
        if path.split("/")[-2:-1] == ["addresses"] and r.get("addressType", "EXTERNAL") == "EXTERNAL"
    }
    for ips in emu.extra.get("nat_auto_ips", {}).values():
        held.update(ips)
    return held


def allocate_external(emu: GCPEmulator) -> str:
    """The next public IP never handed out before.

    Released IPs are not reused (GCP practically never gives a released IP back): a test that
    loses an allowlisted IP and re-creates the address then sees a different IP, as it would on GCP.
    """
    pool = external_pool(emu)
    held = external_ips_in_use(emu)
    cursor = int(emu.extra.get("external_ip_cursor", int(pool.network_address)))
    for value in range(cursor + 1, int(pool.broadcast_address)):
        ip = ipaddress.IPv4Address(value)
        if ip.packed[-1] in (0, 255) or str(ip) in held:
            continue
        emu.extra["external_ip_cursor"] = value
        return str(ip)
    raise invalid(f"The emulator's external IP pool {pool} is exhausted.")


def ip_in_use(ip: str, *, internal: bool) -> GCPError:
    """What GCP reports when a requested IP is taken: 409 for internal IPs, 400 for external ones."""
    if internal:
        return GCPError(
            409,
            "ipInUseByAnotherResource",
            f"IP '{ip}' is already being used by another resource.",
            operation_code="IP_IN_USE_BY_ANOTHER_RESOURCE",
        )
    return GCPError(
        400,
        "ipInUseByAnotherResource",
        "Specified IP address is in-use and would result in a conflict.",
        operation_code="IP_IN_USE_BY_ANOTHER_RESOURCE",
    )
