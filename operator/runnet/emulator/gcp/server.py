"""The GCP emulator's HTTP server: routing, request log, faults, IAM checks, operation endpoints.

Resource kinds live in their own modules (``compute_network``, ``compute_lb``, ``compute_psc``,
``run``); each exposes ``register(emu)`` that adds its routes with ``emu.route(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.compute_region import check_region
from runnet.emulator.gcp.config import EmulatorConfig
from runnet.emulator.gcp.errors import GCPError, permission_denied
from runnet.emulator.gcp.operations import (
    INJECTED_OPERATION_ERROR,
    Apply,
    Operation,
    Operations,
    compute_operation_body,
    render_compute,
    render_run,
)
from runnet.emulator.gcp.store import Resource, Store
from runnet.emulator.threads import ServerThread

Api = Literal["compute", "run"]
Handler = Callable[["Call"], Awaitable[Any]]

COMPUTE_PREFIX = "/compute/v1/projects/{project}"
RUN_PREFIX = "/v2/projects/{project}/locations/{location}"


@dataclass
class LogEntry:
    """One request as the emulator saw it: what tests assert on (e.g. "zero writes")."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    method_id: str
    permission: str
    mutating: bool
    api: Api
    request_body: Any
    response_body: Any
    at: float = field(default_factory=time.time)


class RequestLog:
    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self._lock = threading.Lock()

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def snapshot(self) -> list[LogEntry]:
        with self._lock:
            return list(self.entries)

    def writes(self) -> list[LogEntry]:
        """Mutating calls that were accepted or rejected: anything that tried to change GCP."""
        return [e for e in self.snapshot() if e.mutating]

    def reads(self) -> list[LogEntry]:
        return [e for e in self.snapshot() if not e.mutating]


@dataclass
class Route:
    method: str
    pattern: str
    method_id: str
    """The discovery method id (``compute.routers.patch``), used for faults and schema checks."""
    permission: str
    mutating: bool
    api: Api
    handler: Handler


class Call:
    """One request, parsed: what a handler needs, with helpers to answer in GCP's shapes."""

    def __init__(self, emu: GCPEmulator, route: Route, request: web.Request, body: Any) -> None:
        self.emu = emu
        self.route = route
        self.request = request
        self.params: dict[str, str] = dict(request.match_info)
        self.query: dict[str, str] = dict(request.query)
        self.body: Any = body

    @property
    def project(self) -> str:
        return self.params["project"]

    @property
    def region(self) -> str:
        return self.params.get("region") or self.params.get("location", "")

    @property
    def int_enums(self) -> bool:
        """google-cloud-run asks for integer enums with ``$alt=json;enum-encoding=int``."""
        return "enum-encoding=int" in self.query.get("$alt", "")

    def compute_operation(
        self,
        *,
        operation_type: str,
        target_path: str,
        apply: Apply | None,
        target_id: str = "",
        error: GCPError | None = None,
    ) -> dict[str, Any]:
        """Start a Compute operation on ``target_path`` whose effect is ``apply``; returns its body."""
        region = self.params.get("region")
        name = ids.compute_operation_name()
        scope = f"projects/{self.project}/regions/{region}" if region else f"projects/{self.project}/global"
        return self.emu.start_operation(
            api="compute",
            name=name,
            path=f"{scope}/operations/{name}",
            body=compute_operation_body(
                name=name,
                project=self.project,
                region=region,
                operation_type=operation_type,
                target_link=ids.self_link(target_path),
                target_id=target_id or ids.numeric_id(),
            ),
            apply=apply,
            error=error,
            request_id=self.query.get("requestId"),
            project=self.project,
        )

    def run_operation(self, *, metadata: dict[str, Any], apply: Apply | None) -> dict[str, Any]:
        """Start a Cloud Run long-running operation; ``apply`` returns the operation's response."""
        name = f"projects/{self.project}/locations/{self.region}/operations/{ids.uuid4()}"
        return self.emu.start_operation(
            api="run",
            name=name,
            path=name,
            body={"metadata": metadata},
            apply=apply,
            error=None,
            request_id=self.query.get("requestId"),
            project=self.project,
        )


