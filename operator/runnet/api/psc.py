"""PSCExport and PSCEndpoint: a Cloud Run service published privately over Private Service Connect."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from runnet.api.common import (
    DELETION_POLICY_HELP,
    CommonStatus,
    DeletionPolicy,
    GCPName,
    IPv4,
    Model,
    ProjectId,
    Region,
    immutable,
    names_immutable,
    shape,
)
from runnet.api.egress import SubnetSpec

EXPORT_KIND = "PSCExport"
ENDPOINT_KIND = "PSCEndpoint"

_PROJECT = r"[a-z][-a-z0-9]{4,28}[a-z0-9]"
_NAME = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
_COMPUTE_URL = r"(https://(www|compute)\.googleapis\.com/compute/v1/)?"
NETWORK_URL = shape(
    rf"^{_COMPUTE_URL}projects/{_PROJECT}/global/networks/{_NAME}$",
    "a VPC network as projects/PROJECT/global/networks/NAME (or its https://www.googleapis.com/compute/v1/ URL)",
    200,
)
AUDIENCE_URL = shape(
    r"^https://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(/[^ ]*)?$",
    "an https URL, the Cloud Run service's URL such as https://hello-service-123456789.asia-northeast1.run.app",
    2048,
)
ATTACHMENT_URI = shape(
    rf"^{_COMPUTE_URL}projects/{_PROJECT}/regions/[a-z]+-[a-z]+[0-9]+/serviceAttachments/{_NAME}$",
    "a service attachment as projects/PROJECT/regions/REGION/serviceAttachments/NAME (or its "
    "https://www.googleapis.com/compute/v1/ URL)",
    250,
)
# A consumer project by id, or by number as GCP also accepts in accept lists.
CONSUMER_PROJECT = shape(
    rf"^({_PROJECT}|[0-9]{{6,20}})$",
    "a GCP project id (6 to 30 lowercase letters, digits or hyphens, starting with a letter) or project number",
    30,
)
REJECTED_CONSUMER = shape(
    rf"^({_PROJECT}|[0-9]{{6,20}}|{_COMPUTE_URL}projects/{_PROJECT}/global/networks/{_NAME})$",
    "a consumer project id or number, or a VPC network as projects/PROJECT/global/networks/NAME",
    200,
)
# What IAM accepts as a member, ASCII only (a look-alike letter would grant someone else).
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# allUsers / allAuthenticatedUsers fit the shape only to be refused by their own rule, with its message.
MEMBER = shape(
    rf"^((?i:all(authenticated)?users)|(user|group|serviceAccount):{_EMAIL}|domain:[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{{2,}}"
    r"|principal(Set)?://iam\.googleapis\.com/[!-~]+)$",
    "an IAM member such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com, user:EMAIL, group:EMAIL or "
    "domain:DOMAIN (ASCII letters only)",
    320,
)
CLOUD_RUN_NAME = shape(
    r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$",
    "a Cloud Run service name: 1 to 49 lowercase letters, digits or hyphens, starting with a letter and not ending "
    "with a hyphen",
    49,
)
DOMAIN_NAME = shape(
    r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+$",
    "a DNS domain name ending with a dot, such as example.com.",
    253,
)
NETWORK_URL_PATTERN = NETWORK_URL.pattern
ATTACHMENT_URI_PATTERN = ATTACHMENT_URI.pattern
CONSUMER_PROJECT_PATTERN = CONSUMER_PROJECT.pattern
MEMBER_PATTERN = MEMBER.pattern
CLOUD_RUN_NAME_PATTERN = CLOUD_RUN_NAME.pattern

NetworkUrl = Annotated[str, Field(pattern=NETWORK_URL.pattern, max_length=NETWORK_URL.max_length)]
ConsumerProject = Annotated[str, Field(pattern=CONSUMER_PROJECT.pattern, max_length=CONSUMER_PROJECT.max_length)]
Member = Annotated[str, Field(pattern=MEMBER.pattern, max_length=MEMBER.max_length)]

EXPORT_DESCRIPTION = (
    "A Cloud Run service published privately over Private Service Connect: a serverless NEG, an internal "
    "Application Load Balancer and a service attachment with a consumer accept list, in the producer's project. "
    "status.serviceAttachment is the URI to give to consumers; status.connections shows each consumer's state."
)
ENDPOINT_DESCRIPTION = (
    "The consumer side of Private Service Connect: a private IP in the consumer's VPC that reaches a service "
    "attachment (a PSCExport in this cluster, or any attachment by URI). status.ip is the IP to call; "
    "status.connectionStatus is what the producer decided (ACCEPTED, PENDING, REJECTED...)."
)


class ConnectionPreference(StrEnum):
    ACCEPT_MANUAL = "ACCEPT_MANUAL"
    ACCEPT_AUTOMATIC = "ACCEPT_AUTOMATIC"


class Ingress(StrEnum):
    INTERNAL_ONLY = "INTERNAL_ONLY"
    INTERNAL_LOAD_BALANCER = "INTERNAL_LOAD_BALANCER"


class ExportNetworkRef(Model):
    name: GCPName = Field(
        description="Producer VPC network (custom mode); created when absent. Immutable.",
        json_schema_extra=immutable("spec.network.name", EXPORT_KIND),
    )


class EndpointNetworkRef(Model):
    name: GCPName = Field(
        description="Consumer VPC network (custom mode); created when absent. Immutable.",
        json_schema_extra=immutable("spec.network.name", ENDPOINT_KIND),
    )


class ExportSubnets(Model):
    """The producer's three subnets."""

    load_balancer: SubnetSpec = Field(description="Subnet of the internal load balancer's forwarding rule.")
    proxy_only: SubnetSpec = Field(
        description="REGIONAL_MANAGED_PROXY subnet; an existing ACTIVE one in the network and region is reused."
    )
    psc_nat: SubnetSpec = Field(
        description="PRIVATE_SERVICE_CONNECT subnet used only by this attachment: each connected endpoint takes one "
        "of its IPs (and one more per VPC spoke its connection is propagated to). Immutable: add capacity with "
        "extraPscNat."
    )
    extra_psc_nat: list[SubnetSpec] = Field(
        default_factory=list,
        max_length=10,
        description="More PRIVATE_SERVICE_CONNECT subnets for the attachment, after pscNat: appending one adds NAT "
        "IPs to the attachment in place, without disrupting connections (the NATSubnetCapacity condition says when "
        "one is needed). GCP refuses to take a subnet in use out of an attachment.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(s, self.filter(t, t.name == s.name).size() == 1)",
                    "message": "spec.subnets.extraPscNat must not list a subnet twice",
                }
            ]
        },
    )


