"""What adapters share during one reconcile pass: clients, the owner, and a read cache."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from runnet.gcp.clients import Clients
from runnet.gcp.ownership import Owner

T = TypeVar("T")


@dataclass
class ReadCache:
    """One GET per resource per pass, even when two adapters read it (the router and its NAT)."""

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

    def network_path(self, name: str, project: str | None = None) -> str:
        return f"projects/{project or self.project}/global/networks/{name}"

    def regional_path(self, collection: str, name: str, project: str | None = None) -> str:
        return f"projects/{project or self.project}/regions/{self.region}/{collection}/{name}"
