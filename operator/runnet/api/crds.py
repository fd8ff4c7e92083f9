"""CustomResourceDefinitions generated from the pydantic models (the single source of truth).

Kubernetes wants structural schemas: every node typed, no ``$ref``, no ``anyOf`` with null. The
pydantic JSON schema is rewritten into that form; CEL rules travel in ``json_schema_extra``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from runnet.api import egress, psc, tenancy
from runnet.api.common import GROUP, VERSION, expectation


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str = ""
    columns: list[dict[str, Any]] = field(default_factory=list)
    namespaced: bool = True

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _ready_column() -> dict[str, Any]:
    return {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}


def _age_column() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


KINDS: list[KindInfo] = [
    KindInfo(
        kind=egress.KIND,
        plural="egressgateways",
        singular="egressgateway",
        short_names=["egw"],
        spec=egress.EgressGatewaySpec,
        status=egress.EgressGatewayStatus,
        description=egress.DESCRIPTION,
        columns=[
            _ready_column(),
            {"name": "NAT IPs", "type": "string", "jsonPath": ".status.summary.natIPs"},
            {"name": "Services", "type": "string", "jsonPath": ".status.summary.services"},
            _age_column(),
            {"name": "Draining", "type": "string", "jsonPath": ".status.summary.draining", "priority": 1},
        ],
    ),
    KindInfo(
        kind=psc.EXPORT_KIND,
        plural="pscexports",
        singular="pscexport",
        short_names=["pscx"],
        spec=psc.PSCExportSpec,
        status=psc.PSCExportStatus,
        description=psc.EXPORT_DESCRIPTION,
        columns=[
            _ready_column(),
            {"name": "Attachment", "type": "string", "jsonPath": ".status.summary.attachment"},
            {"name": "Accepted", "type": "integer", "jsonPath": ".status.accepted"},
            {"name": "Pending", "type": "integer", "jsonPath": ".status.pending"},
            {"name": "Rejected", "type": "integer", "jsonPath": ".status.rejected"},
            _age_column(),
        ],
    ),
    KindInfo(
        kind=psc.ENDPOINT_KIND,
        plural="pscendpoints",
        singular="pscendpoint",
        short_names=["psce"],
        spec=psc.PSCEndpointSpec,
        status=psc.PSCEndpointStatus,
        description=psc.ENDPOINT_DESCRIPTION,
        columns=[
            _ready_column(),
            {"name": "IP", "type": "string", "jsonPath": ".status.ip"},
            {"name": "Status", "type": "string", "jsonPath": ".status.connectionStatus"},
            _age_column(),
            {"name": "Service URL", "type": "string", "jsonPath": ".status.serviceURL", "priority": 1},
        ],
    ),
    KindInfo(
        kind=tenancy.KIND,
        plural="projectbindings",
        singular="projectbinding",
        short_names=["pb"],
        spec=tenancy.ProjectBindingSpec,
        status=tenancy.ProjectBindingStatus,
        description=tenancy.DESCRIPTION,
        namespaced=False,
        columns=[
            _ready_column(),
            {"name": "Project", "type": "string", "jsonPath": ".spec.project"},
            {"name": "Service Account", "type": "string", "jsonPath": ".spec.serviceAccount"},
            {"name": "Objects", "type": "integer", "jsonPath": ".status.objects"},
            _age_column(),
        ],
    ),
]


def structural(model: type[BaseModel], path: str = "spec") -> dict[str, Any]:
    """The model's schema in Kubernetes' structural OpenAPI v3 subset (``path``: where it sits, for messages)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _clean(raw, defs, path)


_DROP = {"title", "$defs"}


def _cel_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _worded(node: dict[str, Any], path: str) -> None:
    """A ``pattern`` becomes a CEL rule whose message names the field and says in words what fits."""
    pattern = node.pop("pattern")
    where = path
    if path.endswith("[*]"):
        where = f"each entry of {path.removesuffix('[*]')}"
    elif "[*]" in path:
        parent, _, leaf = path.rpartition("[*].")
        where = f"the {leaf} of each {parent} entry"
    rule = {"rule": f"self.matches({_cel_string(pattern)})", "message": f"{where} must be {expectation(pattern)}"}
    node["x-kubernetes-validations"] = [rule, *node.get("x-kubernetes-validations", [])]
    if "maxLength" not in node:
        raise ValueError(f"{path}: a patterned string needs max_length (CEL's cost budget)")


def _clean(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        merged = {**_clean(target, defs, path), **{k: v for k, v in node.items() if k not in _DROP}}
        return _clean(merged, defs, path) if "$ref" in merged else merged
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = _clean(node.pop("allOf")[0], defs, path)
        node = {**inner, **node}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        node.pop("anyOf")
        if len(options) == 1:
            node = {**_clean(options[0], defs, path), **node}
            node.pop("default", None) if node.get("default") is None else None
        else:
            raise ValueError(f"union types are not structural: {options}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _clean(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _clean(value, defs, f"{path}[*]")
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if "pattern" in out:
        _worded(out, path)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("default") is None:
        out.pop("default", None)
    if out.get("additionalProperties") is False:
        out.pop("additionalProperties")
    return out


def crd(info: KindInfo) -> dict[str, Any]:
    spec_schema = structural(info.spec)
    spec_schema["description"] = f"Desired state of the {info.kind}."
    status_schema = structural(info.status, "status")
    status_schema["description"] = f"What runnet observed of the {info.kind} in GCP (written by the operator)."
    # Before runnet's first pass an object reads as "generation N not observed yet" (observedGeneration
    # 0), so that kstatus, Flux and Argo CD see it in progress instead of taking a missing status for done.
    status_schema["default"] = {}
    status_schema["properties"]["observedGeneration"]["default"] = 0
    status_schema.pop("required", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name, "labels": {"app.kubernetes.io/part-of": "runnet"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": info.short_names,
                "categories": ["runnet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}"},
                                "kind": {"type": "string", "description": info.kind},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(info: KindInfo) -> str:
    header = "# Generated by `runnet crds` from operator/runnet/api: do not edit by hand.\n"
    return header + yaml.safe_dump(crd(info), sort_keys=False, width=120)


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for info in KINDS:
        path = directory / f"{info.crd_name}.yaml"
        path.write_text(render(info))
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Names of the CRD files that differ from what the models generate (empty when in sync)."""
    out = []
    for info in KINDS:
        path = directory / f"{info.crd_name}.yaml"
        if not path.exists() or path.read_text() != render(info):
            out.append(path.name)
    return out
