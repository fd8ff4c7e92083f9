"""The emulator's request log: every call as it was answered, for tests and the conformance check."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Api


@dataclass
class LogEntry:
    """One request as the emulator saw it: what tests assert on (e.g. "zero writes")."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    method_id: str
    permission: str
    mutating: bool
    api: Api
    request_body: Any
    response_body: Any
    at: float = field(default_factory=time.time)
    host: str = ""
    """The authority the client addressed: a regional endpoint shows as ``{region}-run.googleapis.com``."""
    batched: bool = False
    """The call was a part of a Compute batch request."""


class RequestLog:
    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self._lock = threading.Lock()

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def snapshot(self) -> list[LogEntry]:
        with self._lock:
            return list(self.entries)

    def writes(self) -> list[LogEntry]:
        """Mutating calls that were accepted or rejected: anything that tried to change GCP."""
        return [e for e in self.snapshot() if e.mutating]

    def reads(self) -> list[LogEntry]:
        return [e for e in self.snapshot() if not e.mutating]
