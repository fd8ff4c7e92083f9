"""EgressGateway: a fixed, allowlistable egress IP for Cloud Run services."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from runnet.api.common import (
    CIDR_PATTERN,
    REGION_PATTERN,
    CommonStatus,
    DeletionPolicy,
    GCPName,
    Model,
    NamedRef,
    ProjectId,
    immutable,
)

KIND = "EgressGateway"


class Egress(StrEnum):
    ALL_TRAFFIC = "ALL_TRAFFIC"
    PRIVATE_RANGES_ONLY = "PRIVATE_RANGES_ONLY"


class NatLogFilter(StrEnum):
    ALL = "ALL"
    ERRORS_ONLY = "ERRORS_ONLY"
    TRANSLATIONS_ONLY = "TRANSLATIONS_ONLY"


class NatCoverage(StrEnum):
    ALL_SUBNETWORKS = "AllSubnetworks"
    GATEWAY_SUBNET = "GatewaySubnet"


class AddressDeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class NetworkRef(NamedRef):
    name: GCPName = Field(
        description="VPC network (custom mode); created when absent. Immutable.",
        json_schema_extra=immutable("spec.network.name", KIND),
    )


class SubnetSpec(NamedRef):
    ip_cidr_range: Annotated[str, Field(pattern=CIDR_PATTERN)] | None = Field(
        default=None,
        description="Primary range, required when runnet creates the subnet; Direct VPC egress wants a /26 or larger.",
    )
    private_ip_google_access: bool = Field(default=True, description="Reach Google APIs without external IPs.")


class NatLogging(Model):
    enabled: bool = False
    filter: NatLogFilter = NatLogFilter.ALL


class NatSpec(NamedRef):
    addresses: list[GCPName] = Field(
        min_length=1,
        max_length=300,
        description="Reserved static external IPs (regional address names), one per entry; reserved when absent.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(a, self.filter(b, b == a).size() == 1)",
                    "message": "spec.nat.addresses must not repeat an address",
                }
            ]
        },
    )
    address_deletion_policy: AddressDeletionPolicy = Field(
        default=AddressDeletionPolicy.RETAIN,
        description="Retain keeps owned IPs reserved when the gateway is deleted, so partners' allowlists stay valid.",
    )
    min_ports_per_vm: int = Field(default=64, ge=2, le=65536, description="Minimum NAT ports per instance.")
    max_ports_per_vm: int | None = Field(default=None, ge=64, le=65536, description="With dynamic port allocation.")
    enable_dynamic_port_allocation: bool = False
    enable_endpoint_independent_mapping: bool = False
    coverage: NatCoverage = Field(
        default=NatCoverage.ALL_SUBNETWORKS,
        description="AllSubnetworks NATs every range of every subnet in the region (GCP then allows no other NAT in "
        "the router); GatewaySubnet NATs only spec.subnet, so the router can hold other NATs.",
    )
    logging: NatLogging = Field(default_factory=NatLogging)
    adopt: bool = Field(default=False, description="Take over an existing NAT of this name that runnet did not create.")


class ServiceAttachment(Model):
    name: GCPName = Field(description="Cloud Run service or function in the gateway's project and region.")
    egress: Egress = Field(
        default=Egress.ALL_TRAFFIC,
        description="ALL_TRAFFIC routes all egress through the NAT; PRIVATE_RANGES_ONLY gives no fixed internet IP.",
    )


class EgressGatewaySpec(Model):
    project: ProjectId = Field(
        description="GCP project id. Immutable.", json_schema_extra=immutable("spec.project", KIND)
    )
    region: Annotated[str, Field(pattern=REGION_PATTERN)] = Field(
        description="GCP region, e.g. asia-northeast1. Immutable.",
        json_schema_extra=immutable("spec.region", KIND),
    )
    network: NetworkRef
    subnet: SubnetSpec
    router: NamedRef
    nat: NatSpec
    services: list[ServiceAttachment] = Field(
        default_factory=list,
        max_length=100,
        description="Cloud Run services to send through the gateway.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(s, self.filter(t, t.name == s.name).size() == 1)",
                    "message": "spec.services must not list a service twice",
                }
            ]
        },
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.DELETE, description="Orphan leaves every GCP resource in place on deletion."
    )


class ServiceStatus(Model):
    name: str
    egress: str = ""
    ready: bool = False
    message: str = ""


class RetainedAddress(Model):
    name: str
    ip: str = ""


class EgressSummary(Model):
    nat_i_ps: str = Field(default="", alias="natIPs", description="NAT IPs, comma-separated (printer column).")
    services: str = Field(default="", description="attached/listed (printer column).")


class EgressGatewayStatus(CommonStatus):
    nat_i_ps: list[str] = Field(default_factory=list, alias="natIPs", description="The IPs to allowlist.")
    services: list[ServiceStatus] = Field(default_factory=list)
    retained_addresses: list[RetainedAddress] = Field(
        default_factory=list,
        description=(
            "Reserved IPs runnet created that spec.nat.addresses no longer lists: kept (and billed) so partners' "
            "allowlists stay valid; listing one again reuses it, and the gateway's deletion releases them under "
            "addressDeletionPolicy Delete."
        ),
    )
    summary: EgressSummary = Field(default_factory=EgressSummary)
