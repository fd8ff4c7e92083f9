"""What adapters share during one reconcile pass: clients, the owner, and how reads are made.

Reads go through the identity's ``Inventory`` (observation by list, shared by every object) and,
within one pass, a ``ReadCache`` (two adapters reading the same resource, the router and its NAT,
read it once even when it must be read with a GET).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from runnet.gcp.calls import find
from runnet.gcp.clients import Clients
from runnet.gcp.inventory import ACCEPTED_AGE, short_name
from runnet.gcp.ownership import Owner

T = TypeVar("T")


@dataclass
class ReadCache:
    """One read per resource per pass, even when two adapters read it (the router and its NAT)."""

    _values: dict[str, Any] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str, fetch: Callable[[], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = fetch()
            return self._values[key]  # type: ignore[no-any-return]

    def invalidate(self, key: str) -> None:
        with self._guard:
            self._values.pop(key, None)


@dataclass
class Context:
    clients: Clients
    owner: Owner
    project: str
    region: str
    cache: ReadCache = field(default_factory=ReadCache)
    since: float = field(init=False)
    """The oldest list this pass accepts an observation from (the inventory's clock; see ``Inventory``)."""

    def __post_init__(self) -> None:
        self.since = self.clients.inventory.now() - ACCEPTED_AGE.get()

    def network_path(self, name: str, project: str | None = None) -> str:
        return f"projects/{project or self.project}/global/networks/{name}"

    def regional_path(self, collection: str, name: str, project: str | None = None) -> str:
        return f"projects/{project or self.project}/regions/{self.region}/{collection}/{name}"

    @property
    def watcher(self) -> tuple[str, str, str]:
        return (self.owner.kind, self.owner.namespace, self.owner.name)

    def read(self, key: str, what: str, get_one: Callable[[], T], list_all: Callable[[], Iterable[Any]]) -> T | None:
        """The resource at ``key`` or None: from the collection's shared snapshot (listed with ``list_all`` when it
        is older than this pass accepts), with a GET (``get_one``) when runnet wrote it since; once per pass."""
        collection = key.rsplit("/", 2)[-2]
        if self.clients.inventory.touched(key):
            self.cache.invalidate(key)  # written since this pass read it (``compute_write`` touches what it writes)
        return self.cache.get(  # type: ignore[no-any-return]
            key,
            lambda: self.clients.inventory.read(
                key,
                lambda: find(f"reading {what}", get_one),
                lambda: find(f"listing {collection} in {self.project}", lambda: list(list_all())) or [],
                since=self.since,
                watcher=self.watcher,
            ),
        )

    def read_all(
        self,
        path: str,
        what: str,
        list_all: Callable[[], Iterable[Any]],
        name_of: Callable[[Any], str] = short_name,
    ) -> list[Any]:
        """Every resource of a collection (``projects/p/regions/r/addresses``) as the shared snapshot has it, listed
        again when runnet wrote any of them since. ``name_of``: an item's name in the collection, where the short
        name is not unique (an aggregated list: ``region/name``)."""
        return self.clients.inventory.collection(
            path, lambda: find(f"listing {what}", lambda: list(list_all())) or [], since=self.since, name_of=name_of
        )

    def touch(self, key: str) -> None:
        """This pass writes the resource: any later read of it is a GET."""
        self.cache.invalidate(key)
        self.clients.inventory.touch(key)
