"""Status as a function of what was observed: conditions (kstatus), resources, events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from runnet.engine import Outcome, RunResult

READY = "Ready"
RECONCILED = "Reconciled"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    previous: list[dict[str, Any]], type_: str, ok: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    """A condition; lastTransitionTime changes only when the status flips."""
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    since = (
        old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now()
    )
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


@dataclass
class Event:
    type: str
    """Normal or Warning."""
    reason: str
    message: str


@dataclass
class Outcome_:
    """What one reconcile pass produced for the handler to write."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    """Seconds until a retry is useful; None when converged or only a spec change can help."""


def ready_condition(
    previous: list[dict[str, Any]], run: RunResult | None, generation: int | None, *, ready_message: str
) -> dict[str, Any]:
    if run is None or run.ready:
        return condition(previous, READY, True, RECONCILED, ready_message, generation)
    problem = run.first_problem()
    assert problem is not None
    reason = _REASONS.get(problem.outcome, "Reconciling")
    node = problem.node
    message = problem.message or f"waiting for {node.adapter.kind} {node.adapter.name}"
    return condition(previous, READY, False, reason, message, generation)


_REASONS = {
    Outcome.INVALID: "InvalidSpec",
    Outcome.CONFLICT: "Conflict",
    Outcome.FAILED: "GCPError",
    Outcome.WAITING: "Waiting",
    Outcome.BLOCKED: "Waiting",
}


def resources(run: RunResult) -> list[dict[str, Any]]:
    out = []
    for result in run.results.values():
        obs = result.observation
        out.append(
            {
                "kind": result.node.adapter.kind,
                "name": result.node.adapter.name,
                "selfLink": obs.self_link if obs else "",
                "owned": bool(obs and obs.owned),
                "state": result.outcome.value,
            }
        )
    return out


def action_events(run: RunResult, *, drift: bool) -> list[Event]:
    """An event per GCP write; on an object that was Ready at its current generation, writes repair drift."""
    events = []
    for action in run.actions():
        reason = "DriftRepaired" if drift else action.split()[0].title()
        events.append(Event("Warning" if drift else "Normal", reason, action))
    return events


def converged_before(status: dict[str, Any] | None, generation: int | None) -> bool:
    """Ready at this generation already: any write now repairs a change made outside runnet."""
    return was_ready(status) and (status or {}).get("observedGeneration") == generation


def was_ready(status: dict[str, Any] | None) -> bool:
    for cond in (status or {}).get("conditions", []):
        if cond.get("type") == READY:
            return bool(cond.get("status") == "True")
    return False


def teardown_skipped(spec: object) -> Outcome_ | None:
    """The finalizer's early exits: nothing is deleted for an invalid spec (a str) or deletionPolicy Orphan."""
    if isinstance(spec, str):
        return Outcome_(status={}, events=[Event("Warning", "InvalidSpec", f"nothing deleted in GCP: {spec}")])
    if str(getattr(getattr(spec, "deletion_policy", None), "value", "")) == "Orphan":
        return Outcome_(status={}, events=[Event("Normal", "Orphaned", "deletionPolicy Orphan: GCP left as it is")])
    return None


def teardown_events(run: RunResult) -> list[Event]:
    return [Event("Normal", a.split()[0].title(), a) for a in run.actions()]


def teardown_outcome(previous: dict[str, Any], generation: int | None, run: RunResult, events: list[Event]) -> Outcome_:
    """Done (the finalizer may go), or the status saying what deletion waits for, retried soon."""
    if run.ready:
        return Outcome_(status={}, events=events)
    problem = run.first_problem()
    message = problem.message if problem else "deleting"
    conds = previous.get("conditions", [])
    status = {"conditions": [condition(conds, READY, False, "Deleting", message, generation)]}
    return Outcome_(status=status, events=events, retry_after=5.0)
