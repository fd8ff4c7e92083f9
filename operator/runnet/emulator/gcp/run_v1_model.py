"""A Cloud Run Admin v1 (Knative) Service as a v2 Service: the request side of the two views.

The store keeps v2 Services; a v1 request body (what ``gcloud run deploy`` sends) becomes the
v2 fields it means. Settings v1 spells as annotations map to v2 fields, as Google documents
for the migration: ``run.googleapis.com/ingress`` to ``ingress``, ``run.googleapis.com/
network-interfaces`` (a JSON list) to ``template.vpcAccess.networkInterfaces``, ``autoscaling.
knative.dev/maxScale`` to ``template.scaling.maxInstanceCount``... Annotations the server itself
writes are ignored when a client echoes them (gcloud replaces whole objects); another system
annotation the emulator does not model is a 400 naming it, rather than a setting lost silently.
"""

from __future__ import annotations

import json
from typing import Any

from runnet.emulator.gcp.run_model import SYSTEM_PREFIXES, invalid_argument
from runnet.emulator.gcp.store import Resource

INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
    "none": "INGRESS_TRAFFIC_NONE",
}
EGRESS = {"all-traffic": "ALL_TRAFFIC", "private-ranges-only": "PRIVATE_RANGES_ONLY"}
LEGACY_EGRESS = {"all": "ALL_TRAFFIC"}
"""``all`` is the connector-era spelling of ``all-traffic``; both still deploy."""
ENVIRONMENT = {"gen1": "EXECUTION_ENVIRONMENT_GEN1", "gen2": "EXECUTION_ENVIRONMENT_GEN2"}

RUN, KNATIVE, AUTOSCALING = "run.googleapis.com/", "serving.knative.dev/", "autoscaling.knative.dev/"
SERVICE_OUTPUT = frozenset(
    {
        KNATIVE + "creator",
        KNATIVE + "lastModifier",
        RUN + "ingress-status",
        RUN + "urls",
        RUN + "operation-id",
        RUN + "satisfiesPzs",
    }
)
"""Service annotations only the server writes (echoed back by clients, ignored)."""
OUTPUT_LABELS = frozenset({"cloud.googleapis.com/location"})

# Service annotation -> (v2 field, how the value converts).
SERVICE_FIELDS: dict[str, tuple[str, Any]] = {
    RUN + "ingress": ("ingress", INGRESS),
    RUN + "launch-stage": ("launchStage", str),
    RUN + "description": ("description", str),
    RUN + "client-name": ("client", str),
    RUN + "client-version": ("clientVersion", str),
}
# Template annotation -> (path of the v2 template field, how the value converts).
TEMPLATE_FIELDS: dict[str, tuple[tuple[str, ...], Any]] = {
    AUTOSCALING + "maxScale": (("scaling", "maxInstanceCount"), int),
    AUTOSCALING + "minScale": (("scaling", "minInstanceCount"), int),
    RUN + "network-interfaces": (("vpcAccess", "networkInterfaces"), json.loads),
    RUN + "vpc-access-egress": (("vpcAccess", "egress"), {**EGRESS, **LEGACY_EGRESS}),
    RUN + "vpc-access-connector": (("vpcAccess", "connector"), str),
    RUN + "execution-environment": (("executionEnvironment",), ENVIRONMENT),
    RUN + "sessionAffinity": (("sessionAffinity",), lambda v: _boolean(v)),
    RUN + "encryption-key": (("encryptionKey",), str),
    RUN + "client-name": (("client",), str),
    RUN + "client-version": (("clientVersion",), str),
}
# Container resources the v1 template spells as annotations (they apply to every container).
CONTAINER_FLAGS = {RUN + "cpu-throttling": "cpuIdle", RUN + "startup-cpu-boost": "startupCpuBoost"}


def to_v2(body: Any, service_id: str) -> Resource:
    """The v2 request fields a v1 Service body means; 400 INVALID_ARGUMENT for what cannot be."""
    if not isinstance(body, dict):
        raise invalid_argument("service", "a JSON object (a Knative Service) is required.")
    if body.get("apiVersion") not in (None, "serving.knative.dev/v1") or body.get("kind") not in (None, "Service"):
        raise invalid_argument("service", "apiVersion must be serving.knative.dev/v1 and kind Service.")
    metadata, spec = _object(body, "metadata"), _object(body, "spec")
    if metadata.get("name") not in (None, service_id):
        raise invalid_argument("metadata.name", f"'{metadata['name']}' does not match the service '{service_id}'.")
    service: Resource = {}
    _labels_and_annotations(service, metadata, "metadata", SERVICE_OUTPUT)
    for key, (field, convert) in SERVICE_FIELDS.items():
        value = (metadata.get("annotations") or {}).get(key)
        if value is not None:
            service[field] = _convert(convert, value, f"metadata.annotations['{key}']")
    service["template"] = _template(_object(spec, "template"))
    if spec.get("traffic"):
        service["traffic"] = [_traffic(t) for t in spec["traffic"]]
    return service


def _template(template: Resource) -> Resource:
    metadata, spec = _object(template, "metadata"), _object(template, "spec")
    where = "spec.template.metadata"
    out: Resource = {}
    if metadata.get("name"):
        out["revision"] = metadata["name"]
    _labels_and_annotations(out, metadata, where, frozenset())
    annotations = metadata.get("annotations") or {}
    for key, (path, convert) in TEMPLATE_FIELDS.items():
        if annotations.get(key) not in (None, ""):
            _set(out, path, _convert(convert, annotations[key], f"{where}.annotations['{key}']"))
    revision = _revision_spec(spec)
    flags = {f: _boolean(annotations[k]) for k, f in CONTAINER_FLAGS.items() if k in annotations}
    for container in revision.get("containers", []):
        container.setdefault("resources", {}).update(flags)
    return {**out, **revision}


