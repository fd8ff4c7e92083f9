"""Every GCP request runnet's clients send is counted with its HTTP status: found, missing, refused, unanswered."""

from __future__ import annotations

import socket

import pytest
from google.cloud import compute_v1

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.calls import GCPCallError, compute_write, find
from runnet.gcp.clients import Clients, GCPSettings

PROJECT, REGION = "my-project", "asia-northeast1"


def count(clients: Clients, method: str, code: str, service: str = "compute") -> float:
    labels = {"service": service, "method": method, "code": code}
    return clients.metrics.registry.get_sample_value("runnet_gcp_requests_total", labels) or 0.0


def test_requests_are_counted_by_method_and_status(clients: Clients, gcp: GCPEmulator) -> None:
    assert find("reading router r", lambda: clients.routers.get(project=PROJECT, region=REGION, router="r")) is None
    assert count(clients, "routers.get", "404") == 1
    network = compute_v1.Network(name="vpc", auto_create_subnetworks=False)
    compute_write(
        clients,
        "creating network vpc",
        lambda: clients.networks.insert_unary(project=PROJECT, network_resource=network),
    )
    assert count(clients, "networks.insert", "200") == 1
    list(clients.run_services.list_services(parent=f"projects/{PROJECT}/locations/{REGION}"))
    assert count(clients, "services.listServices", "200", service="run") == 1
    seconds = clients.metrics.registry.get_sample_value(
        "runnet_gcp_request_duration_seconds_count", {"service": "compute", "method": "routers.get"}
    )
    assert seconds == 1


def test_a_refused_request_counts_its_403(clients: Clients, gcp: GCPEmulator) -> None:
    gcp.config.allowed_permissions = {"compute.networks.get"}
    network = compute_v1.Network(name="vpc", auto_create_subnetworks=False)
    with pytest.raises(GCPCallError) as refused:
        compute_write(
            clients,
            "creating network vpc",
            lambda: clients.networks.insert_unary(project=PROJECT, network_resource=network),
        )
    assert refused.value.code == 403
    assert count(clients, "networks.insert", "403") == 1 and count(clients, "networks.insert", "200") == 0


def test_a_request_without_an_answer_counts_as_none() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there once closed
    clients = Clients(GCPSettings(endpoint=f"http://127.0.0.1:{port}"))
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises, the request is counted
        clients.regions.get(project=PROJECT, region=REGION)
    assert count(clients, "regions.get", "none") == 1
