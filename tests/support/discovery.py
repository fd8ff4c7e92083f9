"""Google's discovery documents and a validator for response bodies.

One document per API the emulator serves: Compute v1, Cloud Run Admin v2 and v1, Cloud Resource
Manager v1, Service Usage v1, IAM Service Account Credentials v1 (the ``api`` of a route or log
entry names it).

The documents come from the installed google-api-python-client package, the same schema the
official clients are generated from. The validator is strict where clients are: unknown fields,
wrong JSON types (int64/uint64 are JSON strings), bad enum values, a ``kind`` that is not the
schema's constant. Discovery has no "required": must-have output fields live in ``conformance``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import googleapiclient

DOCS_DIR = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"

Schema = dict[str, Any]
MustHave = Callable[[str, dict[str, Any], str], list[str]]
"""(schema name, object, JSON path) -> problems: the output fields discovery cannot require."""


@dataclass(frozen=True)
class Method:
    id: str
    http_method: str
    path: str
    """Full URL path template, ``/compute/v1/projects/{project}/regions/{region}/routers/{router}``."""
    response: str | None
    """Name of the response schema; None when the method returns an empty body."""


class Discovery:
    """One discovery document: its schemas and its methods indexed by id."""

    def __init__(self, filename: str) -> None:
        doc = json.loads((DOCS_DIR / filename).read_text())
        self.name: str = doc["name"]
        self.id: str = doc["id"]
        """``run:v1``, ``compute:v1``: method ids repeat across versions (both Runs have services.get)."""
        self.batch_path: str = doc.get("batchPath", "")
        self.schemas: dict[str, Schema] = doc["schemas"]
        self.methods: dict[str, Method] = {}
        self._index("/" + doc["servicePath"], doc["resources"])

    def _index(self, prefix: str, resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for m in resource.get("methods", {}).values():
                response = m.get("response", {}).get("$ref")
                path = prefix + m.get("flatPath", m["path"])
                self.methods[m["id"]] = Method(m["id"], m["httpMethod"], path, response)
            self._index(prefix, resource.get("resources", {}))


DOCUMENTS = {
    "compute": "compute.v1.json",
    "run": "run.v2.json",
    "run.v1": "run.v1.json",
    "cloudresourcemanager": "cloudresourcemanager.v1.json",
    "serviceusage": "serviceusage.v1.json",
    "iamcredentials": "iamcredentials.v1.json",
}
"""The emulator's ``Api`` names and their documents (``run`` is Cloud Run Admin v2)."""


@functools.cache
def document(api: str) -> Discovery:
    return Discovery(DOCUMENTS[api])


def compute() -> Discovery:
    return document("compute")


def run() -> Discovery:
    return document("run")


def run_v1() -> Discovery:
    return document("run.v1")


def doc_for(method_id: str, api: str | None = None) -> Discovery:
    """The document of ``api``; without it, guessed from the id (Compute, or Cloud Run v2)."""
    if api is None:
        api = "run" if method_id.startswith("run.") else "compute"
    return document(api)


def method(method_id: str, api: str | None = None) -> Method | None:
    return doc_for(method_id, api).methods.get(method_id)


