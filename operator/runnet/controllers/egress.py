"""EgressGateway: reconcile and finalize, from a custom resource's body to its status."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from runnet.api.egress import KIND, AddressDeletionPolicy, EgressGatewaySpec
from runnet.engine import Engine, Outcome, RunResult
from runnet.gcp.calls import GCPCallError
from runnet.gcp.clients import Clients
from runnet.gcp.context import Context
from runnet.gcp.ownership import Owner
from runnet.gcp.router import extra_ips_needed, instances_supported, nat_status
from runnet.plan import egress as plan
from runnet.status import (
    Event,
    Outcome_,
    action_events,
    condition,
    converged_before,
    ready_condition,
    resources,
    teardown_events,
    teardown_outcome,
    teardown_skipped,
)

log = logging.getLogger(__name__)

CONNECTOR_HINT = (
    "Cloud Run service {service} moved from Serverless VPC Access connector {connector} to Direct VPC egress: "
    "delete the connector if nothing else uses it, to stop its charges"
)


@dataclass
class Object:
    """The parts of a custom resource a controller needs."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: dict[str, Any]
    status: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def invalid_status(obj: Object, message: str) -> Outcome_:
    conds = obj.status.get("conditions", [])
    return Outcome_(
        status={
            "observedGeneration": obj.generation,
            "conditions": [condition(conds, "Ready", False, "InvalidSpec", message, obj.generation)],
        },
        events=[Event("Warning", "InvalidSpec", message)],
    )


