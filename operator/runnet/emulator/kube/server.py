"""``KubeEmulator``: kmock's KubernetesEmulator made strict enough to stand in for a real API server.

kmock provides the request model, the request log and its DSL (``emu['patch'] << 500`` to inject
a fault; user reactions still win), and ``emu.objects`` with every stored version. Everything the
API server would do by itself is done here instead of kmock's loose fallbacks: see TESTING.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from pathlib import Path
from typing import Any, NoReturn

import attrs
import kmock
from aiohttp import web

from runnet.emulator.kube import crds, discovery, openapi, paths, protobuf, tables
from runnet.emulator.kube.errors import (
    ApiError,
    PageNotFound,
    bad_request,
    expired,
    internal,
    method_not_allowed,
    path_not_found,
)
from runnet.emulator.kube.objects import Objects, WriteOptions
from runnet.emulator.kube.registry import Registry, ResourceType
from runnet.emulator.kube.store import Store
from runnet.emulator.kube.watch import Watcher, WatchRequest

log = logging.getLogger(__name__)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_JSON = "application/json"


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """An in-memory Kubernetes API server: ``await emu.start()`` → base URL; ``await emu.stop()``."""

    crds_dir: str | Path | None = None
    auto_namespaces: bool = False  # True: create a namespace when the first object lands in it (no server does)
    history_size: int = 10000  # watch events kept for resuming; older revisions get 410 Gone
    request_log_size: int = 10000
    registry: Registry = attrs.field(factory=Registry, init=False)
    store: Store = attrs.field(init=False)
    api: Objects = attrs.field(init=False)
    base_url: str = attrs.field(default="", init=False)
    _runner: web.BaseRunner | None = attrs.field(default=None, init=False)
    _stopping: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _watcher: Watcher = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # kmock's loose fallback reactions are deliberately not registered: see _serve().
        self.store = Store(self.objects, self.history_size)
        self.api = Objects(self.registry, self.store, auto_namespaces=self.auto_namespaces)
        self.api.on_crd = self._crd_changed
        self._watcher = Watcher(self.store, self.api, self._stopping)
        for name in DEFAULT_NAMESPACES:
            self.api.ensure_namespace(name)
        if self.crds_dir is not None:
            for crd in crds.load_dir(self.crds_dir):
                self.apply_crd(crd)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        await self.__aenter__()  # kmock's DSL context: live streams, error capture
        server = web.Server(self, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.base_url = f"http://{host}:{sockets[0].getsockname()[1]}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # ends watch streams, which would otherwise hold the shutdown
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.__aexit__(None, None, None)

    # -- conveniences for tests and the CLI ----------------------------------------------------

    def apply_crd(self, crd: dict[str, Any]) -> None:
        """Install (or replace) a CRD as ``kubectl apply`` would; raises ApiError if it is invalid."""
        rt = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert rt is not None
        name = crd.get("metadata", {}).get("name", "")
        current = self.store.get(rt.key, None, name)
        if current is None:
            self.api.create(rt, None, crd, WriteOptions())
        else:
            body = {
                **crd,
                "metadata": {**crd.get("metadata", {}), "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            self.api.update(rt, None, name, body, WriteOptions())

    def get_object(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.store.get((group, plural), namespace, name)

    def compact(self) -> None:
        """Drop the watch history, as etcd compaction does: resuming from older versions gets 410."""
        self.store.compact()

    def _crd_changed(self, crd: dict[str, Any], deleted: bool) -> None:
        gone = self.registry.remove_crd(crd["metadata"]["name"])
        if deleted:
            for rt in {rt.key: rt for rt in gone}.values():
                self.store.drop_type(rt)
            return
        for rt in crds.types_of(crd):
            self.registry.add(rt)

    # -- HTTP ----------------------------------------------------------------------------------

    async def __call__(self, raw: web.BaseRequest) -> web.StreamResponse:
        body = await raw.read()
        request = self._parse(raw, body)
        self._requests.append(request)
        if len(self._requests) > self.request_log_size:
            del self._requests[: len(self._requests) - self.request_log_size]
        try:
            if self._payloads:  # reactions declared with kmock's DSL come first (fault injection)
                with contextlib.suppress(NotImplementedError):
                    return await kmock.RawHandler._handle(self, request)
            return await self._serve(raw, body)
        except ApiError as exc:
            return _json(exc.status_body(), exc.code)
        except PageNotFound:
            return web.Response(text=PageNotFound.text, status=404, content_type="text/plain", charset="utf-8")
        except kmock.KubernetesError as exc:
            return await self._render_error(exc)
        except Exception as exc:  # a bug here: answer as the server would, keep it for the test
            log.exception("kube emulator failed on %s %s", raw.method, raw.path_qs)
            if self._errors:
                self._errors[-1].append(exc)
            return _json(internal(repr(exc)).status_body(), 500)

    def _parse(self, raw: web.BaseRequest, body: bytes) -> kmock.Request:
        target = paths.parse(raw.path)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        return kmock.Request(
            id=len(self._requests),
            method=raw.method,
            url=raw.url,
            params=dict(raw.query),
            headers=dict(raw.headers),
            cookies=dict(raw.cookies),
            body=body,
            text=body.decode("utf-8", "replace"),
            data=data,
            action=paths.action(raw.method, target, raw.query.get("watch") in ("true", "1")),
            resource=target.resource if target else None,
            namespace=target.namespace if target else None,
            name=target.name if target else None,
            subresource=target.subresource if target else None,
            raw_request=raw,
        )

    async def _serve(self, raw: web.BaseRequest, body: bytes) -> web.StreamResponse:
        target = paths.parse(raw.path)
        if target is not None:
            return await self._resource(raw, target, body)
        if raw.method != "GET":
            raise method_not_allowed()
        return self._info(raw.path.rstrip("/") or "/", raw.headers.get("Accept", ""))

    def _info(self, path: str, accept: str) -> web.StreamResponse:
        """Everything that is not a resource: version, health, discovery, OpenAPI."""
        parts = path.strip("/").split("/")
        found: Any = None
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/":
            found = discovery.root_paths(self.registry)
        elif path == "/version":
            found = discovery.KUBE_VERSION
        elif path in ("/api", "/apis"):
            version = discovery.aggregated_wanted(accept)
            if version:
                body = discovery.aggregated(self.registry, path == "/api", version)
                return _json(body, content_type=discovery.aggregated_content_type(version))
            address = self.base_url.split("://", 1)[-1]
            found = discovery.api_versions(address) if path == "/api" else discovery.group_list(self.registry)
        elif parts[0] == "api" and len(parts) == 2:
            found = discovery.resource_list(self.registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            found = discovery.group(self.registry, parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            found = discovery.resource_list(self.registry, parts[1], parts[2])
        elif path == "/openapi/v3":
            found = openapi.index(self.registry)
        elif parts[:2] == ["openapi", "v3"]:
            group, version = (
                ("", parts[3]) if parts[2:3] == ["api"] else (parts[3], parts[4]) if len(parts) > 4 else ("", "")
            )
            found = openapi.document(self.registry, group, version)
        if found is None:
            self._not_found(parts[1] if parts[0] == "apis" and len(parts) > 1 else "" if parts[0] == "api" else None)
        return _json(found)

    def _not_found(self, group: str | None) -> NoReturn:
        """A built-in group (or the core API) answers a NotFound Status; the rest is the fallback 404 page."""
        if group is not None and group in self.registry.builtin_groups:
            raise path_not_found()
        raise PageNotFound()

    async def _resource(self, raw: web.BaseRequest, t: paths.Target, body: bytes) -> web.StreamResponse:
        rt = self.registry.get(t.group, t.version, t.plural)
        if rt is None or (t.namespace is not None and not rt.namespaced):
            self._not_found(t.group)
        if t.subresource is not None and not (t.subresource == "status" and rt.status_subresource):
            self._not_found(t.group)
        params, method = dict(raw.query), raw.method
        view = tables.wanted_view(raw.headers.get("Accept", ""))
        # ?watch=true watches collections only: on one object's path it is a plain GET (the deprecated
        # /watch/ prefix, or a fieldSelector on metadata.name, watches one object).
        if method == "GET" and (t.watch or (t.name is None and params.get("watch") in ("true", "1"))):
            return await self._watcher.stream(raw, WatchRequest(rt, t.namespace, t.name, params, view))
        if method == "GET":
            return self._read(rt, t, params, view)
        validation = params.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{validation}"')
        opts = WriteOptions(params.get("dryRun") == "All", validation, t.subresource, params.get("fieldManager", ""))
        content_type = raw.headers.get("Content-Type", "")
        if method == "POST" and t.name is None and t.subresource is None:
            outcome = self.api.create(rt, t.namespace, _body(body, content_type), opts)
        elif method == "PUT" and t.name:
            outcome = self.api.update(rt, t.namespace, t.name, _body(body, content_type), opts)
        elif method == "PATCH" and t.name:
            outcome = self.api.patch(rt, t.namespace, t.name, body, content_type, opts)
        elif method == "DELETE" and t.name and t.subresource is None:
            options = {} if not body or content_type.startswith(protobuf.CONTENT_TYPE) else _body(body)
            outcome = self.api.delete(rt, t.namespace, t.name, options, opts)
        elif method == "DELETE" and t.name is None:
            return _json(self._delete_collection(rt, t, params, opts))
        else:
            raise method_not_allowed()
        return _json(outcome.obj, outcome.code, outcome.warnings)

    def _read(
        self, rt: ResourceType, t: paths.Target, params: dict[str, str], view: tuple[str, str] | None
    ) -> web.Response:
        rv = str(self.store.rv)
        if t.name:
            obj = self.api.read(rt, t.namespace, t.name)
            if view and view[0] == "Table":
                return _json(
                    tables.table(rt, [obj], rv, include=params.get("includeObject", "Metadata"), version=view[1])
                )
            return _json(tables.partial(obj, view[1]) if view else obj)
        items = self.api.select(rt, t.namespace, self.api.matcher(rt, params, t.namespace, None))
        items, more = self._page(items, params)
        if view and view[0] == "Table":
            found = tables.table(rt, items, rv, include=params.get("includeObject", "Metadata"), version=view[1])
            found["metadata"].update(more)
            return _json(found)
        if view:
            partials = [tables.partial(o, view[1]) for o in items]
            meta = {"resourceVersion": rv, **more}
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": f"meta.k8s.io/{view[1]}",
                    "metadata": meta,
                    "items": partials,
                }
            )
        return _json(
            {
                "apiVersion": rt.api_version,
                "kind": rt.list_kind,
                "metadata": _list_meta(rt, rv, more),
                "items": items if rt.custom else [_untyped(i) for i in items],
            }
        )

    def _page(self, items: list[dict[str, Any]], params: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``limit``/``continue`` paging in key order; the token remembers the list's revision."""

        def key(o: dict[str, Any]) -> list[str]:
            return [o["metadata"].get("namespace") or "", o["metadata"]["name"]]

        if params.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(params["continue"]))
                after, rv = token["start"], int(token["rv"])
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
                ) from exc
            if rv < self.store.compacted:
                raise expired(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter."
                )
            items = [o for o in items if key(o) > after]
        limit = int(params.get("limit") or 0)
        if limit <= 0 or len(items) <= limit:
            return items, {}
        page = items[:limit]
        token = {"rv": self.store.rv, "start": key(page[-1])}
        more = {
            "continue": base64.urlsafe_b64encode(json.dumps(token).encode()).decode(),
            "remainingItemCount": len(items) - limit,
        }
        return page, more

    def _delete_collection(
        self, rt: ResourceType, t: paths.Target, params: dict[str, str], opts: WriteOptions
    ) -> dict[str, Any]:
        match = self.api.matcher(rt, params, t.namespace, None)
        gone = []
        for obj in self.api.select(rt, t.namespace, match):
            meta = obj["metadata"]
            outcome = self.api.delete(rt, meta.get("namespace"), meta["name"], {}, opts)
            gone.append(obj if outcome.obj.get("kind") == "Status" else outcome.obj)
        return {
            "apiVersion": rt.api_version,
            "kind": rt.list_kind,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": gone,
        }


def _list_meta(rt: ResourceType, rv: str, more: dict[str, Any]) -> dict[str, Any]:
    """A list's metadata: custom resource lists (unstructured) always carry ``continue``, empty on the last page."""
    return {"continue": "", "resourceVersion": rv, **more} if rt.custom else {"resourceVersion": rv, **more}


def _untyped(obj: dict[str, Any]) -> dict[str, Any]:
    """An item of a built-in type's list: typed lists leave out each item's kind and apiVersion."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _body(raw: bytes, content_type: str = _JSON) -> Any:
    if content_type.startswith(protobuf.CONTENT_TYPE):
        return protobuf.decode(raw)
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from exc


def _json(
    body: Any, status: int = 200, warnings: list[str] | tuple[str, ...] = (), content_type: str = _JSON
) -> web.Response:
    response = web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": content_type})
    for warning in warnings:
        response.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return response
