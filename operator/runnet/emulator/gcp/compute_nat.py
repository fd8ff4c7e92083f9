"""Cloud NAT, which lives inside a Router's ``nats[]``: validation and server defaults.

Router PATCH/PUT hand every NAT entry to ``check_nats``. What a NAT is doing at run time
(getRouterStatus, getNatIpInfo, and the test knobs behind them) is in ``compute_nat_status``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids, ipam
from runnet.emulator.gcp.compute_common import NAME_RE
from runnet.emulator.gcp.compute_network import field_error
from runnet.emulator.gcp.store import Resource, relative

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call

SOURCE_MODES = ("ALL_SUBNETWORKS_ALL_IP_RANGES", "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES", "LIST_OF_SUBNETWORKS")
RANGE_OPTIONS = ("ALL_IP_RANGES", "LIST_OF_SECONDARY_IP_RANGES", "PRIMARY_IP_RANGE")
ALLOCATE_OPTIONS = ("AUTO_ONLY", "MANUAL_ONLY")
LOG_FILTERS = ("ALL", "ERRORS_ONLY", "TRANSLATIONS_ONLY")
TIMEOUTS = (
    "icmpIdleTimeoutSec",
    "tcpEstablishedIdleTimeoutSec",
    "tcpTransitoryIdleTimeoutSec",
    "tcpTimeWaitTimeoutSec",
    "udpIdleTimeoutSec",
)


def clean(value: Any) -> Any:
    """Drop nulls and empty lists, which GCP neither stores nor echoes."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def check_nats(call: Call, router: Resource, nats: list[Any], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated NAT entries with server-filled fields; 400 naming ``resource.nats[i].<field>``.

    ``previous`` are the router's NATs before this write: what may be drained depends on them.
    """
    out = []
    names: set[str] = set()
    for i, raw in enumerate(nats):
        nat = clean(raw)
        nat.pop("effectiveTcpTimeWaitTimeoutSec", None)  # output only; gcloud sends it back
        field = f"resource.nats[{i}]"
        name = str(nat.get("name") or "")
        if not NAME_RE.match(name):
            raise field_error(f"{field}.name", name, "Must be a match of regex '[a-z]([-a-z0-9]*[a-z0-9])?'")
        if name in names:
            raise field_error(f"{field}.name", name, "A NAT with this name already exists in this router.")
        names.add(name)
        out.append(_check_nat(call, router, nat, field))
    before = {n["name"]: n for n in previous}
    for i, nat in enumerate(out):
        _check_drain(call, nat, f"resource.nats[{i}]", before.get(nat["name"]))
    _check_coverage(out)
    _check_ip_owners(call, router, out)
    _check_network_coverage(call, router, out)
    return out


def _check_nat(call: Call, router: Resource, nat: dict[str, Any], field: str) -> dict[str, Any]:
    nat_type = nat.setdefault("type", "PUBLIC")
    if nat_type not in ("PUBLIC", "PRIVATE"):
        raise field_error(f"{field}.type", nat_type, "Must be PUBLIC or PRIVATE.")
    _check_sources(call, router, nat, field)
    if nat_type == "PUBLIC":
        _check_ips(call, nat, field)
        nat.setdefault("autoNetworkTier", "PREMIUM")
    else:
        nat.pop("natIpAllocateOption", None)
        nat.setdefault("enableDynamicPortAllocation", True)
    _check_ports(nat, field)
    _check_logging(nat, field)
    for key in TIMEOUTS:
        if key in nat and int(nat[key]) <= 0:
            raise field_error(f"{field}.{key}", nat[key], "Must be a positive number of seconds.")
    nat.setdefault("endpointTypes", ["ENDPOINT_TYPE_VM"])
    nat["effectiveTcpTimeWaitTimeoutSec"] = int(nat.get("tcpTimeWaitTimeoutSec", 120))
    return nat


def _check_sources(call: Call, router: Resource, nat: dict[str, Any], field: str) -> None:
    mode = nat.get("sourceSubnetworkIpRangesToNat")
    if mode not in SOURCE_MODES:
        raise field_error(
            f"{field}.sourceSubnetworkIpRangesToNat", mode or "", f"Must be one of {', '.join(SOURCE_MODES)}."
        )
    subnets = nat.get("subnetworks") or []
    if mode != "LIST_OF_SUBNETWORKS":
        if subnets:
            raise field_error(f"{field}.subnetworks", subnets, f"Must be empty with {mode}.")
        return
    if not subnets:
        raise field_error(f"{field}.subnetworks", "", "At least one subnetwork is required with LIST_OF_SUBNETWORKS.")
    for j, entry in enumerate(subnets):
        where = f"{field}.subnetworks[{j}]"
        path = ipam.ref_path(str(entry.get("name", "")), call.project, call.params["region"], "subnetworks")
        subnet = call.emu.store.get(path)
        if subnet is None or "/subnetworks/" not in path:
            raise field_error(
                f"{where}.name", entry.get("name", ""), "The referenced subnetwork resource cannot be found."
            )
        if subnet.get("network") != router["network"] or path.split("/")[3] != call.params["region"]:
            raise field_error(
                f"{where}.name", entry["name"], "The subnetwork must be in the router's network and region."
            )
        options = entry.setdefault("sourceIpRangesToNat", ["ALL_IP_RANGES"])
        if any(o not in RANGE_OPTIONS for o in options):
            raise field_error(
                f"{where}.sourceIpRangesToNat", options, f"Each must be one of {', '.join(RANGE_OPTIONS)}."
            )
        entry["name"] = ids.self_link(path)


def _address_of(call: Call, value: Any, where: str) -> str:
    """The path of an external address named in natIps/drainNatIps (URLs or relative paths only)."""
    path = relative(str(value))
    if not path.startswith("projects/") or "/addresses/" not in path:
        raise field_error(where, value, "The URL is malformed.")
    address = call.emu.store.get(path)
    if address is None:
        raise field_error(where, value, "The referenced address resource cannot be found.")
    if path.split("/")[3] != call.params["region"] or address.get("addressType") != "EXTERNAL":
        raise field_error(where, value, "NAT IPs must be EXTERNAL addresses in the router's region.")
    return path


def _check_ips(call: Call, nat: dict[str, Any], field: str) -> None:
    option = nat.get("natIpAllocateOption")
    if option not in ALLOCATE_OPTIONS:
        raise field_error(f"{field}.natIpAllocateOption", option or "", "Must be AUTO_ONLY or MANUAL_ONLY.")
    ips = nat.get("natIps") or []
    if option == "AUTO_ONLY" and ips:
        raise field_error(f"{field}.natIps", ips, "NAT IPs must be empty when natIpAllocateOption is AUTO_ONLY.")
    if option == "MANUAL_ONLY" and not ips:
        raise field_error(
            f"{field}.natIps", "", "At least one NAT IP is required when natIpAllocateOption is MANUAL_ONLY."
        )
    active = [_address_of(call, ip, f"{field}.natIps[{j}]") for j, ip in enumerate(ips)]
    if len(set(active)) != len(active):
        raise field_error(f"{field}.natIps", ips, "The same address is listed twice.")


def _check_drain(call: Call, nat: dict[str, Any], field: str, before: dict[str, Any] | None) -> None:
    """``drainNatIps``: only IPs the NAT already had, each leaving ``natIps`` in the very write that drains it.

    Cloud NAT's docs: "To drain an address, you must move it from the active pool to the drain pool
    in the same command"; the field "must be valid static external IPs that have been assigned to
    the NAT" and is "used for updating/patching a NAT only". So a new NAT drains nothing, an IP
    removed from ``natIps`` by an earlier write (and so released) cannot be drained later, and an
    IP is either active or draining. Dropping an IP from ``drainNatIps`` releases it.
    """
    drain = nat.get("drainNatIps") or []
    if not drain:
        return
    if nat["type"] != "PUBLIC" or nat.get("natIpAllocateOption") != "MANUAL_ONLY":
        raise field_error(f"{field}.drainNatIps", drain, "Only a public NAT with MANUAL_ONLY IPs can drain IPs.")
    if before is None:
        raise field_error(
            f"{field}.drainNatIps", drain, "A new NAT cannot have drain IPs: only an existing NAT's IPs can be drained."
        )
    active = {relative(str(ip)) for ip in nat["natIps"]}
    known = {relative(str(ip)) for ip in [*before.get("natIps", []), *before.get("drainNatIps", [])]}
    seen: set[str] = set()
    for j, ip in enumerate(drain):
        where = f"{field}.drainNatIps[{j}]"
        path = _address_of(call, ip, where)
        if path in active:
            raise field_error(where, ip, "The IP is still in natIps: an IP cannot be both active and draining.")
        if path in seen:
            raise field_error(where, ip, "The same address is listed twice.")
        if path not in known:
            raise field_error(
                where,
                ip,
                "The IP was not previously a NAT IP of this NAT: an IP can be drained only in the request that "
                "removes it from natIps.",
            )
        seen.add(path)


def _check_ports(nat: dict[str, Any], field: str) -> None:
    low, high = nat.get("minPortsPerVm"), nat.get("maxPortsPerVm")
    if not nat.get("enableDynamicPortAllocation"):
        if low is not None and not 2 <= int(low) <= 65536:
            raise field_error(f"{field}.minPortsPerVm", low, "Must be between 2 and 65536.")
        return
    if nat.get("enableEndpointIndependentMapping"):
        raise field_error(
            f"{field}.enableEndpointIndependentMapping",
            True,
            "Endpoint-independent mapping cannot be enabled together with dynamic port allocation.",
        )
    if low is not None and not (_power_of_two(int(low)) and 32 <= int(low) <= 32768):
        raise field_error(
            f"{field}.minPortsPerVm",
            low,
            "With dynamic port allocation it must be a power of two between 32 and 32768.",
        )
    if high is not None and not (_power_of_two(int(high)) and max(int(low or 32), 63) < int(high) <= 65536):
        raise field_error(
            f"{field}.maxPortsPerVm",
            high,
            "With dynamic port allocation it must be a power of two greater than minPortsPerVm (and 64), "
            "at most 65536.",
        )


def _check_logging(nat: dict[str, Any], field: str) -> None:
    if "logConfig" not in nat:
        return
    log = nat["logConfig"]
    log.setdefault("filter", "ALL")
    if log["filter"] not in LOG_FILTERS:
        raise field_error(f"{field}.logConfig.filter", log["filter"], f"Must be one of {', '.join(LOG_FILTERS)}.")


def _check_coverage(nats: list[dict[str, Any]]) -> None:
    """Among a router's public NATs a subnetwork may be translated by one NAT only."""
    public = [n for n in nats if n["type"] == "PUBLIC"]
    everything = [n for n in public if n["sourceSubnetworkIpRangesToNat"] != "LIST_OF_SUBNETWORKS"]
    if everything and len(public) > 1:
        raise field_error(
            "resource.nats",
            everything[0]["name"],
            "A NAT covering all subnetworks must be the only public NAT of the router.",
        )
    seen: dict[str, str] = {}
    for nat in public:
        for entry in nat.get("subnetworks", []):
            if entry["name"] in seen:
                raise field_error(
                    "resource.nats",
                    nat["name"],
                    f"Subnetwork {entry['name']} is already NATed by {seen[entry['name']]}.",
                )
            seen[entry["name"]] = nat["name"]


