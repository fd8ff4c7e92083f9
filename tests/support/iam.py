"""google-auth impersonation aimed at the GCP emulator, and official clients that use it.

The emulator serves IAM Credentials ``generateAccessToken`` on its own base URL, so
``impersonated_credentials.Credentials`` reaches it through ``iam_endpoint_override`` (the full
URL, the service account in it). The source credentials need a token to send: any token the
emulator did not issue stands for its default principal (the operator's own).
"""

from __future__ import annotations

from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth import impersonated_credentials
from google.oauth2.credentials import Credentials as TokenCredentials

from runnet.emulator.gcp import GCPEmulator

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def endpoint(gcp: GCPEmulator, email: str) -> str:
    return f"{gcp.base_url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"


def operator_credentials(token: str = "runnet-operator-token") -> TokenCredentials:
    """Credentials with a fixed token the emulator did not issue: its default principal."""
    return TokenCredentials(token=token)  # type: ignore[no-untyped-call]


def impersonated(
    gcp: GCPEmulator, email: str, *, source: Any = None, lifetime: int = 3600, delegates: list[str] | None = None
) -> impersonated_credentials.Credentials:
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source or operator_credentials(),
        target_principal=email,
        target_scopes=[CLOUD_PLATFORM],
        delegates=delegates,
        lifetime=lifetime,
        iam_endpoint_override=endpoint(gcp, email),
    )


def client(cls: Any, gcp: GCPEmulator, credentials: Any) -> Any:
    """An official REST client (``compute_v1.NetworksClient``...) aimed at the emulator as ``credentials``."""
    return cls(transport="rest", credentials=credentials, client_options=ClientOptions(api_endpoint=gcp.base_url))
