"""Regional load balancing: serverless NEGs, backend services, URL maps and target HTTP proxies.

Shapes and defaults follow the real-GCP recordings (lbrouteextension, regionalcomputeurlmap,
cloudrun NEG logs). Also holds helpers that compute_psc shares: request echoing, the
fingerprint-checked patch/update pair, subnet lookups and internal IP allocation.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

from runnet.emulator.gcp.compute_common import (
    Build,
    Collection,
    Render,
    aggregated_body,
    check_fingerprint,
    must_exist,
    refresh_fingerprint,
    register_crud,
    resolve,
    store_changes,
    url,
)
from runnet.emulator.gcp.compute_common import base_fields as _base_fields
from runnet.emulator.gcp.errors import GCPError, invalid
from runnet.emulator.gcp.server import Call, GCPEmulator
from runnet.emulator.gcp.store import Resource, relative

NEG = Collection(
    "networkEndpointGroups",
    "compute#networkEndpointGroup",
    True,
    "network_endpoint_group",
    "compute.regionNetworkEndpointGroups",
    "compute.regionNetworkEndpointGroups",
)
BACKEND_SERVICE = Collection(
    "backendServices",
    "compute#backendService",
    True,
    "backend_service",
    "compute.regionBackendServices",
    "compute.regionBackendServices",
)
URL_MAP = Collection("urlMaps", "compute#urlMap", True, "url_map", "compute.regionUrlMaps", "compute.regionUrlMaps")
HTTP_PROXY = Collection(
    "targetHttpProxies",
    "compute#targetHttpProxy",
    True,
    "target_http_proxy",
    "compute.regionTargetHttpProxies",
    "compute.regionTargetHttpProxies",
)

# Server-owned fields: never taken from a request body (clients such as gcloud echo them back).
OUTPUT_ONLY = frozenset(
    {
        "kind",
        "id",
        "creationTimestamp",
        "selfLink",
        "selfLinkWithId",
        "region",
        "fingerprint",
        "labelFingerprint",
        "status",
        "size",
        "usedBy",
        "pscConnectionId",
        "pscConnectionStatus",
        "connectedEndpoints",
        "pscServiceAttachmentId",
        "producerForwardingRule",
    }
)
MANAGED_SCHEMES = ("INTERNAL_MANAGED", "EXTERNAL_MANAGED")
_BS_SCHEMES = (*MANAGED_SCHEMES, "INTERNAL")
_PROTOCOLS = ("GRPC", "H2C", "HTTP", "HTTP2", "HTTPS", "SSL", "TCP", "UDP", "UNSPECIFIED")
_SERVERLESS_TARGETS = ("cloudRun", "appEngine", "cloudFunction")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


# -- helpers shared with compute_psc ------------------------------------------------------------


def field_error(field: str, value: Any, why: str) -> GCPError:
    """GCE's usual 400: ``Invalid value for field 'resource.X': 'V'. <why>``."""
    return invalid(f"Invalid value for field 'resource.{field}': '{value}'. {why}")


def echo(body: dict[str, Any]) -> dict[str, Any]:
    """The writable fields of a request, as GCP stores them (empty lists and nulls are dropped)."""
    return {k: copy.deepcopy(v) for k, v in body.items() if k not in OUTPUT_ONLY and v is not None and v != []}


def base_fields(call: Call, coll: Collection, path: str) -> Resource:
    return _base_fields(call, coll, path.rsplit("/", 1)[1], path)


def reference(call: Call, body: dict[str, Any], field: str, collection: str, *, regional: bool) -> str:
    """The relative path a reference field names; the thing must exist (404 otherwise, as on GCE)."""
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise field_error(field, value or "", f"The {field} field is required.")
    path = resolve(call, value, collection, regional=regional)
    must_exist(call, path, field)
    return path


def _updated(call: Call, coll: Collection, build: Build, *, replace: bool, keep: tuple[str, ...]) -> Resource:
    """The resource after a PATCH (merge) or PUT (replace), validated like an insert."""
    old = coll.get(call)
    check_fingerprint(call, old, coll.path(call, old["name"]))
    # Merge patch: a field sent as [] or null clears it (echo drops those after merging).
    sent = {k: v for k, v in (call.body if isinstance(call.body, dict) else {}).items() if k not in OUTPUT_ONLY}
    body = echo({**sent, "name": old["name"]} if replace else {**echo(old), **sent, "name": old["name"]})
    new = build(call, body, coll.path(call, old["name"]))
    for field in ("id", "creationTimestamp", *keep):
        new[field] = old[field]
    refresh_fingerprint(new)
    return new


