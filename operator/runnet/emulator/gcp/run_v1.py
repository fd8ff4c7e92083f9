"""Cloud Run Admin v1, the Knative-style API every ``gcloud run`` command uses.

Two path families, as in Google's v1 discovery document:

* ``/apis/serving.knative.dev/v1/namespaces/{project}/services[/{service}]``, served by Cloud Run
  on regional endpoints (``https://{region}-run.googleapis.com``): the region is in the host,
  which the emulator reads from the ``Host`` header or the absolute URL of a proxied request
  (see ``wire``). The global endpoint (no region in the host) lists every region and reads
  find a service in any of them; writes need a regional endpoint.
* ``/v1/projects/{project}/locations/{location}/services...``: the same methods with the region
  in the path, plus the IAM methods gcloud calls there (get/setIamPolicy, testIamPermissions).

v1 and v2 are two views of one store: handlers convert a v1 body to v2 fields
(``run_v1_model``), run the v2 logic in ``run`` (validation, operations, revisions, Direct VPC
egress checks) and answer with the v1 view of the stored v2 Service (``run_v1_view``). A v1
write returns the Service at once, not an operation; clients poll its Ready condition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids, run, run_iam, run_v1_model, run_v1_view
from runnet.emulator.gcp import run_model as model
from runnet.emulator.gcp.errors import GCPError, run_not_found
from runnet.emulator.gcp.projects import project_id
from runnet.emulator.gcp.store import Resource

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator, Handler

NAMESPACE = "/apis/serving.knative.dev/v1/namespaces/{namespace}/services"
LOCATION = "/v1/projects/{project}/locations/{location}/"
SERVICE = "/{service:[^/:]+}"


def register(emu: GCPEmulator) -> None:
    """The v1 service methods under both path families, the IAM methods, and locations.list."""
    routes: list[tuple[str, str, Handler, str, str, bool]] = [
        ("POST", "", create, "create", "run.services.create", True),
        ("GET", "", list_services, "list", "run.services.list", False),
        ("GET", SERVICE, get, "get", "run.services.get", False),
        ("PUT", SERVICE, replace, "replaceService", "run.services.update", True),
        ("DELETE", SERVICE, delete, "delete", "run.services.delete", True),
    ]
    for family, collection in (("namespaces", NAMESPACE), ("projects.locations", f"{LOCATION}services")):
        for method, suffix, handler, name, permission, mutating in routes:
            emu.route(
                method,
                collection + suffix,
                handler,
                method_id=f"run.{family}.services.{name}",
                permission=permission,
                mutating=mutating,
                api="run.v1",
            )
    run_iam.register(emu, _existing, prefix=LOCATION, api="run.v1")
    emu.route(
        "GET",
        "/v1/projects/{project}/locations",
        list_locations,
        method_id="run.projects.locations.list",
        permission="run.locations.list",
        mutating=False,
        api="run.v1",
    )


# -- handlers ---------------------------------------------------------------------------------


async def create(call: Call) -> Any:
    _scope(call, write=True)
    body = call.body if isinstance(call.body, dict) else {}
    service_id = str((body.get("metadata") or {}).get("name") or "")
    operation = run.start_create(call, service_id, _v2_body(body, service_id))
    return _view(call, service_id, operation)


async def get(call: Call) -> Any:
    _scope(call, write=False)
    return run_v1_view.service(_find(call))


async def list_services(call: Call) -> Any:
    _scope(call, write=False)
    prefix = f"projects/{call.project}/locations/"
    region = "" if call.region == "-" else f"{call.region}/"
    found = [s for p, s in call.emu.store.items() if p.startswith(prefix + region) and _is_service(p)]
    number = ids.project_number(call.project)
    return {
        "apiVersion": run_v1_view.API_VERSION,
        "kind": "ServiceList",
        "metadata": {"selfLink": f"/apis/{run_v1_view.API_VERSION}/namespaces/{number}/services"},
        "items": [run_v1_view.service(s) for s in found],
    }


async def replace(call: Call) -> Any:
    _scope(call, write=True)
    current = _find(call)
    service_id = call.params["service"]
    body = call.body if isinstance(call.body, dict) else {}
    sent = (body.get("metadata") or {}).get("resourceVersion")
    if sent and sent != run_v1_view.resource_version(current):
        message = (
            f'Operation cannot be fulfilled on services.serving.knative.dev "{service_id}": '
            "the object has been modified; please apply your changes to the latest version and try again"
        )
        raise GCPError(409, "aborted", message, status="ABORTED")
    operation = run.start_update(call, _v2_body(body, service_id), etag=None)
    return _view(call, service_id, operation)


async def delete(call: Call) -> Any:
    _scope(call, write=True)
    current = _find(call)
    await run.delete(call)
    details = {
        "name": call.params["service"],
        "group": "serving.knative.dev",
        "kind": "services",
        "uid": current["uid"],
    }
    return {"status": "Success", "details": details}


async def list_locations(call: Call) -> Any:
    """The regions the emulator knows *.run.app codes for (any other region works as well)."""
    project = project_id(call.emu, call.params["project"], denied=_denied(call.params["project"]))
    regions = sorted(model.REGION_CODES)
    return {
        "locations": [
            {
                "name": f"projects/{project}/locations/{region}",
                "locationId": region,
                "labels": {"cloud.googleapis.com/region": region},
            }
            for region in regions
        ]
    }


# -- helpers ----------------------------------------------------------------------------------


def _scope(call: Call, *, write: bool) -> None:
    """Resolve the project (an id or its number) and the region (path, or the endpoint's host)."""
    name = call.params.get("namespace") or call.params["project"]
    project = project_id(call.emu, name, denied=_denied(name))
    region = call.params.get("location") or call.incoming.region_of_host
    if write and region == "-":
        message = (
            "Cloud Run writes go to a regional endpoint ({region}-run.googleapis.com); "
            f"the request reached the global endpoint {call.incoming.host}."
        )
        raise GCPError(400, "badRequest", message, status="INVALID_ARGUMENT")
    call.params.update(project=project, location=region)
    if _dry_run(call):
        call.query = {**call.query, "validateOnly": "true"}  # the v2 handlers' name for it


def _find(call: Call) -> Resource:
    """The stored v2 Service the call names; on the global endpoint, in whichever region has it."""
    service_id = call.params["service"]
    if call.region != "-":
        found = call.emu.store.get(f"projects/{call.project}/locations/{call.region}/services/{service_id}")
    else:
        prefix, suffix = f"projects/{call.project}/locations/", f"/services/{service_id}"
        matches = (s for p, s in call.emu.store.items() if p.startswith(prefix) and p.endswith(suffix))
        found = next((s for s in matches if _is_service(s["name"])), None)
    if found is None:
        raise run_not_found(f"projects/{call.project}/locations/{call.region}/services/{service_id}")
    call.params["location"] = found["name"].split("/")[3]
    return found


def _existing(call: Call) -> str:
    _scope(call, write=False)
    return str(_find(call)["name"])


def _v2_body(body: Resource, service_id: str) -> Resource:
    return model.request_body(run_v1_model.to_v2(body, service_id))


def _view(call: Call, service_id: str, operation: dict[str, Any]) -> Resource:
    """The v1 Service after a write: the stored one, or what a dry run would have stored."""
    if _dry_run(call):
        return run_v1_view.service({k: v for k, v in operation["metadata"].items() if k != "@type"})
    stored = call.emu.store.get(f"projects/{call.project}/locations/{call.region}/services/{service_id}")
    if stored is None:
        raise run_not_found(f"projects/{call.project}/locations/{call.region}/services/{service_id}")
    return run_v1_view.service(stored)


def _dry_run(call: Call) -> bool:
    """v1's ``dryRun=all`` is v2's ``validateOnly``: validate and fill defaults, store nothing."""
    return call.query.get("dryRun", "").lower() == "all"


def _is_service(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 6 and parts[4] == "services"


def _denied(name: str) -> str:
    return f"Permission denied on resource project {name} (or it may not exist)."