class LoadBalancerSpec(Model):
    """The internal Application Load Balancer in front of the service. Names default from metadata.name
    (<name>-neg, <name>-backend-service, <name>-url-map, <name>-http-proxy, <name>-forwarding-rule)."""

    neg: GCPName | None = Field(default=None, description="Serverless network endpoint group. Immutable.")
    backend_service: GCPName | None = Field(default=None, description="Regional backend service. Immutable.")
    url_map: GCPName | None = Field(default=None, description="Regional URL map. Immutable.")
    target_proxy: GCPName | None = Field(default=None, description="Regional target HTTP proxy. Immutable.")
    forwarding_rule: GCPName | None = Field(
        default=None, description="Internal forwarding rule the attachment publishes. Immutable."
    )
    port: int = Field(default=80, ge=1, le=65535, description="Port of the internal forwarding rule (default 80).")


class Consumer(Model):
    """A consumer allowed to connect: a project (id or number) or a VPC network URL, not both."""

    project: ConsumerProject | None = Field(default=None, description="Consumer project id or number.")
    network: NetworkUrl | None = Field(
        default=None, description="Consumer VPC network as projects/PROJECT/global/networks/NAME."
    )
    connection_limit: int = Field(
        default=10, ge=0, le=100000, description="Endpoints this consumer may connect (default 10)."
    )


def _attachment_rules() -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.consumers) || !has(self.rejected) || self.rejected.all(r, "
                "!self.consumers.exists(c, (has(c.project) && c.project == r) || (has(c.network) && c.network == r)))",
                "message": "spec.attachment.rejected must not name a consumer that spec.attachment.consumers accepts: "
                "remove it from one of the two lists",
                "fieldPath": ".rejected",
            }
        ]
    }


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
    """The PSC service attachment and who may connect to it."""

    model_config = ConfigDict(json_schema_extra=_attachment_rules())

    name: GCPName | None = Field(
        default=None, description="Service attachment name; defaults to <metadata.name>-attachment. Immutable."
    )
    connection_preference: ConnectionPreference = Field(
        default=ConnectionPreference.ACCEPT_MANUAL,
        description="ACCEPT_MANUAL (default): only the consumers listed are accepted; ACCEPT_AUTOMATIC: every "
        "project may connect.",
    )
    consumers: list[Consumer] = Field(
        default_factory=list,
        max_length=500,  # bounds the cost of the rejected/consumers rule (the API server's CEL budget)
        description="Consumers accepted (projects or networks, not mixed) with their connection limits.",
        json_schema_extra=_consumer_rules(),
    )
    rejected: list[
        Annotated[str, Field(pattern=REJECTED_CONSUMER.pattern, max_length=REJECTED_CONSUMER.max_length)]
    ] = Field(
        default_factory=list,
        max_length=100,
        description="Consumer projects or network URLs whose connections are rejected.",
    )
    reconcile_connections: bool = Field(
        default=True,
        description="Apply accept/reject list changes to already accepted or rejected connections too (default true).",
    )
    domain_names: list[Annotated[str, Field(pattern=DOMAIN_NAME.pattern, max_length=DOMAIN_NAME.max_length)]] = Field(
        default_factory=list,
        max_length=1,
        description="DNS domain for consumers' automatic DNS records (at most one, ending with a dot).",
    )
    propagated_connection_limit: int = Field(
        default=250,
        ge=0,
        le=4294967295,
        description="How many propagated connections (Network Connectivity Center spokes) each consumer may make "
        "(GCP's default 250); each one takes a NAT IP too.",
    )
    enable_proxy_protocol: bool = Field(
        default=False,
        description="Send the PROXY protocol header with the consumer's address to the load balancer (default "
        "false). GCP lets it change on an existing attachment (gcloud service-attachments update "
        "--enable-proxy-protocol); it applies to new connections.",
    )


