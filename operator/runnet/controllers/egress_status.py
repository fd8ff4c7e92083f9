"""EgressGateway status: a pure function of what one pass observed.

``natIPs`` are the IPs GCP reports the NAT translating to (getRouterStatus), never the spec's
wish; when they differ from the IPs of spec.nat.addresses the gateway is not Ready and says both.
Retained addresses are the ones runnet owns (owner marker, found in GCP) that are neither listed
nor used by the NAT.
"""

from __future__ import annotations

import datetime
from typing import Any

from runnet.api.common import seconds
from runnet.api.egress import AddressDeletionPolicy, AddressState, EgressGatewaySpec
from runnet.controllers.base import Object
from runnet.engine import NodeResult, Observation, Outcome, RunResult
from runnet.gcp.address import parse_mark
from runnet.gcp.network import SubnetAdapter
from runnet.gcp.router import extra_ips_needed, instances_supported
from runnet.metrics import NAT_PORT_HEADROOM, SUBNET_IP_HEADROOM
from runnet.plan import egress as plan
from runnet.status import (
    INVALID_SPEC,
    Event,
    Outcome_,
    action_events,
    condition,
    condition_events,
    converged_before,
    health,
    resources,
    run_health,
    teardown_events,
    teardown_outcome,
)

RETRY = 10.0
DRAIN_POLL = 30.0
"""Seconds between looks at a draining IP's usage (getNatIpInfo) before its drainTimeout is near."""
SETTLING = 3.0
"""Seconds before looking again when GCP has not caught up with a write yet."""
CONNECTOR_HINT = (
    "Cloud Run service {service} moved from Serverless VPC Access connector {connector} to Direct VPC egress: "
    "delete the connector if nothing else uses it, to stop its charges"
)


def _obs(run: RunResult, key: str) -> Observation | None:
    result = run.results.get(key)
    return result.observation if result else None


def nat_ips(run: RunResult) -> list[str] | None:
    """What GCP reports the NAT translating to ([] when there is no NAT; None when it could not be read).

    From the router's status; when that read failed, from the router itself (the NAT's addresses and
    the IPs those addresses hold, both read this pass).
    """
    seen = _obs(run, "natStatus")
    if seen is not None:
        return list(seen.outputs.get("ips", [])) if seen.exists else []
    nat = _obs(run, "nat")
    if nat is None:
        return None
    if not nat.exists:
        return []
    held = {}
    for result in run.results.values():
        obs = result.observation
        if result.node.adapter.kind == "Address" and obs is not None and obs.exists:
            held[result.node.adapter.name] = str(obs.outputs.get("ip", ""))
    names = [str(path).rsplit("/", 1)[-1] for path in nat.outputs.get("natIps", [])]
    if any(name not in held for name in names):
        return None
    return [held[name] for name in names]


def listed_ips(run: RunResult, spec: EgressGatewaySpec) -> dict[str, str]:
    """spec.nat.addresses with the IP each holds ('' while it is not reserved)."""
    out = {}
    for name in spec.nat.addresses:
        seen = _obs(run, f"address/{name}")
        out[name] = str(seen.outputs.get("ip", "")) if seen and seen.exists else ""
    return out


def _rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _since(seen: Observation | None, state: str) -> str:
    """When the address entered ``state``: its label when that names the state; an active one's creation."""
    if seen is None or not seen.exists:
        return ""
    marked, at = parse_mark(str(seen.outputs.get("mark", "")))
    if marked == state:
        return _rfc3339(at)
    return str(seen.outputs.get("created", "")) if state == "active" and not marked else ""


def addresses(run: RunResult, spec: EgressGatewaySpec, owned: plan.Owned) -> list[dict[str, str]]:
    """Every address runnet knows for the gateway, with its state as the NAT observed this pass shows it."""
    nat = _obs(run, "nat")
    active = set(nat.outputs.get("natIps", [])) if nat and nat.exists else set()
    drain = set(nat.outputs.get("drainNatIps", [])) if nat and nat.exists else set()
    out = []
    for name in spec.nat.addresses:
        seen = _obs(run, f"address/{name}")
        ip = str(seen.outputs.get("ip", "")) if seen and seen.exists else ""
        since = _since(seen, "active")
        out.append({"name": name, "ip": ip, "state": AddressState.ACTIVE.value, "since": since, "drainUntil": ""})
    timeout = seconds(spec.nat.drain_timeout)
    for name in plan.unlisted(owned, spec):
        seen = _obs(run, f"retained/{name}")
        if seen is not None and not seen.exists:
            continue
        ip = str(seen.outputs.get("ip", "")) if seen else ""
        path = f"projects/{spec.project}/regions/{spec.region}/addresses/{name}"
        entry = {"name": name, "ip": ip, "drainUntil": ""}  # every field, as the API server's defaults fill them in
        if path in drain:
            entry.update(state=AddressState.DRAINING.value, since=_since(seen, "draining"))
            marked, at = parse_mark(str(seen.outputs.get("mark", ""))) if seen else ("", 0)
            entry["drainUntil"] = _rfc3339(at + timeout) if marked == "draining" else ""
        elif path in active:  # not moved yet (the write failed): still translated to
            entry.update(state=AddressState.ACTIVE.value, since="")
        else:
            entry.update(state=AddressState.RETAINED.value, since=_since(seen, "retained"))
        out.append(entry)
    return out


