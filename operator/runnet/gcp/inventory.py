"""What runnet has seen of GCP, shared by every object of the process: observation by list.

A pass reads a collection (one kind in one project and region) with one paged list, and every
object reconciled after it is answered from that snapshot for as long as it is fresh enough for
the pass: a pass says how old a snapshot it accepts (``since``). A converged object's resync
accepts one almost a resync interval old; a new object, an edit, a retry or a poke accepts one a
few seconds old. So 1,000 gateways in one project cost one list per kind per interval, instead of
one GET per resource per object.

Two rules keep it true:
- what runnet writes is read again: a write marks its resource *touched* (``touch``), and the next
  read of it is a GET started after the write, never the older snapshot;
- a refreshed list that shows a resource changed, appeared or gone tells the objects that read it
  (``on_change``), so drift is repaired at the next tick, within one refresh of the snapshot.

Entries carry the time their read began: a list that began before a GET does not overwrite what
the GET saw. One instance per identity (``Clients``): what one service account may list is not
what another may.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

ACCEPTED_AGE = contextvars.ContextVar("runnet_accepted_age", default=0.0)
"""Seconds old a snapshot a pass accepts, set by the handler around a pass (0: list once within the pass)."""


@dataclass
class _Entry:
    at: float
    """Monotonic time the read that saw it began."""
    value: Any


@dataclass
class _Collection:
    listed_at: float = float("-inf")
    entries: dict[str, _Entry] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while the collection is listed: readers of a stale snapshot share one list."""


@dataclass
class _Derived:
    version: Hashable
    read_at: float
    value: Any


Watcher = Hashable
"""Who to tell when a resource changes: an owner (kind, namespace, name)."""


def short_name(item: Any) -> str:
    """A listed resource's name (Cloud Run names are full paths)."""
    return str(item.name).rsplit("/", 1)[-1]


class Inventory:
    """Snapshots of GCP collections, touched keys, and who read which resource. Thread-safe (adapters run in the
    engine's threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._collections: dict[str, _Collection] = defaultdict(_Collection)
        self._touched: dict[str, float] = {}
        self._watchers: dict[str, set[Watcher]] = defaultdict(set)
        self._derived: dict[str, _Derived] = {}
        self._guard = threading.Lock()
        self.on_change: Callable[[set[Watcher], float], None] | None = None
        """Called (in an engine thread) with the watchers of resources a refreshed list found changed, and when that
        list began (a pass of theirs may read from it: it shows the change)."""
        self.lists = 0
        """Lists made (each may be several pages), for tests and benchmarks."""

    def _collection(self, path: str) -> _Collection:
        with self._guard:
            return self._collections[path]

    def touch(self, key: str) -> None:
        """runnet is writing this resource: its next read is a GET that begins after now."""
        with self._guard:
            self._touched[key] = self._clock()

    def now(self) -> float:
        return self._clock()

    def touched(self, key: str) -> bool:
        with self._guard:
            return key in self._touched

    def forget(self, watcher: Watcher) -> None:
        """The watcher is gone (its object was deleted): it is told nothing more."""
        with self._guard:
            for watchers in self._watchers.values():
                watchers.discard(watcher)

    def read(
        self,
        key: str,
        get_one: Callable[[], Any],
        list_all: Callable[[], Iterable[Any]],
        *,
        since: float,
        watcher: Watcher | None = None,
    ) -> Any:
        """The resource at ``key`` (``projects/p/regions/r/routers/name``) or None, as of a read begun at or after
        ``since``: from the collection's snapshot, listed again when older; a touched one with a GET."""
        path, name = key.rsplit("/", 1)
        if watcher is not None:
            with self._guard:
                self._watchers[key].add(watcher)
        with self._guard:
            touched = key in self._touched
        if touched:
            return self._get(path, name, key, get_one)
        coll = self._fresh(path, list_all, since)
        entry = coll.entries.get(name)
        return entry.value if entry is not None else None

    def collection(
        self,
        path: str,
        list_all: Callable[[], Iterable[Any]],
        *,
        since: float,
        name_of: Callable[[Any], str] = short_name,
    ) -> list[Any]:
        """Every resource of the collection (``projects/p/regions/r/addresses``), as of a list begun at or after
        ``since`` and after runnet's last write to any of them: one list, never a GET per written resource (while
        hundreds are being created in one collection, every reader would GET every one of them)."""
        prefix = path + "/"
        with self._guard:
            written = max((at for k, at in self._touched.items() if k.startswith(prefix)), default=float("-inf"))
        coll = self._fresh(path, list_all, max(since, written), name_of)
        with self._guard:
            return [e.value for _, e in sorted(coll.entries.items()) if e.value is not None]

    def derived(
        self, key: str, version: Hashable, fetch: Callable[[], Any], *, ttl: float, settled: Callable[[Any], bool]
    ) -> Any:
        """A read that has no list form (a router's NAT status), kept while ``version`` (what it follows from, as the
        pass observed it) is unchanged and for at most ``ttl`` seconds; a value that does not agree with that
        version yet (``settled`` is False: GCP's status may trail its configuration) is read again on every pass."""
        now = self._clock()
        with self._guard:
            kept = self._derived.get(key)
        if kept is not None and kept.version == version and now - kept.read_at < ttl:
            return kept.value
        value = fetch()
        keep = settled(value)  # it may read through this inventory: never under the guard
        with self._guard:
            if keep:
                self._derived[key] = _Derived(version, now, value)
            else:
                self._derived.pop(key, None)
        return value

    def _get(self, path: str, name: str, key: str, get_one: Callable[[], Any]) -> Any:
        start = self._clock()
        value = get_one()
        coll = self._collection(path)
        with self._guard:
            old = coll.entries.get(name)
            if old is None or old.at <= start:
                if value is None:
                    coll.entries.pop(name, None)
                else:
                    coll.entries[name] = _Entry(start, value)
            if self._touched.get(key, start + 1) <= start:
                del self._touched[key]
        return value

    def _fresh(
        self,
        path: str,
        list_all: Callable[[], Iterable[Any]],
        since: float,
        name_of: Callable[[Any], str] = short_name,
    ) -> _Collection:
        coll = self._collection(path)
        if coll.listed_at >= since:
            return coll
        changed: set[str] = set()
        with coll.lock:
            if coll.listed_at >= since:
                return coll  # another reader listed it meanwhile
            start = self._clock()
            listed = {name_of(item): item for item in list_all()}
            first = coll.listed_at == float("-inf")
            with self._guard:
                self.lists += 1
                for name in set(coll.entries) | set(listed):
                    old = coll.entries.get(name)
                    if old is not None and old.at > start:
                        continue  # a GET begun after this list knows better
                    value = listed.get(name)
                    if not first and (old.value if old else None) != value:
                        changed.add(f"{path}/{name}")
                    if value is None:
                        coll.entries.pop(name, None)
                    else:
                        coll.entries[name] = _Entry(start, value)
                coll.listed_at = start
                # What runnet wrote before this list began, the list shows: read from the snapshot from now on.
                prefix = path + "/"
                for key in [k for k, at in self._touched.items() if at <= start and k.startswith(prefix)]:
                    del self._touched[key]
                told = set().union(*(self._watchers.get(k, set()) for k in changed)) if changed else set()
        if told and self.on_change is not None:
            self.on_change(told, coll.listed_at)
        return coll
