"""The emulator's state: resources by relative path, plus reference tracking for "in use" checks."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any

from runnet.emulator.gcp.ids import COMPUTE_BASE

Resource = dict[str, Any]


def relative(ref: str) -> str:
    """A Compute reference in any accepted form (full URL, any API version, relative) as a relative path."""
    for marker in ("/compute/v1/", "/compute/beta/", "/compute/alpha/"):
        if marker in ref:
            return ref.split(marker, 1)[1]
    return ref.lstrip("/")


class Store:
    """Resources keyed by relative path (``projects/p/regions/r/addresses/a``).

    Guarded by a lock because tests read it from another thread than the server's loop.
    """

    def __init__(self) -> None:
        self._items: dict[str, Resource] = {}
        self._pending: set[str] = set()
        self.lock = threading.RLock()
        self._refs: dict[str, set[str]] = {}
        """Path -> the relative paths its body referred to when it was put."""
        self._users: dict[str, set[str]] = {}
        """Relative path -> the paths whose bodies referred to it when they were put (the inverse of ``_refs``)."""
        self._collections: dict[str, dict[str, Resource]] = {}
        """Collection path -> its direct children, by path."""

    def get(self, path: str) -> Resource | None:
        with self.lock:
            return self._items.get(path)

    def exists(self, path: str) -> bool:
        with self.lock:
            return path in self._items or path in self._pending

    def put(self, path: str, resource: Resource) -> None:
        with self.lock:
            self._unindex(path)
            self._items[path] = resource
            self._pending.discard(path)
            refs = _refs(resource)
            self._refs[path] = refs
            for ref in refs:
                self._users.setdefault(ref, set()).add(path)
            self._collections.setdefault(path.rsplit("/", 1)[0], {})[path] = resource

    def delete(self, path: str) -> Resource | None:
        with self.lock:
            self._unindex(path)
            return self._items.pop(path, None)

    def _unindex(self, path: str) -> None:
        for ref in self._refs.pop(path, ()):
            users = self._users.get(ref)
            if users is not None:
                users.discard(path)
                if not users:
                    del self._users[ref]
        collection = self._collections.get(path.rsplit("/", 1)[0])
        if collection is not None:
            collection.pop(path, None)

    def reserve(self, path: str) -> None:
        """Mark a name as being created, so a second insert during the operation gets a 409."""
        with self.lock:
            self._pending.add(path)

    def release(self, path: str) -> None:
        with self.lock:
            self._pending.discard(path)

    def children(self, collection: str) -> list[Resource]:
        """Resources directly under a collection path (``projects/p/regions/r/addresses``), by path."""
        with self.lock:
            found = self._collections.get(collection.rstrip("/"), {})
            return [found[path] for path in sorted(found)]

    def collections(self, prefix: str) -> list[str]:
        """The paths of the collections that hold something and start with ``prefix``, sorted."""
        with self.lock:
            return sorted(c for c, found in self._collections.items() if found and c.startswith(prefix))

    def under(self, prefix: str, kind: str) -> list[tuple[str, Resource]]:
        """(path, resource) of every ``kind`` (a collection name: ``subnetworks``) in the collections whose path
        starts with ``prefix`` (``projects/p/regions/``), by path: what a walk over every item filtered that way
        finds, from the collections index."""
        with self.lock:
            found = [
                (path, resource)
                for collection, children in self._collections.items()
                if (collection + "/").startswith(prefix) and collection.rsplit("/", 1)[-1] == kind
                for path, resource in children.items()
            ]
        return sorted(found, key=lambda item: item[0])

    def items(self) -> Iterator[tuple[str, Resource]]:
        with self.lock:
            snapshot = list(self._items.items())
        yield from snapshot

    def users_of(self, path: str) -> list[str]:
        """Paths of the resources that reference ``path`` anywhere in their body, by path.

        A generic way to find "in use" relations (subnet → network, NAT → address, URL map →
        backend service...) without a table per kind: GCP refuses to delete what is referenced. Answered from
        the reference index kept by ``put``, each candidate checked against its body as it is now (a body
        changed in place after its put can only have dropped references: ``index_problems`` is checked at the
        end of every emulator test).
        """
        url = COMPUTE_BASE + path
        with self.lock:
            candidates = sorted(self._users.get(path, ()))
            return [
                other
                for other in candidates
                if other != path and not other.startswith(path + "/") and _references(self._items[other], path, url)
            ]

    def index_problems(self) -> list[str]:
        """Where the reference index differs from the bodies as they are now (empty when it agrees): a body
        changed in place after its put, which ``put`` never saw."""
        with self.lock:
            problems = []
            for path, resource in self._items.items():
                now = _refs(resource)
                if now != self._refs.get(path):
                    problems.append(f"{path}: indexed {sorted(self._refs.get(path, ()))}, now {sorted(now)}")
            return problems

    def snapshot(self) -> dict[str, Resource]:
        """A deep copy of everything, for tests that compare inventories."""
        with self.lock:
            return copy.deepcopy(self._items)


# Fields that name the resource itself, or point back at users, and so are not references to follow.
_NON_REFERENCE_FIELDS = {"selfLink", "selfLinkWithId", "name", "id", "kind", "users", "connectedEndpoints"}
# Nested, ``name`` can be a reference (a Cloud NAT's ``subnetworks[].name`` is a subnetwork URL).
_NESTED_NON_REFERENCE_FIELDS = _NON_REFERENCE_FIELDS - {"name"}


def _references(node: Any, path: str, url: str, key: str = "", *, top: bool = True) -> bool:
    if isinstance(node, dict):
        skip = _NON_REFERENCE_FIELDS if top else _NESTED_NON_REFERENCE_FIELDS
        return any(_references(v, path, url, k, top=False) for k, v in node.items() if k not in skip)
    if isinstance(node, list):
        return any(_references(v, path, url, key, top=False) for v in node)
    if isinstance(node, str):
        # relative() returns a suffix of its argument: most strings are ruled out without it (an address list
        # renders each address's users, so this runs for every string of every resource, per address).
        return node == url or (node.endswith(path) and relative(node) == path)
    return False


def _refs(resource: Resource) -> set[str]:
    """The relative paths a body refers to (every path starts with ``projects/``)."""
    return {ref for ref in (relative(r) for r in _strings(resource)) if ref.startswith("projects/")}


def _strings(node: Any, *, top: bool = True) -> Iterator[str]:
    """Every string ``_references`` compares, under the same fields skipped."""
    if isinstance(node, dict):
        skip = _NON_REFERENCE_FIELDS if top else _NESTED_NON_REFERENCE_FIELDS
        for k, v in node.items():
            if k not in skip:
                yield from _strings(v, top=False)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, top=False)
    elif isinstance(node, str):
        yield node
