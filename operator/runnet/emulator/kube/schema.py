"""Structural openAPIV3Schema semantics: pruning, defaulting and validation of custom resources.

Validation runs the jsonschema library on a translation of the structural schema (OpenAPI v3.0
flavoured JSON Schema: draft 4 keywords, ``nullable``, ``x-kubernetes-int-or-string``), then
words its errors the way kube-openapi and the API server do, one ``Cause`` per field.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
import uuid
from typing import Any

import jsonschema
from jsonschema import Draft4Validator, FormatChecker

from runnet.emulator.kube.errors import Cause, invalid_value, required

# ObjectMeta fields: anything else under metadata is dropped, as typed decoding would.
META_KEYS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
        "selfLink",
    }
)
_ROOT_KEYS = ("apiVersion", "kind", "metadata")
_SKIPPED = {"nullable", "default", "description", "example", "externalDocs", "title"}


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def sub_schema(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The schema of an object's property, via ``properties`` or ``additionalProperties``."""
    props = schema.get("properties") or {}
    if key in props:
        return props[key]  # type: ignore[no-any-return]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


# -- pruning -------------------------------------------------------------------------------------


def prune(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Drop fields the schema does not declare; return their paths (for warnings or strictness)."""
    dropped: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in [k for k in meta if k not in META_KEYS]:
            del meta[key]
            dropped.append(join("metadata", key))
    for key in list(obj):
        if key in _ROOT_KEYS:
            continue
        sub = sub_schema(schema, key)
        if sub is None and not _keeps_unknown(schema):
            del obj[key]
            dropped.append(key)
        elif sub is not None:
            _prune(obj[key], sub, key, dropped)
    return dropped


def _keeps_unknown(schema: dict[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields")) or schema.get("additionalProperties") is True


def _prune(value: Any, schema: dict[str, Any], path: str, dropped: list[str]) -> None:
    if isinstance(value, dict):
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            sub = sub_schema(schema, key)
            if sub is not None:
                _prune(value[key], sub, join(path, key), dropped)
            elif not (_keeps_unknown(schema) or (embedded and key in _ROOT_KEYS)):
                del value[key]
                dropped.append(join(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _prune(item, schema["items"], join(path, i), dropped)


# -- defaulting ----------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: dict[str, Any]) -> None:
    """Fill ``default``s of absent properties; drop nulls the schema does not allow (as the server does)."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value and value[key] is None and not sub.get("nullable"):
                del value[key]
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            sub = sub_schema(schema, key)
            if sub is not None:
                apply_defaults(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


# -- validation ----------------------------------------------------------------------------------


def _translate(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in schema.items():
        if key.startswith("x-kubernetes-") or key in _SKIPPED:
            continue
        if key == "properties":
            out[key] = {name: _translate(sub) for name, sub in val.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(val, dict):
            out[key] = _translate(val)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_translate(sub) for sub in val]
        else:
            out[key] = val
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if schema.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _is_integer(checker: Any, instance: Any) -> bool:
    # JSON has one number type: 2.0 is an integer to the API server (and to Go's decoder).
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


_TYPES = Draft4Validator.TYPE_CHECKER.redefine("integer", _is_integer)
_Validator = jsonschema.validators.extend(Draft4Validator, type_checker=_TYPES)
FORMATS = FormatChecker(formats=())
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", re.I)


def _format(name: str, *errors: type[Exception]) -> Any:
    return FORMATS.checks(name, raises=errors or (ValueError,))


@_format("ipv4")
def _ipv4(v: object) -> bool:
    return not isinstance(v, str) or bool(ipaddress.IPv4Address(v))


@_format("ipv6")
def _ipv6(v: object) -> bool:
    return not isinstance(v, str) or bool(ipaddress.IPv6Address(v))


@_format("cidr")
def _cidr(v: object) -> bool:
    return not isinstance(v, str) or bool(ipaddress.ip_network(v, strict=False))


@_format("uuid")
def _uuid(v: object) -> bool:
    return not isinstance(v, str) or bool(uuid.UUID(v))


@_format("byte", binascii.Error, ValueError)
def _byte(v: object) -> bool:
    return not isinstance(v, str) or base64.b64decode(v, validate=True) is not None


@_format("date-time")
def _date_time(v: object) -> bool:
    return not isinstance(v, str) or bool(_DATE_TIME.match(v))


@_format("date")
def _date(v: object) -> bool:
    return not isinstance(v, str) or bool(re.fullmatch(r"\d{4}-\d\d-\d\d", v))


@_format("hostname")
def _hostname(v: object) -> bool:
    return not isinstance(v, str) or (len(v) <= 253 and bool(_HOSTNAME.match(v)))


# Compiled validators by schema identity; the schema is kept so that its id is never reused.
_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}


def _validator_for(schema: dict[str, Any]) -> Any:
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = (schema, _Validator(_translate(schema), format_checker=FORMATS))
        _VALIDATORS[id(schema)] = cached
    return cached[1]


def validate(obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """Schema errors of an object, worded as the API server words them.

    On updates, errors about values that did not change are dropped (CRD validation ratcheting,
    on by default since Kubernetes 1.30), so tightening a schema does not wedge existing objects.
    """
    meta = obj.get("metadata") or {}
    # CRD schemas may only constrain metadata.name and generateName; the rest is ObjectMeta's business.
    body = {k: v for k, v in obj.items() if k != "metadata"}
    body["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    causes: list[Cause] = []
    for error in _validator_for(schema).iter_errors(body):
        causes.extend(_cause(error))
    causes.extend(list_type_causes(body, schema, ""))
    if old is not None:
        causes = [c for c in causes if not _unchanged(c, obj, old)]
    # Causes may carry unhashable values (a list that is too short): deduplicate by their text.
    unique = list({repr(c): c for c in causes}.values())
    return sorted(unique, key=lambda c: c.field)


def default_causes(schema: dict[str, Any], path: str) -> list[Cause]:
    """Defaults that their own schema rejects (the API server refuses such a CRD)."""
    causes = []
    if "default" in schema:
        for error in _validator_for(schema).iter_errors(schema["default"]):
            causes.append(invalid_value(f"{path}.default", schema["default"], error.message))
    for name, sub in (schema.get("properties") or {}).items():
        causes.extend(default_causes(sub, f"{path}.properties[{name}]"))
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            causes.extend(default_causes(schema[key], f"{path}.{key}"))
    return causes


_MISSING = object()


def value_at(obj: Any, path: str) -> Any:
    """The value at a field path like ``spec.items[2].name`` (a sentinel when absent)."""
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        if index and isinstance(obj, list) and int(index) < len(obj):
            obj = obj[int(index)]
        elif key and isinstance(obj, dict) and key in obj:
            obj = obj[key]
        else:
            return _MISSING
    return obj


def _unchanged(cause: Cause, new: dict[str, Any], old: dict[str, Any]) -> bool:
    path = cause.field
    if cause.reason == "FieldValueRequired":  # a missing field: compare the object that lacks it
        path = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", path)
    before = value_at(old, path)
    return before is not _MISSING and before == value_at(new, path)


def list_type_causes(value: Any, schema: dict[str, Any], path: str) -> list[Cause]:
    """Duplicates in ``x-kubernetes-list-type: set`` lists and ``map`` lists (by their keys)."""
    causes: list[Cause] = []
    if isinstance(value, dict):
        for key, item in value.items():
            sub = sub_schema(schema, key)
            if sub is not None:
                causes.extend(list_type_causes(item, sub, join(path, key)))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        kind, keys = schema.get("x-kubernetes-list-type"), schema.get("x-kubernetes-list-map-keys") or []
        seen: set[str] = set()
        for i, item in enumerate(value):
            ident = item if kind == "set" else {k: item.get(k) for k in keys} if isinstance(item, dict) else item
            marker = json.dumps(ident, sort_keys=True)
            if kind in ("set", "map") and marker in seen:
                causes.append(Cause(join(path, i), "FieldValueDuplicate", "", ident, show=True))
            seen.add(marker)
            causes.extend(list_type_causes(item, schema["items"], join(path, i)))
    return causes


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "object"


def _cause(error: Any) -> list[Cause]:
    path = ""
    for part in error.absolute_path:
        path = join(path, part)
    keyword, want, got = error.validator, error.validator_value, error.instance
    where = f"{path or '<root>'} in body"
    if keyword == "required":
        return [required(join(path, name)) for name in want if isinstance(got, dict) and name not in got]
    if keyword == "type":
        expected = want if isinstance(want, str) else ",".join(w for w in want if w != "null")
        return [invalid_value(path, type_name(got), f'{where} must be of type {expected}: "{type_name(got)}"')]
    if keyword == "enum":
        allowed = ", ".join(_quoted(v) for v in want if v is not None)
        return [Cause(path, "FieldValueNotSupported", f"supported values: {allowed}", got, show=True)]
    if keyword == "maxLength":
        return [Cause(path, "FieldValueTooLong", f"may not be more than {want} bytes")]
    if keyword == "maxItems":
        return [Cause(path, "FieldValueTooMany", f"must have at most {want} items", len(got), show=True)]
    return [invalid_value(path, got, _detail(keyword, want, where, error))]


def _quoted(value: Any) -> str:
    return json.dumps(value if isinstance(value, str) else json.dumps(value))


def _detail(keyword: str, want: Any, where: str, error: Any) -> str:
    schema = error.schema
    if keyword == "pattern":
        return f"{where} should match '{want}'"
    if keyword == "minLength":
        return f"{where} should be at least {want} chars long"
    if keyword == "minItems":
        return f"{where} should have at least {want} items"
    if keyword == "minimum":
        rel = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
        return f"{where} should be {rel} {want}"
    if keyword == "maximum":
        rel = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
        return f"{where} should be {rel} {want}"
    if keyword == "multipleOf":
        return f"{where} should be a multiple of {want}"
    if keyword == "uniqueItems":
        return f"{where} shouldn't contain duplicates"
    if keyword == "format":
        return f'{where} must be of type {want}: "{error.instance}"'
    if keyword == "minProperties":
        return f"{where} should have at least {want} properties"
    if keyword == "maxProperties":
        return f"{where} should have at most {want} properties"
    return f"{where}: {error.message}"
