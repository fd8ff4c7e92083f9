"""Error shapes of the two API families the emulator speaks.

Compute uses the old-style body with ``errors[]``; Cloud Run uses google.rpc style with ``status``.
Handlers raise these; the server turns them into HTTP responses (or failed operations).
"""

from __future__ import annotations

from typing import Any

_HTTP_REASON = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    412: "PRECONDITION FAILED",
    429: "TOO MANY REQUESTS",
    500: "INTERNAL SERVER ERROR",
    503: "SERVICE UNAVAILABLE",
}

_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# google.rpc.Code numbers, for errors inside Cloud Run operations.
_RPC_CODE = {
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}


class GCPError(Exception):
    """An API error: HTTP code, a machine reason (Compute ``reason``) and a human message."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        operation_code: str | None = None,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        # google.rpc status when the HTTP code alone is ambiguous (409 is ALREADY_EXISTS or ABORTED).
        self.status = status or _RPC_STATUS.get(code, "UNKNOWN")
        self.details = details or []
        # The upper-case code used inside failed Compute operations (RESOURCE_IN_USE_BY_ANOTHER_RESOURCE).
        self.operation_code = operation_code or _camel_to_const(reason)

    def compute_body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"domain": "global", "reason": self.reason, "message": self.message}],
            }
        }

    def run_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    @property
    def rpc_code(self) -> int:
        """The google.rpc.Code number (what a failed Cloud Run operation's ``error.code`` holds)."""
        return _RPC_CODE.get(self.status, 2)

    def operation_error(self) -> dict[str, Any]:
        """Fields a DONE Compute operation carries when it failed (both http* fields: clients need them)."""
        return {
            "httpErrorStatusCode": self.code,
            "httpErrorMessage": _HTTP_REASON.get(self.code, "ERROR"),
            "error": {"errors": [{"code": self.operation_code, "message": self.message}]},
        }


def _camel_to_const(reason: str) -> str:
    out = []
    for ch in reason:
        if ch.isupper():
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


def not_found(path: str) -> GCPError:
    return GCPError(404, "notFound", f"The resource '{path}' was not found")


def already_exists(path: str) -> GCPError:
    return GCPError(409, "alreadyExists", f"The resource '{path}' already exists")


def invalid(message: str) -> GCPError:
    return GCPError(400, "invalid", message)


def bad_request(message: str) -> GCPError:
    return GCPError(400, "badRequest", message)


def in_use(kind: str, path: str, user: str) -> GCPError:
    return GCPError(
        400,
        "resourceInUseByAnotherResource",
        f"The {kind} resource '{path}' is already being used by '{user}'",
    )


def fingerprint_mismatch(path: str) -> GCPError:
    return GCPError(
        412,
        "conditionNotMet",
        f"Supplied fingerprint does not match current fingerprint of resource '{path}'.",
    )


def permission_denied(permission: str, path: str) -> GCPError:
    return GCPError(403, "forbidden", f"Required '{permission}' permission for '{path}'")


def run_not_found(name: str, kind: str = "SERVICE") -> GCPError:
    parts = name.split("/")
    project = parts[1] if len(parts) > 1 else "?"
    region = parts[3] if len(parts) > 3 else "?"
    short = parts[-1]
    return GCPError(
        404,
        "notFound",
        f"Resource '{short}' of kind '{kind}' in region '{region}' in project '{project}' does not exist.",
    )
