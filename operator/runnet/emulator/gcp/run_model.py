"""The Cloud Run v2 Service as the emulator keeps it: defaults, etags, status and VPC checks.

Pure functions over Service dicts (camelCase JSON, enums as names); ``run.py`` has the routes.
Shapes follow the real recording in NOTES.md section 5 (runservicebasic_vcr_tf.REAL.yaml).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import time
from typing import Any

from runnet.emulator.gcp import ids, run_enums
from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.store import Resource, Store, relative

CALLER = "runnet-emulator@example.iam.gserviceaccount.com"
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
NOT_FOUND, FAILED = "VPC_NETWORK_NOT_FOUND", "REVISION_FAILED"
"""Condition reasons of a revision whose Direct VPC egress references are bad."""
RETENTION = 30 * 24 * 3600
"""A deleted Service's ``expireTime`` is 30 days after ``deleteTime``."""

# "only lowercase, digits, and hyphens; must begin with letter ...; must be less than 50 characters"
SERVICE_ID_RE = re.compile(r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")

OUTPUT_ONLY = frozenset(
    {
        "name", "uid", "generation", "createTime", "updateTime", "deleteTime", "expireTime",
        "creator", "lastModifier", "observedGeneration", "terminalCondition", "conditions",
        "latestReadyRevision", "latestCreatedRevision", "trafficStatuses", "uri", "urls",
        "satisfiesPzs", "reconciling", "etag", "threatDetectionEnabled",
    }
)  # fmt: skip
"""Service fields a request cannot set (clients echo them back from a GET; they are ignored)."""

# The region part of *.a.run.app hostnames ("-uc" for us-central1); others get a derived code.
REGION_CODES = {
    "us-central1": "uc",
    "us-east1": "ue",
    "us-east4": "uk",
    "us-west1": "uw",
    "europe-west1": "ew",
    "europe-west2": "nw",
    "europe-west3": "ey",
    "europe-west4": "ez",
    "asia-east1": "de",
    "asia-northeast1": "an",
    "asia-southeast1": "as",
}


def invalid_argument(field: str, description: str) -> GCPError:
    """400 INVALID_ARGUMENT with the google.rpc.BadRequest detail Cloud Run attaches."""
    return GCPError(
        400,
        "badRequest",
        f"{field}: {description}",
        status="INVALID_ARGUMENT",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": description}],
            }
        ],
    )


def check_service_id(service_id: str) -> None:
    if not SERVICE_ID_RE.match(service_id):
        raise invalid_argument(
            "Violation in CreateServiceRequest.service_id",
            "only lowercase, digits, and hyphens; must begin with letter, and cannot end with hyphen; "
            "must be less than 50 characters.",
        )


def etag(at: float, name: str) -> str:
    """``"<base64 Timestamp proto of updateTime>/<base64 name>"``, quotes included, as real Cloud Run."""
    micros = round(at * 1_000_000)
    seconds, nanos = divmod(micros, 1_000_000)
    stamp = b"\x08" + _varint(seconds) + b"\x10" + _varint(nanos * 1000)
    return f'"{_b64(stamp)}/{_b64(name.encode())}"'


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def request_body(body: Any) -> dict[str, Any]:
    """A request Service: nulls dropped, integer enums named, output-only fields ignored."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise invalid_argument("service", "a JSON object is required")
    cleaned = _drop_nulls(copy.deepcopy(body))
    for path, kind in _SHAPES.items():
        _check_shape(cleaned, path, kind)
    _check_system_keys(cleaned)
    run_enums.to_names(cleaned)
    return {k: v for k, v in cleaned.items() if k not in OUTPUT_ONLY}


SYSTEM_PREFIXES = ("run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev", "autoscaling.knative.dev")


def _check_system_keys(service: Resource) -> None:
    """v2 rejects v1's system labels and annotations: each has a field of its own now (API reference)."""
    template = service.get("template") or {}
    for where, mapping in (
        ("service.labels", service.get("labels")),
        ("service.annotations", service.get("annotations")),
        ("service.template.labels", template.get("labels")),
        ("service.template.annotations", template.get("annotations")),
    ):
        for key in mapping or {}:
            if str(key).split("/", 1)[0] in SYSTEM_PREFIXES:
                raise invalid_argument(where, f"'{key}' is a system key: Cloud Run v2 does not support it.")


# The parts of a request the emulator reads: a wrong JSON type there is a 400, not a crash.
_SHAPES: dict[tuple[str, ...], type] = {
    ("template",): dict,
    ("template", "scaling"): dict,
    ("template", "vpcAccess"): dict,
    ("template", "vpcAccess", "networkInterfaces"): list,
    ("template", "vpcAccess", "networkInterfaces", "[]"): dict,
    ("template", "containers"): list,
    ("template", "containers", "[]"): dict,
    ("template", "containers", "[]", "resources"): dict,
    ("template", "containers", "[]", "resources", "limits"): dict,
    ("template", "containers", "[]", "ports"): list,
    ("template", "containers", "[]", "ports", "[]"): dict,
    ("template", "containers", "[]", "startupProbe"): dict,
    ("traffic",): list,
    ("traffic", "[]"): dict,
}


