"""The PATCH flavours: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch.

Strategic merge is approximated as a merge patch without the ``$``-directives; the API server
only accepts it for built-in kinds, which here carry no list merge keys that matter.
"""

from __future__ import annotations

import copy
from typing import Any

from runnet.emulator.kube.errors import ApiError, bad_request, unprocessable

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    return merge_patch(target, _strip_directives(patch))


def _strip_directives(patch: Any) -> Any:
    if isinstance(patch, dict):
        return {k: _strip_directives(v) for k, v in patch.items() if not k.startswith("$")}
    return patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise unprocessable(f'json pointer "{path}" does not start with "/"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str, op: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise unprocessable(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return node


def _get(doc: Any, path: str, op: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    node, last = _parent(doc, parts, path, op), parts[-1]
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise unprocessable(f"{op} operation does not apply: doc is missing key: {path}: missing value")


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    node, last = _parent(doc, parts, path, op), parts[-1]
    if isinstance(node, dict):
        node[last] = copy.deepcopy(value)
    elif isinstance(node, list):
        index = len(node) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(node):
            raise unprocessable(f"{op} operation does not apply: index out of bounds: {path}")
        node.insert(index, copy.deepcopy(value))
    else:
        raise unprocessable(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> Any:
    parts = _pointer(path)
    _get(doc, path, op)
    node, last = _parent(doc, parts, path, op), parts[-1]
    if isinstance(node, dict):
        del node[last]
    else:
        del node[int(last)]
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply RFC 6902 operations to a copy; failures (a failed ``test`` too) raise 422."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {op!r}")
        doc = _apply_op(doc, op)
    return doc


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind, path = op["op"], op.get("path", "")
    if kind == "add":
        return _add(doc, path, op.get("value"))
    if kind == "remove":
        return _remove(doc, path)
    if kind == "replace":
        _get(doc, path, "replace")
        return _add(_remove(doc, path, "replace"), path, op.get("value"), "replace")
    if kind in ("move", "copy"):
        value = copy.deepcopy(_get(doc, op.get("from", ""), kind))
        if kind == "move":
            doc = _remove(doc, op.get("from", ""), kind)
        return _add(doc, path, value, kind)
    if kind == "test":
        try:
            found = _get(doc, path, "test")
        except ApiError:
            found = None
        if found != op.get("value"):
            raise unprocessable(f"testing value {path} failed: test failed")
        return doc
    raise bad_request(f"Unexpected kind: {kind}")
