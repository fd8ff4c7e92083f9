"""The operator process: settings, shared clients and engine, kopf configuration, and running it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf

from runnet.engine import Engine
from runnet.gcp.clients import Clients, GCPSettings
from runnet.gcp.limiter import DEFAULT_SHARE, RateLimiter, default_rates
from runnet.leader import LeaderElector, LeaseConfig, OnLost, exit_at_once, standby_liveness
from runnet.metrics import Metrics
from runnet.tenancy import Grant, Tenancy

log = logging.getLogger(__name__)
FINALIZER = "runnet.dev/finalizer"
SETTLE = 0.5
"""Seconds at least between an object's passes: its last status write comes back through the watch meanwhile."""
STATUS_THREADS = 8
"""Status writes in flight at once (the kubernetes client pools cpus x 5 connections: 10 on 2 cores)."""
DELETED_REMEMBERED = 10_000
FRESH = 5.0
"""Seconds old a snapshot of GCP a pass accepts unless it is a converged object's resync (see ``accepted_age``)."""
RESYNC_SNAPSHOT = 0.9
"""A converged object's resync accepts a snapshot this share of the resync interval old."""
PLURALS = {"EgressGateway": "egressgateways", "PSCExport": "pscexports", "PSCEndpoint": "pscendpoints"}
"""UIDs of deleted objects kept, so that a resync queued behind a teardown never re-creates anything."""


@dataclass
class OperatorSettings:
    kubeconfig: str | None = None
    namespaces: list[str] = field(default_factory=list)
    """Empty: all namespaces."""
    gcp_endpoint: str | None = None
    resync_interval: float = 120.0
    concurrency: int = 64
    liveness: str | None = None
    """``http://0.0.0.0:8080/healthz`` serves kopf's liveness probe."""
    tenancy: str = "bound"
    """bound: a ProjectBinding must grant each object's project to its namespace; open: no check."""
    metrics_port: int = 0
    """Serve Prometheus metrics on this port (0: not served; ``runnet run`` defaults to 9090)."""
    metrics_host: str = "0.0.0.0"
    leader_election: LeaseConfig | None = None
    """None: act at once (one replica); else only while holding this Lease."""
    gcp_rates: dict[str, int] = field(default_factory=dict)
    """Calls per minute by rate quota group id (``--gcp-rate``), over the share of GCP's defaults."""
    gcp_rate_share: float = DEFAULT_SHARE
    """Share of GCP's default rate quotas runnet uses where ``gcp_rates`` says nothing; 0: no limit at all."""

    def limiter(self) -> RateLimiter | None:
        if self.gcp_rate_share <= 0 and not self.gcp_rates:
            return None
        if self.gcp_rate_share <= 0:
            return RateLimiter(self.gcp_rates)
        return RateLimiter(default_rates(self.gcp_rate_share, self.gcp_rates))


def kube_api_client(kubeconfig: str | None) -> Any:
    """A ``kubernetes.client.ApiClient`` from the kubeconfig, or in the cluster from runnet's ServiceAccount."""
    import kubernetes

    if kubeconfig:
        return kubernetes.config.new_client_from_config(kubeconfig)  # type: ignore[no-untyped-call]
    config = kubernetes.client.Configuration()
    kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient(config)


class StatusWriter:
    """Writes a status in the middle of a handler (kopf writes its patch only when the handler returns)."""

    def __init__(self, kubeconfig: str | None) -> None:
        self.kubeconfig = kubeconfig
        self._api: Any = None
        # Its own threads: the loop's default executor (min(32, cpus + 4) threads) also runs kopf's sync
        # handlers and the leader's Lease renewals, which a burst of status writes must not hold up.
        self._pool = ThreadPoolExecutor(max_workers=STATUS_THREADS, thread_name_prefix="status")

    def _objects(self) -> Any:
        if self._api is None:
            import kubernetes

            self._api = kubernetes.client.CustomObjectsApi(kube_api_client(self.kubeconfig))
        return self._api

    async def patch(self, plural: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        """Best effort: a failure is logged, and the handler's own status write follows anyway. A namespace of
        None: a cluster-scoped object."""
        from runnet.api.common import GROUP, VERSION

        def send() -> None:
            body = {"status": status}
            if namespace is None:
                self._objects().patch_cluster_custom_object_status(GROUP, VERSION, plural, name, body)
            else:
                self._objects().patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, body)

        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, send)
        except Exception as exc:  # progress is advice: the pass goes on
            log.warning("could not write the status of %s %s/%s: %s", plural, namespace, name, exc)