def parse(obj: Object) -> EgressGatewaySpec | str:
    try:
        spec = EgressGatewaySpec.model_validate(obj.spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"spec.{where}: {first['msg']}"
    problems = plan.spec_problems(spec)
    return problems[0] if problems else spec


def context(obj: Object, spec: EgressGatewaySpec, clients: Clients) -> Context:
    owner = Owner(KIND, obj.namespace, obj.name, obj.uid)
    return Context(clients=clients, owner=owner, project=spec.project, region=spec.region)


async def reconcile(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
    spec = parse(obj)
    if isinstance(spec, str):
        return invalid_status(obj, spec)
    ctx = context(obj, spec, clients)
    nodes = plan.build(spec, ctx, gateway=obj.key)
    run = await engine.reconcile(nodes)
    previous = [s["name"] for s in obj.status.get("services", [])]
    detach = plan.detached_services(previous, spec, ctx, gateway=obj.key)
    if detach and not _invalid(run):
        detached = await engine.teardown(detach)
        run.results.update({f"detached/{k}": v for k, v in detached.results.items()})
    outcome = _status(obj, spec, ctx, run)
    unlisted = plan.unlisted_addresses(obj.status, spec)
    if unlisted and not _invalid(run):
        # After the main pass, so that the NAT has already stopped using them.
        seen = await engine.reconcile(plan.retained_addresses(unlisted, spec, ctx, teardown=False))
        _retained(obj, spec, seen, outcome)
    elif not _invalid(run):
        outcome.status["retainedAddresses"] = []
    return outcome


def _retained(obj: Object, spec: EgressGatewaySpec, seen: RunResult, outcome: Outcome_) -> None:
    """Report the unlisted addresses that are still reserved, runnet's, and idle; one Event when one joins."""
    before = {a["name"] for a in obj.status.get("retainedAddresses", [])}
    kept = []
    for result in seen.results.values():
        obs = result.observation
        if obs is None or result.outcome is Outcome.FAILED:
            kept += [a for a in obj.status.get("retainedAddresses", []) if a["name"] == result.node.adapter.name]
            continue  # not known this pass: keep what the status said
        if not (obs.exists and obs.owned) or obs.held_by:
            continue  # deleted by hand, or taken over by something else: no longer runnet's to keep
        name, ip = result.node.adapter.name, str(obs.outputs.get("ip", ""))
        kept.append({"name": name, "ip": ip})
        if name not in before:
            fate = (
                "the gateway's deletion releases it (addressDeletionPolicy Delete)"
                if spec.nat.address_deletion_policy is AddressDeletionPolicy.DELETE
                else "it outlives the gateway (addressDeletionPolicy Retain)"
            )
            outcome.events.append(
                Event(
                    "Normal",
                    "AddressRetained",
                    f"address {name} ({ip}) is no longer in spec.nat.addresses and stays reserved (and billed) so "
                    f"partners' allowlists stay valid; {fate}. List it again to reuse it, or release it with "
                    f"`gcloud compute addresses delete {name} --region {spec.region} --project {spec.project}`",
                )
            )
    outcome.status["retainedAddresses"] = kept


def _invalid(run: RunResult) -> bool:
    return any(r.outcome is Outcome.INVALID for r in run.results.values())


def _status(obj: Object, spec: EgressGatewaySpec, ctx: Context, run: RunResult) -> Outcome_:
    conds = obj.status.get("conditions", [])
    ips = [_ip(run, name) for name in spec.nat.addresses]
    nat_ips = [ip for ip in ips if ip]
    services = _services(run, spec)
    attached = sum(1 for s in services if s["ready"])
    status: dict[str, Any] = {
        "observedGeneration": obj.generation,
        "natIPs": nat_ips,
        "services": services,
        "resources": resources(run),
        "summary": {"natIPs": ",".join(nat_ips), "services": f"{attached}/{len(spec.services)}"},
    }
    events = action_events(run, drift=converged_before(obj.status, obj.generation))
    ready_message = f"NAT {spec.nat.name} egresses from {', '.join(nat_ips)}" if nat_ips else "ready"
    status["conditions"] = [
        ready_condition(conds, run, obj.generation, ready_message=ready_message),
        *_capacity(conds, obj.generation, spec, ctx, run),
    ]
    for entry in services:
        if entry.get("connector"):
            events.append(Event("Normal", "ConnectorUnused", entry["message"]))
    for svc in spec.services:
        if svc.egress.value == "PRIVATE_RANGES_ONLY":
            events.append(
                Event(
                    "Warning",
                    "NoFixedEgress",
                    f"Cloud Run service {svc.name} uses PRIVATE_RANGES_ONLY: its internet traffic does not leave "
                    "from the NAT IPs; use ALL_TRAFFIC for a fixed egress IP",
                )
            )
    retry = None if run.ready or not _retryable(run) else 10.0
    return Outcome_(status=status, events=events, retry_after=retry)


def _retryable(run: RunResult) -> bool:
    return all(r.retryable for r in run.results.values() if r.outcome is not Outcome.READY)


def _ip(run: RunResult, address: str) -> str:
    result = run.results.get(f"address/{address}")
    obs = result.observation if result else None
    return str(obs.outputs.get("ip", "")) if obs else ""


def _services(run: RunResult, spec: EgressGatewaySpec) -> list[dict[str, Any]]:
    out = []
    for svc in spec.services:
        result = run.results[f"service/{svc.name}"]
        obs = result.observation
        entry: dict[str, Any] = {
            "name": svc.name,
            "egress": svc.egress.value,
            "ready": result.outcome is Outcome.READY,
            "message": result.message,
        }
        connector = obs.outputs.get("previousConnector") if obs else None
        if connector and result.outcome is Outcome.READY:
            entry["message"] = CONNECTOR_HINT.format(service=svc.name, connector=connector)
            entry["connector"] = connector
        out.append(entry)
    return out


def _max_instances(run: RunResult, spec: EgressGatewaySpec) -> int:
    total = 0
    for svc in spec.services:
        obs = run.results[f"service/{svc.name}"].observation
        total += int(obs.outputs.get("maxInstances", 0)) if obs else 0
    return total


def _capacity(
    conds: list[dict[str, Any]], generation: int | None, spec: EgressGatewaySpec, ctx: Context, run: RunResult
) -> list[dict[str, Any]]:
    instances = _max_instances(run, spec)
    out = []
    subnet = run.results["subnet"].observation
    cidr = subnet.outputs.get("ipCidrRange") if subnet else spec.subnet.ip_cidr_range
    if cidr:
        net = ipaddress.ip_network(str(cidr), strict=False)
        usable = net.num_addresses - 4  # GCP reserves four addresses in every primary range
        if net.prefixlen > plan.DIRECT_EGRESS_MAX_PREFIX:
            ok, msg = False, f"subnet {spec.subnet.name} is a /{net.prefixlen}; Direct VPC egress needs a /26 or larger"
        elif usable < 2 * instances:
            ok, msg = (
                False,
                (
                    f"subnet {spec.subnet.name} has {usable} usable IPs but the attached services can scale to "
                    f"{instances} instances, which need about {2 * instances}: use a larger range"
                ),
            )
        else:
            ok, msg = True, f"subnet {spec.subnet.name} has {usable} usable IPs for up to {instances} instances"
        out.append(condition(conds, "SubnetCapacity", ok, "Sufficient" if ok else "Insufficient", msg, generation))
    supported = instances_supported(len(spec.nat.addresses), spec.nat.min_ports_per_vm)
    extra = extra_ips_needed(instances, len(spec.nat.addresses), spec.nat.min_ports_per_vm)
    nat_result = run.results.get("nat")
    if nat_result and nat_result.outcome is Outcome.READY:
        try:
            reported = nat_status(ctx, spec.router.name, spec.nat.name)
        except GCPCallError as exc:
            # Capacity is advice: without the router's view, the local estimate stands until next pass.
            log.info("NAT capacity from the spec only: %s", exc.message)
            reported = None
        extra = max(extra, int(reported.min_extra_nat_ips_needed) if reported else 0)
    if extra > 0:
        msg = (
            f"NAT {spec.nat.name} needs {extra} more address(es) in spec.nat.addresses: "
            f"{len(spec.nat.addresses)} IP(s) at minPortsPerVm {spec.nat.min_ports_per_vm} serve {supported} "
            f"instances, the services can scale to {instances}"
        )
        out.append(condition(conds, "NATCapacity", False, "Insufficient", msg, generation))
    else:
        msg = f"NAT {spec.nat.name} serves up to {supported} instances; the services can scale to {instances}"
        out.append(condition(conds, "NATCapacity", True, "Sufficient", msg, generation))
    return out


async def finalize(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
    """Delete what the gateway owns, in reverse order; ``retry_after`` is None once done."""
    spec = parse(obj)
    skipped = teardown_skipped(spec)
    if skipped is not None:
        return skipped
    assert not isinstance(spec, str)
    ctx = context(obj, spec, clients)
    nodes = plan.build(spec, ctx, gateway=obj.key, retained=plan.unlisted_addresses(obj.status, spec))
    previous = [s["name"] for s in obj.status.get("services", [])]
    nodes += plan.detached_services(previous, spec, ctx, gateway=obj.key)
    run = await engine.teardown(nodes)
    events = teardown_events(run)
    kept = [a for a in run.actions() if a.startswith("kept Address") and " uses" not in a]
    if kept:
        events.append(
            Event(
                "Normal",
                "AddressesRetained",
                f"kept {len(kept)} reserved NAT IP(s) so partners' allowlists stay valid; set "
                "spec.nat.addressDeletionPolicy: Delete to release them with the gateway",
            )
        )
    return teardown_outcome(obj.status, obj.generation, run, events)
