"""Small builders for Compute tests: create networks, subnets, addresses and routers over the wire."""

from __future__ import annotations

from typing import Any

import requests
from google.cloud import compute_v1 as c

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients

P = "net-proj"
R = "asia-northeast1"
R2 = "us-central1"
WWW = "https://www.googleapis.com/compute/v1/"


def network(clients: Clients, name: str = "vpc", **fields: Any) -> c.Network:
    body = c.Network(name=name, auto_create_subnetworks=False, **fields)
    clients.networks.insert(project=P, network_resource=body).result(timeout=10)
    return clients.networks.get(project=P, network=name)


def subnet(clients: Clients, name: str, cidr: str, *, net: str = "vpc", region: str = R, **fields: Any) -> c.Subnetwork:
    body = c.Subnetwork(name=name, ip_cidr_range=cidr, network=f"projects/{P}/global/networks/{net}", **fields)
    clients.subnetworks.insert(project=P, region=region, subnetwork_resource=body).result(timeout=10)
    return clients.subnetworks.get(project=P, region=region, subnetwork=name)


def address(clients: Clients, name: str, *, region: str = R, **fields: Any) -> c.Address:
    body = c.Address(name=name, **fields)
    clients.addresses.insert(project=P, region=region, address_resource=body).result(timeout=10)
    return clients.addresses.get(project=P, region=region, address=name)


def router(clients: Clients, name: str = "rt", *, net: str = "vpc", **fields: Any) -> c.Router:
    body = c.Router(name=name, network=f"projects/{P}/global/networks/{net}", **fields)
    clients.routers.insert(project=P, region=R, router_resource=body).result(timeout=10)
    return clients.routers.get(project=P, region=R, router=name)


def raw(gcp: GCPEmulator, method: str, path: str, body: Any = None, **params: str) -> requests.Response:
    """A plain HTTP call under ``/compute/v1/projects/P/``: for what the client cannot express."""
    url = f"{gcp.base_url}/compute/v1/projects/{P}/{path}"
    return requests.request(method, url, json=body, params=params, timeout=10)


def wait(gcp: GCPEmulator, operation: dict[str, Any]) -> dict[str, Any]:
    """POST .../operations/{op}/wait, as gcloud polls; returns the DONE operation."""
    link = operation["selfLink"].split(f"/projects/{P}/", 1)[1]
    response = raw(gcp, "POST", f"{link}/wait")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def nat(name: str, *ips: str, **fields: Any) -> dict[str, Any]:
    """A Cloud NAT entry as JSON; MANUAL_ONLY with ``ips`` (address paths), AUTO_ONLY without."""
    entry: dict[str, Any] = {
        "name": name,
        "natIpAllocateOption": "MANUAL_ONLY" if ips else "AUTO_ONLY",
        "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
        **fields,
    }
    if ips:
        entry["natIps"] = list(ips)
    return entry


def address_path(name: str, region: str = R) -> str:
    return f"projects/{P}/regions/{region}/addresses/{name}"