class GCPEmulator:
    """An in-memory Compute Engine v1 + Cloud Run Admin v2 control plane over HTTP."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.store = Store()
        self.operations = Operations()
        self.log = RequestLog()
        self.routes: list[Route] = []
        self.app = web.Application(client_max_size=32 * 1024 * 1024)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.base_url = ""
        # Per-kind state that is not a resource (IAM policies, address pools...) lives here.
        self.extra: dict[str, Any] = {}
        self._register_operations()
        self._register_kinds()
        self.app.router.add_route("*", "/{tail:.*}", self._unknown)

    # -- registration -------------------------------------------------------------------------

    def route(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        method_id: str,
        permission: str,
        mutating: bool,
        api: Api | None = None,
    ) -> None:
        """Add a route. ``pattern`` is relative to the API prefix (``regions/{region}/routers``)."""
        if api is None:
            api = "run" if method_id.startswith("run.") else "compute"
        prefix = COMPUTE_PREFIX if api == "compute" else RUN_PREFIX
        full = f"{prefix}/{pattern}" if pattern else prefix
        route = Route(method, full, method_id, permission, mutating, api, handler)
        self.routes.append(route)

        async def endpoint(request: web.Request) -> web.StreamResponse:
            return await self._dispatch(route, request)

        self.app.router.add_route(method, full, endpoint)

    def _register_kinds(self) -> None:
        from runnet.emulator.gcp import kinds

        for register in kinds.REGISTRARS:
            register(self)

    # -- dispatch -----------------------------------------------------------------------------

    async def _dispatch(self, route: Route, request: web.Request) -> web.StreamResponse:
        self.operations.tick()
        body: Any = None
        raw = await request.read()
        status = 200
        response: Any
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise GCPError(400, "parseError", f"Invalid JSON payload received. {exc.msg}.") from exc
            if route.api == "compute":
                body = google_urls(body, f"{request.scheme}://{request.host}/compute/v1/")
            call = Call(self, route, request, body)
            response = await self._handle(route, call)
        except GCPError as exc:
            status = exc.code
            response = exc.compute_body() if route.api == "compute" else exc.run_body()
        self.log.append(
            LogEntry(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                status=status,
                method_id=route.method_id,
                permission=route.permission,
                mutating=route.mutating,
                api=route.api,
                request_body=body,
                response_body=response,
            )
        )
        return web.json_response(response, status=status, dumps=_dumps)

    async def _handle(self, route: Route, call: Call) -> Any:
        allowed = self.config.allowed_permissions
        # An empty permission means the method needs none (testIamPermissions).
        if allowed is not None and route.permission and route.permission not in allowed:
            raise permission_denied(route.permission, call.request.path.split("/v1/", 1)[-1])
        fault = self.config.pick_fault(route.permission, mutating=route.mutating, method_id=route.method_id)
        if fault in ("429", "500", "503"):
            raise _injected(int(fault))
        if route.api == "compute":
            check_region(call, mutating=route.mutating)
        request_id = call.query.get("requestId")
        if route.mutating and request_id:
            previous = self.operations.by_request_id(call.project, request_id)
            if previous is not None:
                return self.render(previous)
        if fault == "operation":
            call.emu._fail_next_operation = True
        try:
            return await route.handler(call)
        finally:
            self._fail_next_operation = False

    _fail_next_operation = False

    # -- operations ---------------------------------------------------------------------------

    def start_operation(
        self,
        *,
        api: Api,
        name: str,
        path: str,
        body: dict[str, Any],
        apply: Apply | None,
        error: GCPError | None,
        request_id: str | None,
        project: str,
    ) -> dict[str, Any]:
        if self._fail_next_operation and error is None:
            error = INJECTED_OPERATION_ERROR
        latency = self.config.draw_latency()
        op = Operation(
            api=api,
            name=name,
            path=path,
            done_at=time.monotonic() + latency,
            apply=apply,
            body=body,
            error=error,
        )
        self.operations.add(op, request_id=request_id, project=project)
        return self.render(op)

    def render(self, op: Operation) -> dict[str, Any]:
        return render_compute(op) if op.api == "compute" else render_run(op)

    def _register_operations(self) -> None:
        for scope, label in (("regions/{region}", "regionOperations"), ("global", "globalOperations")):
            base = f"{scope}/operations"
            self.route(
                "GET",
                f"{base}/{{operation}}",
                self._op_get,
                method_id=f"compute.{label}.get",
                permission=f"compute.{label}.get",
                mutating=False,
            )
            self.route(
                "POST",
                f"{base}/{{operation}}/wait",
                self._op_wait,
                method_id=f"compute.{label}.wait",
                permission=f"compute.{label}.get",
                mutating=False,
            )
            self.route(
                "DELETE",
                f"{base}/{{operation}}",
                self._op_delete,
                method_id=f"compute.{label}.delete",
                permission=f"compute.{label}.delete",
                mutating=False,
            )
            self.route(
                "GET",
                base,
                self._op_list,
                method_id=f"compute.{label}.list",
                permission=f"compute.{label}.list",
                mutating=False,
            )
        self.route(
            "GET",
            "aggregated/operations",
            self._op_aggregated,
            method_id="compute.globalOperations.aggregatedList",
            permission="compute.globalOperations.list",
            mutating=False,
        )
        run_ops = "run.projects.locations.operations"
        self.route(
            "GET",
            "operations/{operation}",
            self._op_get,
            method_id=f"{run_ops}.get",
            permission="run.operations.get",
            mutating=False,
        )
        self.route(
            "POST",
            "operations/{operation}:wait",
            self._op_wait,
            method_id=f"{run_ops}.wait",
            permission="run.operations.get",
            mutating=False,
        )
        self.route(
            "DELETE",
            "operations/{operation}",
            self._op_delete,
            method_id=f"{run_ops}.delete",
            permission="run.operations.delete",
            mutating=False,
        )
        self.route(
            "GET",
            "operations",
            self._op_list,
            method_id=f"{run_ops}.list",
            permission="run.operations.list",
            mutating=False,
        )

    def _op_path(self, call: Call) -> str:
        if call.route.api == "run":
            return f"projects/{call.project}/locations/{call.region}/operations/{call.params['operation']}"
        region = call.params.get("region")
        scope = f"regions/{region}" if region else "global"
        return f"projects/{call.project}/{scope}/operations/{call.params['operation']}"

    def _find_op(self, call: Call) -> Operation:
        path = self._op_path(call)
        op = self.operations.get(path)
        if op is None:
            if call.route.api == "run":
                raise GCPError(404, "notFound", f"Operation {path} not found.")
            raise GCPError(404, "notFound", f"The resource '{path}' was not found")
        return op

    async def _op_get(self, call: Call) -> Any:
        return self.render(self._find_op(call))

    async def _op_wait(self, call: Call) -> Any:
        op = self._find_op(call)
        timeout = 120.0
        if call.route.api == "run" and isinstance(call.body, dict) and "timeout" in call.body:
            timeout = float(str(call.body["timeout"]).rstrip("s") or 120)
        await self.operations.wait(op, timeout)
        return self.render(op)

    async def _op_delete(self, call: Call) -> Any:
        self._find_op(call)
        self.operations.delete(self._op_path(call))
        return {}

    async def _op_list(self, call: Call) -> Any:
        if call.route.api == "run":
            prefix = f"projects/{call.project}/locations/{call.region}/operations/"
            return {"operations": [self.render(op) for op in self.operations.under(prefix)]}
        region = call.params.get("region")
        scope = f"regions/{region}" if region else "global"
        prefix = f"projects/{call.project}/{scope}/operations/"
        kind = "compute#operationList"
        return compute_list(call, kind, [self.render(op) for op in self.operations.under(prefix)], prefix.rstrip("/"))

    async def _op_aggregated(self, call: Call) -> Any:
        """The project's Compute operations by scope: ``global`` and ``regions/<r>`` (scopes with any)."""
        scopes: dict[str, list[dict[str, Any]]] = {}
        for op in self.operations.under(f"projects/{call.project}/"):
            if op.api == "compute":
                parts = op.path.split("/")
                scope = "global" if parts[2] == "global" else f"regions/{parts[3]}"
                scopes.setdefault(scope, []).append(self.render(op))
        expression = call.query.get("filter", "")
        scopes = {scope: kept for scope, ops in scopes.items() if (kept := filter_items(ops, expression))}
        collection = f"projects/{call.project}/aggregated/operations"
        return {
            "kind": "compute#operationAggregatedList",
            "id": collection,
            "selfLink": ids.self_link(collection),
            "items": {scope: {"operations": ops} for scope, ops in sorted(scopes.items())},
        }

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        api = "run" if request.path.startswith("/v2/") else "compute"
        error = GCPError(404, "notFound", f"The emulator does not serve {request.method} {request.path}")
        body = error.compute_body() if api == "compute" else error.run_body()
        self.log.append(
            LogEntry(request.method, request.path, dict(request.query), 404, "", "", False, api, None, body)  # type: ignore[arg-type]
        )
        return web.json_response(body, status=404)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound}"
        self._ticker = asyncio.create_task(self._tick_forever())
        return self.base_url

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._runner:
            await self._runner.cleanup()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            self.operations.tick()

    # -- conveniences for tests and kinds -----------------------------------------------------

    def resource(self, path: str) -> Resource | None:
        return self.store.get(path)


