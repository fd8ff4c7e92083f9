"""Cloud Routers: insert/get/list/delete, PATCH (merge), PUT (replace) and the NAT runtime views.

The runtime views are getRouterStatus, getNatIpInfo and getNatMappingInfo (``compute_nat_status``).

Routers have no fingerprint, so PATCH has no optimistic lock (NOTES.md section 7). PATCH merges
top-level fields: a field that is present replaces the stored one, ``nats`` included (the whole
list); ``"nats": []`` clears it; output-only fields that gcloud sends back are ignored. NAT entries
are validated and defaulted by ``compute_nat``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.compute_common import Collection, base_fields, register_crud
from runnet.emulator.gcp.compute_nat import check_nats, clean
from runnet.emulator.gcp.compute_nat_status import nat_ip_info, nat_status
from runnet.emulator.gcp.compute_network import field_error, referenced
from runnet.emulator.gcp.errors import not_found
from runnet.emulator.gcp.store import Resource, relative

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator, Handler

ROUTERS = Collection("routers", "compute#router", True, "router", "compute.routers", "compute.routers")
OUTPUT_ONLY = frozenset({"kind", "id", "selfLink", "creationTimestamp", "region"})
IDENTITY = ("kind", "id", "creationTimestamp", "name", "selfLink", "region", "network")


def _check_identity(router: Resource, body: dict[str, Any]) -> None:
    """``name`` and ``network`` may be sent back (gcloud does) but not changed."""
    if body.get("name", router["name"]) != router["name"]:
        raise field_error("resource.name", body["name"], "The name of a router cannot be changed.")
    network = body.get("network")
    if network is not None and relative(str(network)) != relative(router["network"]):
        raise field_error("resource.network", network, "The network of a router cannot be changed.")


def _bgp(value: dict[str, Any]) -> dict[str, Any]:
    bgp: dict[str, Any] = clean(value)
    bgp.setdefault("advertiseMode", "DEFAULT")
    bgp.setdefault("keepaliveInterval", 20)
    return bgp


def updated_router(call: Call, current: Resource, body: Any, *, replace: bool) -> Resource:
    """``current`` after a PATCH (merge) or PUT (replace) with ``body``, validated."""
    sent = {k: v for k, v in (body or {}).items() if k not in OUTPUT_ONLY and v is not None}
    _check_identity(current, sent)
    if replace:
        router = {k: current[k] for k in IDENTITY}
        router["encryptedInterconnectRouter"] = current.get("encryptedInterconnectRouter", False)
    else:
        router = dict(current)
    for key, value in sent.items():
        if key in ("name", "network", "encryptedInterconnectRouter"):
            continue
        if value == []:
            router.pop(key, None)  # an explicit empty list clears the field
        elif key == "nats":
            router["nats"] = check_nats(call, router, value, current.get("nats", []))
        elif key == "bgp":
            router["bgp"] = _bgp(value)
        else:
            router[key] = clean(value)
    return router


def build_router(call: Call, body: dict[str, Any], path: str) -> Resource:
    network = referenced(call, body.get("network"), "networks", "resource.network", regional=False)
    router = base_fields(call, ROUTERS, body["name"], path)
    router["network"] = ids.self_link(network)
    router["encryptedInterconnectRouter"] = bool(body.get("encryptedInterconnectRouter", False))
    return updated_router(call, router, body, replace=False)


def _change(operation_type: str, replace: bool) -> Handler:
    """A PATCH or PUT handler: validate now (400s are synchronous), apply when the operation completes."""

    async def handler(call: Call) -> Any:
        current = ROUTERS.get(call)
        path = ROUTERS.path(call, call.params["name"])
        updated_router(call, current, call.body, replace=replace)

        def apply() -> None:
            # Recomputed from the router as it is then, so concurrent changes are not lost.
            latest = call.emu.store.get(path)
            if latest is None:
                raise not_found(path)
            call.emu.store.put(path, updated_router(call, latest, call.body, replace=replace))

        return call.compute_operation(
            operation_type=operation_type, target_path=path, apply=apply, target_id=current["id"]
        )

    return handler


async def get_router_status(call: Call) -> Any:
    router = ROUTERS.get(call)
    path = ROUTERS.path(call, call.params["name"])
    result: dict[str, Any] = {"network": router["network"]}
    statuses = [nat_status(call.emu, path, nat) for nat in router.get("nats", [])]
    if statuses:
        result["natStatus"] = statuses
    answer = {"kind": "compute#routerStatusResponse", "result": result}
    if path in call.emu.extra.get("router_status_lag", ()):
        # Test knob: GCP's status trails the configuration; while the router's path is in this set, every
        # answer is the one given when it was put there (the first read after).
        frozen: dict[str, Any] = call.emu.extra.setdefault("router_status_frozen", {})
        return frozen.setdefault(path, answer)
    call.emu.extra.get("router_status_frozen", {}).pop(path, None)
    return answer


def _nats(call: Call, router: Resource) -> list[dict[str, Any]]:
    """The router's NATs, or only the one ``natName`` names (none when no NAT has that name)."""
    nats: list[dict[str, Any]] = router.get("nats", [])
    wanted = call.query.get("natName")
    return [n for n in nats if n["name"] == wanted] if wanted else nats


async def get_nat_ip_info(call: Call) -> Any:
    router = ROUTERS.get(call)
    path = ROUTERS.path(call, call.params["name"])
    result = [nat_ip_info(call.emu, path, nat) for nat in _nats(call, router)]
    return {"result": result} if result else {}


async def get_nat_mapping_info(call: Call) -> Any:
    """Per-VM port mappings: none, since the emulator runs no VM instances (paging params accepted)."""
    ROUTERS.get(call)  # 404 for a missing router
    path = f"{ROUTERS.path(call, call.params['name'])}/getNatMappingInfo"
    return {"kind": "compute#vmEndpointNatMappingsList", "id": path, "selfLink": ids.self_link(path)}


def register(emu: GCPEmulator) -> None:
    """Routers (with their Cloud NATs)."""
    register_crud(emu, ROUTERS, build_router, aggregated=True)
    emu.route(
        "PATCH",
        ROUTERS.pattern("/{name}"),
        _change("patch", replace=False),
        method_id="compute.routers.patch",
        permission="compute.routers.update",
        mutating=True,
    )
    emu.route(
        "PUT",
        ROUTERS.pattern("/{name}"),
        _change("update", replace=True),
        method_id="compute.routers.update",
        permission="compute.routers.update",
        mutating=True,
    )
    emu.route(
        "GET",
        ROUTERS.pattern("/{name}/getRouterStatus"),
        get_router_status,
        method_id="compute.routers.getRouterStatus",
        permission="compute.routers.get",
        mutating=False,
    )
    for method, handler in (("getNatIpInfo", get_nat_ip_info), ("getNatMappingInfo", get_nat_mapping_info)):
        emu.route(
            "GET",
            ROUTERS.pattern(f"/{{name}}/{method}"),
            handler,
            method_id=f"compute.routers.{method}",
            permission="compute.routers.get",
            mutating=False,
        )