def drain_retry(entries: list[dict[str, str]], now: float) -> float | None:
    """While an IP drains: look again when its drainTimeout ends, and every DRAIN_POLL seconds for its usage."""
    ends = [e["drainUntil"] for e in entries if e["state"] == AddressState.DRAINING.value and e.get("drainUntil")]
    if not any(e["state"] == AddressState.DRAINING.value for e in entries):
        return None
    left = [datetime.datetime.fromisoformat(t).timestamp() - now for t in ends]
    return max(1.0, min([DRAIN_POLL, *[x + 1.0 for x in left]]))


def retained(
    run: RunResult, spec: EgressGatewaySpec, owned: plan.Owned, in_nat: list[str], draining: set[str]
) -> list[dict[str, str]]:
    """Owned, unlisted addresses the NAT does not use: kept (and billed) until a person releases them."""
    out = []
    router = f"regions/{spec.region}/routers/{spec.router.name}"
    for name in plan.unlisted(owned, spec):
        if name in draining:
            continue  # still in the NAT's drain pool: status.addresses shows it Draining
        seen = _obs(run, f"retained/{name}")
        if seen is not None and not seen.exists:
            continue  # released by hand since discovery
        ip = str(seen.outputs.get("ip", "")) if seen else ""
        if ip and ip in in_nat:
            continue  # still translated to: shown in natIPs until the NAT lets it go
        users = [u for u in (seen.outputs.get("users", []) if seen else []) if not u.endswith(router)]
        entry = {"name": name, "ip": ip}
        if users:
            entry["usedBy"] = users[0]
        out.append(entry)
    return out


def _service_entry(result: NodeResult, egress: str) -> dict[str, Any]:
    """A listed service as observed, even when the pass stopped before reaching it."""
    obs = result.observation
    attached = bool(obs and obs.exists and obs.up_to_date and obs.ready and not obs.conflict)
    message = "" if attached else (result.message or (obs.message if obs else "") or "waiting for the gateway")
    entry: dict[str, Any] = {"name": result.node.adapter.name, "egress": egress, "ready": attached, "message": message}
    connector = obs.outputs.get("previousConnector") if obs else None
    if connector and attached:
        entry["message"] = CONNECTOR_HINT.format(service=entry["name"], connector=connector)
        entry["connector"] = connector
    return entry


def report(obj: Object, spec: EgressGatewaySpec, owned: plan.Owned, run: RunResult, *, problem: str = "") -> Outcome_:
    """The status from one pass; ``problem`` is the spec's (the pass then only observed)."""
    seen_ips = nat_ips(run)
    # Not read this pass (a failed call): the last reported IPs stand rather than a guess.
    ips = seen_ips if seen_ips is not None else list(obj.status.get("natIPs", []))
    wanted = listed_ips(run, spec)
    services = [_service_entry(run.results[f"service/{s.name}"], s.egress.value) for s in spec.services]
    attached = sum(1 for s in services if s["ready"])
    ready, reason, message = (False, INVALID_SPEC, problem) if problem else run_health(run)
    differs = sorted(ips) != sorted(ip for ip in wanted.values() if ip)
    if ready and differs:
        ready, reason, message = False, "Waiting", "GCP does not report the NAT's new IPs yet"
    if differs:
        shown = ", ".join(f"{n} ({ip or 'not reserved'})" for n, ip in wanted.items())
        message += f"; the NAT translates to {', '.join(ips) or 'no IP'} while spec.nat.addresses lists {shown}"
    elif ready:
        message = f"NAT {spec.nat.name} egresses from {', '.join(ips)}"
    known = addresses(run, spec, owned)
    draining = [e for e in known if e["state"] == AddressState.DRAINING.value]
    if ready and draining:
        message += f"; draining {', '.join(e['ip'] for e in draining)} (no new connections)"
    conds = obj.status.get("conditions", [])
    new_conds = health(conds, obj.generation, ready=ready, reason=reason, message=message)
    new_conds += capacity(conds, obj.generation, spec, run)
    nat = _obs(run, "nat")
    status: dict[str, Any] = {
        "observedGeneration": obj.generation,
        "natIPs": ips,
        "addresses": known,
        "services": services,
        "retainedAddresses": retained(run, spec, owned, ips, {e["name"] for e in draining}),
        "coverage": str(nat.outputs.get("coverage", "")) if nat else "",
        "resources": resources(run),
        "summary": {
            "natIPs": ",".join(ips),
            "draining": ",".join(e["ip"] for e in draining),
            "services": f"{attached}/{len(spec.services)}",
        },
        "conditions": new_conds,
    }
    events = action_events(run, drift=converged_before(obj.status, obj.generation))
    events += condition_events(conds, new_conds) + _notes(obj, spec, run, status)
    retry = None
    if not ready and not problem:
        retry = SETTLING if differs and run.ready else (RETRY if _retryable(run) else None)
    drain = drain_retry(known, owned.now) if not problem else None
    if drain is not None:
        retry = drain if retry is None else min(retry, drain)
    return Outcome_(status=status, events=events, retry_after=retry, figures=headroom(spec, run))


