"""Invalid specs refused by the generated CRD schemas (patterns, enums, CEL), through the API server."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
import yaml

from runnet.emulator.stack import Stack
from tests.operator.conftest import EXAMPLES

Mutate = Callable[[dict[str, Any]], None]


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def put(path: str, value: Any) -> Mutate:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[leaf] = value

    return mutate


NETWORK_URL = "projects/consumer-project/global/networks/consumer-vpc"
CASES: list[tuple[str, str, Mutate, str]] = [
    # EgressGateway
    ("egress-fixed-ip.yaml", "bad CIDR", put("subnet.ipCidrRange", "10.10.10.0/33"), "spec.subnet.ipCidrRange"),
    ("egress-fixed-ip.yaml", "CIDR that is not an IP", put("subnet.ipCidrRange", "ten/24"), "spec.subnet.ipCidrRange"),
    ("egress-fixed-ip.yaml", "network name GCP rejects", put("network.name", "VPC_Cloud"), "spec.network.name"),
    ("egress-fixed-ip.yaml", "name too long", put("router.name", "r" * 64), "spec.router.name"),
    ("egress-fixed-ip.yaml", "bad project id", put("project", "My Project"), "spec.project"),
    ("egress-fixed-ip.yaml", "bad region", put("region", "tokyo"), "spec.region"),
    ("egress-fixed-ip.yaml", "duplicate addresses", put("nat.addresses", ["a-ip", "a-ip"]), "must not repeat"),
    ("egress-fixed-ip.yaml", "no address", put("nat.addresses", []), "spec.nat.addresses"),
    (
        "egress-fixed-ip.yaml",
        "duplicate services",
        put("services", [{"name": "svc"}, {"name": "svc"}]),
        "must not list a service twice",
    ),
    ("egress-fixed-ip.yaml", "unknown egress", put("services.0.egress", "SOME_TRAFFIC"), "spec.services[0].egress"),
    ("egress-fixed-ip.yaml", "unknown deletion policy", put("deletionPolicy", "Keep"), "spec.deletionPolicy"),
    ("egress-fixed-ip.yaml", "ports out of range", put("nat.minPortsPerVm", 1), "spec.nat.minPortsPerVm"),
    ("egress-fixed-ip.yaml", "unknown log filter", put("nat.logging", {"enabled": True, "filter": "SOME"}), "filter"),
    ("egress-fixed-ip.yaml", "unknown NAT coverage", put("nat.coverage", "Everything"), "spec.nat.coverage"),
    # PSCExport
    ("psc-export.yaml", "port out of range", put("loadBalancer.port", 70000), "spec.loadBalancer.port"),
    ("psc-export.yaml", "port zero", put("loadBalancer.port", 0), "spec.loadBalancer.port"),
    ("psc-export.yaml", "malformed consumer project", put("attachment.consumers", [{"project": "Bad_P"}]), "project"),
    ("psc-export.yaml", "malformed network URL", put("attachment.consumers", [{"network": "vpc"}]), "network"),
    (
        "psc-export.yaml",
        "mixed project and network lists",
        put("attachment.consumers", [{"project": "consumer-project"}, {"network": NETWORK_URL}]),
        "cannot mix projects and networks",
    ),
    (
        "psc-export.yaml",
        "consumer with both project and network",
        put("attachment.consumers", [{"project": "consumer-project", "network": NETWORK_URL}]),
        "exactly one of project or network",
    ),
    (
        "psc-export.yaml",
        "negative connection limit",
        put("attachment.consumers", [{"project": "consumer-project", "connectionLimit": -1}]),
        "connectionLimit",
    ),
    ("psc-export.yaml", "public invoker", put("invokers", ["allUsers"]), "must not include allUsers"),
    ("psc-export.yaml", "malformed invoker", put("invokers", ["alice@example.com"]), "spec.invokers"),
    ("psc-export.yaml", "unknown ingress", put("ingress", "ALL"), "spec.ingress"),
    ("psc-export.yaml", "unknown preference", put("attachment.connectionPreference", "MAYBE"), "connectionPreference"),
    ("psc-export.yaml", "bad Cloud Run name", put("service", "Hello_Service"), "spec.service"),
    # PSCEndpoint
    (
        "psc-endpoint.yaml",
        "malformed attachment URI",
        put("target", {"serviceAttachment": "projects/p/serviceAttachments/x"}),
        "serviceAttachment",
    ),
    (
        "psc-endpoint.yaml",
        "both exportRef and URI",
        put(
            "target",
            {
                "exportRef": {"name": "hello"},
                "serviceAttachment": "projects/producer-project/regions/asia-northeast1/serviceAttachments/a",
            },
        ),
        "exactly one of exportRef or serviceAttachment",
    ),
    ("psc-endpoint.yaml", "neither target", put("target", {}), "exactly one of exportRef or serviceAttachment"),
    ("psc-endpoint.yaml", "bad IP", put("address.ip", "10.1.0.300"), "spec.address.ip"),
]


def create(stack: Stack, body: dict[str, Any]) -> str:
    """The API server's refusal message ('' when it accepted the object)."""
    try:
        stack.apply(body)
    except kubernetes.client.ApiException as exc:
        assert exc.status == 422, exc.body
        return str(exc.body)
    return ""


@pytest.mark.parametrize(("example", "reason", "mutate", "message"), CASES, ids=[c[1] for c in CASES])
def test_invalid_spec_is_refused_by_the_schema(stack: Stack, example, reason, mutate, message) -> None:
    body = copy.deepcopy(load(example))
    mutate(body["spec"])
    refused = create(stack, body)
    assert refused, f"{reason}: the API server accepted it"
    assert message in refused
    assert stack.gcp.log.writes() == []


@pytest.mark.parametrize("example", ["egress-fixed-ip.yaml", "psc-export.yaml", "psc-endpoint.yaml"])
@pytest.mark.parametrize("field", ["project", "region"])
def test_immutable_fields_cannot_change(stack: Stack, example, field) -> None:
    body = load(example)
    assert create(stack, body) == ""
    body["spec"][field] = "other-project" if field == "project" else "us-central1"
    refused = create(stack, body)
    assert f"spec.{field} is immutable" in refused


@pytest.mark.parametrize("example", ["egress-fixed-ip.yaml", "psc-export.yaml", "psc-endpoint.yaml"])
def test_network_name_cannot_change(stack: Stack, example) -> None:
    body = load(example)
    assert create(stack, body) == ""
    body["spec"]["network"]["name"] = "another-vpc"
    assert "spec.network.name is immutable" in create(stack, body)


def test_nat_subnets_can_be_added_and_proxy_protocol_changed(stack: Stack) -> None:
    """NAT subnets are added to an attachment in place; GCP lets enableProxyProtocol change too."""
    body = load("psc-export.yaml")
    assert create(stack, body) == ""
    body["spec"]["subnets"]["extraPscNat"] = [{"name": "producer-psc-subnet-2", "ipCidrRange": "10.0.4.0/24"}]
    body["spec"]["attachment"]["enableProxyProtocol"] = True
    assert create(stack, body) == ""
    body["spec"]["subnets"]["extraPscNat"] *= 2
    assert "spec.subnets.extraPscNat must not list a subnet twice" in create(stack, body)


@pytest.mark.parametrize("example", ["egress-fixed-ip.yaml", "psc-export.yaml", "psc-endpoint.yaml"])
def test_the_examples_are_valid(stack: Stack, example) -> None:
    assert create(stack, load(example)) == ""
