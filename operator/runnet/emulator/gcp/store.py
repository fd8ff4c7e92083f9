"""The emulator's state: resources by relative path, plus reference tracking for "in use" checks."""

from __future__ import annotations

import contextlib
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
        self._users: dict[str, list[str]] | None = None
        self._viewing = 0

    def get(self, path: str) -> Resource | None:
        with self.lock:
            return self._items.get(path)

    def exists(self, path: str) -> bool:
        with self.lock:
            return path in self._items or path in self._pending

    def put(self, path: str, resource: Resource) -> None:
        with self.lock:
            self._items[path] = resource
            self._pending.discard(path)

    def delete(self, path: str) -> Resource | None:
        with self.lock:
            return self._items.pop(path, None)

    def reserve(self, path: str) -> None:
        """Mark a name as being created, so a second insert during the operation gets a 409."""
        with self.lock:
            self._pending.add(path)

    def release(self, path: str) -> None:
        with self.lock:
            self._pending.discard(path)

    def children(self, collection: str) -> list[Resource]:
        """Resources directly under a collection path (``projects/p/regions/r/addresses``)."""
        prefix = collection.rstrip("/") + "/"
        with self.lock:
            return [
                r
                for path, r in sorted(self._items.items())
                if path.startswith(prefix) and "/" not in path[len(prefix) :]
            ]

    def items(self) -> Iterator[tuple[str, Resource]]:
        with self.lock:
            snapshot = list(self._items.items())
        yield from snapshot

    def users_of(self, path: str) -> list[str]:
        """Paths of the resources that reference ``path`` anywhere in their body.

        A generic way to find "in use" relations (subnet → network, NAT → address, URL map →
        backend service...) without a table per kind: GCP refuses to delete what is referenced.
        """
        with self.lock:  # a view is another thread's until it ends
            if self._viewing:
                if self._users is None:
                    self._users = self._reference_index()
                return [p for p in self._users.get(path, []) if p != path and not p.startswith(path + "/")]
        url = COMPUTE_BASE + path
        users = []
        for other_path, resource in self.items():
            if other_path == path or other_path.startswith(path + "/"):
                continue
            if _references(resource, path, url):
                users.append(other_path)
        return users

    @contextlib.contextmanager
    def one_view(self) -> Iterator[None]:
        """Within it, ``users_of`` answers from one walk over the store instead of one walk per call: for a list
        that shows every item's users, which would otherwise cost items x resources. Nothing may change the store
        meanwhile (no await inside; the lock keeps other threads out)."""
        with self.lock:
            self._viewing += 1
            try:
                yield
            finally:
                self._viewing -= 1
                if not self._viewing:
                    self._users = None

    def _reference_index(self) -> dict[str, list[str]]:
        """Relative path -> the paths of the resources referring to it (as ``_references`` reads references)."""
        index: dict[str, list[str]] = {}
        for other_path, resource in self.items():
            for ref in {relative(r) for r in _strings(resource)}:
                index.setdefault(ref, []).append(other_path)
        return index

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
