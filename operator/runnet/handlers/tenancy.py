"""kopf wiring for ProjectBinding: an index the other kinds' handlers read, pokes, and the binding's status.

A binding is never reconciled against GCP: it only says who may. When one appears, changes or goes,
the objects of every namespace it names (before and after) are reconciled at the next tick, so a
revoked project stops being managed within seconds and a restored one resumes. Its status counts
the objects whose last pass went through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from runnet.api.common import GROUP, VERSION
from runnet.runtime import Runtime
from runnet.tenancy import Binding, binding_status

PLURAL = "projectbindings"
STATUS_EVERY = 30.0
"""Seconds between refreshes of the bindings' statuses when nothing woke the loop sooner."""
STATUS_SETTLE = 0.5
"""Seconds a wake-up waits for more changes, so that a burst of passes makes one write per binding."""


async def show_statuses(runtime: Runtime) -> None:
    """Every binding's status, rewritten only where it changed. A loop beside kopf rather than a kopf timer: a
    timer would put a finalizer on every binding, and deleting a binding must never wait for the operator."""
    while True:
        # Cleared before the statuses are computed, not after: a pass that records a grant while a write below
        # awaits sets it again, and the wait further down returns at once instead of 30 s later.
        runtime.bindings_changed.clear()
        for store in list(runtime.tenancy.index.values()):
            for body in list(store):
                new = binding_status(body, runtime.grants, runtime.tenancy.mode)
                current = dict(body.get("status", {}) or {})
                if new and any(current.get(k) != v for k, v in new.items()):
                    name = body["metadata"]["name"]
                    await runtime.status.patch(PLURAL, None, name, new)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.bindings_changed.wait(), STATUS_EVERY)
        await asyncio.sleep(STATUS_SETTLE)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    resource = (GROUP, VERSION, PLURAL)
    seen: dict[str, Any] = {}
    """name -> the generation last seen: a status write is not a change of who may manage what."""

    @kopf.index(*resource, id=PLURAL, registry=registry)  # type: ignore[untyped-decorator]
    def projectbindings(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {
            name: {
                "metadata": dict(body.get("metadata", {})),
                "spec": dict(body.get("spec", {}) or {}),
                "status": dict(body.get("status", {}) or {}),
            }
        }

    def bind(kwargs: dict[str, Any]) -> None:
        if PLURAL in kwargs:
            runtime.tenancy.index = kwargs[PLURAL]

    @kopf.on.event(*resource, registry=registry)  # type: ignore[untyped-decorator]
    def changed(type: str | None = None, **kwargs: Any) -> None:
        """A binding created, edited or deleted: the objects of the namespaces it names now, and of those whose
        last pass went through it, look again at the next tick."""
        bind(kwargs)
        body = (kwargs.get("event") or {}).get("object") or {}
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        if type == "DELETED":
            seen.pop(name, None)
        elif seen.get(name) == meta.get("generation"):
            return
        else:
            seen[name] = meta.get("generation")
        found = Binding.of(body)
        namespaces = set(found.namespaces) if found else set()
        namespaces |= {key.split("/", 1)[0] for (_, key), used in runtime.grants.items() if used == name}
        runtime.poke_namespaces(namespaces)
        runtime.bindings_changed.set()

    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)  # type: ignore[untyped-decorator]
    async def start_statuses(**_: Any) -> None:
        tasks.append(asyncio.create_task(show_statuses(runtime), name="projectbinding-statuses"))

    @kopf.on.cleanup(registry=registry)  # type: ignore[untyped-decorator]
    async def stop_statuses(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        tasks.clear()
