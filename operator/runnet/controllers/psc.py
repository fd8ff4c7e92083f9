"""PSCExport and PSCEndpoint: reconcile and finalize, from a custom resource's body to its status.

An endpoint that names its export (``exportRef``) reads it through an ``ExportResolver``: the
handlers pass one backed by kopf's index of PSCExports, tests a dict. While the export does not
exist nothing is written (it may be a typo); while it exists but is not Ready the consumer's
network, subnet and address are built already, and only the forwarding rule waits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Protocol

from runnet.api.psc import ENDPOINT_KIND, EXPORT_KIND, PSCEndpointSpec, PSCExportSpec
from runnet.controllers.base import Object, parse_spec
from runnet.engine import Engine, Outcome, RunResult
from runnet.gcp.clients import Clients
from runnet.gcp.context import Context
from runnet.gcp.network import COMPUTE, tail
from runnet.gcp.ownership import Owner
from runnet.gcp.run_access import RunIngressAdapter
from runnet.plan import psc as plan
from runnet.status import (
    INVALID_SPEC,
    Event,
    Outcome_,
    action_events,
    condition,
    condition_events,
    converged_before,
    health,
    invalid,
    resources,
    run_health,
    teardown_events,
    teardown_outcome,
    teardown_skipped,
)

RETRY = 10.0
WAITING_FOR_EXPORT = "WaitingForExport"


def checked_export(obj: Object) -> tuple[PSCExportSpec | None, str]:
    """The spec as a model when it has one (even with a problem), and its first problem ('' when none)."""
    spec = parse_spec(PSCExportSpec, obj)
    if isinstance(spec, str):
        return None, spec
    problems = plan.export_problems(spec, obj.name)
    return spec, problems[0] if problems else ""


def checked_endpoint(obj: Object) -> tuple[PSCEndpointSpec | None, str]:
    spec = parse_spec(PSCEndpointSpec, obj)
    if isinstance(spec, str):
        return None, spec
    problems = plan.endpoint_problems(spec)
    return spec, problems[0] if problems else ""


def short(link: str) -> str:
    return tail(link) if link else ""


def _retry(run: RunResult) -> float | None:
    if run.ready or not all(r.retryable for r in run.results.values() if r.outcome is not Outcome.READY):
        return None
    return RETRY


# -- PSCExport --------------------------------------------------------------------------------


def export_context(obj: Object, spec: PSCExportSpec, clients: Clients) -> Context:
    return Context(clients, Owner(EXPORT_KIND, obj.namespace, obj.name, obj.uid), spec.project, spec.region)


async def reconcile_export(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
    """One pass; a spec with a problem is still observed (nothing written) so the connections stay true."""
    spec, problem = checked_export(obj)
    if spec is None:
        return invalid(obj.status, obj.generation, problem)
    ctx = export_context(obj, spec, clients)
    run = await engine.reconcile(plan.build_export(spec, ctx, export=obj.key, name=obj.name), dry_run=bool(problem))
    return _export_status(obj, spec, run, problem)


def _export_status(obj: Object, spec: PSCExportSpec, run: RunResult, problem: str = "") -> Outcome_:
    attachment = run.results["attachment"].observation
    link = attachment.self_link if attachment and attachment.exists else ""
    conns = list(attachment.outputs.get("connections", [])) if attachment else []
    counts = {s: sum(1 for c in conns if c["status"] == s) for s in ("ACCEPTED", "PENDING", "REJECTED")}
    invokers = run.results["service/invokers"].observation
    proxy = run.results["subnet/proxyOnly"]
    reused = bool(proxy.observation and proxy.observation.outputs.get("reused"))
    status: dict[str, Any] = {
        "observedGeneration": obj.generation,
        "serviceAttachment": link,
        "serviceURL": _service_url(run),
        "connections": conns,
        "accepted": counts["ACCEPTED"],
        "pending": counts["PENDING"],
        "rejected": counts["REJECTED"],
        "grantedInvokers": list(invokers.outputs.get("granted", [])) if invokers else [],
        "proxyOnlySubnet": {"name": proxy.node.adapter.name, "reused": reused},
        "resources": resources(run),
        "summary": {"attachment": short(link)},
    }
    ready, reason, message = (False, INVALID_SPEC, problem) if problem else run_health(run)
    if ready:
        message = f"service attachment {short(link)} publishes Cloud Run service {spec.service}"
    conds = obj.status.get("conditions", [])
    status["conditions"] = [
        *health(conds, obj.generation, ready=ready, reason=reason, message=message),
        *_service_condition(obj, spec, run),
        *_nat_capacity(obj, spec, run, status),
    ]
    events = action_events(run, drift=converged_before(obj.status, obj.generation))
    events += condition_events(conds, status["conditions"])
    events += connection_events(obj.status, conns) + _export_notes(obj, spec, run)
    return Outcome_(status=status, events=events, retry_after=None if problem else _retry(run))


def _service_url(run: RunResult) -> str:
    service = run.results["service/ingress"].observation
    return str(service.outputs.get("uri", "")) if service and service.exists else ""


def _service_condition(obj: Object, spec: PSCExportSpec, run: RunResult) -> list[dict[str, Any]]:
    """ServiceReady: whether the Cloud Run service serves (its failing revisions are its owner's to fix)."""
    service = run.results["service/ingress"].observation
    if not (service and service.exists):
        return []
    serving, why = bool(service.outputs.get("serving")), str(service.outputs.get("health") or "")
    message = f"Cloud Run service {spec.service} is serving" if serving else why
    reason = "Serving" if serving else "NotServing"
    conds = obj.status.get("conditions", [])
    return [condition(conds, "ServiceReady", serving, reason, message, obj.generation)]


NAT_SUBNET_FULL = 0.8
"""Share of the PSC NAT subnets' usable IPs in use above which NATSubnetCapacity turns False."""
UNUSABLE_PER_SUBNET = 4
"""GCP keeps four addresses of every subnet (network, gateway, second-to-last, broadcast)."""


def _nat_capacity(obj: Object, spec: PSCExportSpec, run: RunResult, status: dict[str, Any]) -> list[dict[str, Any]]:
    """NATSubnetCapacity (never blocks Ready): every connected endpoint, and each of its propagated connections,
    takes an IP of the attachment's PSC NAT subnets; above 80% in use, or with a connection waiting for an IP
    (NEEDS_ATTENTION), the producer is told which subnet to add."""
    attachment = run.results["attachment"].observation
    if not (attachment and attachment.exists):
        return []
    subnets: list[dict[str, Any]] = []
    for i, sub in enumerate(plan.nat_subnets(spec)):
        seen = run.results[plan.nat_subnet_key(i)].observation
        cidr = str(seen.outputs.get("ipCidrRange", "")) if seen and seen.exists else sub.ip_cidr_range or ""
        usable = max(0, ipaddress.ip_network(cidr, strict=False).num_addresses - UNUSABLE_PER_SUBNET) if cidr else 0
        subnets.append({"name": sub.name, "ipCidrRange": cidr, "usable": usable})
    usable = sum(int(s["usable"]) for s in subnets)
    used, waiting = int(attachment.outputs.get("natIpsUsed", 0)), int(attachment.outputs.get("needsAttention", 0))
    status["natSubnets"], status["natIPsUsed"] = subnets, used
    names = ", ".join(f"{s['name']} ({s['ipCidrRange']}, {s['usable']} usable)" for s in subnets)
    ok = used <= NAT_SUBNET_FULL * usable and waiting == 0
    if ok:
        message = f"connected endpoints use {used} of the {usable} NAT IPs of PSC NAT subnets {names}"
    else:
        last = subnets[-1]["name"] if subnets else spec.subnets.psc_nat.name
        message = (
            f"connected endpoints (propagated connections included) use {used} of the {usable} NAT IPs of PSC NAT "
            f"subnets {names}"
            + (f", and {waiting} accepted connection(s) wait for one (NEEDS_ATTENTION)" if waiting else "")
            + f": add a PRIVATE_SERVICE_CONNECT subnet after {last} to spec.subnets.extraPscNat (GCP adds it to the "
            "attachment without disrupting connections)"
        )
    conds = obj.status.get("conditions", [])
    reason = "Sufficient" if ok else ("Exhausted" if waiting else "NearlyFull")
    return [condition(conds, "NATSubnetCapacity", ok, reason, message, obj.generation)]


def _export_notes(obj: Object, spec: PSCExportSpec, run: RunResult) -> list[Event]:
    """Events for what this pass noticed: ingress narrowed, an existing proxy-only subnet reused."""
    events = []
    ingress = run.results["service/ingress"].node.adapter
    if isinstance(ingress, RunIngressAdapter) and ingress.narrowed_from:
        events.append(
            Event(
                "Normal",
                "IngressNarrowed",
                f"Cloud Run service {spec.service}: ingress narrowed from {ingress.narrowed_from} to "
                f"INGRESS_TRAFFIC_{spec.ingress.value}; deleting the export will not widen it again",
            )
        )
    proxy = run.results["subnet/proxyOnly"].observation
    if proxy and proxy.outputs.get("reused") and not obj.status.get("proxyOnlySubnet", {}).get("reused"):
        events.append(Event("Normal", "ProxyOnlySubnetReused", proxy.message))
    return events


def connection_events(previous: Mapping[str, Any], conns: list[dict[str, str]]) -> list[Event]:
    """An Event per connection that appeared, changed state or went away since the last status."""
    before = {c.get("endpoint"): c.get("status") for c in previous.get("connections", []) or []}
    events = []
    for conn in conns:
        was = before.pop(conn["endpoint"], None)
        if was == conn["status"]:
            continue
        state = conn["status"]
        kind = "Normal" if state in ("ACCEPTED", "PENDING") else "Warning"
        change = f"was {was}" if was else "new connection"
        events.append(
            Event(
                kind,
                "Connection" + state.title().replace("_", ""),
                f"endpoint {conn['endpoint']} of project {conn['project']} is {state} ({change})",
            )
        )
    for endpoint in before:
        events.append(Event("Normal", "ConnectionRemoved", f"endpoint {endpoint} no longer connects"))
    return events


async def finalize_export(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
    """Delete what the export owns, in reverse order; runnet's invoker bindings go, the ingress stays."""
    # A spec with a problem still names what to delete: only an unreadable one stops the teardown.
    spec, problem = checked_export(obj)
    skipped = teardown_skipped(spec or problem)
    if skipped is not None:
        return skipped
    assert spec is not None
    ctx = export_context(obj, spec, clients)
    run = await engine.teardown(plan.teardown_export(spec, ctx, export=obj.key, name=obj.name))
    events = teardown_events(run)
    attachment = run.results["attachment"]
    closed = [
        c["endpoint"]
        for c in (attachment.observation.outputs.get("connections", []) if attachment.observation else [])
        if c["status"] != "CLOSED"
    ]
    if closed and any(a.startswith("deleted ServiceAttachment") for a in attachment.actions):
        events.append(
            Event(
                "Warning",
                "ConnectionsClosed",
                f"deleting service attachment {attachment.node.adapter.name} closed {len(closed)} consumer "
                f"connection(s) ({', '.join(closed)}): their endpoints stay, CLOSED, until re-created",
            )
        )
    return _finalized(obj, run, events)


def _finalized(obj: Object, run: RunResult, events: list[Event]) -> Outcome_:
    return teardown_outcome(obj.status, obj.generation, run, events)


# -- PSCEndpoint ------------------------------------------------------------------------------


class ExportResolver(Protocol):
    """Reads a PSCExport (its whole body: metadata, spec, status) by namespace and name."""

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


class MappingResolver:
    """An ExportResolver over a mapping ``{(namespace, name): body}`` (tests, or a live kopf index view)."""

    def __init__(self, exports: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> None:
        self.exports: Mapping[tuple[str, str], Mapping[str, Any]] = exports if exports is not None else {}

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.exports.get((namespace, name))


def export_ready(export: Mapping[str, Any]) -> tuple[bool, str]:
    status = export.get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    if ready and ready.get("status") == "True" and status.get("serviceAttachment"):
        return True, ""
    why = f"{ready.get('reason')}: {ready.get('message')}" if ready else "not reconciled yet"
    return False, why


_ADVICE = {
    "PENDING": (
        "ConnectionPending",
        "the connection to {att} is PENDING: the producer must accept consumer project {project} ({how})",
    ),
    "REJECTED": (
        "ConnectionRejected",
        "the producer REJECTED consumer project {project} on {att}: it must accept the project ({how}); without "
        "reconcileConnections, delete and re-create this PSCEndpoint afterwards",
    ),
    "CLOSED": (
        "ConnectionClosed",
        "the producer CLOSED the connection to {att} (it deleted the attachment): runnet re-creates the "
        "forwarding rule as soon as the attachment exists again",
    ),
    "NEEDS_ATTENTION": (
        "ConnectionNeedsAttention",
        "the producer accepted the connection to {att} but must act before it carries traffic "
        "(for example add NAT subnet capacity to the attachment)",
    ),
}


class Target:
    """Where the endpoint connects, as far as it is known now."""

    def __init__(
        self,
        attachment: str | None = None,
        *,
        export: str = "",
        waiting: str = "",
        missing: bool = False,
        spec: Mapping[str, Any] | None = None,
    ):
        self.attachment = attachment
        """Relative path of the service attachment; None while the export is not Ready."""
        self.export = export
        """namespace/name of the referenced PSCExport ('' for a URI target)."""
        self.waiting = waiting
        self.missing = missing
        """The export does not exist: observe only, write nothing."""
        self.body = spec or {}
        """The referenced PSCExport as the cluster has it ({} for a URI target)."""


class EndpointController:
    """Reconcile / finalize for PSCEndpoint, with the resolver that reads referenced exports."""

    def __init__(self, exports: ExportResolver) -> None:
        self.exports = exports

    def context(self, obj: Object, spec: PSCEndpointSpec, clients: Clients) -> Context:
        return Context(clients, Owner(ENDPOINT_KIND, obj.namespace, obj.name, obj.uid), spec.project, spec.region)

    def target(self, obj: Object, spec: PSCEndpointSpec) -> Target | str:
        """The attachment to connect to, or why not yet; a string is an invalid spec."""
        if spec.target.service_attachment:
            return Target(tail(spec.target.service_attachment))
        ref = spec.target.export_ref
        assert ref is not None  # endpoint_problems guarantees one of the two
        key = f"{ref.namespace or obj.namespace}/{ref.name}"
        export = self.exports.get(ref.namespace or obj.namespace, ref.name)
        if export is None:
            why = f"PSCExport {key} does not exist: nothing is built until it does"
            return Target(None, export=key, missing=True, waiting=why)
        region = (export.get("spec") or {}).get("region")
        if region and region != spec.region:
            return (
                f"spec.region {spec.region} is not the region of PSCExport {key} ({region}): a PSC endpoint must be "
                "in its service attachment's region"
            )
        ready, why = export_ready(export)
        if not ready:
            return Target(None, export=key, waiting=f"waiting for PSCExport {key} to be Ready ({why})", spec=export)
        return Target(tail(str(export["status"]["serviceAttachment"])), export=key, spec=export)

    async def reconcile(self, obj: Object, engine: Engine, clients: Clients) -> Outcome_:
        """One pass; with a problem in the spec (or its target) it only observes, so the status stays true."""
        spec, problem = checked_endpoint(obj)
        if spec is None:
            return invalid(obj.status, obj.generation, problem)
        target = self.target(obj, spec)
        if isinstance(target, str):
            problem, target = problem or target, Target(None)
        nodes = plan.build_endpoint(spec, self.context(obj, spec, clients), attachment=target.attachment)
        run = await engine.reconcile(nodes, dry_run=target.missing or bool(problem))
        return _endpoint_status(obj, spec, target, run, problem)

    async def finalize(self, obj: Object, engine: Engine, clients: Clients) -> Outcome_:
        spec, problem = checked_endpoint(obj)
        skipped = teardown_skipped(spec or problem)
        if skipped is not None:
            return skipped
        assert spec is not None
        nodes = plan.build_endpoint(spec, self.context(obj, spec, clients), attachment=None, teardown=True)
        run = await engine.teardown(nodes)
        return _finalized(obj, run, teardown_events(run))


def _endpoint_status(obj: Object, spec: PSCEndpointSpec, target: Target, run: RunResult, problem: str) -> Outcome_:
    address = run.results["address"].observation
    rule_result = run.results.get("forwardingRule")
    rule = rule_result.observation if rule_result else None
    exists = bool(rule and rule.exists)
    state = str(rule.outputs.get("status", "")) if rule and exists else ""
    ip = str(address.outputs.get("ip", "")) if address and address.exists else ""
    # What the rule targets as GCP says; the intended attachment only while there is no rule.
    attachment = str(rule.outputs.get("target", "")) if rule and exists else (target.attachment or "")
    status: dict[str, Any] = {
        "observedGeneration": obj.generation,
        "ip": ip,
        "connectionStatus": state,
        "pscConnectionId": str(rule.outputs.get("pscConnectionId", "")) if rule and exists else "",
        "serviceAttachment": COMPUTE + attachment if attachment else "",
        "serviceURL": spec.audience or str((target.body.get("status") or {}).get("serviceURL", "")),
        "resources": resources(run),
    }
    conds = obj.status.get("conditions", [])
    ready, reason, message = _endpoint_ready(spec, target, run, state, ip, attachment)
    if problem:
        ready, reason, message = False, INVALID_SPEC, problem
    status["conditions"] = health(conds, obj.generation, ready=ready, reason=reason, message=message)
    events = action_events(run, drift=converged_before(obj.status, obj.generation))
    events += condition_events(conds, status["conditions"])
    if state in ("ACCEPTED", "PENDING") and state != obj.status.get("connectionStatus"):
        # The other states are warnings: the Ready condition's own Event tells them.
        events.append(Event("Normal", "Connection" + state.title(), f"the connection to {attachment} is {state}"))
    retry = RETRY if target.waiting or (state and state != "ACCEPTED") else _retry(run)
    return Outcome_(status=status, events=events, retry_after=None if problem else retry)


def _endpoint_ready(
    spec: PSCEndpointSpec, target: Target, run: RunResult, state: str, ip: str, attachment: str
) -> tuple[bool, str, str]:
    problem = run.first_problem()
    if problem and problem.outcome in (Outcome.INVALID, Outcome.CONFLICT, Outcome.FAILED):
        return run_health(run)
    if state == "ACCEPTED" and run.ready and not target.waiting:
        return True, "Reconciled", f"{ip} reaches {attachment} (ACCEPTED)"
    if state in _ADVICE:
        reason, template = _ADVICE[state]
        return False, reason, template.format(att=attachment, project=spec.project, how=_how(spec, target, state))
    if target.waiting:
        return False, WAITING_FOR_EXPORT, target.waiting
    ready, reason, message = run_health(run)
    return ready, reason, message if not ready else f"{ip} reaches {attachment}"


def _how(spec: PSCEndpointSpec, target: Target, state: str) -> str:
    """What the producer must do, as far as the referenced PSCExport's spec tells."""
    if not target.export:
        return "ask the producer to put it on the attachment's consumer accept list"
    attachment = (target.body.get("spec") or {}).get("attachment") or {}
    accepted = {c.get("project") for c in attachment.get("consumers") or []}
    rejected = set(attachment.get("rejected") or [])
    if spec.project in rejected:
        return f"take {spec.project} off spec.attachment.rejected of PSCExport {target.export}"
    if spec.project in accepted:
        return f"PSCExport {target.export} lists it; its next pass updates the attachment"
    return f"add {{project: {spec.project}}} to spec.attachment.consumers of PSCExport {target.export}"
