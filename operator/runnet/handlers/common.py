"""kopf wiring shared by every kind: the same reconcile from create, update, resume and a timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from runnet import metrics
from runnet.api.common import GROUP, VERSION
from runnet.controllers.base import Object
from runnet.engine import Engine
from runnet.gcp.clients import Clients
from runnet.gcp.inventory import ACCEPTED_AGE
from runnet.runtime import Runtime
from runnet.status import Outcome_, applying, invalid
from runnet.tenancy import NOT_BOUND, Grant

TICK = 0.5
"""Seconds kopf pauses a resync after it returned, before it waits again for the object's next due time."""

Reconcile = Callable[[Object, Engine, Clients], Awaitable[Outcome_]]


def as_object(body: kopf.Body) -> Object:
    meta = body.get("metadata", {})
    return Object(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        generation=meta.get("generation"),
        spec=dict(body.get("spec", {}) or {}),
        status=dict(body.get("status", {}) or {}),
    )


def _changed(current: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in new.items())


def write(body: kopf.Body, patch: kopf.Patch, outcome: Outcome_) -> None:
    """Patch the status (only when it differs) and post the events."""
    if _changed(dict(body.get("status", {}) or {}), outcome.status):
        patch.status.update(outcome.status)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def _ready_message(outcome: Outcome_, default: str) -> str:
    for cond in outcome.status.get("conditions", []):
        if cond.get("type") == "Ready":
            return str(cond.get("message") or default)
    return default


UNBOUND_RETRY = 30.0
"""Seconds between checks whether a deleted object's project is bound again (a binding change also pokes it)."""


def granted(runtime: Runtime, plural: str, obj: Object) -> Grant | str:
    """The tenancy decision for an object, remembered for its binding's status (what uses it)."""
    kind = next((k for k, p in _KINDS.items() if p == plural), plural)
    grant = runtime.tenancy.grant(obj.namespace, str(obj.spec.get("project", "")), kind)
    runtime.use_grant(plural, obj.key, "" if isinstance(grant, str) else grant.binding)
    return grant


_KINDS = {"EgressGateway": "egressgateways", "PSCExport": "pscexports", "PSCEndpoint": "pscendpoints"}


def register_kind(
    registry: kopf.OperatorRegistry,
    runtime: Runtime,
    plural: str,
    reconcile: Reconcile,
    finalize: Reconcile,
    *,
    bind: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """``bind`` sees every handler's keyword arguments first (kopf passes indexes only to those)."""
    resource = (GROUP, VERSION, plural)

    def see(kwargs: dict[str, Any]) -> None:
        if "projectbindings" in kwargs:
            runtime.tenancy.index = kwargs["projectbindings"]
        if bind is not None:
            bind(kwargs)

    async def converge(body: kopf.Body, patch: kopf.Patch, *, if_due: bool = False) -> None:
        """``if_due``: a resync, which does nothing if the pass it may have waited behind made it not due."""
        uid = body.get("metadata", {}).get("uid", "")
        async with runtime.lock(uid):
            if runtime.is_deleting(uid):
                return  # a resync that waited behind the teardown
            obj = as_object(body)  # kopf's body is live: as it is now, not before the wait
            if if_due and not runtime.due(plural, obj.key):
                return
            # How old a snapshot of GCP this pass may read from (see runtime.accepted_age).
            ACCEPTED_AGE.set(runtime.accepted_age(plural, obj.key, resync=if_due))
            start = time.perf_counter()
            grant = granted(runtime, plural, obj)
            if isinstance(grant, str):
                outcome = invalid(obj.status, obj.generation, grant, reason=NOT_BOUND)  # and no GCP call at all
            else:
                progress = applying(obj.status, obj.generation)
                shown: asyncio.Task[None] | None = None
                if progress is not None and not runtime.has_reported(uid, obj.generation):
                    # Shown only: the pass compares with what was there before (Events, transition times). Written
                    # while GCP works (not before: 100 objects at once would queue for the API server first),
                    # and done before the handler returns, so that the pass's own status lands after it.
                    shown = asyncio.create_task(runtime.status.patch(plural, obj.namespace, obj.name, progress))
                try:
                    outcome = await reconcile(obj, runtime.engine, runtime.clients_for(grant))
                except Exception:
                    runtime.metrics.failed(plural, time.perf_counter() - start)
                    raise
                finally:
                    if shown is not None:
                        await shown
            # Still under the lock: a resync waiting behind this pass sees when the object is due next.
            runtime.schedule(plural, obj.key, outcome.retry_after)
            runtime.reported(uid, obj.generation)
        write(body, patch, outcome)
        written = {**obj.status, **outcome.status}  # as the status patch merges it
        seconds = time.perf_counter() - start
        runtime.metrics.reconciled(plural, obj.key, written, outcome.figures, seconds, metrics.result_of(written))

    @kopf.on.resume(*resource, registry=registry)  # type: ignore[untyped-decorator]
    @kopf.on.create(*resource, registry=registry)  # type: ignore[untyped-decorator]
    @kopf.on.update(*resource, registry=registry, field="spec")  # type: ignore[untyped-decorator]
    async def changed(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        see(kwargs)
        await converge(body, patch)

    @kopf.timer(*resource, registry=registry, interval=TICK, initial_delay=TICK)  # type: ignore[untyped-decorator]
    async def resync(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        """Drift repair every resync interval; sooner while not converged or when a related object pokes it (the
        wait ends at once then, instead of at a next tick)."""
        see(kwargs)
        if not await runtime.until_due(plural, as_object(body).key, kwargs["stopped"]):
            return  # being deleted, or the operator stops
        await converge(body, patch, if_due=True)

    @kopf.on.delete(*resource, registry=registry)  # type: ignore[untyped-decorator]
    async def deleted(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        see(kwargs)
        obj = as_object(body)
        runtime.deleting(obj.uid)
        grant = granted(runtime, plural, obj)
        if isinstance(grant, str) and obj.spec.get("deletionPolicy") != "Orphan":
            # Deleting is changing GCP too: it waits for a binding (an Orphan deletion touches nothing).
            message = (
                f"{grant}; until then runnet deletes nothing in GCP and the object stays (or set "
                "spec.deletionPolicy: Orphan to let it go and leave GCP as it is)"
            )
            write(body, patch, invalid(obj.status, obj.generation, message, reason=NOT_BOUND))
            raise kopf.TemporaryError(message, delay=UNBOUND_RETRY)
        clients = runtime.clients if isinstance(grant, str) else runtime.clients_for(grant)
        start = time.perf_counter()
        async with runtime.lock(obj.uid):
            try:
                outcome = await finalize(obj, runtime.engine, clients)
            except Exception:
                runtime.metrics.failed(plural, time.perf_counter() - start)
                raise
        write(body, patch, outcome)
        done = outcome.retry_after is None
        runtime.metrics.teardown(plural, time.perf_counter() - start, done=done)
        if not done:
            raise kopf.TemporaryError(_ready_message(outcome, "deleting"), delay=outcome.retry_after)
        runtime.forget(obj.uid)
        runtime.forget_watcher(next(k for k, p in _KINDS.items() if p == plural), obj.namespace, obj.name)
        runtime.use_grant(plural, obj.key, None)
        runtime.metrics.forget(plural, obj.key)
