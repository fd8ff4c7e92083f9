"""The subset of Kubernetes JSONPath that printer columns and selectable fields use.

Supported: ``.a.b``, ``['a']``, ``[0]``, ``[-1]``, ``[*]``, ``[1:3]``, ``..name`` and filters
``[?(@.type=="Ready")]`` (``==``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, or bare ``@.field``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    kind: str  # key, index, all, slice, filter, recurse
    arg: Any = None


class JSONPathError(ValueError):
    pass


def _closing(text: str, start: int) -> int:
    """Index of the ``]`` matching the ``[`` at ``start`` (quotes and parentheses respected)."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth == 0 and ch == "]":
                return i
    raise JSONPathError(f"unclosed [ in {text!r}")


def _name(text: str, i: int) -> tuple[str, int]:
    m = re.compile(r"[^.\[]*").match(text, i)
    assert m is not None
    return m.group(0), m.end()


def parse(path: str) -> list[Step]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    steps: list[Step] = []
    i = 1 if text.startswith("$") else 0
    while i < len(text):
        if text.startswith("..", i):
            name, i = _name(text, i + 2)
            steps.append(Step("recurse"))
            if name:
                steps.append(Step("key", name) if name != "*" else Step("all"))
        elif text[i] == "[":
            end = _closing(text, i)
            steps.append(_bracket(text[i + 1 : end].strip()))
            i = end + 1
        else:
            name, i = _name(text, i + 1 if text[i] == "." else i)
            if name:
                steps.append(Step("all") if name == "*" else Step("key", name))
    return steps


def _bracket(inner: str) -> Step:
    if inner.startswith("?(") and inner.endswith(")"):
        return Step("filter", _filter(inner[2:-1].strip()))
    if inner == "*":
        return Step("all")
    if inner[:1] in "\"'":
        return Step("key", inner[1:-1])
    if ":" in inner:
        lo, _, hi = inner.partition(":")
        return Step("slice", (int(lo) if lo.strip() else None, int(hi.split(":")[0]) if hi.strip() else None))
    try:
        return Step("index", int(inner))
    except ValueError as exc:
        raise JSONPathError(f"unrecognized identifier {inner!r}") from exc


_FILTER = re.compile(r"^(@[^\s=!<>]*)\s*(==|!=|<=|>=|<|>)?\s*(.*)$")


def _filter(expr: str) -> tuple[list[Step], str, Any]:
    m = _FILTER.match(expr)
    if not m:
        raise JSONPathError(f"unrecognized filter {expr!r}")
    left, op, right = m.group(1)[1:], m.group(2) or "", m.group(3).strip()
    literal: Any = None
    if op:
        try:
            literal = json.loads(right.replace("'", '"'))
        except ValueError:
            literal = right
    return parse(left), op, literal


def _compare(value: Any, op: str, literal: Any) -> bool:
    if op == "==":
        return bool(value == literal)
    if op == "!=":
        return bool(value != literal)
    try:
        return bool({"<": value < literal, ">": value > literal, "<=": value <= literal, ">=": value >= literal}[op])
    except TypeError:
        return False


def _descendants(node: Any) -> list[Any]:
    found = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found.extend(_descendants(child))
    return found


def _step(nodes: list[Any], step: Step) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if (step.kind == "key" and isinstance(node, dict) and step.arg in node) or (
            step.kind == "index" and isinstance(node, list) and -len(node) <= step.arg < len(node)
        ):
            out.append(node[step.arg])
        elif step.kind == "all":
            out.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])
        elif step.kind == "slice" and isinstance(node, list):
            out.extend(node[step.arg[0] : step.arg[1]])
        elif step.kind == "recurse":
            out.extend(_descendants(node))
        elif step.kind == "filter" and isinstance(node, list):
            path, op, literal = step.arg
            for item in node:
                found = find(item, path)
                if found and (not op or _compare(found[0], op, literal)):
                    out.append(item)
    return out


def find(obj: Any, steps: list[Step]) -> list[Any]:
    """All values the path selects (missing keys select nothing)."""
    nodes = [obj]
    for step in steps:
        nodes = _step(nodes, step)
    return nodes


def go_format(value: Any) -> str:
    """Print a value as Go's fmt does for JSON data: ``[a b]``, ``map[k:v]``, ``true``, ``1.5``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return "<nil>" if value is None else str(value)


def go_json(value: Any) -> str:
    """Go's json.Marshal of decoded JSON: compact, map keys sorted, <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
