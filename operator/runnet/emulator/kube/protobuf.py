"""Just enough Kubernetes protobuf to read what kubectl's typed commands send.

``kubectl create namespace|configmap|secret|serviceaccount`` POST protobuf bodies (the ``k8s\\0``
envelope around a ``runtime.Unknown``), not JSON. Field numbers come from the generated.proto files
of k8s.io/api core/v1 and apimachinery meta/v1. Other kinds get 415, which real servers never send.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from runnet.emulator.kube.errors import ApiError

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

Schema = dict[int, tuple[str, str]]  # field number → (JSON name, kind)

OWNER: Schema = {
    1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
    6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool"),
}  # fmt: skip
META: Schema = {
    1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
    6: ("resourceVersion", "str"), 7: ("generation", "int"), 11: ("labels", "map:str"),
    12: ("annotations", "map:str"), 13: ("ownerReferences", "list:owner"), 14: ("finalizers", "list:str"),
}  # fmt: skip
KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", "meta"), 2: ("spec", "nsspec")},
    "ConfigMap": {
        1: ("metadata", "meta"), 2: ("data", "map:str"), 3: ("binaryData", "map:bytes"), 4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "meta"), 2: ("data", "map:bytes"), 3: ("type", "str"), 4: ("stringData", "map:str"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {1: ("metadata", "meta"), 4: ("automountServiceAccountToken", "bool")},
}  # fmt: skip
MESSAGES: dict[str, Schema] = {"meta": META, "owner": OWNER, "nsspec": {1: ("finalizers", "list:str")}}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, value
        elif wire == 2:
            size, i = _varint(buf, i)
            yield number, buf[i : i + size]
            i += size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4  # fixed64/fixed32: no such fields in the kinds above
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "str":
        return value.decode() if isinstance(value, bytes) else str(value)
    if kind == "bytes":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else ""
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return value if isinstance(value, int) else 0
    return decode_message(value, MESSAGES[kind]) if isinstance(value, bytes) else {}


def decode_message(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind.startswith("map:"):
            entry = dict(_fields(value)) if isinstance(value, bytes) else {}
            out.setdefault(name, {})[_scalar("str", entry.get(1, b""))] = _scalar(kind[4:], entry.get(2, b""))
        elif kind.startswith("list:"):
            out.setdefault(name, []).append(_scalar(kind[5:], value))
        else:
            out[name] = _scalar(kind, value)
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded built-in object as its JSON form."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "provided protobuf data does not start with the Kubernetes magic prefix")
    envelope = dict(_fields(body[len(MAGIC) :]))
    type_meta = decode_message(envelope.get(1, b""), {1: ("apiVersion", "str"), 2: ("kind", "str")})  # type: ignore[arg-type]
    kind = type_meta.get("kind", "")
    if kind not in KINDS:
        raise ApiError(
            415, "UnsupportedMediaType", f"the stand-in cannot decode {kind or 'this'} from protobuf: send JSON instead"
        )
    obj = decode_message(envelope.get(2, b""), KINDS[kind])  # type: ignore[arg-type]
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