def _check_shape(node: Any, path: tuple[str, ...], kind: type, where: str = "service") -> None:
    if not path:
        if not isinstance(node, kind):
            raise invalid_argument(where, f"expected a JSON {'object' if kind is dict else 'array'}.")
        return
    head, rest = path[0], path[1:]
    if head == "[]" and isinstance(node, list):
        for i, item in enumerate(node):
            _check_shape(item, rest, kind, f"{where}[{i}]")
    elif isinstance(node, dict) and head in node:
        _check_shape(node[head], rest, kind, f"{where}.{head}")


def _drop_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_nulls(v) for v in node]
    return node


def apply_defaults(service: Resource, project: str) -> None:
    """Fill what Cloud Run fills on create and update (NOTES.md section 5)."""
    service.setdefault("launchStage", "GA")
    service.setdefault("ingress", "INGRESS_TRAFFIC_ALL")
    service.setdefault("traffic", [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}])
    template = service.setdefault("template", {})
    # Documented server default: "When unspecified, the field is set to ... 100".
    template.setdefault("scaling", {}).setdefault("maxInstanceCount", 100)
    template.setdefault("timeout", "300s")
    template.setdefault("serviceAccount", f"{ids.project_number(project)}-compute@developer.gserviceaccount.com")
    template.setdefault("maxInstanceRequestConcurrency", 80)
    containers = template.setdefault("containers", [])
    for container in containers:
        _container_defaults(container, single=len(containers) == 1)
    vpc = template.get("vpcAccess")
    if vpc and (vpc.get("connector") or vpc.get("networkInterfaces")):
        vpc.setdefault("egress", "PRIVATE_RANGES_ONLY")


def _container_defaults(container: Resource, *, single: bool) -> None:
    resources = container.setdefault("resources", {})
    limits = resources.setdefault("limits", {})
    limits.setdefault("cpu", "1000m")
    limits.setdefault("memory", "512Mi")
    resources.setdefault("cpuIdle", True)
    if single and not container.get("ports"):
        container["ports"] = [{"name": "http1", "containerPort": 8080}]
    port = (container.get("ports") or [{}])[0].get("containerPort", 8080)
    probe = container.get("startupProbe")
    if probe is None and single:
        container["startupProbe"] = {
            "timeoutSeconds": 240,
            "periodSeconds": 240,
            "failureThreshold": 1,
            "tcpSocket": {"port": port},
        }
    elif probe is not None:
        # The proto defaults of an explicit Probe (runjob-with-port REAL).
        probe.setdefault("timeoutSeconds", 1)
        probe.setdefault("periodSeconds", 10)
        probe.setdefault("failureThreshold", 3)


def check_vpc_access(template: Resource) -> None:
    """What Cloud Run refuses synchronously in ``template.vpcAccess`` (400 INVALID_ARGUMENT)."""
    vpc = template.get("vpcAccess") or {}
    field = "service.template.vpc_access"
    interfaces = vpc.get("networkInterfaces") or []
    if vpc.get("connector") and interfaces:
        raise invalid_argument(field, "connector and network_interfaces cannot both be set.")
    if len(interfaces) > 1:
        raise invalid_argument(f"{field}.network_interfaces", "only a single network interface is supported.")
    for nic in interfaces:
        if not nic.get("network") and not nic.get("subnetwork"):
            raise invalid_argument(f"{field}.network_interfaces", "at least one of network or subnetwork must be set.")


def resolve_interfaces(store: Store, project: str, region: str, template: Resource) -> tuple[str, str] | None:
    """Resolve Direct VPC egress references against the Compute store; ``(reason, message)`` if bad.

    A missing network or subnet does not fail the request: the revision fails to deploy, so the
    operation fails and the Service's terminalCondition says why. Per the API reference, a
    network alone uses "the subnetwork with the same name" in the service's region, and a
    subnetwork alone has its network "looked up from the subnetwork"; the missing one is filled.
    """
    for nic in (template.get("vpcAccess") or {}).get("networkInterfaces") or []:
        problem = _resolve_interface(store, project, region, nic)
        if problem:
            return problem
    return None


