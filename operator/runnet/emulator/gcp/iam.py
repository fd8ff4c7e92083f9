"""Who is calling, and what they may do: principals, the tokens that stand for them, grants.

A call's principal is read from its ``Authorization: Bearer TOKEN`` header: a token the emulator
issued (IAM Credentials ``generateAccessToken``, see ``iam_credentials``) stands for the service
account it was issued for until it expires (then the call is refused with 401, as Google refuses
an expired token); anything else, or no header, is the operator's own principal
(``EmulatorConfig.default_principal``).

Grants come from two places: ``EmulatorConfig.allowed_permissions`` (the default principal holds
these in every project: ``--allow-permissions``) and ``EmulatorConfig.iam_policy`` (principal ->
scope -> permissions or roles: ``--iam-policy``). With neither, every call is allowed. A scope is
a project id, ``*`` (every project), or for permissions on service accounts ``-`` (every
service account) and ``projects/-/serviceAccounts/EMAIL`` (that one); a service account's own
project (``NAME@PROJECT.iam.gserviceaccount.com``) also grants on it, as a project-level role
binding does on GCP.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runnet.emulator.gcp.errors import GCPError

DEFAULT_PRINCIPAL = "serviceAccount:runnet-operator@runnet-system.iam.gserviceaccount.com"
"""Who calls without a token the emulator issued, unless configured otherwise."""

GET_ACCESS_TOKEN = "iam.serviceAccounts.getAccessToken"
IMPLICIT_DELEGATION = "iam.serviceAccounts.implicitDelegation"

PREDEFINED_ROLES: dict[str, frozenset[str]] = {
    # Exact, as IAM documents them.
    "roles/iam.serviceAccountTokenCreator": frozenset(
        {
            GET_ACCESS_TOKEN,
            "iam.serviceAccounts.getOpenIdToken",
            IMPLICIT_DELEGATION,
            "iam.serviceAccounts.signBlob",
            "iam.serviceAccounts.signJwt",
        }
    ),
    "roles/iam.serviceAccountOpenIdTokenCreator": frozenset({"iam.serviceAccounts.getOpenIdToken"}),
    "roles/run.invoker": frozenset({"run.routes.invoke"}),
    # Approximations by pattern (``*`` matches within and across dots): broad roles whose real
    # permission lists run to thousands; good enough to tell "may" from "may not" in tests.
    "roles/owner": frozenset({"*"}),
    "roles/editor": frozenset({"*"}),
    "roles/viewer": frozenset({"*.get", "*.list", "*.getIamPolicy"}),
    "roles/run.admin": frozenset({"run.*"}),
    "roles/run.viewer": frozenset({"run.*.get", "run.*.list", "run.*.getIamPolicy"}),
    "roles/compute.viewer": frozenset({"compute.*.get", "compute.*.list"}),
}

_SA_EMAIL = re.compile(r"^[^@\s]+@(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$")
_SA_RESOURCE = re.compile(r"^projects/-/serviceAccounts/(?P<email>[^/]+)$")


def service_account_project(email: str) -> str | None:
    """The project a user-managed service account lives in (``NAME@PROJECT.iam.gserviceaccount.com``)."""
    match = _SA_EMAIL.match(email)
    return match.group("project") if match else None


@dataclass
class IamPolicy:
    """Grants by principal and scope, each a set of permissions (globs allowed) after role expansion."""

    grants: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    """Custom roles by name (``projects/P/roles/runnetOperator``): their included permissions."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: Path | None = None) -> IamPolicy:
        """``{roles: {NAME: FILE | [permissions]}, PRINCIPAL: {SCOPE: [permission | role, ...]}}``."""
        policy = cls()
        for name, spec in (data.get("roles") or {}).items():
            policy.roles[str(name)] = _custom_role(str(name), spec, base)
        for principal, scopes in data.items():
            if principal == "roles":
                continue
            if ":" not in str(principal) and principal != "allUsers":
                raise ValueError(f"principal {principal!r} must be TYPE:ID (serviceAccount:..., user:...) or allUsers")
            if not isinstance(scopes, Mapping):
                raise ValueError(f"{principal}: expected a mapping of projects to permissions or roles")
            for scope, items in scopes.items():
                if isinstance(items, str) or not isinstance(items, Iterable):
                    raise ValueError(f"{principal} / {scope}: expected a list of permissions or roles")
                policy.grant(str(principal), str(scope), [str(i) for i in items])
        return policy

    @classmethod
    def load(cls, path: Path) -> IamPolicy:
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a mapping of principals to projects to permissions")
        return cls.from_mapping(data, base=path.parent)

    def grant(self, principal: str, scope: str, items: Iterable[str]) -> None:
        """Give ``principal`` the permissions (or roles, expanded) ``items`` in ``scope``."""
        held = self.grants.setdefault(principal, {}).setdefault(scope, set())
        for item in items:
            held |= self.expand(item)

    def expand(self, item: str) -> frozenset[str]:
        if item in self.roles:
            return self.roles[item]
        if item in PREDEFINED_ROLES:
            return PREDEFINED_ROLES[item]
        if item.startswith(("roles/", "projects/", "organizations/")):
            raise ValueError(f"unknown role {item!r}: declare it under 'roles:' (a file or a list)")
        return frozenset({item})

    def holds(self, principal: str, permission: str, scopes: Iterable[str]) -> bool:
        for who in (principal, "allUsers"):
            by_scope = self.grants.get(who, {})
            for scope in scopes:
                if any(fnmatch.fnmatchcase(permission, p) for p in by_scope.get(scope, ())):
                    return True
        return False


