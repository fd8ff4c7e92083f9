"""PSCExport and PSCEndpoint: a Cloud Run service published privately over Private Service Connect."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field
from pydantic.config import JsonDict

from runnet.api.common import (
    IPV4_PATTERN,
    REGION_PATTERN,
    CommonStatus,
    DeletionPolicy,
    GCPName,
    Model,
    NamedRef,
    ProjectId,
    immutable,
)
from runnet.api.egress import SubnetSpec

EXPORT_KIND = "PSCExport"
ENDPOINT_KIND = "PSCEndpoint"

NETWORK_URL_PATTERN = (
    r"^(https://(www|compute)\.googleapis\.com/compute/v1/)?"
    r"projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/global/networks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
ATTACHMENT_URI_PATTERN = (
    r"^(https://(www|compute)\.googleapis\.com/compute/v1/)?"
    r"projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/regions/[a-z]+-[a-z]+[0-9]+/serviceAttachments/"
    r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
# A consumer project by id, or by number as GCP also accepts in accept lists.
CONSUMER_PROJECT_PATTERN = r"^([a-z][-a-z0-9]{4,28}[a-z0-9]|[0-9]{6,20})$"
# allUsers / allAuthenticatedUsers pass the pattern only to be refused by the CEL rule, with its message.
MEMBER_PATTERN = r"^(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|principal|principalSet):.+)$"
CLOUD_RUN_NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$"


class ConnectionPreference(StrEnum):
    ACCEPT_MANUAL = "ACCEPT_MANUAL"
    ACCEPT_AUTOMATIC = "ACCEPT_AUTOMATIC"


class Ingress(StrEnum):
    INTERNAL_ONLY = "INTERNAL_ONLY"
    INTERNAL_LOAD_BALANCER = "INTERNAL_LOAD_BALANCER"


class ExportNetworkRef(NamedRef):
    name: GCPName = Field(
        description="Producer VPC network (custom mode); created when absent. Immutable.",
        json_schema_extra=immutable("spec.network.name", EXPORT_KIND),
    )


class EndpointNetworkRef(NamedRef):
    name: GCPName = Field(
        description="Consumer VPC network (custom mode); created when absent. Immutable.",
        json_schema_extra=immutable("spec.network.name", ENDPOINT_KIND),
    )


class ExportSubnets(Model):
    load_balancer: SubnetSpec = Field(description="Subnet of the internal load balancer's forwarding rule.")
    proxy_only: SubnetSpec = Field(
        description="REGIONAL_MANAGED_PROXY subnet; an existing ACTIVE one in the network and region is reused."
    )
    psc_nat: SubnetSpec = Field(description="PRIVATE_SERVICE_CONNECT subnet used only by this attachment.")


class LoadBalancerSpec(Model):
    """Names default from metadata.name (``<name>-neg``, ``<name>-backend-service``...)."""

    neg: GCPName | None = None
    backend_service: GCPName | None = None
    url_map: GCPName | None = None
    target_proxy: GCPName | None = None
    forwarding_rule: GCPName | None = None
    port: int = Field(default=80, ge=1, le=65535, description="Port of the internal forwarding rule.")


class Consumer(Model):
    """A consumer allowed to connect: a project (id or number) or a VPC network URL, not both."""

    project: Annotated[str, Field(pattern=CONSUMER_PROJECT_PATTERN)] | None = None
    network: Annotated[str, Field(pattern=NETWORK_URL_PATTERN)] | None = None
    connection_limit: int = Field(default=10, ge=0, le=100000, description="Endpoints this consumer may connect.")


def _consumer_rules() -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "self.all(c, has(c.project) != has(c.network))",
                "message": "each spec.attachment.consumers entry needs exactly one of project or network",
            },
            {
                "rule": "self.all(c, has(c.project)) || self.all(c, has(c.network))",
                "message": "spec.attachment.consumers cannot mix projects and networks (a GCP rule): use one kind",
            },
        ]
    }


class AttachmentSpec(Model):
    name: GCPName | None = Field(default=None, description="Defaults to <metadata.name>-attachment.")
    connection_preference: ConnectionPreference = ConnectionPreference.ACCEPT_MANUAL
    consumers: list[Consumer] = Field(default_factory=list, max_length=1000, json_schema_extra=_consumer_rules())
    rejected: list[Annotated[str, Field(pattern=f"{CONSUMER_PROJECT_PATTERN}|{NETWORK_URL_PATTERN}")]] = Field(
        default_factory=list,
        description="Consumer projects or network URLs whose connections are rejected.",
    )
    reconcile_connections: bool = Field(
        default=True,
        description="Apply accept/reject list changes to already accepted or rejected connections too.",
    )
    domain_names: list[str] = Field(default_factory=list, max_length=1)


def _invoker_rules() -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "self.all(m, m != 'allUsers' && m != 'allAuthenticatedUsers')",
                "message": "spec.invokers must not include allUsers or allAuthenticatedUsers: "
                "a private export must not be public",
            }
        ]
    }


class PSCExportSpec(Model):
    project: ProjectId = Field(
        description="Producer project id. Immutable.",
        json_schema_extra=immutable("spec.project", EXPORT_KIND),
    )
    region: Annotated[str, Field(pattern=REGION_PATTERN)] = Field(
        description="Region of the service and the attachment. Immutable.",
        json_schema_extra=immutable("spec.region", EXPORT_KIND),
    )
    service: Annotated[str, Field(pattern=CLOUD_RUN_NAME_PATTERN)] = Field(
        description="Existing Cloud Run service in that project and region."
    )
    network: ExportNetworkRef
    subnets: ExportSubnets
    load_balancer: LoadBalancerSpec = Field(default_factory=LoadBalancerSpec)
    attachment: AttachmentSpec = Field(default_factory=AttachmentSpec)
    ingress: Ingress = Field(default=Ingress.INTERNAL_ONLY, description="Ingress runnet sets on the service.")
    invokers: list[Annotated[str, Field(pattern=MEMBER_PATTERN)]] = Field(
        default_factory=list,
        description="Members granted roles/run.invoker on the service (serviceAccount:..., user:..., group:...).",
        json_schema_extra=_invoker_rules(),
    )
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE


class Connection(Model):
    project: str = ""
    network: str = ""
    endpoint: str = ""
    psc_connection_id: str = ""
    status: str = ""


class ExportSummary(Model):
    attachment: str = Field(default="", description="projects/P/regions/R/serviceAttachments/N (printer column).")


class ProxyOnlySubnetStatus(Model):
    name: str = ""
    reused: bool = Field(
        default=False,
        description="The network already had an ACTIVE proxy-only subnet in the region: used, never deleted.",
    )


class PSCExportStatus(CommonStatus):
    service_attachment: str = ""
    connections: list[Connection] = Field(default_factory=list)
    accepted: int = 0
    pending: int = 0
    rejected: int = 0
    granted_invokers: list[str] = Field(
        default_factory=list, description="Invoker members runnet added, so that only those are ever removed."
    )
    proxy_only_subnet: ProxyOnlySubnetStatus = Field(default_factory=ProxyOnlySubnetStatus)
    summary: ExportSummary = Field(default_factory=ExportSummary)


class AddressSpec(NamedRef):
    ip: Annotated[str, Field(pattern=IPV4_PATTERN)] | None = Field(
        default=None, description="Internal IP in the subnet; the next free one when omitted."
    )


class ExportRef(Model):
    name: GCPName
    namespace: str | None = Field(default=None, description="Defaults to the endpoint's namespace.")


class EndpointTarget(Model):
    export_ref: ExportRef | None = None
    service_attachment: Annotated[str, Field(pattern=ATTACHMENT_URI_PATTERN)] | None = None


def _target_rules() -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "has(self.exportRef) != has(self.serviceAttachment)",
                "message": "spec.target needs exactly one of exportRef or serviceAttachment",
            }
        ]
    }


class PSCEndpointSpec(Model):
    project: ProjectId = Field(
        description="Consumer project id. Immutable.",
        json_schema_extra=immutable("spec.project", ENDPOINT_KIND),
    )
    region: Annotated[str, Field(pattern=REGION_PATTERN)] = Field(
        description="Region of the endpoint (the attachment's region). Immutable.",
        json_schema_extra=immutable("spec.region", ENDPOINT_KIND),
    )
    network: EndpointNetworkRef
    subnet: SubnetSpec
    address: AddressSpec
    forwarding_rule: NamedRef
    target: EndpointTarget = Field(json_schema_extra=_target_rules())
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE


class PSCEndpointStatus(CommonStatus):
    ip: str = ""
    connection_status: str = ""
    psc_connection_id: str = ""
    service_attachment: str = ""