def _invoker_rules() -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "self.all(m, !m.matches('(?i)^all(authenticated)?users$'))",
                "message": "spec.invokers must not include allUsers or allAuthenticatedUsers: "
                "a private export must not be public",
            }
        ]
    }


class PSCExportSpec(Model):
    model_config = ConfigDict(
        json_schema_extra=names_immutable(
            EXPORT_KIND,
            required=["service", "subnets.loadBalancer.name", "subnets.proxyOnly.name", "subnets.pscNat.name"],
            optional=[
                "loadBalancer.neg",
                "loadBalancer.backendService",
                "loadBalancer.urlMap",
                "loadBalancer.targetProxy",
                "loadBalancer.forwardingRule",
                "attachment.name",
            ],
            why="it names a GCP resource; renaming would leave the old one behind",
        )
    )

    project: ProjectId = Field(
        description="Producer project id. Immutable.",
        json_schema_extra=immutable("spec.project", EXPORT_KIND),
    )
    region: Region = Field(
        description="Region of the service and the attachment. Immutable.",
        json_schema_extra=immutable("spec.region", EXPORT_KIND),
    )
    service: Annotated[str, Field(pattern=CLOUD_RUN_NAME.pattern, max_length=CLOUD_RUN_NAME.max_length)] = Field(
        description="Cloud Run service in that project and region to publish. Immutable."
    )
    network: ExportNetworkRef = Field(description="The producer's VPC network.")
    subnets: ExportSubnets = Field(description="The producer's load balancer, proxy-only and PSC NAT subnets.")
    load_balancer: LoadBalancerSpec = Field(
        default_factory=LoadBalancerSpec, description="The internal Application Load Balancer."
    )
    attachment: AttachmentSpec = Field(
        default_factory=AttachmentSpec, description="The service attachment and its consumer lists."
    )
    ingress: Ingress = Field(
        default=Ingress.INTERNAL_ONLY,
        description="Ingress runnet sets on the service: INTERNAL_ONLY (default) or INTERNAL_LOAD_BALANCER. Only ever "
        "narrowed, never widened again.",
    )
    invokers: list[Member] = Field(
        default_factory=list,
        max_length=100,
        description="Members granted roles/run.invoker on the service (serviceAccount:..., user:..., group:...); "
        "only the bindings runnet added are ever removed.",
        json_schema_extra=_invoker_rules(),
    )
    deletion_policy: DeletionPolicy = Field(default=DeletionPolicy.DELETE, description=DELETION_POLICY_HELP)


class Connection(Model):
    project: str = Field(default="", description="Consumer project.")
    network: str = Field(default="", description="Consumer VPC network.")
    endpoint: str = Field(default="", description="The consumer's forwarding rule.")
    psc_connection_id: str = Field(default="", description="GCP's id of the connection.")
    status: str = Field(default="", description="ACCEPTED, PENDING, REJECTED, CLOSED or NEEDS_ATTENTION.")


class ExportSummary(Model):
    attachment: str = Field(default="", description="projects/P/regions/R/serviceAttachments/N (printer column).")


class ProxyOnlySubnetStatus(Model):
    name: str = Field(default="", description="The proxy-only subnet the load balancer uses.")
    reused: bool = Field(
        default=False,
        description="The network already had an ACTIVE proxy-only subnet in the region: used, never deleted.",
    )


class NatSubnetStatus(Model):
    name: str = Field(default="", description="A PRIVATE_SERVICE_CONNECT subnet of the attachment.")
    ip_cidr_range: str = Field(default="", description="Its range.")
    usable: int = Field(default=0, description="IPs it can give to connections (its size minus the 4 GCP keeps).")


