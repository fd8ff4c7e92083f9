"""What every Compute collection shares: insert / get / list / delete (+ aggregated list).

A kind module calls ``register_crud`` with a ``build`` function that validates the request body
and returns the stored resource (raising GCPError for bad input), then adds its own update
methods (patch, setLabels, ...) with ``emu.route``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError, already_exists, in_use, invalid, not_found
from runnet.emulator.gcp.listing import compute_list, filter_items
from runnet.emulator.gcp.server import Call, GCPEmulator
from runnet.emulator.gcp.store import Resource, relative

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME_REGEX = "(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)"

Build = Callable[[Call, dict[str, Any], str], Resource]
"""(call, request body, relative path of the new resource) -> the resource to store."""
Render = Callable[[Call, Resource], Resource]
"""(call, stored resource) -> what a read returns: a copy with fields computed on read (``users``)."""
Users = Callable[[Call, str, Resource], list[str]]
"""(call, path, stored resource) -> paths of the resources using it, for "in use" delete checks."""
Hook = Callable[[Call, str, Resource], None]


@dataclass
class Collection:
    """One Compute collection: ``addresses`` under ``regions/{region}``, ``networks`` under ``global``."""

    collection: str
    kind: str
    regional: bool
    label: str
    """How GCP names the kind in messages (``address``, ``backend_service``)."""
    method_prefix: str
    """Discovery id prefix: ``compute.addresses``, ``compute.regionBackendServices``."""
    permission_prefix: str
    """IAM prefix: ``compute.addresses``, ``compute.regionBackendServices``."""

    def scope(self, call: Call) -> str:
        if self.regional:
            return f"projects/{call.project}/regions/{call.params['region']}"
        return f"projects/{call.project}/global"

    def path(self, call: Call, name: str) -> str:
        return f"{self.scope(call)}/{self.collection}/{name}"

    def pattern(self, suffix: str = "") -> str:
        base = f"regions/{{region}}/{self.collection}" if self.regional else f"global/{self.collection}"
        return base + suffix

    def get(self, call: Call, name: str | None = None) -> Resource:
        path = self.path(call, name or call.params["name"])
        resource = call.emu.store.get(path)
        if resource is None:
            raise not_found(path)
        return resource


def base_fields(call: Call, coll: Collection, name: str, path: str) -> Resource:
    """The server-filled fields every Compute resource has."""
    resource: Resource = {
        "kind": coll.kind,
        "id": ids.numeric_id(),
        "creationTimestamp": ids.compute_timestamp(),
        "name": name,
        "selfLink": ids.self_link(path),
    }
    if coll.regional:
        resource["region"] = ids.self_link(f"projects/{call.project}/regions/{call.params['region']}")
    return resource


def require_name(body: Any) -> str:
    if not isinstance(body, dict):
        raise invalid("Invalid value for field 'resource': a JSON object is required.")
    name = body.get("name")
    if not name:
        raise invalid(f"Invalid value for field 'resource.name': ''. Must be a match of regex '{_NAME_REGEX}'")
    if not NAME_RE.match(str(name)):
        raise invalid(f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex '{_NAME_REGEX}'")
    return str(name)


def resolve(call: Call, ref: str, collection: str, *, regional: bool) -> str:
    """A reference (name, relative path or URL) to a relative path, defaulting project and region."""
    if "/" not in ref:
        if regional:
            return f"projects/{call.project}/regions/{call.params['region']}/{collection}/{ref}"
        return f"projects/{call.project}/global/{collection}/{ref}"
    path = relative(ref)
    if path.startswith(("global/", "regions/")):
        # Partial paths (``regions/r/subnetworks/s``) are accepted by GCP and mean this project.
        return f"projects/{call.project}/{path}"
    return path


def must_exist(call: Call, path: str, field: str) -> Resource:
    """The referenced resource, or the 400/404 GCP gives for a dangling reference in ``field``."""
    resource = call.emu.store.get(path)
    if resource is None:
        raise GCPError(
            404 if field else 400,
            "notFound",
            f"The resource '{path}' was not found",
        )
    return resource


def register_crud(
    emu: GCPEmulator,
    coll: Collection,
    build: Build,
    *,
    delete_in_use_sync: bool = True,
    on_delete: Hook | None = None,
    on_create: Hook | None = None,
    render: Render | None = None,
    users: Users | None = None,
    aggregated: bool = False,
    insert_operation_type: str | Callable[[Resource], str] = "insert",
    delete_operation_type: str | Callable[[Resource], str] = "delete",
) -> None:
    """insert, get, list and delete for ``coll``; "in use" delete errors sync (400) or in the operation.

    ``on_create`` runs when the insert operation completes, before the resource is stored (checks
    that must see the state at that moment, such as IP conflicts; it may raise GCPError to fail
    the operation). ``render`` turns a stored resource into what reads return; ``users`` replaces
    the generic reference scan for "in use" checks.
    """
    show = render or (lambda _call, resource: resource)

    def users_of(call: Call, path: str, resource: Resource) -> list[str]:
        if users is not None:
            return users(call, path, resource)
        return call.emu.store.users_of(path)

    async def insert(call: Call) -> Any:
        name = require_name(call.body)
        path = coll.path(call, name)
        if call.emu.store.exists(path):
            raise already_exists(path)
        resource = build(call, copy.deepcopy(call.body), path)
        call.emu.store.reserve(path)

        def apply() -> None:
            if on_create is not None:
                on_create(call, path, resource)
            call.emu.store.put(path, resource)

        def undo_reservation(op: Any) -> None:
            if op.error is not None:
                call.emu.store.release(path)

        body = call.compute_operation(
            operation_type=_op_type(insert_operation_type, resource),
            target_path=path,
            apply=apply,
            target_id=resource["id"],
        )
        op = call.emu.operations.get(_op_path(body))
        if op is not None:
            if op.done:
                undo_reservation(op)
            else:
                op.on_done.append(undo_reservation)
        return body

    async def get(call: Call) -> Any:
        return show(call, coll.get(call))

    async def list_(call: Call) -> Any:
        collection = f"{coll.scope(call)}/{coll.collection}"
        items = [show(call, r) for r in call.emu.store.children(collection)]
        return compute_list(call, f"{coll.kind}List", items, collection)

    async def delete(call: Call) -> Any:
        resource = coll.get(call)
        path = coll.path(call, call.params["name"])
        using = users_of(call, path, resource)
        if using and delete_in_use_sync:
            raise in_use(coll.label, path, using[0])

        def apply() -> None:
            # Checked again at completion: something may have started using it meanwhile.
            still = users_of(call, path, resource)
            if still:
                raise in_use(coll.label, path, still[0])
            if on_delete is not None:
                on_delete(call, path, resource)
            call.emu.store.delete(path)

        return call.compute_operation(
            operation_type=_op_type(delete_operation_type, resource),
            target_path=path,
            apply=apply,
            target_id=resource["id"],
        )

    mp, pp = coll.method_prefix, coll.permission_prefix
    emu.route("POST", coll.pattern(), insert, method_id=f"{mp}.insert", permission=f"{pp}.create", mutating=True)
    emu.route("GET", coll.pattern("/{name}"), get, method_id=f"{mp}.get", permission=f"{pp}.get", mutating=False)
    emu.route("GET", coll.pattern(), list_, method_id=f"{mp}.list", permission=f"{pp}.list", mutating=False)
    emu.route(
        "DELETE",
        coll.pattern("/{name}"),
        delete,
        method_id=f"{mp}.delete",
        permission=f"{pp}.delete",
        mutating=True,
    )
    if aggregated:

        async def aggregated_list(call: Call) -> Any:
            return aggregated_body(call, coll, render)

        emu.route(
            "GET",
            f"aggregated/{coll.collection}",
            aggregated_list,
            method_id=f"{mp}.aggregatedList",
            permission=f"{pp}.list",
            mutating=False,
        )


def aggregated_body(call: Call, coll: Collection, render: Render | None = None) -> dict[str, Any]:
    """``items: {"regions/<r>": {<collection>: [...]}}``, per region that has any."""
    prefix = f"projects/{call.project}/regions/"
    found: dict[str, list[Resource]] = {}
    for collection in call.emu.store.collections(prefix):
        parts = collection.split("/")
        if len(parts) == 5 and parts[4] == coll.collection:
            found[f"regions/{parts[3]}"] = call.emu.store.children(collection)
    scopes: dict[str, list[Resource]] = {}
    for scope, resources in found.items():
        # The filter (``name = x``) applies to every scope's items, as GCP's does.
        kept = filter_items(resources, call.query.get("filter", ""))
        if kept:
            scopes[scope] = [render(call, r) if render else r for r in kept]
    return {
        "kind": f"{coll.kind}AggregatedList",
        "id": f"projects/{call.project}/aggregated/{coll.collection}",
        "selfLink": ids.self_link(f"projects/{call.project}/aggregated/{coll.collection}"),
        "items": {scope: {coll.collection: items} for scope, items in sorted(scopes.items())},
    }


def _op_type(kind: str | Callable[[Resource], str], resource: Resource) -> str:
    """Operation types may depend on the resource (a PSC forwarding rule is not a plain insert)."""
    return kind if isinstance(kind, str) else kind(resource)


def _op_path(body: dict[str, Any]) -> str:
    return relative(body["selfLink"])


def check_fingerprint(call: Call, resource: Resource, path: str) -> None:
    """Updates of fingerprinted kinds need the current fingerprint: 412 conditionNotMet otherwise."""
    from runnet.emulator.gcp.errors import fingerprint_mismatch

    sent = (call.body or {}).get("fingerprint")
    if not same_fingerprint(sent, resource.get("fingerprint")):
        raise fingerprint_mismatch(path)


def same_fingerprint(sent: Any, current: Any) -> bool:
    """Fingerprints are bytes: gcloud (apitools) sends them back in URL-safe base64 (``-``/``_``)."""
    if isinstance(sent, str):
        sent = sent.replace("-", "+").replace("_", "/")
    return bool(sent == current)


def refresh_fingerprint(resource: Resource) -> None:
    body = {k: v for k, v in resource.items() if k != "fingerprint"}
    resource["fingerprint"] = ids.fingerprint(body)


def store_changes(call: Call, path: str, changes: Resource) -> None:
    """An operation's completion: the stored body as it is now, with ``changes``, a new fingerprint, stored anew
    (never changed in place: the store indexes references at each put)."""
    latest = call.emu.store.get(path)
    if latest is None:
        raise not_found(path)
    updated = {**latest, **changes}
    refresh_fingerprint(updated)
    call.emu.store.put(path, updated)


def url(path: str) -> str:
    return ids.self_link(path)
