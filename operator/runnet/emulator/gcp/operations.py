"""Long-running operations for both API families.

A mutating call validates synchronously (errors come back as HTTP errors, like GCP's), then
returns an operation. Its effect (``apply``) runs when the operation completes: at once when the
configured latency is 0, otherwise after the latency, so a resource is not visible before its
operation is DONE, as on GCP. ``apply`` may raise a GCPError: the operation then fails with it
(this is how asynchronous failures such as deleting a network still in use are reported).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError

Apply = Callable[[], Any]
Style = Literal["compute", "run"]
"""How an operation is rendered: Compute's ``Operation``, or a google.longrunning ``Operation``
(Cloud Run, Service Usage)."""

INJECTED_OPERATION_ERROR = GCPError(
    500, "internalError", "Internal error. Please try again or contact Google Support. (Code: 'injected')"
)


@dataclass
class Operation:
    api: Style
    name: str
    path: str
    """Relative path of the operation (``projects/p/regions/r/operations/op``)."""
    done_at: float
    apply: Apply | None
    body: dict[str, Any]
    error: GCPError | None = None
    result: Any = None
    done: bool = False
    event: asyncio.Event = field(default_factory=asyncio.Event)
    on_done: list[Callable[[Operation], None]] = field(default_factory=list)

    def complete(self) -> None:
        if self.done:
            return
        if self.error is None and self.apply is not None:
            try:
                self.result = self.apply()
            except GCPError as exc:
                self.error = exc
        self.done = True
        for callback in self.on_done:
            callback(self)
        self.event.set()


class Operations:
    """All operations of one emulator, completed lazily on every request and by a ticker."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        self._by_request_id: dict[tuple[str, str], str] = {}
        self._due: list[tuple[float, int, Operation]] = []
        """The operations not done yet, soonest first: a tick looks at those due, not at every operation kept (a
        thousand objects leave tens of thousands of finished ones)."""
        self._added = 0

    def add(self, op: Operation, *, request_id: str | None = None, project: str = "") -> None:
        self._ops[op.path] = op
        if request_id:
            self._by_request_id[(project, request_id)] = op.path
        if op.done_at <= time.monotonic():
            op.complete()
        else:
            self._added += 1
            heapq.heappush(self._due, (op.done_at, self._added, op))

    def by_request_id(self, project: str, request_id: str) -> Operation | None:
        path = self._by_request_id.get((project, request_id))
        return self._ops.get(path) if path else None

    def get(self, path: str) -> Operation | None:
        self.tick()
        return self._ops.get(path)

    def under(self, prefix: str) -> list[Operation]:
        self.tick()
        return [op for path, op in self._ops.items() if path.startswith(prefix)]

    def delete(self, path: str) -> bool:
        return self._ops.pop(path, None) is not None

    def tick(self) -> None:
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            op = heapq.heappop(self._due)[2]
            if not op.done and self._ops.get(op.path) is op:
                op.complete()

    def pending(self) -> list[Operation]:
        return [op for op in self._ops.values() if not op.done]

    async def wait(self, op: Operation, timeout: float) -> None:
        """Block until the operation is done or ``timeout`` passes (what the ``wait`` methods do)."""
        deadline = time.monotonic() + timeout
        while not op.done:
            remaining = min(op.done_at, deadline) - time.monotonic()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(op.event.wait(), timeout=remaining)
            self.tick()
            if time.monotonic() >= deadline:
                return


def compute_operation_body(
    *,
    name: str,
    project: str,
    region: str | None,
    operation_type: str,
    target_link: str,
    target_id: str,
) -> dict[str, Any]:
    scope = f"projects/{project}/regions/{region}" if region else f"projects/{project}/global"
    body: dict[str, Any] = {
        "kind": "compute#operation",
        "id": ids.numeric_id(),
        "name": name,
        "operationType": operation_type,
        "targetLink": target_link,
        "targetId": target_id,
        "status": "RUNNING",
        "user": "runnet-emulator@example.iam.gserviceaccount.com",
        "progress": 0,
        "insertTime": ids.compute_timestamp(),
        "startTime": ids.compute_timestamp(),
        "selfLink": ids.self_link(f"{scope}/operations/{name}"),
    }
    if region:
        body["region"] = ids.self_link(f"projects/{project}/regions/{region}")
    return body


def render_compute(op: Operation) -> dict[str, Any]:
    body = dict(op.body)
    if op.done:
        body["status"] = "DONE"
        body["progress"] = 100
        body["endTime"] = body.get("endTime") or ids.compute_timestamp()
        op.body["endTime"] = body["endTime"]
        if op.error is not None:
            body.update(op.error.operation_error())
    return body


def render_run(op: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {"name": op.name, "metadata": op.body.get("metadata", {})}
    if op.done:
        body["done"] = True
        if op.error is not None:
            body["error"] = {"code": op.error.rpc_code, "message": op.error.message}
        elif op.result is not None:
            body["response"] = op.result
    return body
