"""Cloud Run Admin v2 services: create, get, list, patch, delete, and their IAM policies.

A Service is visible as soon as a write is accepted, ``reconciling`` and Ready PENDING; its
operation's completion deploys the revision (or fails it: Direct VPC egress references are
checked against the Compute store then) and settles the Service. Operation metadata is the
Service itself, as on Cloud Run. Enums are answered as integers when the caller asks with
``$alt=json;enum-encoding=int`` (google-cloud-run always does; its operation polls do not).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids, run_enums, run_iam
from runnet.emulator.gcp import run_model as model
from runnet.emulator.gcp.errors import GCPError, run_not_found
from runnet.emulator.gcp.store import Resource

if TYPE_CHECKING:
    from runnet.emulator.gcp.operations import Operation
    from runnet.emulator.gcp.server import Call, GCPEmulator, Handler

Settle = Callable[[], tuple[Resource, GCPError | None]]
"""Completes an operation: the Service to report, and the error that fails the operation, if any."""

SERVICE = "services/{service:[^/:]+}"
METHODS = "run.projects.locations.services"


def register(emu: GCPEmulator) -> None:
    """Add this kind's routes."""
    routes: list[tuple[str, str, Handler, str, str, bool]] = [
        ("POST", "services", create, "create", "run.services.create", True),
        ("GET", "services", list_services, "list", "run.services.list", False),
        ("GET", SERVICE, get, "get", "run.services.get", False),
        ("PATCH", SERVICE, update, "patch", "run.services.update", True),
        ("DELETE", SERVICE, delete, "delete", "run.services.delete", True),
    ]
    for method, pattern, handler, name, permission, mutating in routes:
        emu.route(
            method,
            pattern,
            handler,
            method_id=f"{METHODS}.{name}",
            permission=permission,
            mutating=mutating,
        )
    run_iam.register(emu, _existing)


# -- handlers ---------------------------------------------------------------------------------


async def create(call: Call) -> Any:
    service_id = call.query.get("serviceId", "")
    return start_create(call, service_id, model.request_body(call.body))


def start_create(call: Call, service_id: str, body: Resource) -> Any:
    """Create the Service ``service_id`` from request fields; its operation (v1 creates share it)."""
    model.check_service_id(service_id)
    path = _path(call, service_id)
    if call.emu.store.exists(path):
        raise GCPError(409, "alreadyExists", f"Resource '{service_id}' already exists.", status="ALREADY_EXISTS")
    return _create(call, path, body)


async def get(call: Call) -> Any:
    return _answer(call, _current(call))


async def list_services(call: Call) -> Any:
    if call.region == "-":
        prefix = f"projects/{call.project}/locations/"
        found = [r for p, r in call.emu.store.items() if p.startswith(prefix) and _is_service(p)]
    else:
        found = call.emu.store.children(f"projects/{call.project}/locations/{call.region}/services")
    start, size = _number(call, "pageToken"), _number(call, "pageSize") or len(found) or 1
    body: dict[str, Any] = {}
    if found[start : start + size]:
        body["services"] = [_answer(call, s) for s in found[start : start + size]]
    if start + size < len(found):
        body["nextPageToken"] = str(start + size)
    return body


async def update(call: Call) -> Any:
    body = model.request_body(call.body)
    return start_update(call, body, etag=(call.body or {}).get("etag"), mask=call.query.get("updateMask", ""))


def start_update(call: Call, body: Resource, *, etag: Any, mask: str = "") -> Any:
    """Update the Service the call names with request fields (all of them, or the mask's)."""
    path = _path(call, call.params["service"])
    current = call.emu.store.get(path)
    if current is None:
        if not _flag(call, "allowMissing"):
            raise run_not_found(path)
        model.check_service_id(call.params["service"])
        return _create(call, path, body)
    _check_etag(current, etag)
    new = _merged(current, body, mask)
    model.apply_defaults(new, call.project)
    model.check_vpc_access(new["template"])
    model.resolve_interfaces(call.emu.store, call.project, call.region, new["template"])
    revision = _next_revision(call, current, new)
    if _spec(new) != _spec(current) or revision:
        new["generation"] = str(int(current["generation"]) + 1)
        model.touch(new, model.now())
    model.pending(new)
    if _flag(call, "validateOnly"):
        return _preview(call, new)
    call.emu.store.put(path, new)
    return _operate(call, new, _deploy(call, path, new["generation"], revision), _abort(call, path))


