"""IAM policies of Cloud Run services: getIamPolicy, setIamPolicy, testIamPermissions.

Policies live in ``emu.extra`` by service path and go when the service is deleted. Shapes are
those of google.iam.v1: ``{version, bindings: [{role, members}], etag}``; an empty policy is
``{"etag": "ACAB"}``; a stale etag is 409 ABORTED with IAM's own "concurrent policy changes" text.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.run_model import invalid_argument

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Api, Call, GCPEmulator

EMPTY_ETAG = "ACAB"
"""The etag real IAM gives a resource that never had a policy."""

_EMAIL = r"[^@\s:]+@[^@\s:]+\.[^@\s:]+"
_MEMBER_RES = [
    re.compile(rf"^(user|group|serviceAccount):{_EMAIL}$"),
    re.compile(r"^serviceAccount:[a-z0-9-]+\.svc\.id\.goog\[[^/\]]+/[^\]]+\]$"),
    re.compile(r"^domain:[a-z0-9.-]+\.[a-z]{2,}$"),
    re.compile(r"^(allUsers|allAuthenticatedUsers)$"),
    re.compile(r"^principal(Set)?://iam\.googleapis\.com/\S+$"),
    re.compile(rf"^deleted:(user|group|serviceAccount):{_EMAIL}\?uid=\d+$"),
]
CONCURRENT_CHANGE = (
    "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."
)


def policies(emu: GCPEmulator) -> dict[str, dict[str, Any]]:
    return emu.extra.setdefault("run.iam", {})  # type: ignore[no-any-return]


def drop(emu: GCPEmulator, path: str) -> None:
    """A deleted service's policy goes with it."""
    policies(emu).pop(path, None)


Find = Callable[["Call"], str]
"""Returns the path of the service a call names, or raises its 404."""


def register(emu: GCPEmulator, find: Find, *, prefix: str = "", api: Api = "run") -> None:
    """Add the IAM methods of services (``find`` resolves the service the call names).

    Cloud Run v2 serves them under its own prefix; v1 (``api="run.v1"``) under
    ``/v1/projects/{project}/locations/{location}``, with the same policies: one store, two views.
    """
    methods = (
        ("GET", "getIamPolicy", get_policy, "run.services.getIamPolicy", False),
        ("POST", "setIamPolicy", set_policy, "run.services.setIamPolicy", True),
        ("POST", "testIamPermissions", held_permissions, "", False),
    )
    for http, name, handler, permission, mutating in methods:
        emu.route(
            http,
            f"{prefix}services/{{service:[^/:]+}}:{name}",
            functools.partial(handler, find),
            method_id=f"run.projects.locations.services.{name}",
            permission=permission,
            mutating=mutating,
            api=api,
        )


async def get_policy(find: Find, call: Call) -> Any:
    return dict(policies(call.emu).get(find(call)) or {"etag": EMPTY_ETAG})


async def set_policy(find: Find, call: Call) -> Any:
    path = find(call)
    policy = _body(call).get("policy")
    if not isinstance(policy, dict):
        raise invalid_argument("policy", "Required field is missing.")
    current = policies(call.emu).get(path) or {"etag": EMPTY_ETAG}
    if policy.get("etag") and _etag_bytes(policy["etag"]) != _etag_bytes(current["etag"]):
        raise GCPError(409, "aborted", CONCURRENT_CHANGE, status="ABORTED")
    bindings = policy.get("bindings") or []
    if not isinstance(bindings, list):
        raise invalid_argument("policy.bindings", "expected a JSON array.")
    bindings = _normalise(bindings)
    stored: dict[str, Any] = {"etag": _new_etag()}
    if bindings:
        stored = {"version": 3 if policy.get("version") == 3 else 1, "bindings": bindings, **stored}
    policies(call.emu)[path] = stored
    return dict(stored)


async def held_permissions(find: Find, call: Call) -> Any:
    """The asked permissions the caller holds (all of them unless the emulator restricts them).

    The service need not exist: ``gcloud run deploy`` asks before creating a new service
    (whether it may set its IAM policy), so Cloud Run answers from the project's permissions.
    """
    asked = _body(call).get("permissions") or []
    scopes = ["*", call.scope_project]
    held = [p for p in asked if call.emu.allows(call.principal, str(p), scopes)]
    return {"permissions": held} if held else {}


def _body(call: Call) -> dict[str, Any]:
    return call.body if isinstance(call.body, dict) else {}


def _normalise(bindings: list[Any]) -> list[dict[str, Any]]:
    """Validated bindings as IAM stores them: one per role (and condition), members sorted, no empties."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for binding in bindings:
        if not isinstance(binding, dict):
            raise invalid_argument("policy.bindings", "each binding must be a JSON object.")
        role = str(binding.get("role") or "")
        if not role.startswith(("roles/", "projects/", "organizations/")):
            raise invalid_argument("policy.bindings.role", f"Role '{role}' is not a valid role.")
        members = [str(m) for m in binding.get("members") or []]
        for member in members:
            if not any(r.match(member) for r in _MEMBER_RES):
                raise invalid_argument(
                    "policy.bindings.members",
                    f"Invalid member '{member}': it is of an unknown type or malformed. "
                    "Please set a valid type prefix for the member.",
                )
        condition = binding.get("condition")
        key = (role, repr(sorted(condition.items())) if condition else "")
        entry = merged.setdefault(key, {"role": role, "members": []})
        if condition:
            entry["condition"] = condition
        entry["members"] = sorted(set(entry["members"]) | set(members))
    return [b for _, b in sorted(merged.items()) if b["members"]]


def _etag_bytes(etag: Any) -> str:
    """Etags are bytes: gcloud (apitools) sends them back in URL-safe base64 (``-``/``_``)."""
    return str(etag).replace("-", "+").replace("_", "/")


def _new_etag() -> str:
    # Real IAM etags are 8 bytes starting 0x07 0x05 ("BwX...=") in their standard base64.
    return base64.b64encode(b"\x07\x05" + secrets.token_bytes(6)).decode()
