"""Server-side ``Table`` output (what ``kubectl get`` prints), from a type's printer columns."""

from __future__ import annotations

import datetime
from typing import Any

from runnet.emulator.kube import jsonpath
from runnet.emulator.kube.registry import ResourceType

NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. Name is "
    "primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "priority": 0,
}


VIEWS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")


def wanted_view(accept: str) -> tuple[str, str] | None:
    """``("Table", "v1")`` etc. if ``Accept`` asks for a meta.k8s.io view before plain JSON."""
    for media in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in media.split(";")[1:])
        if params.get("g") == "meta.k8s.io" and params.get("as") in VIEWS:
            return params["as"], params.get("v", "v1")
        if media.split(";")[0].strip() in ("application/json", "*/*", "application/yaml") and "as" not in params:
            return None
    return None


def partial(obj: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata", {}),
    }


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration, as ``kubectl get`` prints ages."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _since(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        then = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


def cell(column: dict[str, Any], obj: dict[str, Any]) -> Any:
    """One cell, as the apiextensions table convertor computes it (first result only)."""
    try:
        found = jsonpath.find(obj, jsonpath.parse(column["jsonPath"]))
    except jsonpath.JSONPathError:
        return None
    if not found or found[0] is None:
        return None
    value, kind = found[0], column.get("type", "string")
    if column.get("reference") and isinstance(value, dict):  # events print their object as kind/name
        return f"{str(value.get('kind', '')).lower()}/{value.get('name', '')}"
    if kind == "string":
        return jsonpath.go_format(value)
    if kind == "date":
        return _since(value)
    if kind == "integer":
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return int(value) if numeric and float(value).is_integer() else None
    if kind == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    return jsonpath.go_format(value)


def definitions(rt: ResourceType) -> list[dict[str, Any]]:
    return [NAME_COLUMN] * rt.name_column + [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in rt.columns
    ]


def _row_object(obj: dict[str, Any], include: str, version: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return partial(obj, version)


def table(
    rt: ResourceType,
    objs: list[dict[str, Any]],
    resource_version: str,
    *,
    include: str = "Metadata",
    version: str = "v1",
    headers: bool = True,
) -> dict[str, Any]:
    rows = []
    for obj in objs:
        name = [obj.get("metadata", {}).get("name")] * rt.name_column
        row: dict[str, Any] = {"cells": name + [cell(c, obj) for c in rt.columns]}
        embedded = _row_object(obj, include, version)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions(rt) if headers else [],
        "rows": rows,
    }
