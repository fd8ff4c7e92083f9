"""Checks every response the emulator logged against the discovery schema of its method.

Used by the ``gcp`` fixture at teardown (see tests/conftest.py), so every test that talks to the
emulator, through the Python clients or gcloud, also checks the emulator's answers. Discovery has
no "required": the must-have output fields real GCP always returns are listed here instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from runnet.emulator.gcp.request_log import LogEntry
from tests.support import discovery

COMPUTE_RESOURCES = frozenset(
    {
        "Network",
        "Subnetwork",
        "Address",
        "Router",
        "ForwardingRule",
        "ServiceAttachment",
        "BackendService",
        "UrlMap",
        "TargetHttpProxy",
        "NetworkEndpointGroup",
        "HealthCheck",
    }
)
MUST_HAVE: dict[str, tuple[str, ...]] = {
    **{name: ("kind", "id", "name", "selfLink", "creationTimestamp") for name in COMPUTE_RESOURCES},
    "Operation": ("kind", "id", "name", "status", "selfLink"),
    "GoogleCloudRunV2Service": ("name", "uid", "generation", "createTime", "etag"),
    "GoogleLongrunningOperation": ("name",),
}
COMPUTE_SELF_LINK = "https://www.googleapis.com/compute/v1/projects/"
COMPUTE_TIMES = ("creationTimestamp", "insertTime", "startTime", "endTime")

# google.rpc canonical codes a Cloud Run error may carry for each HTTP status.
RPC_STATUS: dict[int, frozenset[str]] = {
    400: frozenset({"INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"}),
    401: frozenset({"UNAUTHENTICATED"}),
    403: frozenset({"PERMISSION_DENIED"}),
    404: frozenset({"NOT_FOUND"}),
    409: frozenset({"ALREADY_EXISTS", "ABORTED"}),
    412: frozenset({"FAILED_PRECONDITION"}),
    429: frozenset({"RESOURCE_EXHAUSTED"}),
    499: frozenset({"CANCELLED"}),
    500: frozenset({"INTERNAL", "UNKNOWN", "DATA_LOSS"}),
    501: frozenset({"UNIMPLEMENTED"}),
    503: frozenset({"UNAVAILABLE"}),
    504: frozenset({"DEADLINE_EXCEEDED"}),
}
COMPUTE_ERROR_ITEM = frozenset({"domain", "reason", "message", "location", "locationType"})


KNATIVE_METADATA = ("name", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp")
OTHER_MUST_HAVE: dict[str, dict[str, tuple[str, ...]]] = {
    "run.v1": {
        "Service": ("apiVersion", "kind", "metadata", "spec", "status"),
        "ListServicesResponse": ("apiVersion", "kind", "metadata"),
        "Status": ("status",),
        "Policy": ("etag",),
    },
    "cloudresourcemanager": {"Project": ("projectId", "projectNumber", "lifecycleState", "name", "createTime")},
    "serviceusage": {"GoogleApiServiceusageV1Service": ("name", "parent", "state", "config"), "Operation": ("name",)},
    "iamcredentials": {"GenerateAccessTokenResponse": ("accessToken", "expireTime")},
}


def checks(api: str) -> discovery.MustHave:
    """The must-have check for one API (schema names repeat across documents: Operation, Service)."""
    if api in ("compute", "run"):
        return must_have
    table = OTHER_MUST_HAVE.get(api, {})

    def check(schema: str, obj: dict[str, Any], where: str) -> list[str]:
        fields = table.get(schema, ())
        problems = [f"{where}: missing output field {f!r} ({schema})" for f in fields if f not in obj]
        if api == "run.v1" and schema == "Service":
            problems += knative_service(obj, where)
        elif api == "run.v1" and schema == "ListServicesResponse":
            problems += (
                [] if obj.get("kind") == "ServiceList" else [f"{where}.kind: {obj.get('kind')!r}, not ServiceList"]
            )
        elif api == "serviceusage" and schema == "Operation":
            problems += _run_operation(obj, where)
        return problems

    return check


def knative_service(service: dict[str, Any], where: str) -> list[str]:
    """What gcloud relies on in a Run v1 Service: identity, the region label, a Ready condition."""
    problems = []
    if (service.get("apiVersion"), service.get("kind")) != ("serving.knative.dev/v1", "Service"):
        problems.append(f"{where}: apiVersion/kind are {service.get('apiVersion')!r}/{service.get('kind')!r}")
    metadata = service.get("metadata") or {}
    problems += [f"{where}.metadata: missing {f!r}" for f in KNATIVE_METADATA if f not in metadata]
    if not str(metadata.get("namespace", "")).isdigit():
        problems.append(f"{where}.metadata.namespace: Cloud Run answers with the project number")
    if "cloud.googleapis.com/location" not in (metadata.get("labels") or {}):
        problems.append(f"{where}.metadata.labels: no 'cloud.googleapis.com/location'")
    interfaces = (((service.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations", {})
    problems += _network_interfaces(interfaces.get("run.googleapis.com/network-interfaces"), where)
    status = service.get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") not in ("True", "False", "Unknown"):
        problems.append(f"{where}.status.conditions: no Ready condition with status True, False or Unknown")
    elif ready["status"] == "True":
        problems += [
            f"{where}.status: Ready without {f!r}" for f in ("url", "latestReadyRevisionName") if f not in status
        ]
        if status.get("observedGeneration") != metadata.get("generation"):
            problems.append(f"{where}.status.observedGeneration: Ready, yet it differs from metadata.generation")
    return problems


def _network_interfaces(value: Any, where: str) -> list[str]:
    """The annotation gcloud parses with json.loads and indexes [0]: a list of one-network objects."""
    if value is None:
        return []
    try:
        interfaces = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return [f"{where}: network-interfaces annotation is not JSON: {value!r}"]
    keys = {"network", "subnetwork", "tags"}
    if not isinstance(interfaces, list) or not all(isinstance(i, dict) and set(i) <= keys for i in interfaces):
        return [f"{where}: network-interfaces annotation is not a list of {sorted(keys)} objects: {value!r}"]
    return []


def must_have(schema: str, obj: dict[str, Any], where: str) -> list[str]:
    """Output fields GCP always fills for ``schema``, plus a few invariants clients rely on."""
    problems = [f"{where}: missing output field {f!r} ({schema})" for f in MUST_HAVE.get(schema, ()) if f not in obj]
    compute_list = (
        schema.endswith("List") and not schema.endswith("ScopedList") and schema in discovery.compute().schemas
    )
    if schema in COMPUTE_RESOURCES or schema == "Operation" or compute_list:
        problems += _compute_links(obj, where)
    if schema == "Operation":
        problems += _compute_operation(obj, where)
    elif schema == "GoogleLongrunningOperation":
        problems += _run_operation(obj, where)
    elif compute_list:
        problems += [f"{where}: missing list field {f!r} ({schema})" for f in ("kind", "id") if f not in obj]
    return problems


def _compute_links(obj: dict[str, Any], where: str) -> list[str]:
    problems = []
    link = obj.get("selfLink")
    if isinstance(link, str) and not link.startswith(COMPUTE_SELF_LINK):
        problems.append(f"{where}.selfLink: {link!r} does not start with {COMPUTE_SELF_LINK}")
    for name in COMPUTE_TIMES:
        value = obj.get(name)
        if isinstance(value, str) and not discovery.is_rfc3339(value):
            problems.append(f"{where}.{name}: {value!r} is not an RFC3339 timestamp")
    return problems


def _compute_operation(op: dict[str, Any], where: str) -> list[str]:
    """A failed operation needs both http* fields: google-cloud-compute raises only then."""
    problems = []
    if "error" in op:
        if op.get("status") != "DONE":
            problems.append(f"{where}: operation has an error but status {op.get('status')!r}")
        for name in ("httpErrorStatusCode", "httpErrorMessage"):
            if name not in op:
                problems.append(f"{where}: failed operation lacks {name!r} (the Python client needs it)")
    elif "httpErrorStatusCode" in op:
        problems.append(f"{where}: httpErrorStatusCode without error.errors[]")
    if op.get("status") == "DONE" and "operationType" in op and "endTime" not in op:
        problems.append(f"{where}: DONE operation without endTime")
    return problems


def _run_operation(op: dict[str, Any], where: str) -> list[str]:
    has = [k for k in ("error", "response") if k in op]
    if op.get("done") and len(has) != 1:
        return [f"{where}: a done operation has exactly one of error/response, this one has {has}"]
    if not op.get("done") and has:
        return [f"{where}: an operation that is not done has {has}"]
    return []


def error_problems(api: str, status: int, body: Any) -> list[str]:
    """The error shape: Compute's ``errors[]`` style, or google.rpc Status for Cloud Run."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f"$: an error body is {{'error': {{...}}}}, got {json.dumps(body)[:120]}"]
    error: dict[str, Any] = body["error"]
    problems = []
    if error.get("code") != status:
        problems.append(f"$.error.code: {error.get('code')!r} differs from the HTTP status {status}")
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append("$.error.message: missing or empty")
    # Compute's own errors have no status; those of Google's front end (rate quotas, expired
    # tokens) do, as in every google.rpc-style API.
    allowed = {"code", "message", "status", "details"} | ({"errors"} if api == "compute" else set())
    problems += [f"$.error.{k}: unknown field in a {api} error" for k in error if k not in allowed]
    details = error.get("details", [])
    if not isinstance(details, list) or not all(isinstance(d, dict) and "@type" in d for d in details):
        problems.append("$.error.details: a list of objects that each carry '@type'")
    if api == "compute":
        problems += _compute_error_items(error.get("errors"))
    if (api != "compute" or "status" in error) and error.get("status") not in RPC_STATUS.get(status, frozenset()):
        problems.append(f"$.error.status: {error.get('status')!r} is not a google.rpc code for HTTP {status}")
    return problems


