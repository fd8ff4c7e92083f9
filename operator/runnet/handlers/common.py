"""kopf wiring shared by every kind: the same reconcile from create, update, resume and a timer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from runnet.api.common import GROUP, VERSION
from runnet.controllers.base import Object
from runnet.engine import Engine
from runnet.gcp.clients import Clients
from runnet.runtime import Runtime
from runnet.status import Outcome_, applying

TICK = 2.0
"""Seconds between checks whether an object is due for a resync (a check costs nothing)."""

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
        if bind is not None:
            bind(kwargs)

    async def converge(body: kopf.Body, patch: kopf.Patch) -> None:
        obj = as_object(body)
        async with runtime.lock(obj.uid):
            if runtime.is_deleting(obj.uid):
                return  # a resync that waited behind the teardown
            progress = applying(obj.status, obj.generation)
            if progress is not None:
                # Shown only: the pass compares with what was there before (Events, transition times).
                await runtime.status.patch(plural, obj.namespace, obj.name, progress)
            outcome = await reconcile(obj, runtime.engine, runtime.clients)
        runtime.schedule(plural, obj.key, outcome.retry_after)
        write(body, patch, outcome)

    @kopf.on.resume(*resource, registry=registry)  # type: ignore[untyped-decorator]
    @kopf.on.create(*resource, registry=registry)  # type: ignore[untyped-decorator]
    @kopf.on.update(*resource, registry=registry, field="spec")  # type: ignore[untyped-decorator]
    async def changed(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        see(kwargs)
        await converge(body, patch)

    @kopf.timer(*resource, registry=registry, interval=TICK, initial_delay=TICK)  # type: ignore[untyped-decorator]
    async def resync(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        """Drift repair every resync interval; sooner while not converged or when a related object pokes it."""
        see(kwargs)
        obj = as_object(body)
        if not runtime.due(plural, obj.key):
            return
        await converge(body, patch)

    @kopf.on.delete(*resource, registry=registry)  # type: ignore[untyped-decorator]
    async def deleted(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        see(kwargs)
        obj = as_object(body)
        runtime.deleting(obj.uid)
        async with runtime.lock(obj.uid):
            outcome = await finalize(obj, runtime.engine, runtime.clients)
        write(body, patch, outcome)
        if outcome.retry_after is not None:
            raise kopf.TemporaryError(_ready_message(outcome, "deleting"), delay=outcome.retry_after)
        runtime.forget(obj.uid)
