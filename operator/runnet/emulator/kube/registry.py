"""The resource types the stand-in serves: a few built-ins plus whatever CRDs declare."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

# Verbs as real discovery lists them.
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CUSTOM_VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")  # in this order
STATUS_VERBS = ("get", "patch", "update")

AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

# Field selectors the API server supports for every resource; more per type below.
META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
EVENT_FIELDS = META_FIELDS | {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}


@dataclass
class ResourceType:
    """One served group/version/plural, with what the server needs to handle it strictly."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    list_kind: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None  # openAPIV3Schema; None: anything goes
    status_subresource: bool = False
    columns: tuple[dict[str, Any], ...] = (AGE_COLUMN,)
    field_labels: frozenset[str] = META_FIELDS
    selectable: tuple[str, ...] = ()  # CRD selectableFields (JSON paths)
    custom: bool = False  # a custom resource (stricter: kind required, no strategic merge patch)
    generation: bool = True  # whether metadata.generation is maintained
    storage_version: str = ""
    storage_group: str | None = None  # set where another group's type stores the objects (events.k8s.io)
    crd_name: str = ""
    verbs: tuple[str, ...] = ALL_VERBS
    extra: dict[str, Any] = field(default_factory=dict)  # built-in object defaults

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()
        self.list_kind = self.list_kind or f"{self.kind}List"
        self.storage_version = self.storage_version or self.version

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: all versions of a CRD share their objects, and both Event APIs theirs."""
        return (self.group if self.storage_group is None else self.storage_group, self.plural)

    @property
    def storage_version_hash(self) -> str:
        """What discovery lists as storageVersionHash: 8 bytes of SHA-256 of the storage group/version/kind."""
        gvk = f"{self.key[0]}/{self.storage_version}/{self.kind}"
        return base64.b64encode(hashlib.sha256(gvk.encode()).digest()[:8]).decode()

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def supports_field(self, label: str) -> bool:
        return label in self.field_labels or any(p.lstrip(".") == label for p in self.selectable)


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, then higher numbers; others last, by name."""
    m = _VERSION.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, "")


class Registry:
    """Served resource types, keyed by (group, version, plural)."""

    def __init__(self) -> None:
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in builtin_types():
            self.add(rt)
        self.builtin_groups = frozenset(rt.group for rt in self.types.values())  # "" is the core API

    def add(self, rt: ResourceType) -> None:
        self.types[(rt.group, rt.version, rt.plural)] = rt

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        gone = [rt for rt in self.types.values() if rt.crd_name == crd_name]
        for rt in gone:
            del self.types[(rt.group, rt.version, rt.plural)]
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return next((rt for rt in self.types.values() if (rt.api_version, rt.kind) == (api_version, kind)), None)

    def storage_type(self, rt: ResourceType) -> ResourceType:
        return self.types.get((rt.key[0], rt.storage_version, rt.plural), rt)

    def groups(self) -> dict[str, list[str]]:
        """Group → served versions, preferred first."""
        found: dict[str, set[str]] = {}
        for rt in self.types.values():
            found.setdefault(rt.group, set()).add(rt.version)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(found.items())}

    def in_version(self, group: str, version: str) -> list[ResourceType]:
        return sorted(
            (rt for rt in self.types.values() if (rt.group, rt.version) == (group, version)),
            key=lambda rt: rt.plural,
        )


# events.k8s.io's field labels (mapped onto the core ones, which are the same fields under their old names)
NEW_EVENT_FIELDS = META_FIELDS | {
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "reason",
    "type",
}


def _builtin(group: str, plural: str, kind: str, **extra: Any) -> ResourceType:
    """A built-in type: v1, namespaced unless said otherwise, no metadata.generation."""
    return ResourceType(group, "v1", plural, kind, **{"namespaced": True, "generation": False, **extra})


def builtin_types() -> list[ResourceType]:
    """The built-ins operators and kubectl touch: namespaces, events, config, CRDs, leases."""
    return [
        _builtin("", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
                 verbs=tuple(v for v in ALL_VERBS if v != "deletecollection"),
                 field_labels=META_FIELDS | {"status.phase"}, status_subresource=True),
        _builtin("", "events", "Event", short_names=("ev",), field_labels=EVENT_FIELDS),
        _builtin("", "configmaps", "ConfigMap", short_names=("cm",)),
        _builtin("", "secrets", "Secret", field_labels=META_FIELDS | {"type"}),
        _builtin("", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
        _builtin("events.k8s.io", "events", "Event", short_names=("ev",), field_labels=NEW_EVENT_FIELDS,
                 storage_group="", storage_version="v1"),
        _builtin("coordination.k8s.io", "leases", "Lease"),
        _builtin("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False,
                 generation=True, short_names=("crd", "crds"), categories=("api-extensions",),
                 status_subresource=True),
    ]  # fmt: skip
