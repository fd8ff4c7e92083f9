"""CustomResourceDefinitions: checking them, defaulting them, and turning them into served types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from runnet.emulator.kube import cel
from runnet.emulator.kube.errors import Cause, invalid_value, required
from runnet.emulator.kube.meta import now
from runnet.emulator.kube.registry import AGE_COLUMN, CUSTOM_VERBS, META_FIELDS, ResourceType
from runnet.emulator.kube.schema import default_causes

CRD_API_VERSION = "apiextensions.k8s.io/v1"


def load_dir(path: str | Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in ``*.yaml``/``*.yml``/``*.json`` files of a directory."""
    found: list[dict[str, Any]] = []
    files = sorted(p for p in Path(path).iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(doc)
    return found


def apply_defaults(crd: dict[str, Any]) -> None:
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or []:
        if isinstance(version, dict):
            version.setdefault("served", True)


def check(crd: dict[str, Any]) -> list[Cause]:
    """The checks the apiextensions server makes that a generated CRD could plausibly fail."""
    spec, causes = crd.get("spec") or {}, []
    names, group = spec.get("names") or {}, spec.get("group")
    for key, value in (
        ("spec.group", group),
        ("spec.names.plural", names.get("plural")),
        ("spec.names.kind", names.get("kind")),
    ):
        if not value:
            causes.append(required(key))
    name = (crd.get("metadata") or {}).get("name", "")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        causes.append(invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "spec.scope",
                "FieldValueNotSupported",
                'supported values: "Cluster", "Namespaced"',
                spec.get("scope"),
                show=True,
            )
        )
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    if not versions:
        causes.append(required("spec.versions", "must have exactly one version marked as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            invalid_value(
                "spec.versions",
                [v.get("name") for v in versions],
                "must have exactly one version marked as storage version",
            )
        )
    for i, version in enumerate(versions):
        causes.extend(_check_version(version, f"spec.versions[{i}]"))
    return causes


def _check_version(version: dict[str, Any], path: str) -> list[Cause]:
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if not isinstance(schema, dict):
        return [required(f"{path}.schema.openAPIV3Schema", "schemas are required")]
    causes = default_causes(schema, f"{path}.schema.openAPIV3Schema")
    metadata = (schema.get("properties") or {}).get("metadata")
    if isinstance(metadata, dict) and set(metadata) - {"type"}:
        # The real server: only name and generateName may be specified, metadata is implicit.
        causes.append(
            Cause(
                "spec.validation.openAPIV3Schema.properties[metadata]",
                "FieldValueForbidden",
                "Forbidden: must not specify anything other than name and generateName, but metadata is "
                "implicitly specified",
            )
        )
    for where, rule in cel.schema_rules(schema, f"{path}.schema.openAPIV3Schema"):
        for key in ("rule", "messageExpression"):
            if not rule.get(key):
                continue
            try:
                cel.compile_rule(rule[key])
            except cel.CelError as exc:
                causes.append(invalid_value(f"{where}.{key}", rule[key], str(exc)))
    return causes


CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def initial_status(crd: dict[str, Any]) -> None:
    """A new CRD's status as stored by the create itself, before the controllers accept its names."""
    storage = [v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")]
    crd["status"] = {"conditions": None, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": storage}


def set_condition(crd: dict[str, Any], kind: str, status: str, reason: str, message: str) -> None:
    """Set one condition of a CRD's status in place, as SetCRDCondition does (the time moves with the status)."""
    conditions = list(crd.setdefault("status", {}).get("conditions") or [])
    old = next((c for c in conditions if c.get("type") == kind), None)
    stamp = old["lastTransitionTime"] if old and old.get("status") == status else now()
    condition = {"type": kind, "status": status, "lastTransitionTime": stamp, "reason": reason, "message": message}
    replaced = [condition if c is old else c for c in conditions]
    crd["status"]["conditions"] = replaced if old else [*conditions, condition]


def set_status(crd: dict[str, Any], old_status: dict[str, Any] | None = None) -> None:
    """What the apiextensions controllers write: names accepted, Established, stored versions."""
    spec = crd["spec"]
    storage = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
    stored = list((old_status or {}).get("storedVersions") or [])
    crd["status"] = {
        "conditions": list((old_status or {}).get("conditions") or []),
        "acceptedNames": dict(spec.get("names") or {}),
        "storedVersions": stored + [v for v in storage if v not in stored],
    }
    set_condition(crd, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
    set_condition(crd, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted")


def types_of(crd: dict[str, Any]) -> list[ResourceType]:
    """One served type per served version of a (valid, defaulted) CRD."""
    spec, names = crd["spec"], crd["spec"]["names"]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    found = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        columns = tuple(version.get("additionalPrinterColumns") or ()) or (AGE_COLUMN,)
        found.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                singular=names.get("singular", ""),
                list_kind=names.get("listKind", ""),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                status_subresource="status" in (version.get("subresources") or {}),
                columns=columns,
                field_labels=META_FIELDS,
                selectable=tuple(f["jsonPath"] for f in version.get("selectableFields") or ()),
                custom=True,
                verbs=CUSTOM_VERBS,
                storage_version=storage,
                crd_name=crd["metadata"]["name"],
            )
        )
    return found
