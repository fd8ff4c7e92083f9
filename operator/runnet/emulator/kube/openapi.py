"""OpenAPI v3 documents per group/version, enough for ``kubectl apply`` to validate server-side.

kubectl looks for a PATCH operation tagged with the kind's ``x-kubernetes-group-version-kind``
that takes a ``fieldValidation`` query parameter; finding one, it sends ``fieldValidation=Strict``
and lets the server reject unknown fields. Without this it demands ``--validate=false``.
Custom resources list no strategic-merge content type, so kubectl sends merge patches, as it does
against a real cluster. /openapi/v2 is protobuf-only in real servers and is not served.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from runnet.emulator.kube.registry import Registry, ResourceType

META_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
PATCH_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
STATUS_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": True}}


WRITE_PARAMS = [
    _query("dryRun", "When present, indicates that modifications should not be persisted."),
    _query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
    _query(
        "fieldValidation",
        "fieldValidation instructs the server on how to handle objects in the request "
        "containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
    ),
]


def schema_name(rt: ResourceType) -> str:
    if not rt.group:
        return f"io.k8s.api.core.v1.{rt.kind}"
    return ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"


def _op(rt: ResourceType, action: str, ref: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    }
    if params:
        op["parameters"] = params
    return op


def _body(ref: str, types: tuple[str, ...] = ("application/json",)) -> dict[str, Any]:
    return {"content": {t: {"schema": {"$ref": ref}} for t in types}, "required": True}


def _paths(rt: ResourceType) -> dict[str, Any]:
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    ref = f"#/components/schemas/{schema_name(rt)}"
    patch_ref = f"#/components/schemas/{PATCH_REF}"
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    item = collection + "/{name}"
    patch_types = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
    patch = {
        **_op(rt, "patch", ref, [*WRITE_PARAMS, _query("force", "Force is going to force Apply requests.")]),
        "requestBody": _body(patch_ref, patch_types),
    }
    put = {**_op(rt, "put", ref, WRITE_PARAMS), "requestBody": _body(ref)}
    paths: dict[str, Any] = {
        collection: {
            "get": _op(rt, "list", ref),
            "post": {**_op(rt, "post", ref, WRITE_PARAMS), "requestBody": _body(ref)},
            "delete": _op(rt, "deletecollection", f"#/components/schemas/{STATUS_REF}"),
        },
        item: {"get": _op(rt, "get", ref), "put": put, "patch": patch, "delete": _op(rt, "delete", ref)},
    }
    if rt.status_subresource:
        paths[item + "/status"] = {"get": _op(rt, "get", ref), "put": put, "patch": patch}
    if rt.namespaced:
        paths[f"{base}/{rt.plural}"] = {"get": _op(rt, "list", ref)}
    return paths


def _schema(rt: ResourceType) -> dict[str, Any]:
    loose: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema: dict[str, Any] = copy.deepcopy(rt.schema) if rt.schema else loose
    if rt.schema:
        props: dict[str, Any] = schema.setdefault("properties", {})
        props["metadata"] = {"allOf": [{"$ref": f"#/components/schemas/{META_REF}"}], "default": {}}
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
    schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
    return schema


def document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_version(group, version)
    if not types:
        return None
    loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schemas: dict[str, Any] = {META_REF: loose, PATCH_REF: {"type": "object"}, STATUS_REF: loose}
    paths: dict[str, Any] = {}
    for rt in types:
        paths.update(_paths(rt))
        schemas[schema_name(rt)] = _schema(rt)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def digest(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()


def index(registry: Registry) -> dict[str, Any]:
    """/openapi/v3: one entry per group/version, with a hash that changes with its content."""
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = document(registry, group, version)
            rel = f"apis/{group}/{version}" if group else f"api/{version}"
            if doc is not None:
                paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={digest(doc)}"}
    return {"paths": paths}
