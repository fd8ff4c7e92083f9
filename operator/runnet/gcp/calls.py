"""Calling GCP: waiting on operations, and turning failures into errors the engine can act on.

Operations are waited on with the ``wait`` methods (the server holds the call until DONE), which
tracks GCP's own latency closely instead of sleeping on the client's 1 s, 1.5 s, ... backoff.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from google.api_core import exceptions as gexc
from google.auth.exceptions import RefreshError
from google.cloud import compute_v1, run_v2
from google.longrunning import operations_pb2

if TYPE_CHECKING:
    from runnet.gcp.clients import Clients
    from runnet.metrics import Metrics

T = TypeVar("T")

RETRYABLE_HTTP = {408, 409, 412, 429, 500, 502, 503, 504}
RETRYABLE_OPERATION_CODES = {
    "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
    "RESOURCE_NOT_READY",
    "INTERNAL_ERROR",
    "RATE_LIMIT_EXCEEDED",
    "QUOTA_EXCEEDED",
    "BACKEND_ERROR",
}


class GCPCallError(Exception):
    """A failed GCP call: ``retryable`` says whether the same call may succeed later."""

    def __init__(self, message: str, *, retryable: bool, code: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.reason = reason


IMPERSONATION_DENIED = "impersonationDenied"


def refused_identity(what: str, exc: RefreshError) -> GCPCallError:
    """google-auth could not get a token for the ProjectBinding's service account: only a person can grant it."""
    detail = " ".join(str(a) for a in exc.args)
    denied = "getAccessToken" in detail or "PERMISSION_DENIED" in detail or "403" in detail
    why = (
        "runnet's own Google identity may not impersonate the ProjectBinding's service account: grant it "
        "roles/iam.serviceAccountTokenCreator on that service account"
        if denied
        else f"no credentials for the ProjectBinding's service account ({detail[:200]})"
    )
    return GCPCallError(f"{what}: {why}", retryable=not denied, code=403 if denied else 0, reason=IMPERSONATION_DENIED)


def call(what: str, fn: Callable[[], T]) -> T:
    """Run a client call; API errors become GCPCallError naming ``what`` was being done."""
    try:
        return fn()
    except gexc.GoogleAPICallError as exc:
        raise from_api_error(what, exc) from exc
    except RefreshError as exc:
        raise refused_identity(what, exc) from exc


RATE_LIMITED = "rateLimitExceeded"


def from_api_error(what: str, exc: gexc.GoogleAPICallError) -> GCPCallError:
    code = int(exc.code or 0)
    reason = ""
    errors = getattr(exc, "errors", None) or []
    if errors and isinstance(errors[0], dict):
        reason = str(errors[0].get("reason", ""))
    message = exc.message or str(exc)
    if reason == RATE_LIMITED or getattr(exc, "reason", None) == "RATE_LIMIT_EXCEEDED":
        return rate_limited(what, exc, message)
    return GCPCallError(f"{what}: {message}", retryable=code in RETRYABLE_HTTP or code == 0, code=code, reason=reason)


def rate_limited(what: str, exc: gexc.GoogleAPICallError, message: str) -> GCPCallError:
    """GCP's rateLimitExceeded (Compute's 403, others' 429): the project's quota, not a permission; retried."""
    metadata = getattr(exc, "metadata", None) or {}
    limit = str(metadata.get("quota_limit", "")) or "a rate quota"
    match = re.search(r"limit '([^']+)'", message)
    if match:
        limit = match.group(1)
    response = getattr(exc, "response", None)
    url = str(getattr(getattr(response, "request", None), "url", "") or "")
    project = re.search(r"/projects/([^/?:]+)", url)
    whose = f"project {project.group(1)}" if project else "the project"
    return GCPCallError(
        f"{what}: GCP's rate quota '{limit}' of {whose} is spent for this minute (runnet retries when it "
        f"refills; raise the quota, or leave runnet more of it with --gcp-rate): {message}",
        retryable=True,
        code=int(exc.code or 0),
        reason=RATE_LIMITED,
    )


READ_ATTEMPTS = 4
READ_BACKOFF = 0.1


