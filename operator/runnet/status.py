"""Status as a function of what was observed: conditions (kstatus), resources, events.

Every object carries ``Ready``, and while they are True, ``Reconciling`` (runnet is still working:
creating, waiting on GCP, retrying a transient error) or ``Stalled`` (only a person can fix it).
Those two are "abnormal-true" as kstatus, Flux and the Argo CD health scripts read them: absent
when False. A Warning Event is posted when a condition enters or changes a warning state, once,
not on every pass.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from runnet.engine import Outcome, RunResult

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
RECONCILED = "Reconciled"
INVALID_SPEC = "InvalidSpec"
CONFLICT = "Conflict"
GCP_ERROR = "GCPError"
PERMISSION_DENIED = "PermissionDenied"
WAITING = "Waiting"
IMPERSONATION_DENIED = "ImpersonationDenied"
RATE_LIMITED = "RateLimited"
"""GCP refused a call because the project's rate quota for the minute is spent: retried, not a permission."""
STALL_REASONS = frozenset(
    {INVALID_SPEC, CONFLICT, PERMISSION_DENIED, IMPERSONATION_DENIED, "ProjectNotBound", "ConnectionRejected"}
)
"""Ready=False reasons only a person can fix: Stalled (kstatus Failed, Argo CD Degraded)."""
APPLYING = "Applying"
QUIET_REASONS = frozenset({WAITING, APPLYING, "Deleting", "WaitingForExport", "ConnectionPending"})
"""Ready=False reasons that are progress, not warnings: no Event."""


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


def health(
    previous: list[dict[str, Any]], generation: int | None, *, ready: bool, reason: str, message: str
) -> list[dict[str, Any]]:
    """Ready, with Reconciling or Stalled beside it while not ready (same reason and message)."""
    conds = [condition(previous, READY, ready, reason, message, generation)]
    if not ready:
        kind = STALLED if reason in STALL_REASONS else RECONCILING
        conds.append(condition(previous, kind, True, reason, message, generation))
    return conds


def invalid(previous: dict[str, Any], generation: int | None, message: str, reason: str = INVALID_SPEC) -> Outcome_:
    """The outcome of a pass that stopped before GCP: only the conditions change, nothing was written."""
    conds = previous.get("conditions", [])
    new = health(conds, generation, ready=False, reason=reason, message=message)
    new += [c for c in conds if c.get("type") not in (READY, RECONCILING, STALLED)]
    return Outcome_(status={"observedGeneration": generation, "conditions": new}, events=condition_events(conds, new))


def applying(previous: dict[str, Any], generation: int | None) -> dict[str, Any] | None:
    """The status to show while a pass works on a generation it has not reported yet (None: nothing new).

    A pass that creates things can take a while (each GCP operation is waited on); meanwhile the
    object says it is Reconciling this generation, as kstatus, Flux and Argo CD expect.
    """
    if generation is None or previous.get("observedGeneration") == generation:
        return None
    conds = previous.get("conditions", [])
    message = f"runnet is applying generation {generation} to GCP"
    new = health(conds, generation, ready=False, reason=APPLYING, message=message)
    new += [c for c in conds if c.get("type") not in (READY, RECONCILING, STALLED)]
    return {"observedGeneration": generation, "conditions": new}


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
    figures: dict[str, float] = field(default_factory=dict)
    """Numbers of this pass that are no status field, for metrics (metric name -> value)."""


def failure_reason(code: int, gcp_reason: str) -> str:
    """The Ready reason for a failed GCP call: a missing permission or identity stalls, the rest is retried."""
    if gcp_reason == "impersonationDenied":
        return IMPERSONATION_DENIED
    if gcp_reason == "rateLimitExceeded":
        return RATE_LIMITED
    if code == 403:
        return PERMISSION_DENIED
    return GCP_ERROR


def run_health(run: RunResult) -> tuple[bool, str, str]:
    """(ready, reason, message) from the engine's pass alone."""
    if run.ready:
        return True, RECONCILED, ""
    problem = run.first_problem()
    assert problem is not None
    node = problem.node
    obs = problem.observation
    reason = _REASONS.get(problem.outcome, WAITING)
    if problem.outcome in (Outcome.WAITING, Outcome.BLOCKED) and obs is not None and obs.reason:
        reason = obs.reason
    if problem.outcome is Outcome.FAILED:
        reason = failure_reason(problem.code, problem.reason)
    message = problem.message or f"waiting for {node.adapter.kind} {node.adapter.name}"
    return False, reason, message


_REASONS = {
    Outcome.INVALID: INVALID_SPEC,
    Outcome.CONFLICT: CONFLICT,
    Outcome.FAILED: GCP_ERROR,
    Outcome.WAITING: WAITING,
    Outcome.BLOCKED: WAITING,
}


def warning(cond: dict[str, Any]) -> bool:
    """Whether a condition describes something a person should hear about."""
    if cond.get("type") in (RECONCILING, STALLED):
        return False  # they repeat Ready's reason and message
    if cond.get("status") == "True":
        return False
    return cond.get("type") != READY or cond.get("reason") not in QUIET_REASONS


def condition_events(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[Event]:
    """One Warning Event per condition that entered a warning state or changed its story while in one."""
    before = {c.get("type"): c for c in previous}
    events = []
    for cond in current:
        if not warning(cond):
            continue
        old = before.get(cond["type"])
        if old and (old.get("status"), old.get("reason"), old.get("message")) == (
            cond["status"],
            cond["reason"],
            cond["message"],
        ):
            continue
        events.append(Event("Warning", cond["reason"], cond["message"]))
    return events


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
        return Outcome_(status={}, events=[Event("Warning", INVALID_SPEC, f"nothing deleted in GCP: {spec}")])
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
    status = {"conditions": health(conds, generation, ready=False, reason="Deleting", message=message)}
    return Outcome_(status=status, events=events, retry_after=5.0)