def _check_network_coverage(call: Call, router: Resource, nats: list[dict[str, Any]]) -> None:
    """A NAT covering all subnetworks must be the only NAT of its network in the region, across routers.

    GCP's API reference: "if this field contains ALL_SUBNETWORKS_ALL_IP_RANGES then there should
    not be any other Router.Nat section in any Router for this network in this region".
    """
    if not nats:
        return
    router_path = relative(router["selfLink"])
    scope = router_path.rsplit("/", 1)[0] + "/"
    for path, other in call.emu.store.under(scope, "routers"):
        if not path.startswith(scope) or path == router_path or other.get("network") != router.get("network"):
            continue
        for theirs in other.get("nats") or []:
            everything = [n for n in [theirs, *nats] if n.get("sourceSubnetworkIpRangesToNat") in SOURCE_MODES[:2]]
            if everything:
                raise field_error(
                    "resource.nats",
                    everything[0]["name"],
                    f"Router '{path}' already has NAT '{theirs['name']}' in this network and region; a NAT covering "
                    "all subnetworks must be the only NAT of the network in the region.",
                )


def _check_ip_owners(call: Call, router: Resource, nats: list[dict[str, Any]]) -> None:
    """An address serves one NAT only, and nothing else (a forwarding rule, another router)."""
    router_path = relative(router["selfLink"])
    owner: dict[str, str] = {}
    for i, nat in enumerate(nats):
        listed = [("natIps", j, v) for j, v in enumerate(nat.get("natIps", []))]
        listed += [("drainNatIps", j, v) for j, v in enumerate(nat.get("drainNatIps", []))]
        for key, j, value in listed:
            path = relative(str(value))
            where = f"resource.nats[{i}].{key}[{j}]"
            if path in owner and owner[path] != nat["name"]:
                raise field_error(where, value, f"The address is already used by NAT '{owner[path]}'.")
            owner[path] = nat["name"]
            address = call.emu.store.get(path) or {}
            others = call.emu.store.users_of(path) + ipam.forwarding_rules_with_ip(
                call.emu, call.project, call.params["region"], str(address.get("address"))
            )
            others = [u for u in others if u != router_path]
            if others:
                raise field_error(where, value, f"The address is already being used by '{others[0]}'.")
