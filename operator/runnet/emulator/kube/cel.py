"""``x-kubernetes-validations``: CEL rules evaluated with cel-python, transition rules included.

Each rule runs with ``self`` bound to the value at its schema node and, on updates where the old
object has a value at the same place, ``oldSelf`` to the old value. Rules that mention ``oldSelf``
are transition rules and are skipped when there is no old value (on create, for new fields).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from runnet.emulator.kube.errors import Cause
from runnet.emulator.kube.schema import join, sub_schema

MISSING: Any = object()
_OLD_SELF = re.compile(r"\boldSelf\b")


class CelError(Exception):
    """A rule that does not compile."""


def _str(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        result = fn(*[str(a) if isinstance(a, str) else a for a in args])
        if isinstance(result, str):
            return celtypes.StringType(result)
        if isinstance(result, bool):
            return celtypes.BoolType(result)
        if isinstance(result, int):
            return celtypes.IntType(result)
        if isinstance(result, list):
            return celtypes.ListType([celtypes.StringType(x) for x in result])
        return result

    return wrapped


def _valid(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return check


def _is_url(value: str) -> bool:
    parsed = urllib.parse.urlparse(value)
    return bool(parsed.scheme) and (bool(parsed.netloc) or value.startswith("/"))


# The Kubernetes CEL libraries' string/list/network helpers that CRD rules commonly use.
K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": _str(lambda s: s.lower()),
    "upperAscii": _str(lambda s: s.upper()),
    "trim": _str(lambda s: s.strip()),
    "split": _str(lambda s, sep: s.split(sep)),
    "join": _str(lambda items, sep="": sep.join(str(i) for i in items)),
    "replace": _str(lambda s, old, new: s.replace(old, new)),
    "indexOf": _str(lambda s, sub: s.find(sub)),
    "lastIndexOf": _str(lambda s, sub: s.rfind(sub)),
    "substring": _str(lambda s, start, end=None: s[int(start) : None if end is None else int(end)]),
    "isIP": _str(_valid(ipaddress.ip_address)),
    "isCIDR": _str(_valid(lambda v: ipaddress.ip_network(v, strict=False))),
    "isURL": _str(_is_url),
}

_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def compile_rule(rule: str) -> Any:
    """Compile (once) and return a runnable program; ``CelError`` if the rule does not parse."""
    program = _PROGRAMS.get(rule)
    if program is None:
        try:
            program = _ENV.program(_ENV.compile(rule), functions=K8S_FUNCTIONS)
        except CELParseError as exc:
            raise CelError("compilation failed: " + " ".join(str(exc).split())) from exc
        _PROGRAMS[rule] = program
    return program


def evaluate(rule: str, self_value: Any, old_value: Any = MISSING) -> Any:
    """Run a rule; returns the CEL result or raises ``CELEvalError``."""
    activation = {"self": json_to_cel(self_value)}
    if old_value is not MISSING:
        activation["oldSelf"] = json_to_cel(old_value)
    result = compile_rule(rule).evaluate(activation)
    if isinstance(result, CELEvalError):
        raise result
    return result


def is_transition(rule: dict[str, Any]) -> bool:
    return bool(_OLD_SELF.search(rule.get("rule", "")))


def schema_rules(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every rule in a schema with the schema path it sits at (for checking a CRD)."""
    found = [
        (join(path, f"x-kubernetes-validations[{i}]"), r)
        for i, r in enumerate(schema.get("x-kubernetes-validations") or [])
    ]
    for name, sub in (schema.get("properties") or {}).items():
        found.extend(schema_rules(sub, join(path, f"properties[{name}]")))
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found.extend(schema_rules(schema[key], join(path, key)))
    return found


def check(value: Any, schema: dict[str, Any], old: Any = MISSING, path: str = "") -> list[Cause]:
    """All failed rules below (and at) a schema node, as field causes."""
    causes = [c for rule in schema.get("x-kubernetes-validations") or [] if (c := _run(rule, value, old, schema, path))]
    if isinstance(value, dict):
        for key, item in value.items():
            sub = sub_schema(schema, key)
            if sub is not None:
                was = old.get(key, MISSING) if isinstance(old, dict) else MISSING
                causes.extend(check(item, sub, was, join(path, key)))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        olds = _correlate(value, old, schema)
        for i, item in enumerate(value):
            causes.extend(check(item, schema["items"], olds[i], join(path, i)))
    return causes


def _correlate(items: list[Any], old: Any, schema: dict[str, Any]) -> list[Any]:
    """Old values of list items: only map lists correlate (by their keys), as in the API server."""
    keys = schema.get("x-kubernetes-list-map-keys") or []
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list) or not keys:
        return [MISSING] * len(items)

    def ident(item: Any) -> Any:
        return tuple(item.get(k) for k in keys) if isinstance(item, dict) else None

    by_key = {ident(o): o for o in old}
    return [by_key.get(ident(item), MISSING) for item in items]


def _run(rule: dict[str, Any], value: Any, old: Any, schema: dict[str, Any], path: str) -> Cause | None:
    text = rule.get("rule", "")
    if is_transition(rule) and old is MISSING:
        return None
    if not is_transition(rule) and old is not MISSING and value == old:
        return None  # ratcheting: a rule is not re-checked against a value that did not change
    field = _field(path, rule.get("fieldPath", ""))
    try:
        result = evaluate(text, value, old if is_transition(rule) else MISSING)
    except (CELEvalError, TypeError, ValueError) as exc:
        return Cause(
            field,
            "FieldValueInvalid",
            f"{_eval_message(exc)} evaluating rule: {text}",
            schema.get("type", "object"),
            show=True,
        )
    if result is True or (isinstance(result, celtypes.BoolType) and bool(result)):
        return None
    message = _message(rule, value, text)
    # The value is shown unless the rule sits on an object or a list (the API server omits those).
    shown = schema.get("type") not in ("object", "array")
    reason = rule.get("reason") or "FieldValueInvalid"
    if reason in ("FieldValueForbidden", "FieldValueRequired"):
        return Cause(field, reason, message)
    if reason == "FieldValueDuplicate":  # field.Duplicate has no detail: the message is not shown
        return Cause(field, reason, "", value, show=shown)
    return Cause(field, "FieldValueInvalid", message, value, show=shown)


def _message(rule: dict[str, Any], value: Any, text: str) -> str:
    if rule.get("messageExpression"):
        try:
            msg = evaluate(rule["messageExpression"], value)
            if isinstance(msg, str) and msg.strip():
                return str(msg)
        except (CELEvalError, TypeError, ValueError):
            pass
    return str(rule.get("message") or f"failed rule: {text}")


def _field(path: str, field_path: str) -> str:
    if not field_path:
        return path
    return f"{path}{field_path}" if path else field_path.lstrip(".")


def _eval_message(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    return str(args[0]) if args else str(exc)