def _compute_error_items(items: Any) -> list[str]:
    if not isinstance(items, list) or not items:
        return ["$.error.errors: Compute errors carry a non-empty errors[] list"]
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"$.error.errors[{i}]: expected an object")
            continue
        problems += [f"$.error.errors[{i}]: missing {k!r}" for k in ("domain", "reason", "message") if k not in item]
        problems += [f"$.error.errors[{i}].{k}: unknown field" for k in item if k not in COMPUTE_ERROR_ITEM]
    return problems


def entry_problems(entry: LogEntry) -> list[str]:
    """Problems of one logged response; an unserved path (no method id) is one problem."""
    if not entry.method_id:
        return ["the emulator does not serve this path (no route)"]
    body = json.loads(json.dumps(entry.response_body))  # exactly what went over the wire
    if entry.status >= 400:
        return error_problems(entry.api, entry.status, body)
    meth = discovery.method(entry.method_id, entry.api)
    if meth is None:
        return [f"method id {entry.method_id!r} is not in the {entry.api} discovery document"]
    if meth.response is None:
        return [] if body in ({}, None) else [f"$: {entry.method_id} returns an empty body, got {body!r:.80}"]
    int_enums = "enum-encoding=int" in entry.query.get("$alt", "")
    doc = discovery.doc_for(entry.method_id, entry.api)
    problems = discovery.validate(doc, meth.response, body, int_enums=int_enums, must_have=checks(entry.api))
    if meth.response == "Operation" and entry.api == "compute" and isinstance(body, dict):
        problems += _operation_scope(meth, body)
    if entry.api == "compute":
        problems += local_urls(body, "$")
    return problems


