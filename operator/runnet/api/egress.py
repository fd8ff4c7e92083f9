"""EgressGateway: a fixed, allowlistable egress IP for Cloud Run services."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from runnet.api.common import (
    DELETION_POLICY_HELP,
    DURATION,
    Cidr,
    CommonStatus,
    DeletionPolicy,
    Duration,
    GCPName,
    Model,
    ProjectId,
    Region,
    immutable,
    names_immutable,
)

KIND = "EgressGateway"
DESCRIPTION = (
    "A fixed, allowlistable egress IP for Cloud Run: a VPC network, a subnet for Direct VPC egress, a Cloud Router "
    "with Cloud NAT on reserved static IPs, and the listed Cloud Run services sending their traffic through it. "
    "status.natIPs lists the IPs to give to partners."
)


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


DRAIN_TIMEOUT = "15m"
MAX_DRAIN = "24h"
DURATION_RULE = DURATION.pattern


class AddressState(StrEnum):
    ACTIVE = "Active"
    DRAINING = "Draining"
    RETAINED = "Retained"


class AddressDeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class NetworkRef(Model):
    name: GCPName = Field(
        description="VPC network (custom mode); created when absent, used as it is when it exists. Immutable.",
        json_schema_extra=immutable("spec.network.name", KIND),
    )


class SubnetSpec(Model):
    """A subnet of the network; runnet creates it with ipCidrRange, or uses an existing one of that name."""

    name: GCPName = Field(description="Subnet name; created when absent, used as it is when it exists. Immutable.")
    ip_cidr_range: Cidr | None = Field(
        default=None,
        description="Primary IPv4 range (/8 to /29), required when runnet creates the subnet. A larger range with "
        "the same base address grows the subnet in place (GCP cannot shrink one). Direct VPC egress takes about two "
        "IPs per instance: the SubnetCapacity condition warns when the range is too small.",
    )
    private_ip_google_access: bool = Field(
        default=True, description="Let the subnet reach Google APIs without external IPs (default true)."
    )


class RouterRef(Model):
    name: GCPName = Field(description="Cloud Router in the network and region; created when absent. Immutable.")


class NatLogging(Model):
    """Cloud NAT logging to Cloud Logging."""

    enabled: bool = Field(default=False, description="Log NAT translations and/or errors (default false).")
    filter: NatLogFilter = Field(
        default=NatLogFilter.ALL, description="What to log: ALL (default), ERRORS_ONLY or TRANSLATIONS_ONLY."
    )


class NatSpec(Model):
    """The Cloud NAT in the router, with the reserved static IPs it translates to."""

    name: GCPName = Field(description="Cloud NAT name inside the router. Immutable.")
    addresses: list[GCPName] = Field(
        min_length=1,
        max_length=300,
        description="Reserved static external IPs (regional address names), one per entry; reserved when absent, "
        "used when they exist. An address runnet reserved that is taken out of the list first drains (no new "
        "connections, open ones continue; see drainTimeout), then stays reserved (see status.addresses).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(a, self.filter(b, b == a).size() == 1)",
                    "message": "spec.nat.addresses must not repeat an address",
                }
            ]
        },
    )
    drain_timeout: Duration = Field(
        default=DRAIN_TIMEOUT,
        description="How long an address runnet reserved, once taken out of addresses, stays in the NAT's drain pool "
        "(drainNatIps: no new connections, open ones continue) before it leaves the NAT; it leaves sooner when GCP "
        "reports it unused. A duration such as 15m (the default), 25s or 1h30m, at most 24h; 0s removes it at once.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!self.matches({DURATION_RULE!r}) || duration(self) <= duration('{MAX_DRAIN}')",
                    "message": f"spec.nat.drainTimeout must be at most {MAX_DRAIN}: choose a shorter drain",
                }
            ]
        },
    )
    address_deletion_policy: AddressDeletionPolicy = Field(
        default=AddressDeletionPolicy.RETAIN,
        description="Retain (default) keeps the IPs runnet reserved when the gateway is deleted, so partners' "
        "allowlists stay valid; Delete releases them with the gateway.",
    )
    min_ports_per_vm: int = Field(
        default=64, ge=2, le=65536, description="Minimum NAT ports per instance (default 64)."
    )
    max_ports_per_vm: int | None = Field(
        default=None, ge=64, le=65536, description="Maximum NAT ports per instance; needs dynamic port allocation."
    )
    enable_dynamic_port_allocation: bool = Field(
        default=False, description="Let instances take more ports than minPortsPerVm when they need them."
    )
    enable_endpoint_independent_mapping: bool = Field(
        default=False,
        description="Map one internal IP:port to the same NAT IP:port for every destination (not with dynamic "
        "port allocation).",
    )
    coverage: NatCoverage | None = Field(
        default=None,
        description="Which subnets the NAT translates. AllSubnetworks: every range of every subnet of the network in "
        "the region (GCP then allows no other NAT there). GatewaySubnet: only spec.subnet. Default: AllSubnetworks "
        "when runnet created the network, GatewaySubnet on a network someone else owns, so that runnet never "
        "translates other teams' subnets unless asked.",
    )
    logging: NatLogging = Field(default_factory=NatLogging, description="Cloud NAT logging.")
    adopt: bool = Field(
        default=False, description="Take over an existing NAT of this name that runnet did not create (default false)."
    )


class ServiceAttachment(Model):
    """A Cloud Run service sent through the gateway with Direct VPC egress."""

    name: GCPName = Field(
        description="Cloud Run service or function in the gateway's project and region. Until it exists the gateway "
        "reports WaitingForService for it and builds everything else."
    )
    egress: Egress = Field(
        default=Egress.ALL_TRAFFIC,
        description="ALL_TRAFFIC (default) routes all egress through the NAT; PRIVATE_RANGES_ONLY gives no fixed "
        "internet IP.",
    )


class EgressGatewaySpec(Model):
    model_config = ConfigDict(
        json_schema_extra=names_immutable(
            KIND, required=["subnet.name", "router.name", "nat.name"], why="renaming would leave the old one behind"
        )
    )

    project: ProjectId = Field(
        description="GCP project id. Immutable.", json_schema_extra=immutable("spec.project", KIND)
    )
    region: Region = Field(
        description="GCP region, e.g. asia-northeast1. Immutable.",
        json_schema_extra=immutable("spec.region", KIND),
    )
    network: NetworkRef = Field(description="The VPC network the gateway lives in.")
    subnet: SubnetSpec = Field(description="The subnet the Cloud Run services egress through (Direct VPC egress).")
    router: RouterRef = Field(description="The Cloud Router that holds the NAT.")
    nat: NatSpec = Field(description="The Cloud NAT and its reserved static IPs.")
    services: list[ServiceAttachment] = Field(
        default_factory=list,
        max_length=100,
        description="Cloud Run services to send through the gateway. A service taken out of the list gets back the "
        "VPC access it had before.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(s, self.filter(t, t.name == s.name).size() == 1)",
                    "message": "spec.services must not list a service twice",
                }
            ]
        },
    )
    deletion_policy: DeletionPolicy = Field(default=DeletionPolicy.DELETE, description=DELETION_POLICY_HELP)


class ServiceStatus(Model):
    name: str = Field(description="Cloud Run service name.")
    egress: str = Field(default="", description="ALL_TRAFFIC or PRIVATE_RANGES_ONLY.")
    ready: bool = Field(default=False, description="Wired to the gateway and serving a ready revision.")
    message: str = Field(default="", description="What the service is waiting for, or what to do about it.")


class RetainedAddress(Model):
    name: str = Field(description="Address name.")
    ip: str = Field(default="", description="The reserved IP.")
    used_by: str = Field(default="", description="A resource outside this gateway now using the address, if any.")


class AddressStatus(Model):
    name: str = Field(description="Address name.")
    ip: str = Field(default="", description="The reserved IP ('' while it is not reserved).")
    state: AddressState = Field(
        description="Active: in spec.nat.addresses (new connections leave from it). Draining: taken out of the list, "
        "in the NAT's drain pool (open connections continue, no new ones). Retained: out of the NAT, still reserved."
    )
    since: str = Field(
        default="",
        description="When the address entered this state (RFC 3339), as recorded on the address in GCP; '' when "
        "runnet did not see it happen.",
    )
    drain_until: str = Field(
        default="", description="While Draining: when drainTimeout ends it, unless GCP reports it unused sooner."
    )


class EgressSummary(Model):
    nat_i_ps: str = Field(default="", alias="natIPs", description="NAT IPs, comma-separated (printer column).")
    draining: str = Field(default="", description="Draining IPs, comma-separated (printer column).")
    services: str = Field(default="", description="attached/listed (printer column).")


class EgressGatewayStatus(CommonStatus):
    nat_i_ps: list[str] = Field(
        default_factory=list,
        alias="natIPs",
        description="The IPs the NAT translates to, as GCP reports them (router status): the IPs to allowlist.",
    )
    addresses: list[AddressStatus] = Field(
        default_factory=list,
        description="Every address runnet knows for the gateway (listed, or reserved by runnet for it) with its "
        "state: Active, Draining or Retained.",
    )
    services: list[ServiceStatus] = Field(default_factory=list, description="Each listed Cloud Run service.")
    retained_addresses: list[RetainedAddress] = Field(
        default_factory=list,
        description=(
            "Reserved IPs runnet created for this gateway that spec.nat.addresses no longer lists and the NAT no "
            "longer uses: kept (and billed) so partners' allowlists stay valid. Found from GCP (the addresses' owner "
            "marker), so none is ever forgotten; listing one again reuses it, and the gateway's deletion releases "
            "them under addressDeletionPolicy Delete."
        ),
    )
    coverage: str = Field(default="", description="The NAT coverage in effect (AllSubnetworks or GatewaySubnet).")
    summary: EgressSummary = Field(default_factory=EgressSummary, description="Strings for the printer columns.")
