"""Kubernetes API errors, shaped like the API server's ``Status`` objects.

Messages and reasons follow k8s.io/apimachinery/pkg/api/errors, so clients (kubectl, kopf,
the kubernetes client) classify them exactly as they would against a real cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runnet.emulator.kube.jsonpath import go_json

# field.ErrorType → the cause "reason" and the message prefix (apimachinery/pkg/util/validation/field).
_CAUSES = {
    "FieldValueRequired": "Required value",
    "FieldValueNotFound": "Not found",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
}


def show_value(value: Any) -> str:
    """Render a value the way field errors print it (Go's %q for strings, %v for the rest)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # Go's %q keeps printable Unicode as it is
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))  # %v of a float64 with no fraction
    if isinstance(value, int | float):
        return repr(value)
    return go_json(value)


@dataclass(frozen=True)
class Cause:
    """One field error: ``spec.color: Unsupported value: "pink": supported values: ...``."""

    field: str
    reason: str  # one of _CAUSES
    detail: str = ""  # text after the prefix (and after the shown value, if any)
    value: Any = None
    show: bool = False  # whether the message shows the value (Invalid, NotSupported, ...)

    @property
    def message(self) -> str:
        text = _CAUSES.get(self.reason, self.reason)
        if self.show:
            text += f": {show_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def invalid_value(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, "FieldValueInvalid", detail, value, show=True)


def required(path: str, detail: str = "") -> Cause:
    return Cause(path, "FieldValueRequired", detail)


def forbidden(path: str, detail: str) -> Cause:
    return Cause(path, "FieldValueForbidden", detail)


@dataclass
class ApiError(Exception):
    """An error response; ``status_body()`` is what goes on the wire."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None  # StatusDetails; None: no "details" key at all

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def _details(name: str, group: str, kind: str, **more: Any) -> dict[str, Any]:
    """StatusDetails as Go serialises them: an empty name or group (the core API) is left out."""
    found: dict[str, Any] = {"name": name, "group": group, "kind": kind, **more}
    return {k: v for k, v in found.items() if v or k not in ("name", "group")}


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(group, plural)} "{name}" not found',
        _details(name, group, plural),
    )


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


class PageNotFound(Exception):
    """What the API server's fallback handler answers: ``404 page not found`` in plain text, no Status.

    For paths no API group serves: unknown groups, versions and resources of custom resource groups,
    and anything that is not an API path. Built-in groups answer a JSON ``NotFound`` Status instead.
    """

    text = "404 page not found\n"


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(group, plural)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(group: str, plural: str, name: str, why: str = "") -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}',
        _details(name, group, plural),
    )


def invalid(group: str, kind: str, name: str, causes: list[Cause]) -> ApiError:
    errs = list(dict.fromkeys(str(c) for c in causes))  # the message says each error once; causes keep them all
    text = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{_qualified(group, kind)} "{name}" is invalid: {text}',
        _details(name, group, kind, causes=[c.as_dict() for c in causes]),
    )


def unprocessable(detail: str) -> ApiError:
    """What the server answers for a JSON patch it cannot apply (a failed ``test`` among them)."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": detail}]},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden_error(group: str, plural: str, name: str, why: str) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        f'{_qualified(group, plural)} "{name}" is forbidden: {why}',
        _details(name, group, plural),
    )


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unsupported_media_type(accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}",
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")