def template(path: str) -> str:
    """A path template with its parameter names erased: ``/v2/projects/{}/locations/{}/services``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def validate(
    doc: Discovery,
    schema_name: str,
    body: Any,
    *,
    int_enums: bool = False,
    must_have: MustHave | None = None,
) -> list[str]:
    """Problems of ``body`` against ``schema_name`` (empty when it conforms)."""
    validator = _Validator(doc, int_enums, must_have)
    validator.ref(schema_name, body, "$")
    return validator.problems


_INT_STRING = re.compile(r"^-?[0-9]+$")
_UINT_STRING = re.compile(r"^[0-9]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_DURATION = re.compile(r"^-?[0-9]+(\.[0-9]{1,9})?s$")


class _Validator:
    def __init__(self, doc: Discovery, int_enums: bool, must_have: MustHave | None) -> None:
        self.doc = doc
        self.int_enums = int_enums
        self.must_have = must_have
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def ref(self, name: str, value: Any, where: str) -> None:
        schema = self.doc.schemas.get(name)
        if schema is None:
            self.fail(where, f"schema {name} is not in the {self.doc.name} discovery document")
            return
        self.value(schema, value, where, name)
        if self.must_have is not None and isinstance(value, dict):
            self.problems.extend(self.must_have(name, value, where))

    def value(self, schema: Schema, value: Any, where: str, owner: str = "", field: str = "") -> None:
        if "$ref" in schema:
            self.ref(schema["$ref"], value, where)
            return
        kind = schema.get("type")
        if kind == "object":
            self.object(schema, value, where, owner)
        elif kind == "array":
            if not isinstance(value, list):
                self.fail(where, f"expected an array, got {_json_type(value)}")
                return
            for i, item in enumerate(value):
                self.value(schema.get("items", {}), item, f"{where}[{i}]", owner, field)
        elif kind == "string":
            self.string(schema, value, where, owner, field)
        elif kind == "integer":
            self.integer(schema, value, where)
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(where, f"expected a number, got {_json_type(value)}")
        elif kind == "boolean" and not isinstance(value, bool):
            self.fail(where, f"expected a boolean, got {_json_type(value)}")

    def object(self, schema: Schema, value: Any, where: str, owner: str) -> None:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {_json_type(value)}")
            return
        props: dict[str, Schema] = schema.get("properties", {})
        extra: Schema | None = schema.get("additionalProperties")
        if extra is not None and extra.get("type") == "any" and "@type" in extra.get("description", ""):
            self.any_message(value, where)
            return
        for key, item in value.items():
            if key in props:
                self.value(props[key], item, f"{where}.{key}", owner, key)
            elif extra is not None:
                self.value(extra, item, f"{where}[{key!r}]", owner)
            else:
                self.fail(f"{where}.{key}", f"unknown field (not in {owner or 'the schema'})")

    def any_message(self, value: dict[str, Any], where: str) -> None:
        """A google.protobuf.Any: ``@type`` names the message the other fields belong to."""
        type_url = value.get("@type")
        if not isinstance(type_url, str):
            self.fail(where, "an Any (operation metadata/response, error detail) needs '@type'")
            return
        name = schema_for_type_url(type_url)
        rest = {k: v for k, v in value.items() if k != "@type"}
        if name in self.doc.schemas:
            self.ref(name, rest, where)

    def string(self, schema: Schema, value: Any, where: str, owner: str, field: str) -> None:
        enum: list[str] | None = schema.get("enum")
        if enum is not None and isinstance(value, int) and not isinstance(value, bool):
            self.int_enum(enum, value, where, owner, field)
            return
        if not isinstance(value, str):
            self.fail(where, f"expected a string, got {_json_type(value)}")
            return
        if enum is not None and value not in enum:
            self.fail(where, f"{value!r} is not one of the enum values {_short(enum)}")
        if field == "kind" and "default" in schema and value != schema["default"]:
            self.fail(where, f"kind is {value!r}, the schema says {schema['default']!r}")
        problem = _format_problem(schema.get("format"), value)
        if problem:
            self.fail(where, problem)

    def int_enum(self, enum: list[str], value: int, where: str, owner: str, field: str) -> None:
        if not self.int_enums:
            self.fail(where, f"enum given as integer {value}, but the request did not ask for enum-encoding=int")
            return
        name = proto_enum_name(owner, field, value)
        if name is None:
            self.fail(where, f"{value} is not a value of the proto enum behind {owner}.{field}")
        elif name and name not in enum:
            self.fail(where, f"{value} ({name}) is not one of the enum values {_short(enum)}")

    def integer(self, schema: Schema, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = " (int32/uint32 are JSON numbers)" if isinstance(value, str) else ""
            self.fail(where, f"expected an integer, got {_json_type(value)}{hint}")
        elif schema.get("format") == "uint32" and value < 0:
            self.fail(where, f"uint32 value {value} is negative")


def _format_problem(fmt: str | None, value: str) -> str:
    if fmt == "int64" and not _INT_STRING.match(value):
        return f"{value!r} is not an int64 (a decimal string)"
    if fmt == "uint64" and not _UINT_STRING.match(value):
        return f"{value!r} is not a uint64 (a decimal string)"
    if fmt == "byte" and not _BASE64.match(value):
        return f"{value!r} is not base64"
    if fmt == "google-duration" and not _DURATION.match(value):
        return f"{value!r} is not a duration like '300s'"
    if fmt in ("google-datetime", "date-time") and not is_rfc3339(value):
        return f"{value!r} is not an RFC3339 timestamp"
    return ""


def is_rfc3339(value: str) -> bool:
    if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$", value):
        return False
    try:
        # Python parses at most 6 fractional digits; Cloud Run may send 9.
        dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return False
    return True


def schema_for_type_url(type_url: str) -> str:
    """``type.googleapis.com/google.cloud.run.v2.Service`` -> ``GoogleCloudRunV2Service``."""
    full = type_url.rsplit("/", 1)[-1]
    return "".join(part[:1].upper() + part[1:] for part in full.split("."))


def proto_enum_name(owner: str, field: str, value: int) -> str | None:
    """The name of ``value`` in the proto enum of ``owner.field`` (Cloud Run v2 only).

    Integer enum values are the proto numbers, not positions in the discovery list (GA is 4),
    so the generated client's message types are the only reliable table. Returns "" when the
    field cannot be mapped to a proto message (then any integer is accepted), None when the
    value is not in the enum.
    """
    from google.cloud import run_v2

    prefix = "GoogleCloudRunV2"
    message = getattr(run_v2, owner[len(prefix) :], None) if owner.startswith(prefix) else None
    fields = getattr(getattr(message, "meta", None), "fields", {})
    snake = re.sub(r"([A-Z])", r"_\1", field).lower()
    proto_field = fields.get(snake) or fields.get(snake + "_")
    enum = getattr(proto_field, "enum", None)
    if enum is None:
        return ""
    try:
        return str(enum.Name(value)) if hasattr(enum, "Name") else str(enum(value).name)
    except ValueError:
        return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    return "an array" if isinstance(value, list) else "an object"


def _short(values: list[str]) -> str:
    return str(values) if len(values) <= 8 else f"{values[:8]}... ({len(values)} values)"