def _next_revision(call: Call, current: Resource, new: Resource) -> str | None:
    """The revision an update creates: only when the template changed (or one is forced)."""
    # No latestCreatedRevision yet: the create is still running, and this write supersedes it.
    first = "latestCreatedRevision" not in current
    if not (first or new["template"] != current["template"] or _flag(call, "forceNewRevision")):
        return None
    revision = model.new_revision(new, _revision_count(call, new["name"]) + 1)
    if revision == current.get("latestCreatedRevision"):
        short = revision.rsplit("/", 1)[-1]
        message = f"Revision named '{short}' with different configuration already exists."
        raise GCPError(409, "alreadyExists", message, status="ALREADY_EXISTS")
    return revision


async def delete(call: Call) -> Any:
    current = _current(call)
    path = current["name"]
    _check_etag(current, call.query.get("etag"))
    at = model.now()
    deleting = copy.deepcopy(current)
    deleting["generation"] = str(int(current["generation"]) + 1)
    model.touch(deleting, at)
    deleting["deleteTime"] = ids.run_timestamp(at)
    deleting["expireTime"] = ids.run_timestamp(at + model.RETENTION)
    model.pending(deleting)
    if _flag(call, "validateOnly"):
        return _preview(call, deleting)
    call.emu.store.put(path, deleting)

    def settle() -> tuple[Resource, GCPError | None]:
        final = copy.deepcopy(call.emu.store.get(path) or deleting)
        done_at = model.now()
        final["observedGeneration"] = final["generation"]
        model.touch(final, done_at)
        condition = {"type": "Ready", "state": "CONDITION_SUCCEEDED"}
        final["terminalCondition"] = {**condition, "lastTransitionTime": ids.run_timestamp(done_at)}
        final.pop("reconciling", None)
        call.emu.store.delete(path)
        run_iam.drop(call.emu, path)
        _revisions(call).pop(path, None)
        return final, None

    def restore(_: str) -> None:
        call.emu.store.put(path, current)

    return _operate(call, deleting, settle, restore)


# -- create and operations --------------------------------------------------------------------


def _create(call: Call, path: str, body: Resource) -> Any:
    model.check_vpc_access(body.get("template") or {})
    at = model.now()
    service: Resource = {"name": path, "uid": ids.uuid4(), "generation": "1", **body}
    service["createTime"] = ids.run_timestamp(at)
    service["creator"] = model.CALLER
    model.touch(service, at)
    model.apply_defaults(service, call.project)
    model.resolve_interfaces(call.emu.store, call.project, call.region, service["template"])
    # The real create's first metadata has no ingress, even when the request set it.
    ingress = service.pop("ingress")
    model.pending(service)
    if _flag(call, "validateOnly"):
        return _preview(call, {**service, "ingress": ingress})
    call.emu.store.put(path, service)
    revision = model.new_revision(service, 1)
    deploy = _deploy(call, path, "1", revision, ingress=ingress)
    return _operate(call, service, deploy, _abort(call, path, ingress))


def _revisions(call: Call) -> dict[str, int]:
    """Revisions created per service: they are numbered (``-00002-``) even when named."""
    return call.emu.extra.setdefault("run.revisions", {})  # type: ignore[no-any-return]


def _revision_count(call: Call, path: str) -> int:
    return _revisions(call).get(path, 0)


def _deploy(call: Call, path: str, generation: str, revision: str | None, ingress: str = "") -> Settle:
    """Completing a create or update: deploy the revision, or fail it."""
    store = call.emu.store

    def settle() -> tuple[Resource, GCPError | None]:
        stored = store.get(path)
        if stored is None or stored["generation"] != generation:
            # A later write superseded this one: its own operation settles the Service.
            return copy.deepcopy(stored or {"name": path}), None
        service = copy.deepcopy(stored)
        if ingress:
            service["ingress"] = ingress
        if revision:
            service["latestCreatedRevision"] = revision
            _revisions(call)[path] = _revision_count(call, path) + 1
        at = model.now()
        problem = model.resolve_interfaces(store, call.project, call.region, service["template"])
        error = None
        if problem is None:
            model.ready(service, at, call.project, call.region)
        else:
            reason, detail = problem
            short = service.get("latestCreatedRevision", "").rsplit("/", 1)[-1]
            message = f"Revision '{short}' is not ready and cannot serve traffic. {detail}"
            model.failed(service, at, message, reason)
            error = GCPError(400, "failedPrecondition", message, status="FAILED_PRECONDITION")
        store.put(path, service)
        return service, error

    return settle