_LOCAL_URL = re.compile(r"^https?://(localhost|127(\.\d+){3}|\[::1\]|0\.0\.0\.0)(:\d+)?/")


def local_urls(value: Any, where: str) -> list[str]:
    """Compute references are https://www.googleapis.com/... URLs (or relative paths as sent).

    gcloud resolves names against its endpoint override, so it sends the emulator's own address;
    a real GCE never answers with a loopback URL.
    """
    if isinstance(value, str):
        return (
            [f"{where}: the emulator's own address leaked into a response: {value!r}"]
            if _LOCAL_URL.match(value)
            else []
        )
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in local_urls(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in local_urls(item, f"{where}.{key}")]
    return []


def _operation_scope(meth: discovery.Method, op: dict[str, Any]) -> list[str]:
    """Regional operations name their region; global ones have no region key (as on GCE).

    Exception: GCE's minimal already-DONE no-op operation (setLabels with unchanged labels) has
    no operationType and a global selfLink even for regional resources (NOTES section 2).
    """
    if "operationType" not in op and op.get("status") == "DONE":
        return []
    regional = "/regions/{region}/" in meth.path
    link = str(op.get("selfLink", ""))
    if regional and ("region" not in op or "/regions/" not in link):
        return [f"$: {meth.id} is regional: its operation needs 'region' and a regional selfLink"]
    if not regional and "/global/" in meth.path and ("region" in op or "/global/operations/" not in link):
        return [f"$: {meth.id} is global: its operation has no 'region' and a global selfLink"]
    return []


def report(entries: Iterable[LogEntry], *, allow_unserved: bool = False, limit: int = 40) -> str:
    """A readable list of every non-conforming response; empty when all conform."""
    lines: list[str] = []
    for entry in entries:
        if allow_unserved and not entry.method_id:
            continue
        problems = entry_problems(entry)
        if problems:
            label = entry.method_id or "unserved"
            lines.append(f"{entry.method} {entry.path} -> {entry.status} [{label}]")
            lines += [f"    {p}" for p in problems[:10]]
            if len(problems) > 10:
                lines.append(f"    ... and {len(problems) - 10} more")
    if not lines:
        return ""
    shown = lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else [])
    return "Emulator responses that do not conform to the discovery schema:\n" + "\n".join(shown)