class Runtime:
    """What every handler shares; built once at start-up and passed to the handlers."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.status = StatusWriter(settings.kubeconfig)
        self.metrics = Metrics()
        self.limiter = settings.limiter()
        """One per process: GCP's rate quotas are per project, whichever object or identity calls."""
        self.clients = self._watched(
            Clients(GCPSettings(endpoint=settings.gcp_endpoint), self.metrics, limiter=self.limiter)
        )
        self.tenancy = Tenancy(settings.tenancy)
        self._impersonating: dict[str, Clients] = {}
        self.grants: dict[tuple[str, str], str] = {}
        """(plural, namespace/name) -> the ProjectBinding its last pass went through ('' when not bound)."""
        self.bindings_changed = asyncio.Event()
        """Set when a binding or what uses it changed: its status is due."""
        self._engine: Engine | None = None
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._due: dict[tuple[str, str], float] = {}
        self._settled: set[tuple[str, str]] = set()
        self._poked: dict[tuple[str, str], float] = {}
        """Poked objects, and since when what poked them is true in GCP (monotonic): their next pass reads a view of
        GCP at least that new."""
        self._wake: dict[tuple[str, str], asyncio.Event] = {}
        """Set when an object's due time moved earlier (a poke, a shorter retry): its waiting resync looks again."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deleting: dict[str, None] = {}
        self._reported: dict[str, int | None] = {}
        """uid -> the generation this process last wrote a status for (the body a pass gets may not show it yet)."""

    @property
    def engine(self) -> Engine:
        # Built lazily so that its semaphore belongs to the operator's event loop.
        if self._engine is None:
            self._engine = Engine(self.settings.concurrency)
            self._loop = asyncio.get_running_loop()
        return self._engine

    def lock(self, uid: str) -> asyncio.Lock:
        """One reconcile at a time per object (the timer and a change handler may overlap)."""
        return self._locks[uid]

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)
        self._reported.pop(uid, None)

    def reported(self, uid: str, generation: int | None) -> None:
        """A pass wrote the status of this generation (kopf writes it when the handler returns)."""
        self._reported[uid] = generation

    def has_reported(self, uid: str, generation: int | None) -> bool:
        return uid in self._reported and self._reported[uid] == generation

    def deleting(self, uid: str) -> None:
        """From now on no reconcile of this object may start: its teardown has begun (or is done)."""
        self._deleting[uid] = None
        while len(self._deleting) > DELETED_REMEMBERED:
            del self._deleting[next(iter(self._deleting))]

    def is_deleting(self, uid: str) -> bool:
        return uid in self._deleting

    def due(self, plural: str, key: str) -> bool:
        """Whether the object's resync is due (its interval, a retry delay, or a poke)."""
        return time.monotonic() >= self._due.get((plural, key), 0.0)

    def schedule(self, plural: str, key: str, retry_after: float | None) -> None:
        delay = (
            self.settings.resync_interval if retry_after is None else min(retry_after, self.settings.resync_interval)
        )
        # "Again at once" still waits until the status this pass wrote is back from the API server, so
        # that the next pass compares with it (and does not show Applying for a generation already done).
        self._set_due((plural, key), time.monotonic() + max(delay, SETTLE))
        if retry_after is None:
            self._settled.add((plural, key))
        else:
            self._settled.discard((plural, key))

    def accepted_age(self, plural: str, key: str, *, resync: bool) -> float:
        """How old a snapshot of GCP the object's pass may read from: a converged object's resync, almost an interval
        (its resources were listed for some object within it, and a change a list shows wakes the object at once);
        anything else (a new object, an edit, a retry) a few seconds; after a poke, one at least as new as what
        poked it (objects poked together share one list)."""
        poked = self._poked.pop((plural, key), None)
        if poked is not None:
            return max(0.0, time.monotonic() - poked)
        if resync and (plural, key) in self._settled:
            return self.settings.resync_interval * RESYNC_SNAPSHOT
        return FRESH

    def _watched(self, clients: Clients) -> Clients:
        """A change a refreshed list shows in GCP wakes the objects that read that resource."""
        clients.inventory.on_change = self._drifted
        return clients

    def _drifted(self, watchers: set[Any], listed_at: float) -> None:
        """Called in an engine thread: the pokes are made on the event loop. The list that showed the change is new
        enough for the passes it wakes."""
        loop = self._loop
        for kind, namespace, name in watchers:
            if kind in PLURALS and loop is not None:
                log.debug("%s %s/%s: GCP changed a resource it reads; reconciling it now", kind, namespace, name)
                loop.call_soon_threadsafe(self.poke, PLURALS[kind], f"{namespace}/{name}", listed_at)

    def forget_watcher(self, kind: str, namespace: str, name: str) -> None:
        for clients in (self.clients, *self._impersonating.values()):
            clients.inventory.forget((kind, namespace, name))

    def poke(self, plural: str, key: str, since: float | None = None) -> None:
        """Reconcile ``namespace/name`` of that kind now (a related object changed): its resync wakes up. Its pass
        reads GCP as of ``since`` (monotonic; default: now) or later: what changed is often a side effect in GCP of
        another object's write."""
        what = (plural, key)
        at = time.monotonic() if since is None else since
        self._poked[what] = max(at, self._poked.get(what, at))
        self._set_due(what, 0.0)

    def _set_due(self, what: tuple[str, str], when: float) -> None:
        before = self._due.get(what, 0.0)
        self._due[what] = when
        wake = self._wake.get(what)
        if wake is not None and when < before:
            wake.set()

    async def until_due(self, plural: str, key: str, stopped: Any) -> bool:
        """Wait until the object is due (its interval, a retry delay, a poke); False when ``stopped`` (kopf's flag
        for a timer: the object is being deleted or the operator stops) is set first. Waiting costs no call and no
        polling: one resync per object waits here between passes."""
        what = (plural, key)
        wake = self._wake.setdefault(what, asyncio.Event())

        async def stop() -> None:
            await stopped.wait()

        stopping = asyncio.ensure_future(stop())
        try:
            while not stopping.done():
                wake.clear()
                left = self._due.get(what, 0.0) - time.monotonic()
                if left <= 0:
                    return True
                woken = asyncio.ensure_future(wake.wait())
                await asyncio.wait([woken, stopping], timeout=left, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
            return False
        finally:
            stopping.cancel()
            if self._wake.get(what) is wake and stopped:
                del self._wake[what]

    def use_grant(self, plural: str, key: str, binding: str | None) -> None:
        """Remember which binding an object's last pass went through (None: the object is gone); a change wakes
        the loop that writes the bindings' statuses."""
        before = self.grants.get((plural, key))
        if binding is None:
            self.grants.pop((plural, key), None)
        else:
            self.grants[(plural, key)] = binding
        if before != binding:
            self.bindings_changed.set()

    def poke_namespaces(self, namespaces: set[str]) -> None:
        """Reconcile every known object of these namespaces now (a ProjectBinding changed)."""
        for plural, key in list(self._due):
            if key.split("/", 1)[0] in namespaces:
                self._set_due((plural, key), 0.0)

    def clients_for(self, grant: Grant) -> Clients:
        """The clients acting as the grant's identity: the operator's own, or a service account's (one set each,
        so that the token google-auth caches is shared by every object of that binding)."""
        account = grant.service_account
        if account is None:
            return self.clients
        if account not in self._impersonating:
            settings = GCPSettings(endpoint=self.settings.gcp_endpoint, impersonate=account)
            self._impersonating[account] = self._watched(Clients(settings, self.metrics, limiter=self.limiter))
        return self._impersonating[account]


SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def kube_credentials_problem(kubeconfig: str | None) -> str:
    """Why the operator could not log in to Kubernetes ('' when it can try): checked before kopf starts, so that a
    missing kubeconfig is one sentence instead of kopf retrying forever."""
    from kubernetes.config import ConfigException, load_kube_config

    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(SERVICE_ACCOUNT_TOKEN):
        return ""  # in a cluster: its ServiceAccount
    if kubeconfig is not None and not os.path.isfile(kubeconfig):
        return f"--kubeconfig {kubeconfig}: no such file"
    try:
        load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"no usable Kubernetes credentials in {where} ({detail}): pass --kubeconfig PATH, set KUBECONFIG, or run "
            "runnet in a cluster with its ServiceAccount"
        )
    return ""


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    from runnet.handlers import egress, psc, tenancy

    registry = kopf.OperatorRegistry()
    tenancy.register(registry, runtime)
    egress.register(registry, runtime)
    psc.register(registry, runtime)

    @kopf.on.startup(registry=registry)  # type: ignore[untyped-decorator]
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="runnet.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="runnet.dev", key="last-handled-configuration"
        )
        settings.posting.level = logging.INFO
        settings.posting.reporting_component = "runnet"
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        settings.batching.error_delays = [1, 2, 5, 10, 30]
        # A deletion waits for the object's resync timer to stop; kopf re-checks that every 60 s by
        # default, which held the finalizer a minute whenever a resync was running at deletion.
        settings.background.cancellation_polling = 0.5

    @kopf.on.login(registry=registry)  # type: ignore[untyped-decorator]
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if runtime.settings.kubeconfig:
            os.environ["KUBECONFIG"] = runtime.settings.kubeconfig
            return kopf.login_with_kubeconfig(**kwargs)  # type: ignore[no-any-return]
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)  # type: ignore[no-any-return]

    return registry


