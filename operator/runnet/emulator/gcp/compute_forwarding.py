"""Regional forwarding rules: internal load balancers and Private Service Connect endpoints.

Three shapes: INTERNAL_MANAGED to a regional target HTTP proxy (needs an ACTIVE proxy-only
subnet in the network and region), INTERNAL to a backend service, and PSC consumer endpoints
(target = a service attachment, empty scheme) whose connection state compute_psc_connections decides.
IPAddress is always stored as the literal IP: address users are computed from it.
"""

from __future__ import annotations

from typing import Any

from runnet.emulator.gcp import compute_psc_connections, ids, ipam
from runnet.emulator.gcp.compute_common import (
    Collection,
    check_fingerprint,
    must_exist,
    refresh_fingerprint,
    register_crud,
    resolve,
    same_fingerprint,
    store_changes,
    url,
)
from runnet.emulator.gcp.compute_lb import (
    base_fields,
    echo,
    field_error,
    network_of,
    reference,
    subnet_resources,
)
from runnet.emulator.gcp.compute_psc_connections import attachment_not_found, is_psc
from runnet.emulator.gcp.errors import GCPError, fingerprint_mismatch
from runnet.emulator.gcp.server import Call, GCPEmulator
from runnet.emulator.gcp.store import Resource, relative

FORWARDING_RULE = Collection(
    "forwardingRules",
    "compute#forwardingRule",
    True,
    "forwarding_rule",
    "compute.forwardingRules",
    "compute.forwardingRules",
)


PROXY_SUBNET_PURPOSES = ("REGIONAL_MANAGED_PROXY", "INTERNAL_HTTPS_LOAD_BALANCER")
_RULE_PATCHABLE = ("allowGlobalAccess", "allowPscGlobalAccess", "networkTier", "sourceIpRanges")


# -- forwarding rules: the parts each shape needs ------------------------------------------------


def _network_and_subnet(call: Call, body: dict[str, Any]) -> tuple[str, str | None]:
    """The rule's network and subnetwork paths; the network defaults to the subnet's, then 'default'."""
    subnet = reference(call, body, "subnetwork", "subnetworks", regional=True) if body.get("subnetwork") else None
    if body.get("network"):
        network = reference(call, body, "network", "networks", regional=False)
    elif subnet is not None:
        network = network_of(must_exist(call, subnet, "subnetwork"))
    else:
        network = f"projects/{call.project}/global/networks/default"
        must_exist(call, network, "network")
    if subnet is not None:
        sub = must_exist(call, subnet, "subnetwork")
        if network_of(sub) != network:
            raise field_error("subnetwork", url(subnet), "The subnetwork must belong to the network of the rule.")
        if sub.get("purpose", "PRIVATE") != "PRIVATE":
            raise field_error("subnetwork", url(subnet), "The subnetwork must have purpose PRIVATE.")
    return network, subnet


def _internal_ip(call: Call, body: dict[str, Any], network: str, subnet: str | None) -> tuple[str, str]:
    """The literal internal IP a rule gets (allocated, given, or an address's) and its subnet."""
    value = body.get("IPAddress")
    if not value:
        if subnet is None:
            raise field_error("subnetwork", "", "A subnetwork is required to allocate an internal IP address.")
        ip = ipam.allocate_internal(call.emu, subnet)
        if ip is None:
            raise GCPError(400, "ipSpaceExhausted", f"IP space of '{subnet}' is exhausted.")
        return ip, subnet
    if ipam.is_ip(value):
        ip = str(value)
    else:
        address = must_exist(call, resolve(call, str(value), "addresses", regional=True), "IPAddress")
        if address.get("addressType") != "INTERNAL":
            raise field_error("IPAddress", value, "The address must be an INTERNAL address.")
        ip = str(address.get("address"))
    homes = [
        path
        for path, s in subnet_resources(call, call.params["region"])
        if network_of(s) == network
        and s.get("purpose", "PRIVATE") == "PRIVATE"
        and ipam.is_usable(ipam.subnet_range(s), ip)
    ]
    if not homes or (subnet is not None and subnet not in homes):
        where = "subnetwork" if subnet else "network"
        raise field_error("IPAddress", value, f"The IP address is not in the forwarding rule's {where}.")
    return ip, subnet or homes[0]


def _check_ip_free(call: Call, path: str, ip: str, network: str) -> None:
    """Internal IPs are unique per VPC network (other networks may reuse the range)."""
    region = path.split("/")[3]
    for other in ipam.forwarding_rules_with_ip(call.emu, call.project, region, ip):
        rule = call.emu.store.get(other) or {}
        if other != path and relative(str(rule.get("network", ""))) == relative(network):
            raise ipam.ip_in_use(ip, internal=True)