def _custom_role(name: str, spec: Any, base: Path | None) -> frozenset[str]:
    """A custom role: a file in gcloud's role format (``includedPermissions``) or a list."""
    if isinstance(spec, str):
        import yaml

        path = Path(spec)
        if base is not None and not path.is_absolute():
            path = base / path
        data = yaml.safe_load(path.read_text()) or {}
        permissions = data.get("includedPermissions") if isinstance(data, Mapping) else None
        if not isinstance(permissions, list):
            raise ValueError(f"role {name}: {path} has no includedPermissions list")
        return frozenset(str(p) for p in permissions)
    if isinstance(spec, list):
        return frozenset(str(p) for p in spec)
    raise ValueError(f"role {name}: expected a file path or a list of permissions")


@dataclass
class Token:
    principal: str
    expires_at: float


UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class InvalidCredentials(GCPError):
    """Google's 401 for an expired (or revoked) access token."""

    def __init__(self) -> None:
        super().__init__(401, "authError", UNAUTHENTICATED, status="UNAUTHENTICATED")

    def compute_body(self) -> dict[str, Any]:
        item = {
            "message": "Invalid Credentials",
            "domain": "global",
            "reason": "authError",
            "location": "Authorization",
            "locationType": "header",
        }
        return {"error": {"code": 401, "message": self.message, "errors": [item], "status": self.status}}


class Tokens:
    """Access tokens the emulator issued, and whom each stands for."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(self, principal: str, expires_at: float, now: float) -> str:
        token = "ya29.emulator." + secrets.token_urlsafe(32)
        with self._lock:
            if len(self._tokens) >= 4096:  # forget long-expired tokens (an hour past: no one sends them)
                self._tokens = {t: v for t, v in self._tokens.items() if v.expires_at > now - 3600}
            self._tokens[token] = Token(principal, expires_at)
        return token

    def principal(self, headers: Mapping[str, str], default: str, now: float) -> str:
        """Whom a request's bearer token stands for; 401 for an issued token that has expired."""
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            return default
        with self._lock:
            found = self._tokens.get(token.strip())
        if found is None:
            return default
        if now >= found.expires_at:
            raise InvalidCredentials()
        return found.principal


def permission_scopes(project: str | None) -> list[str]:
    return ["*", project] if project else ["*"]


def service_account_scopes(email: str, project_of_number: str | None = None) -> list[str]:
    """Where a grant on service account ``email`` can come from (see the module docstring)."""
    scopes = ["*", "-", f"projects/-/serviceAccounts/{email}"]
    project = service_account_project(email) or project_of_number
    if project:
        scopes.append(project)
    return scopes


def service_account_email(resource: str) -> str | None:
    """``projects/-/serviceAccounts/EMAIL`` -> EMAIL."""
    match = _SA_RESOURCE.match(resource)
    return match.group("email") if match else None
