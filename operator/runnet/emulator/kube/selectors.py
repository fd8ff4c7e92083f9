"""Label and field selectors, parsed and matched as the API server does (errors included)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from runnet.emulator.kube.errors import ApiError, bad_request

Matcher = Callable[[dict[str, Any]], bool]

_LABEL_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|=|!=|>|<)\s*(?P<value>[-A-Za-z0-9_.]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def label_matcher(selector: str) -> Matcher:
    """``app=web,tier!=db,env in (a,b),!legacy,release`` → a predicate on an object."""
    checks = [_label_check(part) for part in _split_top(selector or "")]

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def _label_check(part: str) -> Callable[[dict[str, str]], bool]:
    m = _LABEL_REQ.match(part)
    if not m or (m.group("neg") and (m.group("op") or m.group("setop"))):
        raise bad_request(f"unable to parse requirement: found '{part.strip()}', expected: identifier")
    key, op, value = m.group("key"), m.group("op"), m.group("value") or ""
    if m.group("neg"):
        return lambda labels: key not in labels
    if m.group("setop"):
        values = {v.strip() for v in m.group("values").split(",") if v.strip()}
        if m.group("setop") == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if op in (">", "<"):
        return _numeric(key, op, value, part)
    return lambda labels: key in labels


def _numeric(key: str, op: str, value: str, part: str) -> Callable[[dict[str, str]], bool]:
    try:
        bound = int(value)
    except ValueError as exc:
        raise bad_request(
            f"unable to parse requirement: for 'gt', 'lt' operators, the value must be an integer: {part}"
        ) from exc

    def check(labels: dict[str, str]) -> bool:
        try:
            have = int(labels[key])
        except (KeyError, ValueError):
            return False
        return have > bound if op == ">" else have < bound

    return check


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_fields(selector: str) -> list[tuple[str, str, str]]:
    """``metadata.name=x,status.phase!=Active`` → [(field, op, value)]; escapes ``\\,`` and ``\\=``."""
    terms = []
    for part in re.split(r"(?<!\\),", selector or ""):
        if not part.strip():
            continue
        m = re.match(r"^\s*([^=!]+?)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        terms.append((m.group(1), "!=" if m.group(2) == "!=" else "=", _unescape(m.group(3))))
    return terms


def field_value(obj: dict[str, Any], label: str) -> str:
    """A field's value as the selector compares it (strings; ``source`` is the event source component)."""
    if label == "source":
        label = "source.component"
    value: Any = obj
    for part in label.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_matcher(selector: str, supported: Callable[[str], bool]) -> Matcher:
    terms = parse_fields(selector)
    for label, _, _ in terms:
        if not supported(label):
            raise ApiError(400, "BadRequest", f"field label not supported: {label}")
    return lambda obj: all((field_value(obj, lbl) == val) == (op == "=") for lbl, op, val in terms)