def _revision_spec(spec: Resource) -> Resource:
    out: Resource = {}
    if spec.get("containerConcurrency") is not None:
        out["maxInstanceRequestConcurrency"] = int(spec["containerConcurrency"])
    if spec.get("timeoutSeconds") is not None:
        out["timeout"] = f"{int(spec['timeoutSeconds'])}s"
    if spec.get("serviceAccountName"):
        out["serviceAccount"] = spec["serviceAccountName"]
    if spec.get("volumes"):
        raise invalid_argument("spec.template.spec.volumes", "volumes are not supported by the runnet emulator.")
    out["containers"] = [_container(c, i) for i, c in enumerate(spec.get("containers") or [])]
    return out


def _container(container: Any, index: int) -> Resource:
    if not isinstance(container, dict):
        raise invalid_argument(f"spec.template.spec.containers[{index}]", "expected a JSON object.")
    out = {k: container[k] for k in ("name", "image", "command", "args", "workingDir") if container.get(k)}
    if container.get("env"):
        out["env"] = [_env(e) for e in container["env"]]
    if container.get("ports"):
        out["ports"] = [{k: p[k] for k in ("name", "containerPort") if k in p} for p in container["ports"]]
    limits = (container.get("resources") or {}).get("limits")
    if limits:
        out["resources"] = {"limits": dict(limits)}
    if container.get("volumeMounts"):
        out["volumeMounts"] = [
            {"name": m.get("name"), "mountPath": m.get("mountPath")} for m in container["volumeMounts"]
        ]
    for probe in ("startupProbe", "livenessProbe"):
        if container.get(probe):
            out[probe] = probe_to_v2(container[probe])
    return out


def _env(env: Resource) -> Resource:
    secret = (env.get("valueFrom") or {}).get("secretKeyRef")
    if secret:
        return {
            "name": env.get("name"),
            "valueSource": {"secretKeyRef": {"secret": secret.get("name"), "version": secret.get("key", "latest")}},
        }
    return {k: env[k] for k in ("name", "value") if k in env}


def probe_to_v2(probe: Resource) -> Resource:
    """v1 and v2 probes share their fields, except v1's successThreshold, exec and hosts."""
    keep = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "failureThreshold")
    out = {k: probe[k] for k in keep if k in probe}
    if probe.get("httpGet") is not None:
        out["httpGet"] = {k: v for k, v in probe["httpGet"].items() if k in ("path", "httpHeaders", "port")}
    if probe.get("tcpSocket") is not None:
        out["tcpSocket"] = {k: v for k, v in probe["tcpSocket"].items() if k == "port"}
    if probe.get("grpc") is not None:
        out["grpc"] = dict(probe["grpc"])
    return out


def _traffic(target: Any) -> Resource:
    if not isinstance(target, dict):
        raise invalid_argument("spec.traffic", "each traffic target must be a JSON object.")
    out: Resource = {"percent": int(target.get("percent", 0))}
    if target.get("latestRevision"):
        out["type"] = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    elif target.get("revisionName"):
        out.update(type="TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", revision=target["revisionName"])
    else:
        raise invalid_argument("spec.traffic", "a traffic target names a revisionName or sets latestRevision.")
    if target.get("tag"):
        out["tag"] = target["tag"]
    return out


def _labels_and_annotations(out: Resource, metadata: Resource, where: str, output_only: frozenset[str]) -> None:
    """User labels and annotations go to v2 as they are; system ones must be known."""
    labels = {k: str(v) for k, v in (metadata.get("labels") or {}).items() if k not in OUTPUT_LABELS}
    user: dict[str, str] = {}
    known = SERVICE_FIELDS.keys() | TEMPLATE_FIELDS.keys() | CONTAINER_FLAGS.keys() | output_only
    for key, value in (metadata.get("annotations") or {}).items():
        if str(key).split("/", 1)[0] not in SYSTEM_PREFIXES:
            user[key] = str(value)
        elif key not in known:
            raise invalid_argument(f"{where}.annotations", f"'{key}' is not supported by the runnet emulator.")
    for key in labels:
        if key.split("/", 1)[0] in SYSTEM_PREFIXES:
            raise invalid_argument(f"{where}.labels", f"'{key}' is a system label.")
    if labels:
        out["labels"] = labels
    if user:
        out["annotations"] = user


def _boolean(value: Any) -> bool:
    """Annotation booleans: gcloud writes ``"True"`` where YAML users write ``"true"``."""
    return str(value).lower() == "true"


def _convert(convert: Any, value: Any, where: str) -> Any:
    try:
        return convert[value] if isinstance(convert, dict) else convert(value)
    except (KeyError, ValueError, TypeError):
        allowed = f" Allowed values: {', '.join(convert)}." if isinstance(convert, dict) else ""
        raise invalid_argument(where, f"Invalid value '{value}'.{allowed}") from None


def _object(node: Resource, key: str) -> Resource:
    value = node.get(key) or {}
    if not isinstance(value, dict):
        raise invalid_argument(key, "expected a JSON object.")
    return value


def _set(node: Resource, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
