"""The gcloud settings that aim every recipe at the emulator: one list for the README, the demo and tests.

gcloud's ``run`` commands derive a regional endpoint by prefixing the region to the host of
``api_endpoint_overrides/run`` (``https://asia-northeast1-run.googleapis.com``); no override
pointing at ``127.0.0.1`` survives that (``asia-northeast1-127.0.0.1`` resolves nowhere). So
gcloud uses the emulator as its HTTP proxy: the run override is plain ``http://run.googleapis.
com/``, requests for ``http://asia-northeast1-run.googleapis.com/...`` reach the emulator with the
region in their host, and nothing reaches Google (HTTPS tunnels are refused).
"""

from __future__ import annotations

from urllib.parse import urlsplit

RUN_ENDPOINT = "http://run.googleapis.com/"


def settings(base_url: str) -> list[tuple[str, str]]:
    """``gcloud config set`` property/value pairs for the emulator at ``base_url`` (``http://HOST:PORT``)."""
    parts = urlsplit(base_url)
    return [
        ("auth/disable_credentials", "true"),
        ("proxy/type", "http"),
        ("proxy/address", parts.hostname or "127.0.0.1"),
        ("proxy/port", str(parts.port or 80)),
        ("api_endpoint_overrides/compute", f"{base_url}/compute/v1/"),
        ("api_endpoint_overrides/run", RUN_ENDPOINT),
        ("api_endpoint_overrides/cloudresourcemanager", f"{base_url}/"),
        ("api_endpoint_overrides/serviceusage", f"{base_url}/"),
    ]


def environment(base_url: str) -> dict[str, str]:
    """The same settings as ``CLOUDSDK_*`` environment variables (gcloud reads ``CLOUDSDK_SECTION_NAME``)."""
    return {"CLOUDSDK_" + key.replace("/", "_").upper(): value for key, value in settings(base_url)}


def commands(base_url: str) -> list[str]:
    return [f"gcloud config set {key} {value}" for key, value in settings(base_url)]
