"""kopf handlers for PSCExport and PSCEndpoint, and what ties the two sides together.

Two kopf indexes: PSCExports by (namespace, name), which endpoints read their ``exportRef`` from,
and PSCEndpoints by what they target. When one side's status changes in a way the other side
shows (export Ready, a connection accepted or removed), the objects on the other side are poked
and reconcile at once (an export's endpoints once kopf's index holds the export's new status),
instead of at their next resync.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from runnet.api.common import GROUP, VERSION
from runnet.controllers import psc
from runnet.controllers.base import Object
from runnet.engine import Engine
from runnet.gcp.clients import Clients
from runnet.gcp.network import tail
from runnet.handlers.common import register_kind
from runnet.runtime import Runtime
from runnet.status import Outcome_

EXPORTS, ENDPOINTS = "pscexports", "pscendpoints"
_EXPORT_FIELDS = ("serviceAttachment", "connections")
_ENDPOINT_FIELDS = ("connectionStatus", "pscConnectionId", "serviceAttachment")


def _first(store: Any) -> Any:
    return next(iter(store), None) if store else None


class Links:
    """The two indexes (bound at start-up) and the pokes between exports and endpoints."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.exports: Mapping[Any, Any] = {}
        self.endpoints: Mapping[Any, Any] = {}
        self._poked: set[tuple[str, str]] = set()

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """ExportResolver over the PSCExport index."""
        found = _first(self.exports.get((namespace, name)))
        return found if isinstance(found, Mapping) else None

    def poke(self, plural: str, keys: Iterable[str]) -> None:
        for key in keys:
            self._poked.add((plural, key))
            self.runtime.poke(plural, key)

    def begin(self, plural: str, key: str) -> None:
        self._poked.discard((plural, key))

    def poked_meanwhile(self, plural: str, key: str) -> bool:
        """A poke that arrived during this object's reconcile (which may not have seen the change)."""
        return (plural, key) in self._poked

    def endpoints_of(self, export: str, attachment: str) -> list[str]:
        keys = [f"export:{export}"] + ([f"attachment:{tail(attachment)}"] if attachment else [])
        return sorted({ep for k in keys for ep in (self.endpoints.get(k) or [])})

    def exports_of(self, spec: Mapping[str, Any], status: Mapping[str, Any], namespace: str) -> list[str]:
        ref = (spec.get("target") or {}).get("exportRef")
        if ref:
            return [f"{ref.get('namespace') or namespace}/{ref.get('name')}"]
        attachment = tail(str(status.get("serviceAttachment") or ""))
        return [
            f"{ns}/{name}"
            for (ns, name), store in self.exports.items()
            if attachment
            and tail(str((_first(store) or {}).get("status", {}).get("serviceAttachment", ""))) == attachment
        ]


def _attachment_of(export: Any) -> str:
    status = (export or {}).get("status") or {}
    return tail(str(status.get("serviceAttachment") or ""))


def endpoint_targets(namespace: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[str]:
    """Index keys of what an endpoint targets: its export, and its attachment once known."""
    target = spec.get("target") or {}
    keys = []
    if target.get("exportRef"):
        ref = target["exportRef"]
        keys.append(f"export:{ref.get('namespace') or namespace}/{ref.get('name')}")
    attachment = target.get("serviceAttachment") or status.get("serviceAttachment")
    if attachment:
        keys.append(f"attachment:{tail(str(attachment))}")
    return keys


def _changed(before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str]) -> bool:
    ready = [
        next((c.get("status") for c in s.get("conditions", []) if c.get("type") == "Ready"), None)
        for s in (before, after)
    ]
    return ready[0] != ready[1] or any(before.get(f) != after.get(f) for f in fields if f in after)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    links = Links(runtime)
    endpoints = psc.EndpointController(links)

    @kopf.index(GROUP, VERSION, EXPORTS, id=EXPORTS, registry=registry)  # type: ignore[untyped-decorator]
    async def pscexports(**kwargs: Any) -> dict[Any, Any]:  # async: kopf would hand a sync one to a thread
        body = kwargs["body"]
        namespace, name = kwargs["namespace"], kwargs["name"]
        snapshot = {k: copy.deepcopy(dict(body.get(k) or {})) for k in ("metadata", "spec", "status")}
        before = links.get(namespace, name)
        if before is not None and _changed(before.get("status") or {}, snapshot["status"], _EXPORT_FIELDS):
            changed_exports.add((namespace, name))  # its endpoints are poked once the index holds this
        return {(namespace, name): snapshot}

    changed_exports: set[tuple[str, str]] = set()

    @kopf.on.event(GROUP, VERSION, EXPORTS, registry=registry)  # type: ignore[untyped-decorator]
    async def export_seen(namespace: str | None, name: str, status: kopf.Status, **_: Any) -> None:
        """kopf calls this after indexing the event: an endpoint poked now reads the export's new status (a poke
        from the export's own pass would come before kopf has even written that status)."""
        if (namespace or "", name) in changed_exports:
            changed_exports.discard((namespace or "", name))
            attachment = str(status.get("serviceAttachment") or "")
            links.poke(ENDPOINTS, links.endpoints_of(f"{namespace or ''}/{name}", attachment))

    @kopf.index(GROUP, VERSION, ENDPOINTS, id=ENDPOINTS, registry=registry)  # type: ignore[untyped-decorator]
    async def pscendpoints(**kwargs: Any) -> dict[Any, Any]:
        namespace = kwargs["namespace"]
        keys = endpoint_targets(namespace, kwargs["spec"], kwargs["status"])
        return {key: f"{namespace}/{kwargs['name']}" for key in keys}

    def bind(kwargs: dict[str, Any]) -> None:
        """kopf's indexes are live views, passed to resource handlers only: keep them from the first call."""
        if EXPORTS in kwargs and ENDPOINTS in kwargs:
            links.exports, links.endpoints = kwargs[EXPORTS], kwargs[ENDPOINTS]

    async def export_reconcile(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
        links.begin(EXPORTS, obj.key)
        outcome = await psc.reconcile_export(obj, engine, clients)
        return _again_if_poked(links, EXPORTS, obj, outcome)  # its endpoints are poked by the index (above)

    async def export_finalize(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
        outcome = await psc.finalize_export(obj, engine, clients)
        if outcome.retry_after is None:
            links.poke(ENDPOINTS, links.endpoints_of(obj.key, str(obj.status.get("serviceAttachment") or "")))
        return outcome

    async def endpoint_reconcile(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
        links.begin(ENDPOINTS, obj.key)
        outcome = await endpoints.reconcile(obj, engine, clients)
        if _changed(obj.status, outcome.status, _ENDPOINT_FIELDS):
            links.poke(EXPORTS, links.exports_of(obj.spec, outcome.status, obj.namespace))
        return _again_if_poked(links, ENDPOINTS, obj, outcome)

    async def endpoint_finalize(obj: Object, engine: Engine, clients: Clients) -> Outcome_:
        outcome = await endpoints.finalize(obj, engine, clients)
        if outcome.retry_after is None:
            links.poke(EXPORTS, links.exports_of(obj.spec, obj.status, obj.namespace))
        return outcome

    register_kind(registry, runtime, EXPORTS, export_reconcile, export_finalize, bind=bind)
    register_kind(registry, runtime, ENDPOINTS, endpoint_reconcile, endpoint_finalize, bind=bind)


def _again_if_poked(links: Links, plural: str, obj: Object, outcome: Outcome_) -> Outcome_:
    """Reconcile again at the next tick if the other side poked while this pass was running."""
    if links.poked_meanwhile(plural, obj.key):
        outcome.retry_after = 0.0
    return outcome