def compute_list(call: Call, kind: str, items: list[Resource], collection: str) -> dict[str, Any]:
    """A Compute list response, with ``maxResults``/``pageToken`` paging; ``items`` absent when empty."""
    items = filter_items(items, call.query.get("filter", ""))
    start = int(call.query.get("pageToken") or 0)
    size = int(call.query.get("maxResults") or 500)
    page = items[start : start + size]
    body: dict[str, Any] = {
        "kind": kind,
        "id": collection,
        "selfLink": ids.self_link(collection),
    }
    if page:
        body["items"] = page
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body


def filter_items(items: list[Resource], expression: str) -> list[Resource]:
    """The one-term subset of Compute's list filter that clients send.

    ``field = value`` is equality; ``field eq regex`` / ``field ne regex`` (what gcloud sends for
    ``--filter=field=word``) match a regular expression against the whole value. Other shapes are
    ignored (the full list comes back), which is what a lenient server does.
    """
    expression = expression.strip()
    if not expression or " AND " in expression.upper():
        return items
    for op in (" = ", " eq ", " ne ", "="):
        if op in expression:
            field_name, _, value = expression.partition(op)
            field_name = field_name.strip().strip("(")
            value = value.strip().rstrip(")").strip().strip('"').strip("'")
            if op.strip() not in ("eq", "ne"):
                return [i for i in items if str(i.get(field_name, "")) == value]
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise GCPError(400, "invalid", f"Invalid value for field 'filter': '{expression}'. {exc}.") from exc
            keep = op.strip() == "eq"
            return [i for i in items if bool(pattern.fullmatch(str(i.get(field_name, "")))) == keep]
    return items