def _resolve_interface(store: Store, project: str, region: str, nic: Resource) -> tuple[str, str] | None:
    network_ref, subnet_ref = nic.get("network"), nic.get("subnetwork")
    network = _ref(network_ref, f"projects/{project}/global/networks/") if network_ref else None
    if subnet_ref:
        subnet_path = _ref(subnet_ref, f"projects/{project}/regions/{region}/subnetworks/")
    else:
        assert network is not None  # check_vpc_access requires one of the two
        net_project, name = network.split("/")[1], network.rsplit("/", 1)[-1]
        subnet_path = f"projects/{net_project}/regions/{region}/subnetworks/{name}"
    if network and store.get(network) is None:
        return NOT_FOUND, f"VPC network '{network}' does not exist."
    parts = subnet_path.split("/")
    if len(parts) != 6 or parts[2] != "regions" or parts[3] != region:
        return FAILED, f"Subnetwork '{subnet_path}' must be in the service's region '{region}'."
    subnet = store.get(subnet_path)
    if subnet is None:
        return NOT_FOUND, f"Subnetwork '{subnet_path}' does not exist."
    subnet_network = relative(str(subnet.get("network", "")))
    if network and subnet_network != network:
        return FAILED, f"Subnetwork '{subnet_path}' does not belong to VPC network '{network}'."
    short = "/" not in str(network_ref or subnet_ref)
    nic.setdefault("network", subnet_network.rsplit("/", 1)[-1] if short else subnet_network)
    nic.setdefault("subnetwork", subnet_path.rsplit("/", 1)[-1] if short else subnet_path)
    return None


def _ref(ref: str, collection: str) -> str:
    return collection + ref if "/" not in ref else relative(ref)


def new_revision(service: Resource, number: int) -> str:
    """The revision's full name: ``<service>-0000N-<3 random chars>``, or the template's own name."""
    service_id = service["name"].rsplit("/", 1)[-1]
    short = service.get("template", {}).get("revision") or f"{service_id}-{number:05d}-{ids.revision_suffix()}"
    return f"{service['name']}/revisions/{short}"


def touch(service: Resource, at: float) -> None:
    """A write: new updateTime and etag, and the caller as lastModifier."""
    service["updateTime"] = ids.run_timestamp(at)
    service["lastModifier"] = CALLER
    service["etag"] = etag(at, service["name"])


def pending(service: Resource) -> None:
    """While an operation runs: reconciling, Ready PENDING (keeping its last transition time)."""
    condition = service.get("terminalCondition") or {}
    service["terminalCondition"] = {**condition, "state": "CONDITION_PENDING"}
    service["reconciling"] = True


def ready(service: Resource, at: float, project: str, region: str) -> None:
    """The operation succeeded: the latest revision serves the traffic."""
    now = ids.run_timestamp(at)
    service["observedGeneration"] = service["generation"]
    service["terminalCondition"] = {"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": now}
    configurations = _condition(service, "ConfigurationsReady") or _succeeded("ConfigurationsReady", now)
    if configurations.get("state") != "CONDITION_SUCCEEDED":
        configurations = _succeeded("ConfigurationsReady", now)
    service["conditions"] = [_succeeded("RoutesReady", now), configurations]
    if "latestCreatedRevision" in service:
        service["latestReadyRevision"] = service["latestCreatedRevision"]
    service["trafficStatuses"] = [dict(t) for t in service.get("traffic", [])]
    service_id = service["name"].rsplit("/", 1)[-1]
    service["uri"] = uri(service_id, project, region)
    service["urls"] = [f"https://{service_id}-{ids.project_number(project)}.{region}.run.app", service["uri"]]
    service.pop("reconciling", None)


def failed(service: Resource, at: float, message: str, reason: str) -> None:
    """The new revision could not be deployed: Ready FAILED; traffic stays where it was."""
    now = ids.run_timestamp(at)
    service["observedGeneration"] = service["generation"]
    service["terminalCondition"] = {
        "type": "Ready",
        "state": "CONDITION_FAILED",
        "message": message,
        "lastTransitionTime": now,
        "severity": "ERROR",
        "reason": reason,
    }
    routes = _condition(service, "RoutesReady") or {"type": "RoutesReady", "state": "CONDITION_PENDING"}
    service["conditions"] = [
        routes,
        {
            "type": "ConfigurationsReady",
            "state": "CONDITION_FAILED",
            "message": message,
            "lastTransitionTime": now,
            "severity": "ERROR",
            "reason": reason,
        },
    ]
    service.pop("reconciling", None)


def _condition(service: Resource, kind: str) -> Resource | None:
    return next((dict(c) for c in service.get("conditions", []) if c.get("type") == kind), None)


def _succeeded(kind: str, now: str) -> Resource:
    return {"type": kind, "state": "CONDITION_SUCCEEDED", "lastTransitionTime": now}


def uri(service_id: str, project: str, region: str) -> str:
    """``https://<service>-<project hash>-<region code>.a.run.app``."""
    digest = hashlib.sha256(ids.project_number(project).encode()).digest()
    project_hash = base64.b32encode(digest).decode().lower()[:10]
    code = REGION_CODES.get(region) or "".join(part[0] for part in region.split("-")[:2])
    return f"https://{service_id}-{project_hash}-{code}.a.run.app"


def typed(service: Resource) -> Resource:
    """A copy of ``service`` as an operation's metadata or response (with its ``@type``)."""
    return {"@type": SERVICE_TYPE, **copy.deepcopy(service)}


def now() -> float:
    return time.time()