class MetricsPortError(Exception):
    """The metrics port could not be listened on."""


async def run_operator(
    settings: OperatorSettings, *, stop_flag: asyncio.Event | None = None, on_lost: OnLost = exit_at_once
) -> None:
    """Run until ``stop_flag`` is set, or SIGINT/SIGTERM arrives (or forever). With leader election, stand by
    until this replica holds the Lease; ``on_lost`` is called if it loses it (by default: exit non-zero at once).
    Metrics are served from the start (a standby's show no objects: it reconciles none)."""
    runtime = Runtime(settings)
    if settings.tenancy == "open":
        log.warning(
            "tenancy open: any namespace's runnet objects may manage any GCP project runnet's identity reaches; "
            "use --tenancy bound (the default) with ProjectBindings when teams share this operator"
        )
    if settings.metrics_port:
        try:
            port = runtime.metrics.serve(settings.metrics_port, settings.metrics_host)
        except OSError as exc:
            raise MetricsPortError(
                f"--metrics-port {settings.metrics_port}: {exc.strerror or exc}; choose a free port, or 0 to serve "
                "no metrics"
            ) from exc
        log.info("serving Prometheus metrics on http://%s:%d/metrics", settings.metrics_host, port)
    try:
        await _lead_and_run(runtime, stop_flag or asyncio.Event(), on_lost)
    finally:
        runtime.metrics.close()


