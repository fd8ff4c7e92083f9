"""Server-side ``Table`` output (what ``kubectl get`` prints), from a type's printer columns."""

from __future__ import annotations

import datetime
from typing import Any

from runnet.emulator.kube import jsonpath, printers
from runnet.emulator.kube.registry import ResourceType

NAME_COLUMN = printers.NAMESPACES_COLUMNS[0]  # the Name column every table starts with


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


def _since(value: Any) -> str | None:
    then = printers.parse_time(value)
    if then is None:
        return None
    return printers.human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


def cell(column: dict[str, Any], obj: dict[str, Any]) -> Any:
    """One cell, as the apiextensions table convertor computes it (first result only)."""
    try:
        found = jsonpath.find(obj, jsonpath.parse(column["jsonPath"]))
    except jsonpath.JSONPathError:
        return None
    if not found or found[0] is None:
        return None
    value, kind = found[0], column.get("type", "string")
    if kind == "string":  # JSONPath's PrintResults: lists and maps as JSON, the rest as Go prints them
        return jsonpath.go_json(value) if isinstance(value, list | dict) else jsonpath.go_format(value)
    if kind == "date":
        return (_since(value) or "<invalid>") if isinstance(value, str) else None
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        return int(value) if numeric else None  # a float is truncated, as Go's int64() does
    if kind == "number":
        return value if numeric else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    return None  # any other column type shows <none>


def definitions(rt: ResourceType) -> list[dict[str, Any]]:
    printer = None if rt.custom else printers.PRINTERS.get(rt.key)
    if printer is not None:
        return list(printer[0])

    def description(column: dict[str, Any]) -> str:
        if column.get("description") or not rt.custom:
            return str(column.get("description", ""))
        return f"Custom resource definition column (in JSONPath format): {column['jsonPath']}"

    return [NAME_COLUMN] + [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": description(c),
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
    printer = None if rt.custom else printers.PRINTERS.get(rt.key)
    rows = []
    for obj in objs:
        if printer is not None:
            cells = printer[1](obj)
        else:
            cells = [obj.get("metadata", {}).get("name")] + [cell(c, obj) for c in rt.columns]
        row: dict[str, Any] = {"cells": cells}
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
