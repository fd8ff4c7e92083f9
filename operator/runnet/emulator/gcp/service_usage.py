"""Service Usage v1: ``gcloud services enable|list``, and the API check ``gcloud run deploy`` makes.

The emulator serves its APIs in every project whatever Service Usage says, so those APIs read
as ENABLED from the start and enabling them is a no-op that still runs an operation, as on GCP.
Other services start DISABLED and are recorded when enabled. The services a source deploy needs
(Cloud Build, Artifact Registry, Cloud Storage) are refused: ``gcloud run deploy --source``
asks to enable them before anything else, so that refusal is the one line the user sees.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.projects import project_id

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

SERVED = {
    "compute.googleapis.com": "Compute Engine API",
    "run.googleapis.com": "Cloud Run Admin API",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
    "serviceusage.googleapis.com": "Service Usage API",
}
SOURCE_BUILD = frozenset(
    {
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "storage.googleapis.com",
        "storage-api.googleapis.com",
        "storage-component.googleapis.com",
    }
)
NO_SOURCE_BUILD = (
    "The runnet emulator cannot build from source (Cloud Build, Artifact Registry and Cloud Storage are "
    "not emulated): deploy an image instead, e.g. gcloud run deploy SERVICE --image=IMAGE_URL"
)
EMPTY = "type.googleapis.com/google.protobuf.Empty"
TYPES = "type.googleapis.com/google.api.serviceusage.v1."
NOOP = "operations/noop.DONE_OPERATION"
"""The name Service Usage gives the already-done operation of a request that changes nothing."""
ENABLE_SECONDS = 0.5
"""Enabling a disabled service is never instant on GCP; gcloud then waits and reports the operation."""
# /v1/{v1Id}/{v1Id1}/services in discovery: the parent may be a project, folder or organization;
# the emulator knows projects only, so the first segment is the literal "projects".
PARENT = "/v1/{parent_type:projects}/{project}/services"


def _enabled(emu: GCPEmulator, project: str) -> set[str]:
    by_project: dict[str, set[str]] = emu.extra.setdefault("serviceusage.enabled", {})
    return by_project.setdefault(project, set(SERVED))


def _project(call: Call) -> str:
    name = call.params["project"]
    return project_id(call.emu, name, denied=f"Permission denied to access project '{name}' (or it does not exist).")


def service(emu: GCPEmulator, project: str, name: str) -> dict[str, Any]:
    """A GoogleApiServiceusageV1Service; names carry the project number, as on GCP."""
    parent = f"projects/{ids.project_number(project)}"
    return {
        "name": f"{parent}/services/{name}",
        "parent": parent,
        "config": {"name": name, "title": SERVED.get(name, name)},
        "state": "ENABLED" if name in _enabled(emu, project) else "DISABLED",
    }


def _check_names(names: list[Any]) -> list[str]:
    if not names or not all(isinstance(n, str) and "." in n for n in names):
        raise GCPError(400, "badRequest", f"Invalid service names: {names}.", status="INVALID_ARGUMENT")
    if set(names) & SOURCE_BUILD:
        raise GCPError(400, "failedPrecondition", NO_SOURCE_BUILD, status="FAILED_PRECONDITION")
    return [str(n) for n in names]


async def get_service(call: Call) -> Any:
    return service(call.emu, _project(call), call.params["service"])


async def list_services(call: Call) -> Any:
    project = _project(call)
    names = sorted(set(SERVED) | _enabled(call.emu, project))
    shown = [service(call.emu, project, n) for n in names]
    wanted = call.query.get("filter", "").replace(" ", "").upper()
    if wanted.startswith("STATE:"):
        shown = [s for s in shown if s["state"] == wanted.removeprefix("STATE:")]
    return {"services": shown} if shown else {}


async def enable(batched: bool, call: Call) -> Any:
    """Enabling what is enabled is a done no-op operation; anything else takes a moment, as on GCP."""
    project = _project(call)
    body = call.body if isinstance(call.body, dict) else {}
    names = _check_names((body.get("serviceIds") or []) if batched else [call.params["service"]])
    noop = set(names) <= _enabled(call.emu, project)

    def apply() -> dict[str, Any]:
        _enabled(call.emu, project).update(names)
        done = [service(call.emu, project, n) for n in names]
        if batched:
            return {"@type": TYPES + "BatchEnableServicesResponse", "services": done}
        return {"@type": TYPES + "EnableServiceResponse", "service": done[0]}

    name = NOOP if noop else f"operations/acat.p2-{ids.project_number(project)}-{ids.uuid4()}"
    return call.emu.start_operation(
        api="run",
        name=name,
        path=name,
        body={"metadata": {"@type": EMPTY}},
        apply=apply,
        error=None,
        request_id=None,
        project=project,
        latency=0.0 if noop else max(call.emu.config.draw_latency(), ENABLE_SECONDS),
    )


async def get_operation(call: Call) -> Any:
    name = f"operations/{call.params['operation']}"
    op = call.emu.operations.get(name)
    if op is None:
        raise GCPError(404, "notFound", f"Operation '{name}' not found.")
    return call.emu.render(op)


def register(emu: GCPEmulator) -> None:
    one = f"{PARENT}/{{service:[^/:]+}}"
    enable_one, enable_batch = functools.partial(enable, False), functools.partial(enable, True)
    routes = (
        ("GET", one, get_service, "services.get", "services.get", False),
        ("GET", PARENT, list_services, "services.list", "services.list", False),
        ("POST", f"{one}:enable", enable_one, "services.enable", "services.enable", True),
        ("POST", f"{PARENT}:batchEnable", enable_batch, "services.batchEnable", "services.enable", True),
        ("GET", "/v1/operations/{operation}", get_operation, "operations.get", "operations.get", False),
    )
    for method, pattern, handler, method_id, permission, mutating in routes:
        emu.route(
            method,
            pattern,
            handler,
            method_id=f"serviceusage.{method_id}",
            permission=f"serviceusage.{permission}",
            mutating=mutating,
            api="serviceusage",
        )
