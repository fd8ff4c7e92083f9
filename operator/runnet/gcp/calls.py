"""Calling GCP: waiting on operations, and turning failures into errors the engine can act on.

Operations are waited on with the ``wait`` methods (the server holds the call until DONE), which
tracks GCP's own latency closely instead of sleeping on the client's 1 s, 1.5 s, ... backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


def from_api_error(what: str, exc: gexc.GoogleAPICallError) -> GCPCallError:
    code = int(exc.code or 0)
    reason = ""
    errors = getattr(exc, "errors", None) or []
    if errors and isinstance(errors[0], dict):
        reason = str(errors[0].get("reason", ""))
    message = exc.message or str(exc)
    return GCPCallError(f"{what}: {message}", retryable=code in RETRYABLE_HTTP or code == 0, code=code, reason=reason)


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
            if not error.retryable or error.code == 409 or attempt == READ_ATTEMPTS - 1:
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
    if op.error and op.error.errors:
        first = op.error.errors[0]
        raise GCPCallError(
            f"{what}: {first.message}",
            retryable=first.code in RETRYABLE_OPERATION_CODES,
            code=op.http_error_status_code,
            reason=first.code,
        )


def compute_write(clients: Clients, what: str, fn: Callable[[], compute_v1.Operation]) -> None:
    """A Compute mutation (a ``*_unary`` method) and the wait for its operation."""
    op = call(what, fn)
    wait_compute(clients, what, op)


def wait_run(clients: Clients, what: str, operation: Any) -> Any:
    """Block until a Cloud Run long-running operation finishes; return its response message."""
    name = operation.operation.name if hasattr(operation, "operation") else operation.name
    op = operation.operation if hasattr(operation, "operation") else operation
    while not op.done:
        op = call(
            what,
            lambda: clients.run_services.wait_operation(
                operations_pb2.WaitOperationRequest(name=name, timeout={"seconds": 60})  # type: ignore[arg-type]
            ),
        )
    if op.HasField("error") and op.error.code:
        raise GCPCallError(f"{what}: {op.error.message}", retryable=op.error.code in (4, 8, 10, 13, 14))
    service = run_v2.Service.deserialize(op.response.value) if op.HasField("response") else None
    return service


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