def register_updates(
    emu: GCPEmulator,
    coll: Collection,
    build: Build,
    *,
    methods: tuple[str, ...] = ("PATCH", "PUT"),
    keep: tuple[str, ...] = (),
    after: Callable[[Call, str, Resource], None] | None = None,
) -> None:
    """patch (merge) and update (replace), both requiring the current fingerprint (412 otherwise).

    ``keep`` names server-assigned fields that survive an update (besides id and creation time);
    ``after`` runs once the new version is stored (when the operation completes).
    """

    def handler(replace: bool) -> Callable[[Call], Any]:
        async def update(call: Call) -> Any:
            new = _updated(call, coll, build, replace=replace, keep=keep)
            path = coll.path(call, new["name"])

            def apply() -> None:
                call.emu.store.put(path, new)
                if after is not None:
                    after(call, path, new)

            kind = "update" if replace else "patch"
            return call.compute_operation(operation_type=kind, target_path=path, apply=apply, target_id=new["id"])

        return update

    for method in methods:
        verb = "update" if method == "PUT" else "patch"
        emu.route(
            method,
            coll.pattern("/{name}"),
            handler(method == "PUT"),
            method_id=f"{coll.method_prefix}.{verb}",
            permission=f"{coll.permission_prefix}.update",
            mutating=True,
        )


def register_aggregated(emu: GCPEmulator, coll: Collection, kind: str, render: Render | None = None) -> None:
    """``aggregated/<collection>``: what ``gcloud compute <kind> list`` reads (regional scopes here)."""
    prefix = "compute." + coll.collection

    async def aggregated(call: Call) -> Any:
        return {**aggregated_body(call, coll, render), "kind": kind}

    emu.route(
        "GET",
        f"aggregated/{coll.collection}",
        aggregated,
        method_id=f"{prefix}.aggregatedList",
        permission=f"{prefix}.list",
        mutating=False,
    )


def subnet_resources(call: Call, region: str) -> list[tuple[str, Resource]]:
    collection = f"projects/{call.project}/regions/{region}/subnetworks"
    return [(relative(s["selfLink"]), s) for s in call.emu.store.children(collection)]


def network_of(subnet: Resource) -> str:
    return relative(str(subnet.get("network", "")))


# -- serverless network endpoint groups --------------------------------------------------------


def build_neg(call: Call, body: dict[str, Any], path: str) -> Resource:
    kind = body.get("networkEndpointType", "GCE_VM_IP_PORT")
    if kind != "SERVERLESS":
        raise field_error(
            "networkEndpointType", kind, "Only SERVERLESS regional network endpoint groups are supported."
        )
    targets = [t for t in _SERVERLESS_TARGETS if t in body]
    if len(targets) != 1:
        raise invalid(
            "Invalid value for field 'resource': a serverless network endpoint group needs exactly one "
            f"of cloudRun, appEngine or cloudFunction, got {targets or 'none'}."
        )
    run = body.get("cloudRun")
    if run is not None and not (isinstance(run, dict) and (run.get("service") or run.get("urlMask"))):
        raise field_error("cloudRun", run, "Either cloudRun.service or cloudRun.urlMask must be set.")
    for field in ("network", "subnetwork", "networkEndpoints"):
        if field in body:
            raise field_error(field, body[field], "Not allowed for a serverless network endpoint group.")
    return {**base_fields(call, NEG, path), **echo(body), "size": 0}


async def list_network_endpoints(call: Call) -> Any:
    """A serverless NEG has no network endpoints (``size`` 0): the list is empty, ``items`` absent."""
    NEG.get(call)
    return {"kind": "compute#networkEndpointGroupsListNetworkEndpoints"}


# -- backend services ----------------------------------------------------------------------------


