"""A stored (v2) Cloud Run Service as Cloud Run Admin v1 shows it: the read side of the two views.

What ``gcloud run services describe`` prints comes from here: v2 fields become the annotations
v1 spells them as (``run.googleapis.com/ingress``, ``.../network-interfaces`` as JSON,
``.../vpc-access-egress``), the terminal condition and sub-conditions become Knative conditions
(``status: "True" | "False" | "Unknown"``), ``uri`` becomes ``status.url``, and generations are
integers. The namespace is the project number, as Cloud Run answers.
"""

from __future__ import annotations

import json

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.run_v1_model import (
    AUTOSCALING,
    EGRESS,
    ENVIRONMENT,
    INGRESS,
    KNATIVE,
    RUN,
)
from runnet.emulator.gcp.store import Resource

API_VERSION = "serving.knative.dev/v1"
STATUS = {"CONDITION_SUCCEEDED": "True", "CONDITION_FAILED": "False"}
"""v2 condition states as Knative statuses; every other state (pending, reconciling) is Unknown."""
V1_INGRESS = {v: k for k, v in INGRESS.items()}
V1_EGRESS = {v: k for k, v in EGRESS.items()}
V1_ENVIRONMENT = {v: k for k, v in ENVIRONMENT.items()}


def self_link(number: str, service_id: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{number}/services/{service_id}"


def service(v2: Resource) -> Resource:
    """The v1 Service for a stored v2 Service."""
    _, project, _, region, _, service_id = v2["name"].split("/")
    number = ids.project_number(project)
    metadata: Resource = {
        "name": service_id,
        "namespace": number,
        "selfLink": self_link(number, service_id),
        "uid": v2["uid"],
        "resourceVersion": resource_version(v2),
        "generation": int(v2["generation"]),
        "creationTimestamp": v2["createTime"],
        "labels": {**(v2.get("labels") or {}), "cloud.googleapis.com/location": region},
        "annotations": _service_annotations(v2),
    }
    if v2.get("deleteTime"):
        metadata["deletionTimestamp"] = v2["deleteTime"]
    spec: Resource = {"template": _template(v2.get("template") or {})}
    if v2.get("traffic"):
        spec["traffic"] = [_traffic(t) for t in v2["traffic"]]
    return {"apiVersion": API_VERSION, "kind": "Service", "metadata": metadata, "spec": spec, "status": _status(v2)}


def resource_version(v2: Resource) -> str:
    """v1's optimistic-concurrency token: the v2 etag without its quotes (it changes on every write)."""
    return str(v2.get("etag", "")).strip('"')


def _service_annotations(v2: Resource) -> dict[str, str]:
    out = dict(v2.get("annotations") or {})
    out[KNATIVE + "creator"] = v2.get("creator", "")
    out[KNATIVE + "lastModifier"] = v2.get("lastModifier", "")
    if v2.get("ingress"):
        out[RUN + "ingress"] = out[RUN + "ingress-status"] = V1_INGRESS.get(v2["ingress"], "all")
    if v2.get("launchStage") not in (None, "GA"):
        out[RUN + "launch-stage"] = v2["launchStage"]
    for field, key in (("description", "description"), ("client", "client-name"), ("clientVersion", "client-version")):
        if v2.get(field):
            out[RUN + key] = str(v2[field])
    if v2.get("urls"):
        out[RUN + "urls"] = json.dumps(v2["urls"])
    return out


def _template(template: Resource) -> Resource:
    metadata: Resource = {}
    if template.get("revision"):
        metadata["name"] = template["revision"]
    if template.get("labels"):
        metadata["labels"] = dict(template["labels"])
    annotations = _template_annotations(template)
    if annotations:
        metadata["annotations"] = annotations
    spec: Resource = {"containers": [_container(c) for c in template.get("containers", [])]}
    if "maxInstanceRequestConcurrency" in template:
        spec["containerConcurrency"] = template["maxInstanceRequestConcurrency"]
    if template.get("timeout"):
        spec["timeoutSeconds"] = int(float(str(template["timeout"]).rstrip("s")))
    if template.get("serviceAccount"):
        spec["serviceAccountName"] = template["serviceAccount"]
    return {"metadata": metadata, "spec": spec}


def _template_annotations(template: Resource) -> dict[str, str]:
    out = dict(template.get("annotations") or {})
    scaling = template.get("scaling") or {}
    for field, key in (("maxInstanceCount", "maxScale"), ("minInstanceCount", "minScale")):
        if scaling.get(field) is not None:
            out[AUTOSCALING + key] = str(scaling[field])
    vpc = template.get("vpcAccess") or {}
    if vpc.get("networkInterfaces"):
        # gcloud writes the list this way (sorted keys, json.dumps separators); keep its spelling.
        out[RUN + "network-interfaces"] = json.dumps(vpc["networkInterfaces"], sort_keys=True)
    if vpc.get("connector"):
        out[RUN + "vpc-access-connector"] = vpc["connector"]
    if vpc.get("egress") and (vpc.get("networkInterfaces") or vpc.get("connector")):
        out[RUN + "vpc-access-egress"] = V1_EGRESS.get(vpc["egress"], "private-ranges-only")
    if template.get("executionEnvironment") in V1_ENVIRONMENT:
        out[RUN + "execution-environment"] = V1_ENVIRONMENT[template["executionEnvironment"]]
    if template.get("sessionAffinity"):
        out[RUN + "sessionAffinity"] = "true"
    if template.get("encryptionKey"):
        out[RUN + "encryption-key"] = template["encryptionKey"]
    for field, key in (("client", "client-name"), ("clientVersion", "client-version")):
        if template.get(field):
            out[RUN + key] = str(template[field])
    resources = ((template.get("containers") or [{}])[0]).get("resources") or {}
    # Shown when they differ from Cloud Run's defaults (CPU throttled, no startup boost).
    if resources.get("cpuIdle") is False:
        out[RUN + "cpu-throttling"] = "false"
    if resources.get("startupCpuBoost"):
        out[RUN + "startup-cpu-boost"] = "true"
    return out


def _container(container: Resource) -> Resource:
    out = {k: container[k] for k in ("name", "image", "command", "args", "workingDir") if container.get(k)}
    if container.get("env"):
        out["env"] = [_env(e) for e in container["env"]]
    if container.get("ports"):
        out["ports"] = [dict(p) for p in container["ports"]]
    limits = (container.get("resources") or {}).get("limits")
    if limits:
        out["resources"] = {"limits": dict(limits)}
    if container.get("volumeMounts"):
        out["volumeMounts"] = [dict(m) for m in container["volumeMounts"]]
    for probe in ("startupProbe", "livenessProbe"):
        if container.get(probe):
            out[probe] = {k: v for k, v in container[probe].items()}
    return out


def _env(env: Resource) -> Resource:
    secret = (env.get("valueSource") or {}).get("secretKeyRef")
    if secret:
        return {
            "name": env["name"],
            "valueFrom": {"secretKeyRef": {"name": secret["secret"], "key": secret.get("version", "latest")}},
        }
    return dict(env)


def _traffic(target: Resource, status: bool = False, latest_ready: str = "") -> Resource:
    out: Resource = {"percent": int(target.get("percent", 0))}
    if target.get("type") == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST":
        out["latestRevision"] = True
        if status and latest_ready:
            out["revisionName"] = latest_ready
    elif target.get("revision"):
        out["revisionName"] = target["revision"]
    if target.get("tag"):
        out["tag"] = target["tag"]
    return out


def _status(v2: Resource) -> Resource:
    status: Resource = {"conditions": _conditions(v2)}
    if v2.get("observedGeneration"):
        status["observedGeneration"] = int(v2["observedGeneration"])
    ready = _short(v2.get("latestReadyRevision", ""))
    for field, key in (
        ("latestReadyRevision", "latestReadyRevisionName"),
        ("latestCreatedRevision", "latestCreatedRevisionName"),
    ):
        if v2.get(field):
            status[key] = _short(v2[field])
    if v2.get("trafficStatuses"):
        status["traffic"] = [_traffic(t, True, ready) for t in v2["trafficStatuses"]]
    if v2.get("uri"):
        status["url"] = v2["uri"]
        status["address"] = {"url": v2["uri"]}
    return status


def _conditions(v2: Resource) -> list[Resource]:
    """Ready (from the terminal condition), then the sub-conditions; Unknown while reconciling."""
    terminal = v2.get("terminalCondition") or {}
    out = [_condition({**terminal, "type": "Ready"})]
    subs = {c.get("type"): c for c in v2.get("conditions") or []}
    for kind in ("ConfigurationsReady", "RoutesReady"):
        out.append(_condition({**subs.get(kind, {}), "type": kind}))
    if v2.get("reconciling"):
        for condition in out:
            condition["status"] = "Unknown"
    return out


def _condition(v2: Resource) -> Resource:
    out: Resource = {"type": v2["type"], "status": STATUS.get(v2.get("state", ""), "Unknown")}
    for key in ("message", "lastTransitionTime"):
        if v2.get(key):
            out[key] = v2[key]
    if v2.get("reason"):
        # v2 reasons are enum names (VPC_NETWORK_NOT_FOUND); Knative reasons are CamelCase words.
        out["reason"] = "".join(word.capitalize() for word in str(v2["reason"]).split("_"))
    if v2.get("severity") in ("ERROR", "WARNING", "INFO"):
        out["severity"] = v2["severity"].capitalize()  # gcloud compares with "Error"
    return out


def _short(revision: str) -> str:
    return revision.rsplit("/", 1)[-1]
