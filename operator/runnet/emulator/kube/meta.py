"""ObjectMeta rules: names, labels, system fields, as the API server validates and fills them."""

from __future__ import annotations

import datetime
import random
import re
import uuid
from typing import Any

from runnet.emulator.kube.errors import Cause, forbidden, invalid_value, required
from runnet.emulator.kube.registry import ResourceType

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apiserver's names.SimpleNameGenerator alphabet


def now() -> str:
    """RFC 3339 at second precision, as metav1.Time serialises."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_GENERATE_CHARS, k=5))


def name_causes(rt: ResourceType, meta: dict[str, Any]) -> list[Cause]:
    name = meta.get("name")
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    if rt.plural == "namespaces" and rt.group == "":
        ok, msg, limit = bool(_DNS_LABEL.match(name)), LABEL_MSG, 63
    else:
        ok, msg, limit = bool(_DNS_SUBDOMAIN.match(name)), SUBDOMAIN_MSG, 253
    causes = []
    if len(name) > limit:
        causes.append(invalid_value("metadata.name", name, f"must be no more than {limit} characters"))
    if not ok:
        causes.append(invalid_value("metadata.name", name, msg))
    return causes


def label_causes(meta: dict[str, Any]) -> list[Cause]:
    """ValidateLabels: each message of the key's and of the value's checks is a cause of its own."""
    causes = []
    for key, value in (meta.get("labels") or {}).items():
        causes += [invalid_value("metadata.labels", key, msg) for msg in qualified_name_errors(key)]
        text = value if isinstance(value, str) else ""
        if len(text) > 63:
            causes.append(invalid_value("metadata.labels", value, "must be no more than 63 bytes"))
        if not _LABEL_VALUE.match(text):
            causes.append(invalid_value("metadata.labels", value, VALUE_MSG))
    return causes


_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def qualified_name_errors(value: str) -> list[str]:
    """apimachinery's IsQualifiedName (label keys): an optional DNS subdomain prefix and a name part."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [
            f"a valid label key {_QUALIFIED_MSG} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.append("prefix part must be no more than 253 bytes")
            if not _DNS_SUBDOMAIN.match(prefix):
                errs.append("prefix part " + SUBDOMAIN_MSG)
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 bytes")
    if not _QUALIFIED_NAME.match(name):
        errs.append("name part " + _QUALIFIED_MSG)
    return errs


def init_create(rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> None:
    """System fields on create: uid, creationTimestamp, generation; client-set ones dropped."""
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"])
    if rt.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now()
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink", "managedFields"):
        meta.pop(key, None)
    if rt.generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)


def carry_system_fields(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """On update: what clients cannot change is taken from the stored object."""
    meta, was = new.setdefault("metadata", {}), old["metadata"]
    causes = []
    if meta.get("uid") and meta["uid"] != was.get("uid"):
        causes.append(invalid_value("metadata.uid", meta["uid"], "field is immutable"))
    for key in (
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
    ):
        if key in was:
            meta[key] = was[key]
        else:
            meta.pop(key, None)
    meta.pop("selfLink", None)
    if was.get("deletionTimestamp"):
        added = [f for f in meta.get("finalizers") or [] if f not in (was.get("finalizers") or [])]
        if added:
            quoted = ", ".join(f'"{f}"' for f in added)
            causes.append(
                forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers []string{{{quoted}}}",
                )
            )
    return causes


def bump_generation(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> None:
    """+1 when anything but metadata (and status, if it is a subresource) changed."""
    if not rt.generation:
        return
    skip = {"metadata", "status"} if rt.status_subresource else {"metadata"}

    def content(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in skip and k not in ("apiVersion", "kind")}

    if content(new) != content(old):
        new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