def _retryable(run: RunResult) -> bool:
    return all(r.retryable for r in run.results.values() if r.outcome is not Outcome.READY)


def _notes(obj: Object, spec: EgressGatewaySpec, run: RunResult, status: dict[str, Any]) -> list[Event]:
    """Events for what this pass noticed, each once: a grown subnet, a retained address, a replaced connector."""
    events = []
    subnet = run.results["subnet"].node.adapter
    if isinstance(subnet, SubnetAdapter) and subnet.expanded_from:
        events.append(
            Event(
                "Normal",
                "SubnetExpanded",
                f"subnetwork {spec.subnet.name} grew from {subnet.expanded_from} to {spec.subnet.ip_cidr_range}",
            )
        )
    events += _transitions(obj, spec, status["addresses"])
    before = {a.get("name") for a in obj.status.get("retainedAddresses", [])}
    for entry in status["retainedAddresses"]:
        if entry["name"] not in before:
            events.append(Event("Normal", "AddressRetained", retained_message(spec, entry["name"], entry["ip"])))
    old = {s.get("name"): s.get("connector") for s in obj.status.get("services", [])}
    for entry in status["services"]:
        if entry.get("connector") and old.get(entry["name"]) != entry["connector"]:
            events.append(Event("Normal", "ConnectorUnused", entry["message"]))
    if obj.status.get("observedGeneration") != obj.generation:
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
    return events


def _transitions(obj: Object, spec: EgressGatewaySpec, entries: list[dict[str, str]]) -> list[Event]:
    """An Event when an address starts draining or becomes active again (retention has its own, below)."""
    before = {a.get("name"): a.get("state") for a in obj.status.get("addresses", [])}
    events = []
    for entry in entries:
        was, now, name, ip = before.get(entry["name"]), entry["state"], entry["name"], entry["ip"]
        if now == was:
            continue
        if now == AddressState.DRAINING.value:
            events.append(
                Event(
                    "Normal",
                    "AddressDraining",
                    f"address {name} ({ip}) left spec.nat.addresses and drains: no new connections leave from it, "
                    f"open ones continue until GCP reports it unused or spec.nat.drainTimeout "
                    f"({spec.nat.drain_timeout}) ends at {entry.get('drainUntil', '')}; then it is retained",
                )
            )
        elif now == AddressState.ACTIVE.value and was in (AddressState.DRAINING.value, AddressState.RETAINED.value):
            events.append(
                Event("Normal", "AddressActive", f"address {name} ({ip}) is back in spec.nat.addresses and active")
            )
    return events


def release_command(spec: EgressGatewaySpec, names: list[str]) -> str:
    return f"gcloud compute addresses delete {' '.join(names)} --region {spec.region} --project {spec.project}"


def retained_message(spec: EgressGatewaySpec, name: str, ip: str) -> str:
    fate = (
        "the gateway's deletion releases it (addressDeletionPolicy Delete)"
        if spec.nat.address_deletion_policy is AddressDeletionPolicy.DELETE
        else "it outlives the gateway (addressDeletionPolicy Retain)"
    )
    return (
        f"address {name} ({ip}) is no longer in spec.nat.addresses and stays reserved (and billed) so partners' "
        f"allowlists stay valid; {fate}. List it again to reuse it, or release it with "
        f"`{release_command(spec, [name])}`"
    )


def _max_instances(run: RunResult, spec: EgressGatewaySpec) -> int:
    total = 0
    for svc in spec.services:
        seen = _obs(run, f"service/{svc.name}")
        total += int(seen.outputs.get("maxInstances", 0)) if seen and seen.exists else 0
    return total


