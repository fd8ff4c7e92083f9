"""Operation endpoints: Compute's regional, global and aggregated operations, Cloud Run v2's LROs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.listing import compute_list, filter_items
from runnet.emulator.gcp.operations import Operation

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator


def register(emu: GCPEmulator) -> None:
    """The operations endpoints of Compute (regional, global, aggregated) and Cloud Run v2."""
    for scope, label in (("regions/{region}", "regionOperations"), ("global", "globalOperations")):
        base, prefix = f"{scope}/operations", f"compute.{label}"
        for method, pattern, handler, name, permission in (
            ("GET", f"{base}/{{operation}}", _op_get, "get", "get"),
            ("POST", f"{base}/{{operation}}/wait", _op_wait, "wait", "get"),
            ("DELETE", f"{base}/{{operation}}", _op_delete, "delete", "delete"),
            ("GET", base, _op_list, "list", "list"),
        ):
            method_id, needs = f"{prefix}.{name}", f"{prefix}.{permission}"
            emu.route(method, pattern, handler, method_id=method_id, permission=needs, mutating=False)
    emu.route(
        "GET",
        "aggregated/operations",
        _op_aggregated,
        method_id="compute.globalOperations.aggregatedList",
        permission="compute.globalOperations.list",
        mutating=False,
    )
    run_ops = "run.projects.locations.operations"
    for method, pattern, handler, name, permission in (
        ("GET", "operations/{operation}", _op_get, "get", "get"),
        ("POST", "operations/{operation}:wait", _op_wait, "wait", "get"),
        ("DELETE", "operations/{operation}", _op_delete, "delete", "delete"),
        ("GET", "operations", _op_list, "list", "list"),
    ):
        method_id, needs = f"{run_ops}.{name}", f"run.operations.{permission}"
        emu.route(method, pattern, handler, method_id=method_id, permission=needs, mutating=False)


def _op_path(call: Call) -> str:
    if call.route.api == "run":
        return f"projects/{call.project}/locations/{call.region}/operations/{call.params['operation']}"
    region = call.params.get("region")
    scope = f"regions/{region}" if region else "global"
    return f"projects/{call.project}/{scope}/operations/{call.params['operation']}"


def _find_op(call: Call) -> Operation:
    path = _op_path(call)
    op = call.emu.operations.get(path)
    if op is None:
        if call.route.api == "run":
            raise GCPError(404, "notFound", f"Operation {path} not found.")
        raise GCPError(404, "notFound", f"The resource '{path}' was not found")
    return op


async def _op_get(call: Call) -> Any:
    return call.emu.render(_find_op(call))


async def _op_wait(call: Call) -> Any:
    op = _find_op(call)
    timeout = 120.0
    if call.route.api == "run" and isinstance(call.body, dict) and "timeout" in call.body:
        timeout = float(str(call.body["timeout"]).rstrip("s") or 120)
    await call.emu.operations.wait(op, timeout)
    return call.emu.render(op)


async def _op_delete(call: Call) -> Any:
    _find_op(call)
    call.emu.operations.delete(_op_path(call))
    return {}


async def _op_list(call: Call) -> Any:
    if call.route.api == "run":
        prefix = f"projects/{call.project}/locations/{call.region}/operations/"
        return {"operations": [call.emu.render(op) for op in call.emu.operations.under(prefix)]}
    region = call.params.get("region")
    scope = f"regions/{region}" if region else "global"
    prefix = f"projects/{call.project}/{scope}/operations/"
    kind = "compute#operationList"
    ops = [call.emu.render(op) for op in call.emu.operations.under(prefix)]
    return compute_list(call, kind, ops, prefix.rstrip("/"))


async def _op_aggregated(call: Call) -> Any:
    """The project's Compute operations by scope: ``global`` and ``regions/<r>`` (scopes with any)."""
    scopes: dict[str, list[dict[str, Any]]] = {}
    for op in call.emu.operations.under(f"projects/{call.project}/"):
        if op.api == "compute":
            parts = op.path.split("/")
            scope = "global" if parts[2] == "global" else f"regions/{parts[3]}"
            scopes.setdefault(scope, []).append(call.emu.render(op))
    expression = call.query.get("filter", "")
    scopes = {scope: kept for scope, ops in scopes.items() if (kept := filter_items(ops, expression))}
    collection = f"projects/{call.project}/aggregated/operations"
    return {
        "kind": "compute#operationAggregatedList",
        "id": collection,
        "selfLink": ids.self_link(collection),
        "items": {scope: {"operations": ops} for scope, ops in sorted(scopes.items())},
    }
