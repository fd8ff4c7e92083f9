"""Server-side Tables of the built-in types, as the API server prints them (k8s.io/kubernetes
pkg/printers/internalversion, and apiextensions' own for CRDs): columns with their descriptions, and
the cells of each row (server-side Tables always hold the wide columns; kubectl hides priority > 0).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from runnet.emulator.kube import events

NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. Name "
    "is primarily intended for creation idempotence and configuration definition. Cannot be updated. "
    "More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
NAMESPACE_STATUS_DOC = "The status of the namespace"
CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is "
    "not guaranteed to be set in happens-before order across separate operations. Clients may not set "
    "this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. "
    "Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
EVENT_LAST_SEEN_DOC = "The time at which the most recent occurrence of this event was recorded."
EVENT_TYPE_DOC = "Type of this event (Normal, Warning), new types could be added in the future"
EVENT_REASON_DOC = (
    "This should be a short, machine understandable string that gives the reason for the transition into "
    "the object's current status."
)
EVENT_OBJECT_DOC = "The object that this event is about."
EVENT_SUBOBJECT_DOC = (
    "If referring to a piece of an object instead of an entire object, this string should contain a "
    "valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if "
    "the object reference is to a container within a pod, this would take on a value like: "
    '"spec.containers{name}" (where "name" refers to the name of the container that triggered the event) '
    'or if no container name is specified "spec.containers[2]" (container with index 2 in this pod). '
    "This syntax is chosen only to have some well-defined way of referencing a part of an object."
)
EVENT_SOURCE_DOC = "The component reporting this event. Should be a short machine understandable string."
EVENT_MESSAGE_DOC = "A human-readable description of the status of this operation."
EVENT_FIRST_SEEN_DOC = "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"
EVENT_COUNT_DOC = "The number of times this event has occurred."
CONFIGMAP_DATA_DOC = (
    "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or "
    "'.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data "
    "must not overlap with the keys in the BinaryData field, this is enforced during validation process."
)
SECRET_TYPE_DOC = (
    "Used to facilitate programmatic handling of secret data. More info: "
    "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
)
SECRET_DATA_DOC = (
    "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. "
    "The serialized form of the secret data is a base64 encoded string, representing the arbitrary "
    "(possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"
)
LEASE_HOLDER_DOC = (
    "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader "
    "Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name "
    "field."
)
CRD_SCOPE_DOC = "Cluster/Namespaced"
CRD_VERSIONS_DOC = "Served versions"
CRD_GROUP_DOC = "API group"
CRD_KIND_DOC = "CustomResource kind"
CRD_SHORTNAMES_DOC = "Short names"
CRD_ESTABLISHED_DOC = "Established status"


def _column(name: str, type_: str, description: str, priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


NAMESPACES_COLUMNS = (
    _column("Name", "string", NAME_DOC, fmt="name"),
    _column("Status", "string", NAMESPACE_STATUS_DOC),
    _column("Age", "string", CREATED_DOC),
)

EVENTS_COLUMNS = (
    _column("Last Seen", "string", EVENT_LAST_SEEN_DOC),
    _column("Type", "string", EVENT_TYPE_DOC),
    _column("Reason", "string", EVENT_REASON_DOC),
    _column("Object", "string", EVENT_OBJECT_DOC),
    _column("Subobject", "string", EVENT_SUBOBJECT_DOC, priority=1),
    _column("Source", "string", EVENT_SOURCE_DOC, priority=1),
    _column("Message", "string", EVENT_MESSAGE_DOC),
    _column("First Seen", "string", EVENT_FIRST_SEEN_DOC, priority=1),
    _column("Count", "string", EVENT_COUNT_DOC, priority=1),
    _column("Name", "string", NAME_DOC, priority=1, fmt="name"),
)

CONFIGMAPS_COLUMNS = (
    _column("Name", "string", NAME_DOC, fmt="name"),
    _column("Data", "string", CONFIGMAP_DATA_DOC),
    _column("Age", "string", CREATED_DOC),
)

SECRETS_COLUMNS = (
    _column("Name", "string", NAME_DOC, fmt="name"),
    _column("Type", "string", SECRET_TYPE_DOC),
    _column("Data", "string", SECRET_DATA_DOC),
    _column("Age", "string", CREATED_DOC),
)

SERVICEACCOUNTS_COLUMNS = (
    _column("Name", "string", NAME_DOC, fmt="name"),
    _column("Age", "string", CREATED_DOC),
)

LEASES_COLUMNS = (
    _column("Name", "string", NAME_DOC, fmt="name"),
    _column("Holder", "string", LEASE_HOLDER_DOC),
    _column("Age", "string", CREATED_DOC),
)

CRDS_COLUMNS = (
    _column("Name", "string", NAME_DOC, fmt="name"),
    _column("Scope", "string", CRD_SCOPE_DOC),
    _column("Versions", "string", CRD_VERSIONS_DOC),
    _column("Created At", "date", CREATED_DOC),
    _column("Group", "string", CRD_GROUP_DOC, priority=1),
    _column("Kind", "string", CRD_KIND_DOC, priority=1),
    _column("ShortNames", "string", CRD_SHORTNAMES_DOC, priority=1),
    _column("Established", "boolean", CRD_ESTABLISHED_DOC, priority=1),
)


# -- cells ---------------------------------------------------------------------------------------


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


def parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def since(value: Any) -> str:
    """translateTimestampSince: the age of a timestamp, ``<unknown>`` when there is none."""
    then = parse_time(value)
    if then is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


def _age(obj: dict[str, Any]) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"))


def _name(obj: dict[str, Any]) -> Any:
    return obj.get("metadata", {}).get("name")


def _event(obj: dict[str, Any]) -> list[Any]:
    e = events.convert(obj, events.CORE)  # printed from the core form, whichever API asked
    first = since(e.get("firstTimestamp")) if e.get("firstTimestamp") else since(e.get("eventTime"))
    last = since(e.get("lastTimestamp")) if e.get("lastTimestamp") else first
    count = e.get("count") or 1  # singleton events have no count in the new API
    if e.get("series"):
        last, count = since(e["series"].get("lastObservedTime")), e["series"].get("count") or 0
    involved, source = e.get("involvedObject") or {}, e.get("source") or {}
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component = source.get("component") or e.get("reportingComponent") or ""
    instance = source.get("host") or e.get("reportingInstance") or ""
    return [
        last,
        e.get("type") or "",
        e.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        f"{component}, {instance}" if instance else component,
        str(e.get("message") or "").strip(),
        first,
        int(count),
        _name(e),
    ]


def _crd(obj: dict[str, Any]) -> list[Any]:
    spec = obj.get("spec") or {}
    versions = sorted(
        v["name"] + ("(storage)" if v.get("storage") else "") for v in spec.get("versions") or [] if v.get("served")
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    established = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
    created = parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    return [
        _name(obj),
        spec.get("scope") or "",
        ",".join(versions),
        created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else "0001-01-01T00:00:00Z",
        spec.get("group") or "",
        (spec.get("names") or {}).get("kind") or "",
        ",".join((spec.get("names") or {}).get("shortNames") or []),
        established,
    ]


Row = Callable[[dict[str, Any]], list[Any]]

# By storage key (both Event APIs print alike).
PRINTERS: dict[tuple[str, str], tuple[tuple[dict[str, Any], ...], Row]] = {
    ("", "namespaces"): (NAMESPACES_COLUMNS, lambda o: [_name(o), (o.get("status") or {}).get("phase") or "", _age(o)]),
    ("", "events"): (EVENTS_COLUMNS, _event),
    ("", "configmaps"): (
        CONFIGMAPS_COLUMNS,
        lambda o: [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)],
    ),
    ("", "secrets"): (SECRETS_COLUMNS, lambda o: [_name(o), o.get("type") or "", len(o.get("data") or {}), _age(o)]),
    ("", "serviceaccounts"): (SERVICEACCOUNTS_COLUMNS, lambda o: [_name(o), _age(o)]),
    ("coordination.k8s.io", "leases"): (
        LEASES_COLUMNS,
        lambda o: [_name(o), (o.get("spec") or {}).get("holderIdentity") or "", _age(o)],
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (CRDS_COLUMNS, _crd),
}