async def _lead_and_run(runtime: Runtime, stop: asyncio.Event, on_lost: OnLost) -> None:
    settings = runtime.settings
    if settings.leader_election is None:
        await _run_kopf(runtime, stop)
        return
    import kubernetes

    api = kubernetes.client.CoordinationV1Api(kube_api_client(settings.kubeconfig))
    elector = LeaderElector(settings.leader_election, api)
    signals = _stop_on_signals(stop)  # a SIGTERM while standing by ends the wait
    try:
        async with standby_liveness(settings.liveness, elector):
            if not await elector.acquire(stop):
                return
        holding = asyncio.create_task(elector.hold())

        def lost(task: asyncio.Task[str]) -> None:
            if task.cancelled():
                return  # a graceful stop
            stop.set()
            failure = task.exception()
            on_lost(task.result() if failure is None else f"renewing failed: {failure!r}")

        holding.add_done_callback(lost)
        try:
            await _run_kopf(runtime, stop)
        finally:
            holding.cancel()
            await elector.release()  # kopf has stopped: hand over at once (a rolling update)
    finally:
        _remove_signal_handlers(signals)


async def _run_kopf(runtime: Runtime, stop: asyncio.Event) -> None:
    settings = runtime.settings
    registry = build_registry(runtime)
    ready = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            stop_flag=stop,
            ready_flag=ready,
            liveness_endpoint=settings.liveness,
        )
    )
    await asyncio.wait([operator, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
    signals = _stop_on_signals(stop)
    try:
        await operator
    finally:
        _remove_signal_handlers(signals)


def _remove_signal_handlers(signals: list[signal.Signals]) -> None:
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.remove_signal_handler(sig)


def _stop_on_signals(stop: asyncio.Event) -> list[signal.Signals]:
    """Replace kopf's signal handlers (which fail on a second signal) with setting the stop flag, which may be set
    any number of times: a second Ctrl-C or a second SIGTERM during shutdown is harmless."""
    if threading.current_thread() is not threading.main_thread():
        return []
    loop = asyncio.get_running_loop()
    sigs = [signal.SIGINT, signal.SIGTERM]
    for sig in sigs:
        loop.add_signal_handler(sig, stop.set)
    return sigs
