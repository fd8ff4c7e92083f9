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

from runnet.api import egress, psc
from runnet.api.common import GROUP, VERSION


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[dict[str, Any]] = field(default_factory=list)

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
        columns=[
            _ready_column(),
            {"name": "NAT IPs", "type": "string", "jsonPath": ".status.summary.natIPs"},
            {"name": "Services", "type": "string", "jsonPath": ".status.summary.services"},
            _age_column(),
        ],
    ),
    KindInfo(
        kind=psc.EXPORT_KIND,
        plural="pscexports",
        singular="pscexport",
        short_names=["pscx"],
        spec=psc.PSCExportSpec,
        status=psc.PSCExportStatus,
        columns=[
            _ready_column(),
            {"name": "Attachment", "type": "string", "jsonPath": ".status.summary.attachment"},
            {"name": "Accepted", "type": "integer", "jsonPath": ".status.accepted"},
            {"name": "Pending", "type": "integer", "jsonPath": ".status.pending"},
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
        columns=[
            _ready_column(),
            {"name": "IP", "type": "string", "jsonPath": ".status.ip"},
            {"name": "Status", "type": "string", "jsonPath": ".status.connectionStatus"},
            _age_column(),
        ],
    ),
]


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema in Kubernetes' structural OpenAPI v3 subset."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _clean(raw, defs)


_DROP = {"title", "$defs"}


def _clean(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        merged = {**_clean(target, defs), **{k: v for k, v in node.items() if k not in _DROP}}
        return _clean(merged, defs) if "$ref" in merged else merged
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = _clean(node.pop("allOf")[0], defs)
        node = {**inner, **node}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        node.pop("anyOf")
        if len(options) == 1:
            node = {**_clean(options[0], defs), **node}
            node.pop("default", None) if node.get("default") is None else None
        else:
            raise ValueError(f"union types are not structural: {options}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _clean(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _clean(value, defs)
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
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
    spec_schema.setdefault("description", f"Desired state of the {info.kind}.")
    status_schema = structural(info.status)
    status_schema.pop("required", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name, "labels": {"app.kubernetes.io/part-of": "runnet"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
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
                            "description": f"{info.kind} (generated from runnet.api; do not edit).",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
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