def capacity(
    conds: list[dict[str, Any]], generation: int | None, spec: EgressGatewaySpec, run: RunResult
) -> list[dict[str, Any]]:
    """SubnetCapacity and NATCapacity: advice that never blocks Ready."""
    instances = _max_instances(run, spec)
    out = []
    subnet = _obs(run, "subnet")
    cidr = str(subnet.outputs.get("ipCidrRange", "")) if subnet and subnet.exists else spec.subnet.ip_cidr_range
    if cidr:
        ok, msg = _subnet_capacity(spec.subnet.name, cidr, instances)
        out.append(condition(conds, "SubnetCapacity", ok, "Sufficient" if ok else "Insufficient", msg, generation))
    count, min_ports = len(spec.nat.addresses), spec.nat.min_ports_per_vm
    supported = instances_supported(count, min_ports)
    extra = extra_ips_needed(instances, count, min_ports)
    status = _obs(run, "natStatus")
    if status is not None and status.exists:
        extra = max(extra, int(status.outputs.get("minExtraNatIpsNeeded", 0)))
    if extra > 0:
        msg = (
            f"NAT {spec.nat.name} needs {extra} more address(es) in spec.nat.addresses: {count} IP(s) at "
            f"minPortsPerVm {min_ports} serve {supported} instances, the services can scale to {instances}"
        )
        out.append(condition(conds, "NATCapacity", False, "Insufficient", msg, generation))
    else:
        msg = f"NAT {spec.nat.name} serves up to {supported} instances; the services can scale to {instances}"
        out.append(condition(conds, "NATCapacity", True, "Sufficient", msg, generation))
    return out


def headroom(spec: EgressGatewaySpec, run: RunResult) -> dict[str, float]:
    """The capacity conditions' figures as shares left free at the services' full scale (1 empty, 0 full)."""
    instances = _max_instances(run, spec)
    subnet = _obs(run, "subnet")
    cidr = str(subnet.outputs.get("ipCidrRange", "")) if subnet and subnet.exists else spec.subnet.ip_cidr_range
    figures = {}
    if cidr:
        usable = plan.usable_ips(cidr)
        figures[SUBNET_IP_HEADROOM] = _free(2 * instances, usable)
    supported = instances_supported(len(spec.nat.addresses), spec.nat.min_ports_per_vm)
    status = _obs(run, "natStatus")
    short = status is not None and status.exists and int(status.outputs.get("minExtraNatIpsNeeded", 0)) > 0
    figures[NAT_PORT_HEADROOM] = 0.0 if short else _free(instances, supported)
    return figures


def _free(used: int, total: int) -> float:
    return round(max(0.0, 1.0 - used / total), 4) if total > 0 else 0.0


def _subnet_capacity(name: str, cidr: str, instances: int) -> tuple[bool, str]:
    usable = plan.usable_ips(cidr)
    needed = 2 * instances
    prefix = int(cidr.split("/")[1])
    if usable < needed:
        return False, (
            f"subnet {name} ({cidr}) has {usable} usable IPs but the attached services can scale to {instances} "
            f"instances, which need about {needed}: set spec.subnet.ipCidrRange to {plan.range_for(cidr, needed)} "
            "(runnet grows the subnet in place)"
        )
    if prefix > plan.DIRECT_EGRESS_RECOMMENDED_PREFIX:
        return False, (
            f"subnet {name} ({cidr}) is smaller than the /{plan.DIRECT_EGRESS_RECOMMENDED_PREFIX} GCP recommends for "
            f"Direct VPC egress, which reserves IPs in blocks: consider "
            f"{plan.range_for(cidr, 2 ** (32 - plan.DIRECT_EGRESS_RECOMMENDED_PREFIX) - 4)}"
        )
    return True, f"subnet {name} ({cidr}) has {usable} usable IPs for up to {instances} instances"


def teardown_report(obj: Object, spec: EgressGatewaySpec, run: RunResult) -> Outcome_:
    events = teardown_events(run)
    kept = [
        r.node.adapter.name
        for r in run.results.values()
        if r.node.adapter.kind == "Address" and any(a == f"kept Address {r.node.adapter.name}" for a in r.actions)
    ]
    if kept:
        events.append(
            Event(
                "Normal",
                "AddressesRetained",
                f"kept {len(kept)} reserved NAT IP(s) ({', '.join(sorted(kept))}) so partners' allowlists stay valid "
                "(addressDeletionPolicy Retain); a gateway re-created under this name takes them back, or release "
                f"them with `{release_command(spec, sorted(kept))}`",
            )
        )
    return teardown_outcome(obj.status, obj.generation, run, events)