def find(what: str, fn: Callable[[], T]) -> T | None:
    """Like ``call`` for a GET: a 404 means absent (None).

    A GET is idempotent, so a transient error (429, 5xx) is retried in place a few times with
    backoff before it fails the pass: otherwise one rate-limited read among a dozen would turn a
    converged object's Ready condition False until the next pass.
    """
    for attempt in range(READ_ATTEMPTS):
        try:
            return fn()
        except gexc.NotFound:
            return None
        except RefreshError as exc:
            raise refused_identity(what, exc) from exc
        except gexc.GoogleAPICallError as exc:
            error = from_api_error(what, exc)
            last = attempt == READ_ATTEMPTS - 1
            if not error.retryable or error.code == 409 or error.reason == RATE_LIMITED or last:
                raise error from exc
        time.sleep(READ_BACKOFF * 2**attempt)
    raise AssertionError("unreachable")


def wait_compute(clients: Clients, what: str, op: compute_v1.Operation) -> None:
    """Block until a Compute operation is DONE; raise GCPCallError if it failed."""
    scope = _op_scope(op.self_link)
    name = op.name
    while op.status != compute_v1.Operation.Status.DONE:
        if "region" in scope:
            op = call(
                what,
                lambda: clients.region_operations.wait(
                    project=scope["project"], region=scope["region"], operation=name
                ),
            )
        else:
            op = call(what, lambda: clients.global_operations.wait(project=scope["project"], operation=name))
    _touch(clients, op)
    _raise_if_failed(what, op)


def _raise_if_failed(what: str, op: compute_v1.Operation) -> None:
    if op.error and op.error.errors:
        first = op.error.errors[0]
        raise GCPCallError(
            f"{what}: {first.message}",
            retryable=first.code in RETRYABLE_OPERATION_CODES,
            code=op.http_error_status_code,
            reason=first.code,
        )


# -- waiting without a thread ------------------------------------------------------------------

POLL_DELAYS = (0.1, 0.2, 0.4, 0.5)
"""Seconds between the first operation reads (many operations finish within a second or two)..."""
POLL_STEADY = 0.5
POLL_YOUNG = 3.0
"""...then every POLL_STEADY until this age, then backing off by POLL_GROWTH up to POLL_MAX."""
POLL_GROWTH = 1.5
POLL_MAX = 5.0


def poll_delays() -> Iterator[float]:
    """Sleeps between operation reads: an operation of 1 s is seen done about 0.2 s late after 4 reads; one of 30 s
    after about 12."""
    age = 0.0
    for delay in POLL_DELAYS:
        age += delay
        yield delay
    delay = POLL_STEADY
    while True:
        yield delay
        age += delay
        if age >= POLL_YOUNG:
            delay = min(delay * POLL_GROWTH, POLL_MAX)


