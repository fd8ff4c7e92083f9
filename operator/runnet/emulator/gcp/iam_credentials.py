"""IAM Service Account Credentials v1 ``generateAccessToken``: what impersonation calls.

``POST /v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken`` with ``{scope: [...],
lifetime: "3600s", delegates: [...]}`` answers ``{accessToken, expireTime}`` (expireTime in
whole seconds, ``2026-01-01T01:00:00Z``: google-auth parses exactly that format). The token then
stands for ``serviceAccount:EMAIL`` on every call that carries it (``iam.Tokens``).

The caller needs ``iam.serviceAccounts.getAccessToken`` on the service account
(``roles/iam.serviceAccountTokenCreator``); with ``delegates`` each link of the chain needs it on
the next one (``iam.serviceAccounts.implicitDelegation`` on a delegate, getAccessToken on the
target). Refused: IAM's 403 PERMISSION_DENIED, "Permission 'iam.serviceAccounts.getAccessToken'
denied on resource (or it may not exist)." with an ErrorInfo naming the permission, as Google
answers (the same answer whether the account exists or not). Without IAM enforcement
(``EmulatorConfig.iam_enforced``) any account can be impersonated.

google-auth reaches it with ``impersonated_credentials.Credentials(...,
iam_endpoint_override=f"{emulator}/v1/projects/-/serviceAccounts/{email}:generateAccessToken")``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import iam
from runnet.emulator.gcp.errors import GCPError

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

METHOD_ID = "iamcredentials.projects.serviceAccounts.generateAccessToken"
_DURATION = re.compile(r"^(?P<seconds>\d+)(?:\.(?P<fraction>\d{1,9}))?s$")


def register(emu: GCPEmulator) -> None:
    emu.route(
        "POST",
        "/v1/projects/{project}/serviceAccounts/{account:[^/:]+}:generateAccessToken",
        generate_access_token,
        method_id=METHOD_ID,
        permission="",  # checked here: the permission is on the service account, not a project
        mutating=False,
        api="iamcredentials",
    )


def denied(permission: str) -> GCPError:
    return GCPError(
        403,
        "forbidden",
        f"Permission '{permission}' denied on resource (or it may not exist).",
        status="PERMISSION_DENIED",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "IAM_PERMISSION_DENIED",
                "domain": "iam.googleapis.com",
                "metadata": {"permission": permission},
            }
        ],
    )


def _invalid(message: str) -> GCPError:
    return GCPError(400, "badRequest", message, status="INVALID_ARGUMENT")


async def generate_access_token(call: Call) -> Any:
    if call.params["project"] != "-":
        raise _invalid("The `-` wildcard character is required in the project part of the resource name.")
    target = call.params["account"]
    body = call.body if isinstance(call.body, dict) else {}
    scope = body.get("scope")
    if not isinstance(scope, list) or not scope or not all(isinstance(s, str) and s for s in scope):
        raise _invalid("Scope required.")
    lifetime = _lifetime(body.get("lifetime"), call.emu.config.max_token_lifetime)
    delegates = body.get("delegates") or []
    if not isinstance(delegates, list):
        raise _invalid("delegates must be a list of projects/-/serviceAccounts/EMAIL names.")
    chain: list[str] = []
    for delegate in delegates:
        email = iam.service_account_email(str(delegate))
        if email is None:
            raise _invalid(f"Invalid form of delegate '{delegate}': expected projects/-/serviceAccounts/EMAIL.")
        chain.append(email)
    _authorize(call, chain, target)
    now = call.emu.config.clock()
    expires = int(now) + lifetime
    token = call.emu.tokens.issue(f"serviceAccount:{target}", float(expires), now)
    expire_time = dt.datetime.fromtimestamp(expires, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"accessToken": token, "expireTime": expire_time}


def _authorize(call: Call, delegates: list[str], target: str) -> None:
    """Each link of caller -> delegates... -> target needs its permission on the next account."""
    emu = call.emu
    if not emu.config.iam_enforced:
        return
    links = [(call.principal, email, iam.IMPLICIT_DELEGATION) for email in delegates[:1]]
    links += [(f"serviceAccount:{a}", b, iam.IMPLICIT_DELEGATION) for a, b in itertools.pairwise(delegates)]
    holder = f"serviceAccount:{delegates[-1]}" if delegates else call.principal
    links.append((holder, target, iam.GET_ACCESS_TOKEN))
    for principal, account, permission in links:
        if not emu.allows(principal, permission, emu.service_account_scopes(account)):
            raise denied(permission)


def _lifetime(value: Any, maximum: int) -> int:
    """Seconds from a google.protobuf.Duration string (``"3600s"``); 3600 when absent."""
    if value in (None, ""):
        return min(3600, maximum)
    match = _DURATION.match(str(value))
    if match is None:
        raise _invalid(f"Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), \"{value}\"")
    seconds = int(match.group("seconds"))
    if seconds <= 0 or seconds > maximum:
        raise _invalid(f"The lifetime requested must be between 1s and {maximum}s, got {value}.")
    return seconds