def google_urls(value: Any, own_base: str) -> Any:
    """References to the emulator's own URL, as GCP would have received them.

    gcloud resolves names against its endpoint override, so it sends ``http://127.0.0.1:PORT/
    compute/v1/projects/...``; echoed as sent, that would leak into stored fields (natIps,
    subnetwork) where GCP shows ``https://www.googleapis.com/compute/v1/...``.
    """
    if isinstance(value, str):
        return ids.COMPUTE_BASE + value[len(own_base) :] if value.startswith(own_base) else value
    if isinstance(value, list):
        return [google_urls(item, own_base) for item in value]
    if isinstance(value, dict):
        return {key: google_urls(item, own_base) for key, item in value.items()}
    return value


def _injected(code: int) -> GCPError:
    if code == 429:
        return GCPError(429, "rateLimitExceeded", "Rate Limit Exceeded (injected by the emulator)")
    if code == 503:
        return GCPError(503, "backendError", "The service is currently unavailable (injected by the emulator)")
    return GCPError(500, "backendError", "Internal error (injected by the emulator)")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class EmulatorThread(ServerThread[GCPEmulator]):
    """A GCPEmulator on its own event loop in a daemon thread (see runnet.emulator.threads)."""

    name = "gcp-emulator"

    def __init__(self, config: EmulatorConfig | None = None, port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.port = port
        super().__init__()

    async def _boot(self) -> GCPEmulator:
        emu = GCPEmulator(self.config)
        await emu.start(port=self.port)
        return emu

    async def _shutdown(self, server: GCPEmulator) -> None:
        await server.stop()
