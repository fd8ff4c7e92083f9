"""Builds the official Google Cloud clients from two settings: where GCP is, and who runnet acts as.

With an endpoint (the emulator, ``--gcp-endpoint`` / ``RUNNET_GCP_ENDPOINT``) every client talks
plain HTTP to it with anonymous credentials; without one they use Application Default Credentials
(Workload Identity on GKE). With ``impersonate`` (a ProjectBinding's service account) they act as
that Google service account through google-auth's impersonated credentials (IAM Credentials
``generateAccessToken``; google-auth caches the token and refreshes it before it expires).
google-cloud-compute polls operations through separately built operation clients that ignore
``client_options``, so ours are built here and injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import google.auth
from google.api_core.client_options import ClientOptions
from google.auth import impersonated_credentials
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1, run_v2
from google.oauth2 import credentials as oauth2

from runnet.gcp.calls import metered
from runnet.gcp.inventory import Inventory
from runnet.gcp.limiter import LimitedAdapter, RateLimiter
from runnet.metrics import Metrics

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
EMULATOR_TOKEN = "runnet-operator"
"""What runnet presents to an emulator as its own identity (the emulator did not issue it: its default principal)."""


@dataclass(frozen=True)
class GCPSettings:
    endpoint: str | None = None
    """Base URL of a GCP stand-in (``http://127.0.0.1:8085``); None means real Google Cloud."""
    impersonate: str | None = None
    """A Google service account email to act as; None: runnet's own identity."""


POOL_SIZE = 64
"""Connections kept per client and host: as many as the engine has threads."""
CALL_TIMEOUT = 120.0
"""Seconds one HTTP call may take (an operation ``wait`` is held by GCP for up to about two minutes)."""


def _own_retries(client: Any, metrics: Metrics, limiter: RateLimiter | None = None) -> Any:
    """The client without its built-in retries: google-cloud-compute retries a 503 on reads for up to 600 s, which
    would hold a thread (and the object's pass) for ten minutes during an outage. runnet retries itself: reads a
    few times in place (``calls.find``), everything else on the object's next pass.

    Each method also counts its HTTP requests (``calls.metered``), labelled as the REST API names it:
    service ``compute`` or ``run``, method ``addresses.insert``, ``regionOperations.wait``, ``services.getService``.
    """
    transport = client._transport
    service = "run" if type(client).__module__.startswith("google.cloud.run") else "compute"
    resource = _camel(type(transport).__name__.removesuffix("RestTransport"))
    methods = transport._wrapped_methods
    for key, wrapped in list(methods.items()):
        wrapped._retry = None
        wrapped._timeout = CALL_TIMEOUT
        methods[key] = metered(metrics, service, f"{resource}.{_camel(type(key).__name__.lstrip('_'))}", wrapped)
    if limiter is not None:
        adapter = LimitedAdapter(limiter, pool_maxsize=POOL_SIZE)
        client._transport._session.mount("https://", adapter)
        client._transport._session.mount("http://", adapter)
    return client


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


class Clients:
    """One instance per process (built at operator start-up, injected into adapters)."""

    def __init__(
        self, settings: GCPSettings | None = None, metrics: Metrics | None = None, *, limiter: RateLimiter | None = None
    ) -> None:
        self.settings = settings or GCPSettings()
        self.metrics = metrics or Metrics()
        """Where the clients count their requests (a throwaway registry when nobody serves it)."""
        self.limiter = limiter
        """Shared by every Clients of the process (quotas are per project, whoever calls); None: no limit."""
        self.known_regions: set[tuple[str, str]] = set()
        """(project, region) pairs GCP confirmed exist: regions do not go away, so each is read once."""
        self.inventory = Inventory()
        """What this identity has seen of GCP, shared by every object it reconciles (observation by list)."""

    @cached_property
    def credentials(self) -> Credentials | None:
        """None: the clients find Application Default Credentials themselves."""
        endpoint, account = self.settings.endpoint, self.settings.impersonate
        if account is None:
            return AnonymousCredentials() if endpoint else None  # type: ignore[no-untyped-call]
        if endpoint:
            source: Credentials = oauth2.Credentials(token=EMULATOR_TOKEN)  # type: ignore[no-untyped-call]
            override = f"{endpoint.rstrip('/')}/v1/projects/-/serviceAccounts/{account}:generateAccessToken"
        else:
            source, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
            override = None
        return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
            source_credentials=source,
            target_principal=account,
            target_scopes=[CLOUD_PLATFORM],
            lifetime=3600,
            iam_endpoint_override=override,
        )

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs["credentials"] = self.credentials
        if self.settings.endpoint:
            kwargs["client_options"] = ClientOptions(api_endpoint=self.settings.endpoint.rstrip("/"))
        return kwargs

    def _limited(self, client: Any) -> Any:
        return _own_retries(client, self.metrics, self.limiter)

    def _compute(self, cls: Any) -> Any:
        client = self._limited(cls(transport="rest", **self._kwargs()))
        services = client._transport._extended_operations_services
        services["region_operations"] = self.region_operations
        services["global_operations"] = self.global_operations
        return client

    @cached_property
    def region_operations(self) -> compute_v1.RegionOperationsClient:
        return self._limited(compute_v1.RegionOperationsClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]

    @cached_property
    def global_operations(self) -> compute_v1.GlobalOperationsClient:
        return self._limited(compute_v1.GlobalOperationsClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]

    @cached_property
    def regions(self) -> compute_v1.RegionsClient:
        return self._limited(compute_v1.RegionsClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]

    @cached_property
    def networks(self) -> compute_v1.NetworksClient:
        return self._compute(compute_v1.NetworksClient)  # type: ignore[no-any-return]

    @cached_property
    def subnetworks(self) -> compute_v1.SubnetworksClient:
        return self._compute(compute_v1.SubnetworksClient)  # type: ignore[no-any-return]

    @cached_property
    def addresses(self) -> compute_v1.AddressesClient:
        return self._compute(compute_v1.AddressesClient)  # type: ignore[no-any-return]

    @cached_property
    def routers(self) -> compute_v1.RoutersClient:
        return self._compute(compute_v1.RoutersClient)  # type: ignore[no-any-return]

    @cached_property
    def network_endpoint_groups(self) -> compute_v1.RegionNetworkEndpointGroupsClient:
        return self._compute(compute_v1.RegionNetworkEndpointGroupsClient)  # type: ignore[no-any-return]

    @cached_property
    def backend_services(self) -> compute_v1.RegionBackendServicesClient:
        return self._compute(compute_v1.RegionBackendServicesClient)  # type: ignore[no-any-return]

    @cached_property
    def url_maps(self) -> compute_v1.RegionUrlMapsClient:
        return self._compute(compute_v1.RegionUrlMapsClient)  # type: ignore[no-any-return]

    @cached_property
    def target_http_proxies(self) -> compute_v1.RegionTargetHttpProxiesClient:
        return self._compute(compute_v1.RegionTargetHttpProxiesClient)  # type: ignore[no-any-return]

    @cached_property
    def forwarding_rules(self) -> compute_v1.ForwardingRulesClient:
        return self._compute(compute_v1.ForwardingRulesClient)  # type: ignore[no-any-return]

    @cached_property
    def service_attachments(self) -> compute_v1.ServiceAttachmentsClient:
        return self._compute(compute_v1.ServiceAttachmentsClient)  # type: ignore[no-any-return]

    @cached_property
    def run_services(self) -> run_v2.ServicesClient:
        return self._limited(run_v2.ServicesClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]