def _backend(call: Call, index: int, backend: Any, scheme: str) -> tuple[dict[str, Any], bool]:
    """A backend as stored, and whether its group is a serverless NEG."""
    where = f"backends[{index}]"
    if not isinstance(backend, dict):
        raise field_error(where, backend, "A backend must be an object.")
    path = resolve(call, str(backend.get("group", "")), "networkEndpointGroups", regional=True)
    neg = must_exist(call, path, f"{where}.group")
    out = {**echo(backend), "group": url(path)}
    serverless = neg.get("networkEndpointType") == "SERVERLESS"
    if not serverless:
        return out, False
    if scheme == "INTERNAL":
        raise invalid(
            "Invalid load balancing scheme for regional backend service with Serverless network endpoint group."
        )
    if path.split("/")[3] != call.params["region"]:
        raise field_error(f"{where}.group", url(path), "Serverless network endpoint group must be in the same region.")
    mode = out.setdefault("balancingMode", "UTILIZATION")
    if mode != "UTILIZATION":
        raise field_error(
            f"{where}.balancingMode", mode, "Balancing mode is not supported for Serverless network endpoint groups."
        )
    if "maxUtilization" in out:
        raise field_error(
            f"{where}.maxUtilization",
            out["maxUtilization"],
            "Max utilization is not supported for Serverless network endpoint groups.",
        )
    out.setdefault("capacityScaler", 1)
    return out, True


def _iap(sent: Any) -> dict[str, Any]:
    """IAP as GCE returns it: the client secret is never echoed, only its SHA-256."""
    iap = dict(sent) if isinstance(sent, dict) else {}
    secret = iap.pop("oauth2ClientSecret", None)
    iap.setdefault("enabled", False)
    iap.setdefault("oauth2ClientId", "")
    if secret is not None or "oauth2ClientSecretSha256" not in iap:
        iap["oauth2ClientSecretSha256"] = hashlib.sha256(str(secret or "").encode()).hexdigest()
    return iap


def build_backend_service(call: Call, body: dict[str, Any], path: str) -> Resource:
    scheme = body.get("loadBalancingScheme", "INTERNAL")
    if scheme not in _BS_SCHEMES:
        raise field_error("loadBalancingScheme", scheme, f"Must be one of {', '.join(_BS_SCHEMES)}.")
    protocol = body.get("protocol", "HTTP" if scheme in MANAGED_SCHEMES else "TCP")
    if protocol not in _PROTOCOLS:
        raise field_error("protocol", protocol, f"Must be one of {', '.join(_PROTOCOLS)}.")
    backends = [_backend(call, i, b, scheme) for i, b in enumerate(body.get("backends") or [])]
    checks = [url(resolve(call, str(h), "healthChecks", regional=True)) for h in body.get("healthChecks") or []]
    if checks and any(serverless for _, serverless in backends):
        raise field_error(
            "healthChecks",
            checks[0],
            "A backend service cannot have a healthcheck with Serverless network endpoint group backends.",
        )
    for check in checks:
        must_exist(call, relative(check), "healthChecks")
    resource: Resource = {
        **base_fields(call, BACKEND_SERVICE, path),
        "description": "",
        "affinityCookieTtlSec": 0,
        "connectionDraining": {"drainingTimeoutSec": 0},
        "sessionAffinity": "NONE",
        "timeoutSec": 30,
        **echo(body),
        "loadBalancingScheme": scheme,
        "protocol": protocol,
        "iap": _iap(body.get("iap")),
    }
    if scheme in MANAGED_SCHEMES:
        resource.setdefault("port", 80)
        resource.setdefault("portName", "http")
    if backends:
        resource["backends"] = [b for b, _ in backends]
    if checks:
        resource["healthChecks"] = checks
    if "network" in body:
        resource["network"] = url(reference(call, body, "network", "networks", regional=False))
    refresh_fingerprint(resource)
    return resource


# -- URL maps -------------------------------------------------------------------------------------

_SERVICE_FIELDS = ("defaultService", "service", "backendService")


