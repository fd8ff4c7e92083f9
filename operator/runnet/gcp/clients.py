"""Builds the official Google Cloud clients from one setting: where GCP is.

With an endpoint (the emulator, ``--gcp-endpoint`` / ``RUNNET_GCP_ENDPOINT``) every client talks
plain HTTP to it with anonymous credentials; without one they use Application Default Credentials
(Workload Identity on GKE). google-cloud-compute polls operations through separately built
operation clients that ignore ``client_options``, so ours are built here and injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1, run_v2


@dataclass(frozen=True)
class GCPSettings:
    endpoint: str | None = None
    """Base URL of a GCP stand-in (``http://127.0.0.1:8085``); None means real Google Cloud."""


CALL_TIMEOUT = 120.0
"""Seconds one HTTP call may take (an operation ``wait`` is held by GCP for up to about two minutes)."""


def _own_retries(client: Any) -> Any:
    """The client without its built-in retries: google-cloud-compute retries a 503 on reads for up to 600 s, which
    would hold a thread (and the object's pass) for ten minutes during an outage. runnet retries itself: reads a
    few times in place (``calls.find``), everything else on the object's next pass."""
    for wrapped in client._transport._wrapped_methods.values():
        wrapped._retry = None
        wrapped._timeout = CALL_TIMEOUT
    return client


class Clients:
    """One instance per process (built at operator start-up, injected into adapters)."""

    def __init__(self, settings: GCPSettings | None = None) -> None:
        self.settings = settings or GCPSettings()
        self.known_regions: set[tuple[str, str]] = set()
        """(project, region) pairs GCP confirmed exist: regions do not go away, so each is read once."""

    def _kwargs(self) -> dict[str, Any]:
        if not self.settings.endpoint:
            return {}
        credentials: Credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return {
            "credentials": credentials,
            "client_options": ClientOptions(api_endpoint=self.settings.endpoint.rstrip("/")),
        }

    def _compute(self, cls: Any) -> Any:
        client = _own_retries(cls(transport="rest", **self._kwargs()))
        services = client._transport._extended_operations_services
        services["region_operations"] = self.region_operations
        services["global_operations"] = self.global_operations
        return client

    @cached_property
    def region_operations(self) -> compute_v1.RegionOperationsClient:
        return _own_retries(compute_v1.RegionOperationsClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]

    @cached_property
    def global_operations(self) -> compute_v1.GlobalOperationsClient:
        return _own_retries(compute_v1.GlobalOperationsClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]

    @cached_property
    def regions(self) -> compute_v1.RegionsClient:
        return _own_retries(compute_v1.RegionsClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]

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
        return _own_retries(run_v2.ServicesClient(transport="rest", **self._kwargs()))  # type: ignore[no-any-return]
