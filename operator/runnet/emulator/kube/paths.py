"""Kubernetes REST paths → group, version, resource, namespace, name, subresource."""

from __future__ import annotations

from dataclasses import dataclass

import kmock

# Subresources of a namespace that would otherwise read as namespaced resources.
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class Target:
    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    watch: bool = False  # the deprecated /watch/ path prefix

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(group=self.group, version=self.version, plural=self.plural)


def parse(path: str) -> Target | None:
    """Parse a resource path; None for anything else (discovery, openapi, unknown)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch = rest[0] == "watch"
    rest = rest[1:] if watch else rest
    namespace = None
    core_ns_sub = group == "" and len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES
    if rest and rest[0] == "namespaces" and len(rest) >= 3 and not core_ns_sub:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return Target(group, version, rest[0], namespace, name, sub, watch)


def action(method: str, target: Target | None, watch: bool) -> kmock.action | None:
    """kmock's notion of the request (LIST, WATCH, FETCH, CREATE, UPDATE, DELETE)."""
    if target is None:
        return None
    if method == "GET":
        if target.watch or (watch and not target.name):  # ?watch=true on one object's path is a plain GET
            return kmock.action.WATCH
        return kmock.action.FETCH if target.name else kmock.action.LIST
    if method == "POST" and target.name is None:
        return kmock.action.CREATE
    if method in ("PUT", "PATCH") and target.name:
        return kmock.action.UPDATE
    if method == "DELETE":
        return kmock.action.DELETE
    return None
