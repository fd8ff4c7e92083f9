"""Adapters for the Cloud Run services runnet wires up (it never creates or deletes them).

What a service had before runnet touched it is kept on the service itself, in an annotation, so
that detaching restores it even after the custom resource (and its status) is gone.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from google.cloud import run_v2
from google.protobuf import json_format

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import GCPCallError, call, wait_for_earlier_writes, wait_run
from runnet.gcp.context import Context

ATTACHED_TO = "runnet.dev/egress-gateway"
PREVIOUS_VPC_ACCESS = "runnet.dev/previous-vpc-access"
SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED
FAILED = run_v2.Condition.State.CONDITION_FAILED
REDEPLOY = "runnet.dev/redeployed-at"


def service_path(ctx: Context, name: str) -> str:
    return f"projects/{ctx.project}/locations/{ctx.region}/services/{name}"


def read_service(ctx: Context, name: str) -> run_v2.Service | None:
    path = service_path(ctx, name)
    return ctx.read(
        path,
        f"Cloud Run service {name}",
        lambda: ctx.clients.run_services.get_service(name=path),
        lambda: ctx.clients.run_services.list_services(parent=path.rsplit("/services/", 1)[0]),
    )


def readiness(service: run_v2.Service) -> tuple[bool, str]:
    """Whether the service's latest revision is serving, and why not."""
    cond = service.terminal_condition
    if service.reconciling or service.observed_generation < service.generation:
        return False, f"Cloud Run service {_short(service.name)} is rolling out a new revision"
    if cond.state != SUCCEEDED:
        return (
            False,
            f"Cloud Run service {_short(service.name)} is not ready: {cond.message or cond.state.name}",
        )
    return True, ""


def update_service(ctx: Context, service: run_v2.Service, what: str) -> None:
    ctx.touch(service.name)
    wait_for_earlier_writes()
    operation = call(what, lambda: ctx.clients.run_services.update_service(service=service))
    wait_run(ctx.clients, what, operation, touches=service.name)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def vpc_access_json(service: run_v2.Service) -> str:
    access = service.template.vpc_access
    if not access.connector and not access.network_interfaces:
        return "{}"
    return str(json_format.MessageToJson(run_v2.VpcAccess.pb(access), indent=None, sort_keys=True))


WAITING_FOR_SERVICE = "WaitingForService"


def attached_services(ctx: Context, gateway: str) -> list[str]:
    """Names of the region's Cloud Run services attached to this gateway (their annotation says so).

    Read from GCP on every pass, so a service taken out of spec.services is detached even when the
    gateway's status never recorded it.
    """
    parent = f"projects/{ctx.project}/locations/{ctx.region}"
    listed = ctx.read_all(
        f"{parent}/services",
        f"Cloud Run services in {ctx.region}",
        lambda: ctx.clients.run_services.list_services(parent=parent),
    )
    return sorted(_short(s.name) for s in listed if s.annotations.get(ATTACHED_TO) == gateway)


class RunEgressAdapter(Adapter):
    """Direct VPC egress on a service: its template's vpcAccess points at the gateway's subnet.

    With ``egress`` empty the service is one to detach (no longer listed): it is up to date once
    it no longer carries this gateway's annotation.
    """

    kind = "CloudRunService"
    api = "run"

    def __init__(self, ctx: Context, name: str, *, network: str, subnet: str, egress: str, gateway: str) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.network = network
        self.subnet = subnet
        self.egress = egress
        self.gateway = gateway
        """namespace/name of the EgressGateway, recorded on the service."""

    def observe(self) -> Observation:
        svc = read_service(self.ctx, self.name)
        if svc is None:
            return Observation(
                exists=False,
                reason=WAITING_FOR_SERVICE,
                message=(
                    f"Cloud Run service {self.name} does not exist in project {self.ctx.project} region "
                    f"{self.ctx.region} yet: deploy it, or remove it from spec.services"
                ),
            )
        holder = svc.annotations.get(ATTACHED_TO)
        obs = Observation(exists=True, self_link=svc.name, body=svc)
        if not self.egress:
            obs.up_to_date = holder != self.gateway
            return obs
        if holder and holder != self.gateway:
            obs.conflict = (
                f"Cloud Run service {self.name} is already attached to EgressGateway {holder}: take it out of that "
                "gateway's spec.services first, or out of this one's"
            )
            return obs
        failed = svc.terminal_condition.state == FAILED and not svc.reconciling
        # A revision that failed with runnet's settings is deployed again (GCP errors can be passing).
        obs.up_to_date = holder == self.gateway and self._wired(svc) and not failed
        obs.ready, obs.message = readiness(svc)
        obs.outputs["failed"] = failed
        obs.outputs["maxInstances"] = svc.template.scaling.max_instance_count or 100
        previous = json.loads(svc.annotations.get(PREVIOUS_VPC_ACCESS, "{}") or "{}")
        if previous.get("connector"):
            obs.outputs["previousConnector"] = previous["connector"]
        return obs

    def _wired(self, svc: run_v2.Service) -> bool:
        access = svc.template.vpc_access
        interfaces = [(_short(i.network), _short(i.subnetwork)) for i in access.network_interfaces]
        return (
            not access.connector and interfaces == [(self.network, self.subnet)] and access.egress.name == self.egress
        )

    def create(self) -> None:
        raise GCPCallError(f"Cloud Run service {self.name} does not exist", retryable=False)

    def update(self, observed: Observation) -> None:
        svc = observed.body
        if svc.annotations.get(ATTACHED_TO) != self.gateway:
            svc.annotations[PREVIOUS_VPC_ACCESS] = vpc_access_json(svc)
            svc.annotations[ATTACHED_TO] = self.gateway
        svc.template.vpc_access = run_v2.VpcAccess(
            network_interfaces=[run_v2.VpcAccess.NetworkInterface(network=self.network, subnetwork=self.subnet)],
            egress=getattr(run_v2.VpcAccess.VpcEgress, self.egress),
        )
        if observed.outputs.get("failed"):
            # An unchanged template makes no new revision: mark it so the failed one is retried.
            svc.template.annotations[REDEPLOY] = datetime.datetime.now(datetime.UTC).isoformat()
        update_service(self.ctx, svc, f"attaching Cloud Run service {self.name} to the gateway")

    def delete(self, observed: Observation) -> None:
        """Detach: restore the vpcAccess the service had before runnet attached it."""
        svc = observed.body
        if svc.annotations.get(ATTACHED_TO) != self.gateway:
            return
        previous: dict[str, Any] = json.loads(svc.annotations.get(PREVIOUS_VPC_ACCESS, "{}") or "{}")
        restored = run_v2.VpcAccess()
        if previous:
            restored = run_v2.VpcAccess.from_json(json.dumps(previous), ignore_unknown_fields=True)
        svc.template.vpc_access = restored
        del svc.annotations[ATTACHED_TO]
        svc.annotations.pop(PREVIOUS_VPC_ACCESS, None)
        update_service(self.ctx, svc, f"detaching Cloud Run service {self.name} from the gateway")