class PSCExportStatus(CommonStatus):
    service_attachment: str = Field(default="", description="The attachment's URI: what consumers connect to.")
    service_url: str = Field(
        default="",
        alias="serviceURL",
        description="The Cloud Run service's URL: the ID-token audience consumers call the endpoint with.",
    )
    connections: list[Connection] = Field(default_factory=list, description="The attachment's connected endpoints.")
    accepted: int = Field(default=0, description="Connections ACCEPTED.")
    pending: int = Field(default=0, description="Connections PENDING (waiting for the producer).")
    rejected: int = Field(default=0, description="Connections REJECTED.")
    granted_invokers: list[str] = Field(
        default_factory=list, description="Invoker members runnet added, so that only those are ever removed."
    )
    nat_subnets: list[NatSubnetStatus] = Field(
        default_factory=list,
        description="The attachment's PSC NAT subnets with their usable IPs (GCP keeps 4 of each).",
    )
    nat_i_ps_used: int = Field(
        default=0,
        alias="natIPsUsed",
        description="NAT IPs the connected endpoints and their propagated connections hold.",
    )
    proxy_only_subnet: ProxyOnlySubnetStatus = Field(
        default_factory=ProxyOnlySubnetStatus, description="The proxy-only subnet in use."
    )
    summary: ExportSummary = Field(default_factory=ExportSummary, description="Strings for the printer columns.")


class AddressSpec(Model):
    name: GCPName = Field(description="Reserved internal address; created when absent. Immutable.")
    ip: IPv4 | None = Field(default=None, description="Internal IP in the subnet; the next free one when omitted.")


class ForwardingRuleRef(Model):
    name: GCPName = Field(description="The consumer's forwarding rule targeting the attachment. Immutable.")


class ExportRef(Model):
    name: GCPName = Field(description="metadata.name of the PSCExport.")
    namespace: str | None = Field(
        default=None, max_length=63, description="Namespace of the PSCExport; defaults to the endpoint's namespace."
    )


class EndpointTarget(Model):
    """Where the endpoint connects: exactly one of exportRef or serviceAttachment."""

    export_ref: ExportRef | None = Field(default=None, description="A PSCExport in this cluster.")
    service_attachment: (
        Annotated[str, Field(pattern=ATTACHMENT_URI.pattern, max_length=ATTACHMENT_URI.max_length)] | None
    ) = Field(default=None, description="Any service attachment by URI (the producer may be elsewhere).")


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
    model_config = ConfigDict(
        json_schema_extra=names_immutable(
            ENDPOINT_KIND,
            required=["subnet.name", "address.name", "forwardingRule.name"],
            why="it names a GCP resource; renaming would leave the old one behind",
        )
    )

    project: ProjectId = Field(
        description="Consumer project id. Immutable.",
        json_schema_extra=immutable("spec.project", ENDPOINT_KIND),
    )
    region: Region = Field(
        description="Region of the endpoint (the attachment's region). Immutable.",
        json_schema_extra=immutable("spec.region", ENDPOINT_KIND),
    )
    network: EndpointNetworkRef = Field(description="The consumer's VPC network.")
    subnet: SubnetSpec = Field(description="The consumer subnet the endpoint's IP comes from.")
    address: AddressSpec = Field(description="The reserved internal address: the endpoint's IP.")
    forwarding_rule: ForwardingRuleRef = Field(description="The forwarding rule that connects to the attachment.")
    target: EndpointTarget = Field(description="The service attachment to reach.", json_schema_extra=_target_rules())
    audience: Annotated[str, Field(pattern=AUDIENCE_URL.pattern, max_length=AUDIENCE_URL.max_length)] | None = Field(
        default=None,
        description="The Cloud Run service's URL, the audience of the ID token a caller sends: shown as "
        "status.serviceURL. Needed only with target.serviceAttachment (with exportRef runnet reads it from the "
        "PSCExport); the producer gives it.",
    )
    deletion_policy: DeletionPolicy = Field(default=DeletionPolicy.DELETE, description=DELETION_POLICY_HELP)


class PSCEndpointStatus(CommonStatus):
    ip: str = Field(default="", description="The endpoint's private IP: what consumers call.")
    connection_status: str = Field(
        default="", description="What the producer decided: ACCEPTED, PENDING, REJECTED, CLOSED or NEEDS_ATTENTION."
    )
    psc_connection_id: str = Field(default="", description="GCP's id of the connection.")
    service_attachment: str = Field(default="", description="The attachment the endpoint connects to.")
    service_url: str = Field(
        default="",
        alias="serviceURL",
        description="The Cloud Run service's URL: the audience of the ID token to call the endpoint's IP with "
        "(from the PSCExport, or spec.audience).",
    )
