"""The emulator's request log: every call as it was answered, for tests and the conformance check.

With a file (``--request-log FILE``, ``EmulatorConfig.request_log_path``) each entry is also one
JSON line, written and flushed as the call is answered, so a benchmark can read it live:
``{"time": "2026-01-01T00:00:00.123Z", "epoch": 1767225600.123, "principal": "serviceAccount:...",
"method": "compute.routers.get", "project": "p", "status": 200, "region": "us-central1",
"quotaGroup": "compute/read_requests_per_region", "latencyMs": 1.2, "httpMethod": "GET",
"path": "/compute/v1/...", "batched": false}`` (``region`` and ``quotaGroup`` are null where
they do not apply; ``method`` is empty for a path no route serves).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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
    principal: str = ""
    """Who made the call (``iam``): the service account a token stands for, or the default principal."""
    project: str = ""
    region: str = ""
    quota_group: str = ""
    """The rate quota group the call counts against (``quota``), empty when none."""
    latency: float = 0.0
    """Seconds from routing to the answer (a wait includes the wait)."""

    def json_line(self) -> str:
        moment = dt.datetime.fromtimestamp(self.at, tz=dt.UTC)
        record = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "epoch": round(self.at, 6),
            "principal": self.principal,
            "method": self.method_id,
            "project": self.project,
            "status": self.status,
            "region": self.region or None,
            "quotaGroup": self.quota_group or None,
            "latencyMs": round(self.latency * 1000, 3),
            "httpMethod": self.method,
            "path": self.path,
            "batched": self.batched,
        }
        return json.dumps(record, separators=(",", ":"))


class RequestLog:
    def __init__(self, path: Path | str | None = None) -> None:
        self.entries: list[LogEntry] = []
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self.entries.append(entry)
            if self._file is not None:
                self._file.write(entry.json_line() + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

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