def _port(value: Any, field: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise field_error(field, value, "Ports must be between 1 and 65535.")
    return port


def _ports(body: dict[str, Any], *, single: bool) -> dict[str, Any]:
    """``portRange`` as GCE returns it ("80" -> "80-80") or ``ports``; proxies take one port."""
    port_range, ports = body.get("portRange"), body.get("ports") or []
    if port_range and ports:
        raise field_error("ports", ports, "Only one of portRange and ports may be specified.")
    if single and len(ports) == 1:
        port_range, ports = str(ports[0]), []
    if ports:
        if len(ports) > 5:
            raise field_error("ports", ports, "At most 5 ports may be specified.")
        return {"ports": [str(_port(p, "ports")) for p in ports]}
    if not port_range:
        if single:
            raise field_error("portRange", "", "A port is required for a forwarding rule with a target proxy.")
        return {}
    low, _, high = str(port_range).partition("-")
    first, last = _port(low, "portRange"), _port(high or low, "portRange")
    if first > last or (single and first != last):
        raise field_error("portRange", port_range, "Invalid port range.")
    return {"portRange": f"{first}-{last}"}


def _proxy_rule(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    target = reference(call, body, "target", "targetHttpProxies", regional=True)
    if target.split("/")[4] != "targetHttpProxies":
        raise field_error("target", body.get("target"), "The target must be a regional target HTTP proxy.")
    network, subnet = _network_and_subnet(call, body)
    proxies = [
        s
        for _, s in subnet_resources(call, call.params["region"])
        if s.get("purpose") in PROXY_SUBNET_PURPOSES and s.get("role") == "ACTIVE" and network_of(s) == network
    ]
    if not proxies:
        raise field_error(
            "target",
            url(target),
            "An active proxy-only subnetwork is required in the same region and VPC as the forwarding rule.",
        )
    if body.get("IPProtocol", "TCP") != "TCP":
        raise field_error("IPProtocol", body["IPProtocol"], "Target proxies only support TCP.")
    ip, subnet = _internal_ip(call, body, network, subnet)
    fields = {"IPAddress": ip, "network": url(network), "subnetwork": url(subnet), "target": url(target)}
    return {**fields, **_ports(body, single=True)}


def _internal_rule(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    service = reference(call, body, "backendService", "backendServices", regional=True)
    if must_exist(call, service, "backendService").get("loadBalancingScheme") != "INTERNAL":
        raise field_error("backendService", url(service), "The backend service must use the INTERNAL scheme.")
    network, subnet = _network_and_subnet(call, body)
    ip, subnet = _internal_ip(call, body, network, subnet)
    fields = {"IPAddress": ip, "network": url(network), "subnetwork": url(subnet), "backendService": url(service)}
    return fields if body.get("allPorts") else {**fields, **_ports(body, single=False)}


def _psc_rule(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("loadBalancingScheme"):
        raise field_error(
            "loadBalancingScheme",
            body["loadBalancingScheme"],
            "The load balancing scheme must be empty for a forwarding rule targeting a service attachment.",
        )
    for field in ("portRange", "ports", "allPorts", "backendService"):
        if body.get(field):
            raise field_error(field, body[field], "Not allowed for a Private Service Connect forwarding rule.")
    target = resolve(call, str(body["target"]), "serviceAttachments", regional=True)
    if call.emu.store.get(target) is None:
        raise attachment_not_found(target)
    if target.split("/")[3] != call.params["region"]:
        raise field_error("target", url(target), "The service attachment must be in the rule's region.")
    network, subnet = _network_and_subnet(call, body)
    ip, _ = _internal_ip(call, body, network, subnet)
    fields = {"IPAddress": ip, "network": url(network), "target": url(target), "pscConnectionId": ids.numeric_id()}
    return {**fields, "subnetwork": url(subnet)} if subnet else fields


def build_rule(call: Call, body: dict[str, Any], path: str) -> Resource:
    scheme = body.get("loadBalancingScheme", "EXTERNAL")
    if "/serviceAttachments/" in str(body.get("target", "")):
        specific = _psc_rule(call, body)
    elif scheme == "INTERNAL_MANAGED":
        specific = _proxy_rule(call, body)
    elif scheme == "INTERNAL":
        specific = _internal_rule(call, body)
    else:
        raise field_error(
            "loadBalancingScheme",
            scheme,
            "Supported here: INTERNAL_MANAGED, INTERNAL, or empty for Private Service Connect.",
        )
    _check_ip_free(call, path, specific["IPAddress"], specific["network"])
    labels = body.get("labels") or {}
    rule: Resource = {
        **base_fields(call, FORWARDING_RULE, path),
        "description": "",
        "IPProtocol": "TCP",
        "networkTier": "PREMIUM",
        **echo({k: v for k, v in body.items() if k not in ("portRange", "ports", "labels", "subnetwork")}),
        **specific,
        "labelFingerprint": ids.label_fingerprint(labels),
    }
    if labels:
        rule["labels"] = dict(labels)
    if not rule.get("loadBalancingScheme"):
        rule.pop("loadBalancingScheme", None)
    rule["selfLinkWithId"] = ids.self_link(f"{path.rsplit('/', 1)[0]}/{rule['id']}")
    refresh_fingerprint(rule)
    return rule


def rule_created(call: Call, path: str, rule: Resource) -> None:
    """on_create: recheck the IP at completion, then connect a PSC endpoint to its attachment."""
    _check_ip_free(call, path, str(rule["IPAddress"]), str(rule["network"]))
    if is_psc(rule):
        compute_psc_connections.connect(call, path, rule)


def rule_deleted(call: Call, path: str, rule: Resource) -> None:
    compute_psc_connections.disconnect(call, path)


# -- forwarding rule update methods ----------------------------------------------------------


async def patch_rule(call: Call) -> Any:
    """PATCH: the fingerprint is optional here (GCE docs); only a few fields may change."""
    rule = FORWARDING_RULE.get(call)
    path = FORWARDING_RULE.path(call, rule["name"])
    body = call.body if isinstance(call.body, dict) else {}
    if "fingerprint" in body:
        check_fingerprint(call, rule, path)
    changes = {}
    for key, value in echo(body).items():
        if key in _RULE_PATCHABLE:
            changes[key] = value
        elif key != "name" and _normal(value) != _normal(rule.get(key)):
            raise field_error(key, value, f"Field '{key}' cannot be changed by patch.")

    def apply() -> None:
        store_changes(call, path, changes)

    return call.compute_operation(operation_type="patch", target_path=path, apply=apply, target_id=rule["id"])


def _normal(value: Any) -> Any:
    return relative(value) if isinstance(value, str) and "/" in value else value


async def set_target(call: Call) -> Any:
    rule = FORWARDING_RULE.get(call)
    path = FORWARDING_RULE.path(call, rule["name"])
    if is_psc(rule) or rule.get("loadBalancingScheme") != "INTERNAL_MANAGED":
        raise field_error("target", rule.get("target", ""), "The target of this forwarding rule cannot be changed.")
    target = reference(call, call.body or {}, "target", "targetHttpProxies", regional=True)

    def apply() -> None:
        store_changes(call, path, {"target": url(target)})

    return call.compute_operation(operation_type="SetTarget", target_path=path, apply=apply, target_id=rule["id"])


async def set_labels(call: Call) -> Any:
    rule = FORWARDING_RULE.get(call)
    path = FORWARDING_RULE.path(call, rule["name"])
    body = call.body if isinstance(call.body, dict) else {}
    if not same_fingerprint(body.get("labelFingerprint"), rule["labelFingerprint"]):
        raise fingerprint_mismatch(path)
    labels = dict(body.get("labels") or {})

    def apply() -> None:
        rule.pop("labels", None)
        if labels:
            rule["labels"] = labels
        rule["labelFingerprint"] = ids.label_fingerprint(labels)

    return call.compute_operation(operation_type="setLabels", target_path=path, apply=apply, target_id=rule["id"])


def register(emu: GCPEmulator) -> None:
    """Routes for regional forwarding rules."""
    register_crud(
        emu,
        FORWARDING_RULE,
        build_rule,
        on_create=rule_created,
        on_delete=rule_deleted,
        aggregated=True,
        # Real regional PSC endpoints report these (terraform debug log, magic-modules#5031).
        insert_operation_type=lambda rule: "createRegionPscForwardingRule" if is_psc(rule) else "insert",
        delete_operation_type=lambda rule: "deleteRegionPscForwardingRule" if is_psc(rule) else "delete",
    )
    for verb, handler, permission in (
        ("setTarget", set_target, "setTarget"),
        ("setLabels", set_labels, "setLabels"),
    ):
        emu.route(
            "POST",
            FORWARDING_RULE.pattern(f"/{{name}}/{verb}"),
            handler,
            method_id=f"compute.forwardingRules.{verb}",
            permission=f"compute.forwardingRules.{permission}",
            mutating=True,
        )
    emu.route(
        "PATCH",
        FORWARDING_RULE.pattern("/{name}"),
        patch_rule,
        method_id="compute.forwardingRules.patch",
        permission="compute.forwardingRules.update",
        mutating=True,
    )