@dataclass
class PendingOperation:
    """A Compute operation a write started and a waiter on the event loop finishes (``deferring_waits``)."""

    clients: Clients
    what: str
    op: Any
    """A compute_v1.Operation, or a Cloud Run long-running operation (``PendingRunOperation``)."""

    def done(self, op: Any) -> bool:
        return bool(op.status == compute_v1.Operation.Status.DONE)

    def finish(self, op: Any) -> None:
        _touch(self.clients, op)
        _raise_if_failed(self.what, op)

    def wait_here(self) -> None:
        wait_compute(self.clients, self.what, self.op)

    def read(self) -> Any:
        """One GET of the operation (an operation read, the cheapest quota group there is for it)."""
        scope, name = _op_scope(self.op.self_link), self.op.name
        if "region" in scope:
            ops: Any = self.clients.region_operations
            return call(self.what, lambda: ops.get(project=scope["project"], region=scope["region"], operation=name))  # type: ignore[no-any-return]
        ops = self.clients.global_operations
        return call(self.what, lambda: ops.get(project=scope["project"], operation=name))  # type: ignore[no-any-return]

    async def settle(self, run: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        """Sleep on the event loop between reads (``run`` does one blocking read elsewhere); raise if it failed."""
        op = self.op
        delays = poll_delays()
        while not self.done(op):
            await asyncio.sleep(next(delays))
            op = await run(self.read)
        self.finish(op)


@dataclass
class PendingRunOperation(PendingOperation):
    """A Cloud Run long-running operation (its GET counts as a Cloud Run read)."""

    touches: str = ""
    """The inventory key of the service it writes, touched again when it is done."""

    def done(self, op: Any) -> bool:
        return bool(op.done)

    def finish(self, op: Any) -> None:
        if self.touches:
            self.clients.inventory.touch(self.touches)
        _run_result(self.what, op)

    def wait_here(self) -> None:
        wait_run(self.clients, self.what, self.op, touches=self.touches)

    def read(self) -> Any:
        request = operations_pb2.GetOperationRequest(name=self.op.name)
        return call(self.what, lambda: self.clients.run_services.get_operation(request))


_deferred = threading.local()


def deferring_waits(fn: Callable[[], None]) -> list[PendingOperation]:
    """Run ``fn`` (an adapter's write, in an engine thread) with the wait for its last operation handed back instead
    of done in the thread: a write that follows another write of ``fn`` still waits for it first, in place."""
    _deferred.pending = []
    try:
        fn()
        pending: list[PendingOperation] = _deferred.pending
        return pending
    finally:
        del _deferred.pending


def compute_write(clients: Clients, what: str, fn: Callable[[], compute_v1.Operation]) -> None:
    """A Compute mutation (a ``*_unary`` method) and the wait for its operation."""
    pending: list[PendingOperation] | None = getattr(_deferred, "pending", None)
    if pending is not None:
        _wait_earlier(pending)
    op = call(what, fn)
    _touch(clients, op)
    if pending is None:
        wait_compute(clients, what, op)
    else:
        pending.append(PendingOperation(clients, what, op))


def _touch(clients: Clients, op: compute_v1.Operation) -> None:
    """The operation's resource is being written, or was just written: its next read begins after now, never from
    an older snapshot (``Inventory``). Touched again when the operation is seen done: a read begun while it ran
    shows the resource as it was before."""
    if op.target_link and "/projects/" in op.target_link:
        clients.inventory.touch("projects/" + op.target_link.split("/projects/", 1)[1])


def wait_for_earlier_writes() -> None:
    """Before a write that may depend on the writes this action already made (their waits were deferred)."""
    _wait_earlier(getattr(_deferred, "pending", None) or [])


def _wait_earlier(pending: list[PendingOperation]) -> None:
    """A write that follows another write of the same action may depend on it: wait for that one first."""
    while pending:
        pending.pop().wait_here()


def wait_run(clients: Clients, what: str, operation: Any, *, touches: str = "") -> Any:
    """Block until a Cloud Run long-running operation finishes; return its response message (None: its wait was
    handed to the event loop, see ``deferring_waits``). ``touches``: the inventory key of what it writes, touched
    again when it is done."""
    name = operation.operation.name if hasattr(operation, "operation") else operation.name
    op = operation.operation if hasattr(operation, "operation") else operation
    pending: list[PendingOperation] | None = getattr(_deferred, "pending", None)
    if pending is not None and not op.done:
        pending.append(PendingRunOperation(clients, what, op, touches=touches))
        return None
    while not op.done:
        op = call(
            what,
            lambda: clients.run_services.wait_operation(
                operations_pb2.WaitOperationRequest(name=name, timeout={"seconds": 60})  # type: ignore[arg-type]
            ),
        )
    if touches:
        clients.inventory.touch(touches)
    return _run_result(what, op)


def _run_result(what: str, op: Any) -> Any:
    if op.HasField("error") and op.error.code:
        raise GCPCallError(f"{what}: {op.error.message}", retryable=op.error.code in (4, 8, 10, 13, 14))
    return run_v2.Service.deserialize(op.response.value) if op.HasField("response") else None


def metered(metrics: Metrics, service: str, method: str, rpc: Callable[..., T]) -> Callable[..., T]:
    """``rpc`` (one of a client's wrapped methods: one HTTP request) counted and timed.

    Counted here rather than in ``call``/``find``: a list's later pages and each operation ``wait``
    are requests of their own, sent where no ``call`` sees them (a pager fetches pages as it is
    iterated). ``code`` is the HTTP status, or ``none`` when no answer came.
    """

    def send(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        code = "none"
        try:
            response = rpc(*args, **kwargs)
            code = "200"
            return response
        except gexc.GoogleAPICallError as exc:
            code = str(int(exc.code)) if exc.code else "none"
            raise
        finally:
            metrics.gcp_request(service, method, code, time.perf_counter() - start)

    return send


def _op_scope(self_link: str) -> dict[str, str]:
    parts = self_link.split("/projects/", 1)[1].split("/")
    scope = {"project": parts[0]}
    if parts[1] == "regions":
        scope["region"] = parts[2]
    return scope
