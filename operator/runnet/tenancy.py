"""Tenancy: which namespace may make runnet touch which GCP project, and as whom.

``bound`` (the default): an object's ``spec.project`` must be granted to its namespace by a
ProjectBinding, else the object gets ``ProjectNotBound`` and runnet makes no GCP call for it at all.
A binding with a ``serviceAccount`` makes every call for those objects as that Google identity.
``open``: every object is served with the operator's own identity (one team per operator).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runnet.status import condition

log = logging.getLogger(__name__)

BOUND, OPEN = "bound", "open"
NOT_BOUND = "ProjectNotBound"


@dataclass(frozen=True)
class Binding:
    name: str
    project: str
    namespaces: frozenset[str]
    service_account: str | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Binding | None:
        """A binding from its body, or None when its spec is unusable (the CRD schema normally prevents that)."""
        spec = body.get("spec") or {}
        project, namespaces = spec.get("project"), spec.get("namespaces")
        if not isinstance(project, str) or not isinstance(namespaces, list):
            return None
        name = str((body.get("metadata") or {}).get("name", ""))
        return cls(name, project, frozenset(str(n) for n in namespaces), spec.get("serviceAccount") or None)


@dataclass(frozen=True)
class Grant:
    """What a binding allows one object: its project, and the identity to use (None: the operator's own)."""

    project: str
    service_account: str | None = None
    binding: str = ""


class Tenancy:
    """The bindings as kopf's index of ProjectBindings holds them (a live view, bound at start-up)."""

    def __init__(self, mode: str = BOUND) -> None:
        if mode not in (BOUND, OPEN):
            raise ValueError(f"tenancy mode must be {BOUND} or {OPEN}, not {mode}")
        self.mode = mode
        self.index: Mapping[Any, Any] = {}

    def bindings(self) -> list[Binding]:
        found = []
        for store in self.index.values():
            for body in store:
                binding = Binding.of(body)
                if binding is not None:
                    found.append(binding)
        return sorted(found, key=lambda b: b.name)

    def grant(self, namespace: str, project: str, kind: str) -> Grant | str:
        """The grant for an object, or the one sentence saying which binding an administrator must create."""
        if self.mode == OPEN:
            return Grant(project)
        matching = [b for b in self.bindings() if b.project == project and namespace in b.namespaces]
        if not matching:
            return (
                f"namespace {namespace} may not manage GCP project {project}: a cluster administrator must create a "
                f"ProjectBinding with spec.project {project} and {namespace} in spec.namespaces before runnet "
                f"touches that project for this {kind}"
            )
        chosen = matching[0]  # bindings sorted by name: the choice is stable
        return Grant(project, chosen.service_account, chosen.name)

    def namespaces_of(self, names: Iterable[str]) -> set[str]:
        """Every namespace that the named bindings (as they are now) mention."""
        wanted = set(names)
        return {ns for b in self.bindings() if b.name in wanted for ns in b.namespaces}


def binding_status(body: Mapping[str, Any], grants: Mapping[Any, str], mode: str) -> dict[str, Any]:
    """A binding's status: a pure function of the binding, which objects' last passes went through it, and the
    tenancy mode."""
    binding = Binding.of(body)
    meta = body.get("metadata", {})
    status = dict(body.get("status", {}) or {})
    generation = meta.get("generation")
    if binding is None:
        return {}
    using = sum(1 for name in grants.values() if name == binding.name)
    who = f"as {binding.service_account}" if binding.service_account else "as runnet's own Google identity"
    unchecked = "" if mode == BOUND else " (runnet runs with --tenancy open: bindings are not checked)"
    message = (
        f"namespaces {', '.join(sorted(binding.namespaces))} may manage GCP project {binding.project} {who}; "
        f"{using} object(s) use it{unchecked}"
    )
    ready = condition(status.get("conditions", []), "Ready", True, "Bound", message, generation)
    return {"observedGeneration": generation, "objects": using, "conditions": [ready]}
