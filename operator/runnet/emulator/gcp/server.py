"""The GCP emulator's HTTP server: routing, request log, faults, IAM checks.

Resource kinds live in their own modules (``compute_network``, ``compute_lb``, ``compute_psc``,
``run``, ``run_v1``...); each exposes ``register(emu)`` that adds its routes with
``emu.route(...)``. One catch-all aiohttp handler matches requests against that route table
itself, so a Compute batch part (``batch``) is dispatched exactly like a direct request, and
the emulator can also serve as gcloud's HTTP proxy (``wire``).

Every call, however it arrived, goes through the same steps in ``serve``: whom its token stands
for (``iam``: an expired token is a 401), its rate quota (``quota``: charged before anything
else, as Google's front end does), its body, then in ``_handle`` the caller's IAM permission,
injected faults, the region check, ``requestId`` replays and the handler; then the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from runnet.emulator.gcp import batch, iam, ids, quota, wire
from runnet.emulator.gcp.compute_region import check_region
from runnet.emulator.gcp.config import EmulatorConfig
from runnet.emulator.gcp.errors import GCPError, permission_denied
from runnet.emulator.gcp.operations import (
    INJECTED_OPERATION_ERROR,
    Apply,
    Operation,
    Operations,
    Style,
    compute_operation_body,
    render_compute,
    render_run,
)
from runnet.emulator.gcp.request_log import LogEntry, RequestLog
from runnet.emulator.gcp.store import Resource, Store
from runnet.emulator.gcp.wire import Incoming, compile_pattern, google_urls
from runnet.emulator.threads import ServerThread

Api = Literal["compute", "run", "run.v1", "cloudresourcemanager", "serviceusage", "iamcredentials"]
"""Which API (and discovery document) a route belongs to; ``run`` is Cloud Run Admin v2."""
Handler = Callable[["Call"], Awaitable[Any]]

COMPUTE_PREFIX = "/compute/v1/projects/{project}"
RUN_PREFIX = "/v2/projects/{project}/locations/{location}"
PREFIXES: dict[str, str] = {"compute": COMPUTE_PREFIX, "run": RUN_PREFIX}


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
    quota_group: str | None = field(init=False, default=None)
    """The rate quota group calls to this route count against (None: not counted)."""

    def __post_init__(self) -> None:
        self._regex = compile_pattern(self.pattern)
        self.quota_group = quota.classify(self.api, self.method_id, self.pattern, self.mutating)

    def match(self, incoming: Incoming) -> dict[str, str] | None:
        if incoming.method != self.method:
            return None
        found = self._regex.match(incoming.path)
        return found.groupdict() if found else None


class Call:
    """One request, parsed: what a handler needs, with helpers to answer in GCP's shapes."""

    def __init__(self, emu: GCPEmulator, route: Route, incoming: Incoming, params: dict[str, str], body: Any) -> None:
        self.emu = emu
        self.route = route
        self.incoming = incoming
        self.params = params
        self.query = incoming.query
        self.body: Any = body
        self.principal = ""
        """Who makes the call (``iam``); set before the handler runs."""
        self.scope_project, self.scope_region = emu.scope(route, params, incoming)
        """The project and region the call is charged to and authorised in (as the path names them)."""

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
        self.log = RequestLog(self.config.request_log_path)
        self.quotas = quota.RateQuotas()
        self.tokens = iam.Tokens()
        self.routes: list[Route] = []
        self.app = web.Application(client_max_size=32 * 1024 * 1024, middlewares=[_tunnels])
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.base_url = ""
        # Per-kind state that is not a resource (IAM policies, address pools...) lives here.
        self.extra: dict[str, Any] = {}
        self._register_kinds()
        self.app.router.add_route("*", "/{tail:.*}", self._entry)

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
        """Add a route: ``pattern`` is absolute (``/v1/projects/{project}``) or relative to the
        Compute / Cloud Run v2 prefix (``regions/{region}/routers``)."""
        if api is None:
            api = "run" if method_id.startswith("run.") else "compute"
        full = pattern if pattern.startswith("/") else f"{PREFIXES[api]}/{pattern}".rstrip("/")
        self.routes.append(Route(method, full, method_id, permission, mutating, api, handler))

    def _register_kinds(self) -> None:
        from runnet.emulator.gcp import kinds

        for register in kinds.REGISTRARS:
            register(self)

    # -- dispatch -----------------------------------------------------------------------------

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        """Every HTTP request but tunnels (``_tunnels``): a batch is split into its parts, the rest served."""
        incoming = Incoming(
            method=request.method,
            path=request.rel_url.path,
            query=dict(request.query),
            # Through a proxy the target host is in the absolute URL; aiohttp drops its port.
            host=request.headers.get("Host") or request.host,
            raw=await request.read(),
            headers=dict(request.headers),
        )
        if batch.is_batch(incoming):
            return await batch.serve(self, incoming)
        status, response = await self.serve(incoming)
        return web.json_response(response, status=status, dumps=_dumps)

    def match(self, incoming: Incoming) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(incoming)
            if params is not None:
                return route, params
        return None

    async def serve(self, incoming: Incoming) -> tuple[int, Any]:
        """One API call (direct, proxied or a batch part): its HTTP status and JSON body, logged."""
        started, at = time.monotonic(), self.config.clock()
        self.operations.tick()
        found = self.match(incoming)
        if found is None:
            return self._unknown(incoming, at)
        route, params = found
        call = Call(self, route, incoming, params, None)
        status, response = 200, None
        try:
            call.principal = self.tokens.principal(incoming.headers, self.config.default_principal, at)
            if route.quota_group and self.config.quotas is not None:
                self.quotas.charge(self._quota_limits(), route.quota_group, call.scope_project, call.scope_region, at)
            call.body = self._json_body(route, incoming)
            response = await self._handle(route, call)
        except GCPError as exc:
            status = exc.code
            response = exc.compute_body() if route.api == "compute" else exc.run_body()
        self.log.append(
            LogEntry(
                method=incoming.method,
                path=incoming.path,
                query=incoming.query,
                status=status,
                method_id=route.method_id,
                permission=route.permission,
                mutating=route.mutating,
                api=route.api,
                request_body=call.body,
                response_body=response,
                at=at,
                host=incoming.host,
                batched=incoming.batched,
                principal=call.principal,
                project=call.scope_project,
                region=call.scope_region,
                quota_group=route.quota_group or "",
                latency=time.monotonic() - started,
            )
        )
        return status, response

    def _quota_limits(self) -> dict[str, int]:
        """The configured sizes by group id (aliases set on a running emulator's config resolved once)."""
        limits = self.config.quotas or {}
        if not limits.keys() <= quota.GROUPS.keys():
            limits = self.config.quotas = quota.normalise(limits)
        return limits

    def scope(self, route: Route, params: dict[str, str], incoming: Incoming) -> tuple[str, str]:
        """(project, region) of a call as its path (or regional endpoint) names them; "" when none."""
        if route.api == "iamcredentials":
            return iam.service_account_project(params.get("account", "")) or "", ""
        name = params.get("project") or params.get("namespace") or ""
        if name.isdigit():
            from runnet.emulator.gcp.projects import known_projects

            name = next((p for p in known_projects(self) if ids.project_number(p) == name), name)
        region = params.get("region") or params.get("location") or ""
        if not region and route.api == "run.v1":
            region = incoming.region_of_host
        return name, region

    # -- IAM ------------------------------------------------------------------------------------

    def allows(self, principal: str, permission: str, scopes: list[str]) -> bool:
        """Whether ``principal`` holds ``permission`` in any of ``scopes`` (always, unless IAM is enforced)."""
        config = self.config
        if not config.iam_enforced:
            return True
        if (
            config.allowed_permissions is not None
            and principal == config.default_principal
            and permission in config.allowed_permissions
        ):
            return True
        return config.iam_policy is not None and config.iam_policy.holds(principal, permission, scopes)

    def service_account_scopes(self, email: str) -> list[str]:
        """Where grants on a service account come from (its project, found by number for default ones)."""
        number = email.split("-", 1)[0] if email.endswith("-compute@developer.gserviceaccount.com") else ""
        project = None
        if number.isdigit():
            from runnet.emulator.gcp.projects import known_projects

            project = next((p for p in known_projects(self) if ids.project_number(p) == number), None)
        return iam.service_account_scopes(email, project)

    def _json_body(self, route: Route, incoming: Incoming) -> Any:
        if not incoming.raw:
            return None
        try:
            body = json.loads(incoming.raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GCPError(400, "parseError", f"Invalid JSON payload received. {exc}.") from exc
        if route.api == "compute":
            own = {f"http://{incoming.host}/compute/v1/", f"{self.base_url}/compute/v1/"}
            body = google_urls(body, tuple(own))
        return body

    async def _handle(self, route: Route, call: Call) -> Any:
        # An empty permission means the method needs none (testIamPermissions) or checks its own.
        scopes = iam.permission_scopes(call.scope_project)
        if route.permission and not self.allows(call.principal, route.permission, scopes):
            raise permission_denied(route.permission, call.incoming.path.split("/v1/", 1)[-1])
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
        api: Style,
        name: str,
        path: str,
        body: dict[str, Any],
        apply: Apply | None,
        error: GCPError | None,
        request_id: str | None,
        project: str,
        latency: float | None = None,
    ) -> dict[str, Any]:
        """Start an operation that completes after ``latency`` seconds (default: the configured one)."""
        if self._fail_next_operation and error is None:
            error = INJECTED_OPERATION_ERROR
        if latency is None:
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

    def _unknown(self, incoming: Incoming, at: float) -> tuple[int, Any]:
        api: Api = "compute" if incoming.path.startswith("/compute/") else "run"
        error = GCPError(404, "notFound", f"The emulator does not serve {incoming.method} {incoming.path}")
        body = error.compute_body() if api == "compute" else error.run_body()
        entry = LogEntry(incoming.method, incoming.path, incoming.query, 404, "", "", False, api, None, body, at=at)
        entry.host, entry.batched = incoming.host, incoming.batched
        try:
            entry.principal = self.tokens.principal(incoming.headers, self.config.default_principal, at)
        except GCPError:
            entry.principal = ""
        self.log.append(entry)
        return 404, body

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
        self.log.close()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            self.operations.tick()

    # -- conveniences for tests and kinds -----------------------------------------------------

    def resource(self, path: str) -> Resource | None:
        return self.store.get(path)


_Next = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _tunnels(request: web.Request, handler: _Next) -> web.StreamResponse:
    """An HTTPS tunnel (CONNECT host:443) matches no route: refuse it before routing says 404."""
    if request.method == "CONNECT":
        return wire.refuse_tunnel(request.raw_path)
    return await handler(request)


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