def _abort(call: Call, path: str, ingress: str = "") -> Callable[[str], None]:
    """When an operation fails without settling (an injected fault): the Service reads as failed."""

    def abort(message: str) -> None:
        service = copy.deepcopy(call.emu.store.get(path))
        if service is not None:
            if ingress:
                service["ingress"] = ingress
            model.failed(service, model.now(), message, "INTERNAL")
            call.emu.store.put(path, service)

    return abort


def _operate(call: Call, service: Resource, settle: Settle, abort: Callable[[str], None]) -> Any:
    """Start the Service's operation; its metadata follows the Service until it is done."""
    metadata = model.typed(service)
    settled = False

    def apply() -> Resource:
        nonlocal settled
        settled = True
        final, error = settle()
        metadata.clear()
        metadata.update(model.typed(final))
        if error is not None:
            raise error
        return model.typed(final)

    def after(op: Operation) -> None:
        if op.error is not None and not settled:
            abort(op.error.message)
            metadata.clear()
            metadata.update(model.typed(call.emu.store.get(service["name"]) or service))

    body = call.run_operation(metadata=metadata, apply=apply)
    op = call.emu.operations.get(body["name"])
    if op is not None and op.done:
        after(op)
        body = call.emu.render(op)
    elif op is not None:
        op.on_done.append(after)
    return _answer_operation(call, body)


def _preview(call: Call, service: Resource) -> Any:
    """validateOnly: an operation reporting what would be written; nothing is stored."""
    preview = model.typed(service)
    return _answer_operation(call, call.run_operation(metadata=preview, apply=lambda: preview))


# -- helpers ----------------------------------------------------------------------------------


def _path(call: Call, service_id: str) -> str:
    return f"projects/{call.project}/locations/{call.region}/services/{service_id}"


def _current(call: Call) -> Resource:
    path = _path(call, call.params["service"])
    service = call.emu.store.get(path)
    if service is None:
        raise run_not_found(path)
    return service


def _existing(call: Call) -> str:
    return str(_current(call)["name"])


def _is_service(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 6 and parts[4] == "services"


def _number(call: Call, name: str) -> int:
    value = call.query.get(name) or "0"
    if not value.isdigit():
        raise model.invalid_argument(name, f"Invalid value '{value}'.")
    return int(value)


def _flag(call: Call, name: str) -> bool:
    return call.query.get(name, "").lower() in ("true", "1")


def _check_etag(current: Resource, sent: Any) -> None:
    """A stale etag is ABORTED (409), as AIP-154 specifies for etag mismatches."""
    if sent and sent != current.get("etag"):
        message = f"The etag '{sent}' does not match the current etag of the Service: it was modified."
        raise GCPError(409, "aborted", message, status="ABORTED")


def _merged(current: Resource, body: Resource, mask: str) -> Resource:
    """The Service after the update: the request replaces every settable field, or only the mask's."""
    new = copy.deepcopy(current)
    paths = [p.strip() for p in mask.split(",") if p.strip()]
    if not paths or paths == ["*"]:
        for key in [k for k in new if k not in model.OUTPUT_ONLY]:
            del new[key]
        new.update(copy.deepcopy(body))
        return new
    for mask_path in paths:
        keys = [_camel(k) for k in mask_path.split(".")]
        if keys[0] not in model.OUTPUT_ONLY:
            _copy_path(body, new, keys)
    return new


def _copy_path(source: Resource, target: Resource, keys: list[str]) -> None:
    for key in keys[:-1]:
        child = source.get(key)
        source = child if isinstance(child, dict) else {}
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise model.invalid_argument("update_mask", f"'{'.'.join(keys)}' does not name a field of the Service.")
    if keys[-1] in source:
        target[keys[-1]] = copy.deepcopy(source[keys[-1]])
    else:
        target.pop(keys[-1], None)


def _camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def _spec(service: Resource) -> Resource:
    return {k: v for k, v in service.items() if k not in model.OUTPUT_ONLY}


def _answer(call: Call, service: Resource) -> Resource:
    return run_enums.to_ints(service) if call.int_enums else copy.deepcopy(service)


def _answer_operation(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    answer = dict(body)
    for key in ("metadata", "response"):
        if isinstance(answer.get(key), dict):
            answer[key] = _answer(call, answer[key])
    return answer
