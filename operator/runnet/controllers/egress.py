"""EgressGateway: reconcile and finalize, from a custom resource's body to its status.

One pass is one trip: find what runnet owns for the gateway in GCP (its reserved addresses, the
services it attached), plan one graph from that and the spec, let the engine run it once, and
compute the status from what that pass observed (``egress_status``).
"""

from __future__ import annotations

import time

from runnet.api.egress import KIND, EgressGatewaySpec
from runnet.controllers.base import Object, parse_spec
from runnet.controllers.egress_status import report, teardown_report
from runnet.engine import Engine
from runnet.gcp.address import owned_addresses
from runnet.gcp.calls import GCPCallError
from runnet.gcp.clients import Clients
from runnet.gcp.context import Context
from runnet.gcp.ownership import Owner
from runnet.gcp.router import nat_addresses, unused_nat_ips
from runnet.gcp.run_service import attached_services
from runnet.plan import egress as plan
from runnet.status import Outcome_, failure_reason, invalid, teardown_skipped

RETRY = 10.0


def checked(obj: Object) -> tuple[EgressGatewaySpec | None, str]:
    """The spec as a model when it has one (even with a problem), and its first problem ('' when none)."""
    spec = parse_spec(EgressGatewaySpec, obj)
    if isinstance(spec, str):
        return None, spec
    problems = plan.spec_problems(spec)
    return spec, problems[0] if problems else ""


def context(obj: Object, spec: EgressGatewaySpec, clients: Clients) -> Context:
    owner = Owner(KIND, obj.namespace, obj.name, obj.uid)
    return Context(clients=clients, owner=owner, project=spec.project, region=spec.region)


async def discover(engine: Engine, ctx: Context, spec: EgressGatewaySpec, gateway: str) -> plan.Owned:
    """What runnet holds for the gateway, as GCP says (owner markers, labels, annotations, the NAT's IP pools):
    never from the status. The router read is the pass's (cached); IP usage is read only while an IP drains."""
    now = time.time()
    addresses = await engine.call(lambda: owned_addresses(ctx))
    services = await engine.call(lambda: attached_services(ctx, gateway), api="run")
    active, draining = await engine.call(lambda: nat_addresses(ctx, spec.router.name, spec.nat.name))
    unused: list[str] = []
    if draining:
        free = await engine.call(lambda: unused_nat_ips(ctx, spec.router.name, spec.nat.name))
        unused = [a.name for a in addresses if a.ip in free and a.name in draining]
    return plan.Owned(
        addresses=[a.name for a in addresses],
        services=services,
        marks={a.name: a.mark for a in addresses},
        nat_active=active,
        nat_draining=draining,
        unused=unused,
        now=now,
    )


def unknown(obj: Object, exc: GCPCallError) -> Outcome_:
    """A pass that could not find out what runnet owns: nothing is written, it is tried again soon."""
    outcome = invalid(obj.status, obj.generation, exc.message, reason=failure_reason(exc.code, exc.reason))
    outcome.retry_after = RETRY if exc.retryable else None
    return outcome


async def reconcile(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
    """One pass. A spec with a problem the schema cannot see is still observed (nothing is written), so that
    its status keeps saying what GCP has: the NAT's IPs, the retained addresses, the services."""
    spec, problem = checked(obj)
    if spec is None:
        return invalid(obj.status, obj.generation, problem)
    ctx = context(obj, spec, clients)
    try:
        owned = await discover(engine, ctx, spec, obj.key)
    except GCPCallError as exc:
        return invalid(obj.status, obj.generation, problem) if problem else unknown(obj, exc)
    run = await engine.reconcile(plan.build(spec, ctx, gateway=obj.key, owned=owned), dry_run=bool(problem))
    return report(obj, spec, owned, run, problem=problem)


async def finalize(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
    """Delete what the gateway owns, in reverse order; ``retry_after`` is None once done."""
    # A spec with a problem still names what to delete: only an unreadable one stops the teardown.
    spec, problem = checked(obj)
    skipped = teardown_skipped(spec or problem)
    if skipped is not None:
        return skipped
    assert spec is not None
    ctx = context(obj, spec, clients)
    try:
        owned = await discover(engine, ctx, spec, obj.key)
    except GCPCallError as exc:
        outcome = unknown(obj, exc)
        outcome.retry_after = RETRY
        return outcome
    run = await engine.teardown(plan.build(spec, ctx, gateway=obj.key, owned=owned, teardown=True))
    return teardown_report(obj, spec, run)
