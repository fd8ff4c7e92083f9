"""Object storage with etcd-like resource versions and a bounded event history for watches.

Every write takes the next global revision (a string ``resourceVersion`` on the object and on
lists). Watches resume from a revision by replaying the history after it; a revision older than
the history holds is answered with 410 Gone, as after an etcd compaction. Each write is also
recorded in kmock's ``ObjectsArray`` so tests can assert on objects and their history kmock-style.
"""

from __future__ import annotations

import asyncio
import collections
import copy
from dataclasses import dataclass
from typing import Any

import kmock

from runnet.emulator.kube.registry import ResourceType

TypeKey = tuple[str, str]  # (group, plural): all versions of a CRD share storage


@dataclass(frozen=True)
class Event:
    rv: int
    key: TypeKey
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


class Store:
    def __init__(self, mirror: kmock.ObjectsArray, history_size: int = 10000, first_rv: int = 1000) -> None:
        self.rv = first_rv
        # Revisions below this are gone from the history: at first, all before the store's own first one
        # (a real API server's watch cache also answers 410 for revisions older than its window).
        self.compacted = first_rv
        self._objects: dict[TypeKey, dict[tuple[str | None, str], dict[str, Any]]] = {}
        self._history: collections.deque[Event] = collections.deque()
        self._history_size = history_size
        self._mirror = mirror
        self._changed = asyncio.Event()

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: TypeKey, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a deep copy, safe to modify)."""
        obj = self._objects.get(key, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, key: TypeKey, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects in etcd key order (namespace, then name); all namespaces when ``namespace`` is None."""
        items = self._objects.get(key, {})
        chosen = sorted(k for k in items if namespace is None or k[0] == namespace)
        return [copy.deepcopy(items[k]) for k in chosen]

    def count(self, key: TypeKey, namespace: str | None = None) -> int:
        return sum(1 for ns, _ in self._objects.get(key, {}) if namespace is None or ns == namespace)

    # -- writes --------------------------------------------------------------------------------

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def put(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Store a created (``old`` None) or updated object; its resourceVersion must be fresh."""
        meta = obj["metadata"]
        self._objects.setdefault(rt.key, {})[(meta.get("namespace"), meta["name"])] = copy.deepcopy(obj)
        self._record(rt, "ADDED" if old is None else "MODIFIED", obj, old)

    def remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Delete for good; the DELETED event carries the last state with a new resourceVersion."""
        meta = obj["metadata"]
        old = self._objects.get(rt.key, {}).pop((meta.get("namespace"), meta["name"]), None)
        obj["metadata"]["resourceVersion"] = self.next_rv()
        self._record(rt, "DELETED", obj, old)

    def drop_type(self, rt: ResourceType) -> None:
        for obj in self.list_objects(rt.key):
            self.remove(rt, obj)
        self._objects.pop(rt.key, None)

    def _record(self, rt: ResourceType, kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        event = Event(int(obj["metadata"]["resourceVersion"]), rt.key, kind, copy.deepcopy(obj), old)
        self._history.append(event)
        while len(self._history) > self._history_size:
            self.compacted = self._history.popleft().rv
        self._mirror_write(rt, kind, obj)
        self._changed.set()
        self._changed = asyncio.Event()

    def _mirror_write(self, rt: ResourceType, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (
            kmock.resource(group=rt.group, version=rt.storage_version, plural=rt.plural),
            meta.get("namespace"),
            meta["name"],
        )
        if key not in self._mirror:
            self._mirror[key] = copy.deepcopy(obj)
        elif kind == "DELETED":
            self._mirror[key].delete()
        else:
            self._mirror[key].create(copy.deepcopy(obj))

    def compact(self) -> None:
        """Forget the event history (as etcd compaction does): older watches get 410 Gone."""
        if self._history:
            self.compacted = self._history[-1].rv
        self._history.clear()
        self.compacted = max(self.compacted, self.rv)

    # -- watching ------------------------------------------------------------------------------

    def events_after(self, rv: int, key: TypeKey) -> list[Event] | None:
        """Events of one type after a revision; None if the history no longer reaches back that far."""
        if rv < self.compacted:
            return None
        found = []
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if event.key == key:
                found.append(event)
        return found[::-1]

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next write; take it before reading events to never miss one."""
        return self._changed
