"""google-api-python-client's discovery clients aimed at the GCP emulator, over real HTTP.

Cloud Run v1 is reached the way gcloud reaches it: on the regional endpoint
``http://{region}-run.googleapis.com/``, through the emulator as an HTTP proxy (httplib2 tunnels
even plain HTTP through a proxy, so the transport here is ``requests``, behind httplib2's
``request()`` interface, which is all the client uses). Resource Manager and Service Usage are
plain endpoint overrides, as in gcloud's settings.
"""

from __future__ import annotations

from typing import Any

import httplib2
import requests
from googleapiclient import discovery

from runnet.emulator.gcp import GCPEmulator


class ProxiedHttp:
    """httplib2.Http's ``request()`` over ``requests`` with an HTTP proxy (absolute-form requests)."""

    def __init__(self, proxy: str) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.proxies = {"http": proxy}

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        redirections: int = 5,
        connection_type: Any = None,
    ) -> tuple[httplib2.Response, bytes]:
        reply = self.session.request(method, uri, data=body, headers=headers, timeout=30)
        response = httplib2.Response({"status": str(reply.status_code), **reply.headers})
        response.reason = reply.reason
        return response, reply.content


def run_v1(gcp: GCPEmulator, region: str | None = "asia-northeast1") -> Any:
    """Cloud Run Admin v1 on the regional endpoint of ``region`` (the global one for None)."""
    host = f"{region}-run.googleapis.com" if region else "run.googleapis.com"
    return _build("run", gcp, f"http://{host}/", ProxiedHttp(gcp.base_url))


def resource_manager(gcp: GCPEmulator) -> Any:
    return _build("cloudresourcemanager", gcp, f"{gcp.base_url}/", httplib2.Http())


def service_usage(gcp: GCPEmulator) -> Any:
    return _build("serviceusage", gcp, f"{gcp.base_url}/", httplib2.Http())


def _build(api: str, gcp: GCPEmulator, endpoint: str, http: Any) -> Any:
    return discovery.build(api, "v1", http=http, client_options={"api_endpoint": endpoint}, static_discovery=True)