def _service_refs(call: Call, node: Any, where: str) -> Any:
    """Backend service references inside a URL map, checked and made full URLs (``tests`` stay as sent)."""
    if isinstance(node, list):
        return [_service_refs(call, item, f"{where}[{i}]") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "tests" and isinstance(value, list):
            out[key] = [{"description": "", **t} if isinstance(t, dict) else t for t in value]
        elif key in _SERVICE_FIELDS and isinstance(value, str):
            path = resolve(call, value, "backendServices", regional=True)
            must_exist(call, path, f"{where}.{key}")
            out[key] = url(path)
        else:
            out[key] = _service_refs(call, value, f"{where}.{key}")
    return out


def build_url_map(call: Call, body: dict[str, Any], path: str) -> Resource:
    if not any(body.get(k) for k in ("defaultService", "defaultRouteAction", "defaultUrlRedirect")):
        raise field_error(
            "defaultService", "", "One of defaultService, defaultRouteAction or defaultUrlRedirect is required."
        )
    resource: Resource = {**base_fields(call, URL_MAP, path), **_service_refs(call, echo(body), "resource")}
    refresh_fingerprint(resource)
    return resource


def render_url_map(call: Call, resource: Resource) -> Resource:
    """Adds ``status.quotaUsage``; ``units`` is a size heuristic (GCE's formula is not public)."""
    link = resource["selfLink"]
    proxies = {
        relative(p["selfLink"])
        for p in call.emu.store.children(relative(link).rsplit("/", 2)[0] + "/targetHttpProxies")
        if p.get("urlMap") == link
    }
    rules = call.emu.store.children(relative(link).rsplit("/", 2)[0] + "/forwardingRules")
    in_use = sum(1 for r in rules if relative(str(r.get("target", ""))) in proxies)
    units = 1 + len(str(resource.get("hostRules", ""))) // 40 + len(str(resource.get("pathMatchers", ""))) // 40
    return {**resource, "status": {"quotaUsage": {"forwardingRules": in_use, "units": str(units)}}}


async def validate_url_map(call: Call) -> Any:
    """``validate``: checks the URL map in the body the way insert would."""
    body = (call.body or {}).get("resource") or {}
    try:
        build_url_map(call, echo(body), URL_MAP.path(call, call.params["name"]))
    except GCPError as exc:
        return {"result": {"loadSucceeded": False, "loadErrors": [exc.message], "testPassed": False}}
    return {"result": {"loadSucceeded": True, "testPassed": True}}


# -- target HTTP proxies ----------------------------------------------------------------------


def build_http_proxy(call: Call, body: dict[str, Any], path: str) -> Resource:
    url_map = reference(call, body, "urlMap", "urlMaps", regional=True)
    resource: Resource = {**base_fields(call, HTTP_PROXY, path), **echo(body), "urlMap": url(url_map)}
    refresh_fingerprint(resource)
    return resource


async def set_url_map(call: Call) -> Any:
    proxy = HTTP_PROXY.get(call)
    path = HTTP_PROXY.path(call, proxy["name"])
    url_map = reference(call, call.body or {}, "urlMap", "urlMaps", regional=True)

    def apply() -> None:
        store_changes(call, path, {"urlMap": url(url_map)})

    return call.compute_operation(operation_type="setUrlMap", target_path=path, apply=apply, target_id=proxy["id"])


def register(emu: GCPEmulator) -> None:
    """Routes for regional NEGs, backend services, URL maps and target HTTP proxies."""
    register_crud(
        emu,
        NEG,
        build_neg,
        insert_operation_type="compute.regionNetworkEndpointGroups.insert",
        delete_operation_type="compute.regionNetworkEndpointGroups.delete",
    )
    register_aggregated(emu, NEG, "compute#networkEndpointGroupAggregatedList")
    emu.route(
        "POST",
        NEG.pattern("/{name}/listNetworkEndpoints"),
        list_network_endpoints,
        method_id="compute.regionNetworkEndpointGroups.listNetworkEndpoints",
        permission="compute.regionNetworkEndpointGroups.get",
        mutating=False,
    )
    register_crud(emu, BACKEND_SERVICE, build_backend_service)
    register_aggregated(emu, BACKEND_SERVICE, "compute#backendServiceAggregatedList")
    register_updates(emu, BACKEND_SERVICE, build_backend_service)
    register_crud(emu, URL_MAP, build_url_map, render=render_url_map)
    register_aggregated(emu, URL_MAP, "compute#urlMapsAggregatedList", render_url_map)
    register_updates(emu, URL_MAP, build_url_map)
    emu.route(
        "POST",
        URL_MAP.pattern("/{name}/validate"),
        validate_url_map,
        method_id="compute.regionUrlMaps.validate",
        permission="compute.regionUrlMaps.validate",
        mutating=False,
    )
    register_crud(emu, HTTP_PROXY, build_http_proxy)
    register_aggregated(emu, HTTP_PROXY, "compute#targetHttpProxyAggregatedList")
    emu.route(
        "POST",
        HTTP_PROXY.pattern("/{name}/setUrlMap"),
        set_url_map,
        method_id="compute.regionTargetHttpProxies.setUrlMap",
        permission="compute.regionTargetHttpProxies.setUrlMap",
        mutating=True,
    )
