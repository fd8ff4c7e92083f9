"""Prometheus metrics: what each pass wrote, and every GCP request, served on ``/metrics``.

Object metrics are derived from the status a pass writes (merged over the status it read, as the
status patch merges it), never from extra GCP calls; an object's series go when it is deleted, and
an IP's series when the gateway stops reporting it. GCP requests are counted per HTTP request in
``runnet.gcp.calls.metered`` (engine threads; prometheus_client is thread-safe).

Each operator process (one ``Runtime``) has its own registry, so that operators started one after
another in one process (tests) never see each other's objects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    disable_created_metrics,
    start_http_server,
)

# No *_created series: Prometheus does not use them, and they would double every counter.
disable_created_metrics()  # type: ignore[no-untyped-call]

RECONCILE_TOTAL = "runnet_reconcile_total"
RECONCILE_DURATION = "runnet_reconcile_duration_seconds"
GCP_REQUESTS_TOTAL = "runnet_gcp_requests_total"
GCP_REQUEST_DURATION = "runnet_gcp_request_duration_seconds"
OBJECTS = "runnet_objects"
NAT_IP_INFO = "runnet_nat_ip_info"
PSC_CONNECTIONS = "runnet_psc_connections"
NAT_PORT_HEADROOM = "runnet_nat_port_headroom_ratio"
SUBNET_IP_HEADROOM = "runnet_subnet_ip_headroom_ratio"

NAMES = (
    RECONCILE_TOTAL,
    RECONCILE_DURATION,
    GCP_REQUESTS_TOTAL,
    GCP_REQUEST_DURATION,
    OBJECTS,
    NAT_IP_INFO,
    PSC_CONNECTIONS,
    NAT_PORT_HEADROOM,
    SUBNET_IP_HEADROOM,
)
"""Every metric family runnet serves (as PromQL names it: a counter's samples end in ``_total``, a
histogram's in ``_bucket``, ``_sum`` and ``_count``)."""

KINDS = {"egressgateways": "EgressGateway", "pscexports": "PSCExport", "pscendpoints": "PSCEndpoint"}

# runnet_reconcile_total{result}: what one pass ended in.
READY = "ready"
"""Ready=True."""
WAITING = "waiting"
"""Ready=False and Reconciling: progress (creating, waiting on GCP or on the other PSC side)."""
ERROR = "error"
"""Ready=False after a GCP call failed (retried), or the pass raised."""
STALLED = "stalled"
"""Ready=False and Stalled: only a person can fix it (invalid spec, conflict, permission, binding)."""
DELETING = "deleting"
"""A teardown pass that has to wait (retried)."""
DELETED = "deleted"
"""A teardown pass that finished: the finalizer goes."""
RESULTS = (READY, WAITING, ERROR, STALLED, DELETING, DELETED)

NO_RESPONSE = "none"
"""The ``code`` of a GCP request that got no HTTP answer (connection refused, timeout, no access token)."""

PSC_STATES = ("ACCEPTED", "PENDING", "REJECTED")
"""Always served for every export (0 when none), so that an alert on PENDING sees a series go to 0."""

RECONCILE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _Snapshot(CollectorRegistry):
    """A registry whose scrape never sees half of a pass: the object series change under the same lock."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__()
        self._pass_lock = lock

    def collect(self) -> Iterator[Metric]:
        with self._pass_lock:
            families = list(super().collect())
        yield from families


def _suffix(name: str) -> str:
    """prometheus_client adds ``_total`` to a counter's samples itself."""
    return name.removesuffix("_total")


class Metrics:
    """The registry of one operator and the label sets each object currently has."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.registry: CollectorRegistry = _Snapshot(self._lock)
        r = self.registry
        self.reconciles = Counter(
            _suffix(RECONCILE_TOTAL), "Reconcile passes by kind and result.", ["kind", "result"], registry=r
        )
        self.reconcile_seconds = Histogram(
            RECONCILE_DURATION, "Seconds one reconcile pass took.", ["kind"], buckets=RECONCILE_BUCKETS, registry=r
        )
        self.requests = Counter(
            _suffix(GCP_REQUESTS_TOTAL),
            "GCP HTTP requests by service, method and HTTP status code ('none': no answer).",
            ["service", "method", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            GCP_REQUEST_DURATION,
            "Seconds one GCP HTTP request took.",
            ["service", "method"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.objects = Gauge(OBJECTS, "Objects by kind and whether they are Ready.", ["kind", "ready"], registry=r)
        self.nat_ips = Gauge(
            NAT_IP_INFO,
            "1 per NAT IP of each EgressGateway, by state (Active, Draining, Retained).",
            ["namespace", "name", "ip", "state"],
            registry=r,
        )
        self.psc = Gauge(
            PSC_CONNECTIONS, "PSC connections of each PSCExport by status.", ["namespace", "name", "status"], registry=r
        )
        self.nat_headroom = Gauge(
            NAT_PORT_HEADROOM,
            "Share of the NAT's ports left free with the services at their max instances (1 empty, 0 full).",
            ["namespace", "name"],
            registry=r,
        )
        self.subnet_headroom = Gauge(
            SUBNET_IP_HEADROOM,
            "Share of the subnet's usable IPs left free with the services at their max instances (1 empty, 0 full).",
            ["namespace", "name"],
            registry=r,
        )
        self._ready: dict[str, dict[str, bool]] = {kind: {} for kind in KINDS.values()}
        self._labels: dict[tuple[str, str], set[tuple[Any, tuple[str, ...]]]] = {}
        self._figures: dict[str, dict[str, float]] = {}
        for kind in KINDS.values():
            for ready in ("true", "false"):
                self.objects.labels(kind, ready).set(0)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- passes ---------------------------------------------------------------------------------

    def reconciled(
        self, plural: str, key: str, written: dict[str, Any], figures: dict[str, float], seconds: float, result: str
    ) -> None:
        """A pass ended: ``written`` is the object's status after the pass's patch, ``figures`` the pass's
        numbers that are no status field (a pass that computed none keeps the last ones)."""
        with self._lock:
            self._reconciled(plural, key, written, figures, seconds, result)

    def _reconciled(
        self, plural: str, key: str, written: dict[str, Any], figures: dict[str, float], seconds: float, result: str
    ) -> None:
        kind = KINDS.get(plural, plural)
        self.reconciles.labels(kind, result).inc()
        self.reconcile_seconds.labels(kind).observe(seconds)
        if kind not in self._ready:
            return
        self._ready[kind][key] = ready_of(written)
        self._count(kind)
        namespace, name = key.split("/", 1)
        series: set[tuple[Any, tuple[str, ...]]] = set()
        if kind == "EgressGateway":
            series |= self._gateway(namespace, name, written, figures or self._figures.get(key, {}))
            self._figures[key] = figures or self._figures.get(key, {})
        elif kind == "PSCExport":
            series |= self._export(namespace, name, written)
        for gauge, labels in self._labels.get((plural, key), set()) - series:
            gauge.remove(*labels)
        self._labels[(plural, key)] = series

    def teardown(self, plural: str, seconds: float, *, done: bool) -> None:
        kind = KINDS.get(plural, plural)
        self.reconciles.labels(kind, DELETED if done else DELETING).inc()
        self.reconcile_seconds.labels(kind).observe(seconds)

    def failed(self, plural: str, seconds: float) -> None:
        """A pass that raised (kopf retries it)."""
        kind = KINDS.get(plural, plural)
        self.reconciles.labels(kind, ERROR).inc()
        self.reconcile_seconds.labels(kind).observe(seconds)

    def forget(self, plural: str, key: str) -> None:
        """The object is gone: every series naming it goes too."""
        with self._lock:
            self._forget(plural, key)

    def _forget(self, plural: str, key: str) -> None:
        kind = KINDS.get(plural, plural)
        if self._ready.get(kind, {}).pop(key, None) is not None:
            self._count(kind)
        if kind == "EgressGateway":
            self._figures.pop(key, None)
        for gauge, labels in self._labels.pop((plural, key), set()):
            gauge.remove(*labels)

    def _count(self, kind: str) -> None:
        ready = sum(1 for r in self._ready[kind].values() if r)
        self.objects.labels(kind, "true").set(ready)
        self.objects.labels(kind, "false").set(len(self._ready[kind]) - ready)

    def _gateway(
        self, namespace: str, name: str, status: dict[str, Any], figures: dict[str, float]
    ) -> set[tuple[Any, tuple[str, ...]]]:
        series: set[tuple[Any, tuple[str, ...]]] = set()
        ips = [("Active", str(ip)) for ip in status.get("natIPs", []) or []]
        ips += [("Retained", str(a.get("ip", ""))) for a in status.get("retainedAddresses", []) or [] if a.get("ip")]
        ips += [
            ("Draining", str(a.get("ip", "")))
            for a in status.get("addresses", []) or []
            if a.get("state") == "Draining" and a.get("ip")
        ]
        for state, ip in ips:
            labels = (namespace, name, ip, state)
            self.nat_ips.labels(*labels).set(1)
            series.add((self.nat_ips, labels))
        for gauge, field in ((self.nat_headroom, NAT_PORT_HEADROOM), (self.subnet_headroom, SUBNET_IP_HEADROOM)):
            if field in figures:
                gauge.labels(namespace, name).set(float(figures[field]))
                series.add((gauge, (namespace, name)))
        return series

    def _export(self, namespace: str, name: str, status: dict[str, Any]) -> set[tuple[Any, tuple[str, ...]]]:
        counts = dict.fromkeys(PSC_STATES, 0)
        for conn in status.get("connections", []) or []:
            state = str(conn.get("status") or "UNKNOWN")
            counts[state] = counts.get(state, 0) + 1
        series: set[tuple[Any, tuple[str, ...]]] = set()
        for state, count in counts.items():
            labels = (namespace, name, state)
            self.psc.labels(*labels).set(count)
            series.add((self.psc, labels))
        return series

    # -- GCP ------------------------------------------------------------------------------------

    def gcp_request(self, service: str, method: str, code: str, seconds: float) -> None:
        self.requests.labels(service, method, code).inc()
        self.request_seconds.labels(service, method).observe(seconds)

    # -- serving --------------------------------------------------------------------------------

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` (any path, as prometheus_client does) on a thread; returns the port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def ready_of(status: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []) or [])


def result_of(status: dict[str, Any]) -> str:
    """The ``result`` label of a pass that wrote this status."""
    conds = {c.get("type"): c for c in status.get("conditions", []) or []}
    ready = conds.get("Ready") or {}
    if ready.get("status") == "True":
        return READY
    if (conds.get("Stalled") or {}).get("status") == "True":
        return STALLED
    if ready.get("reason") == "GCPError":
        return ERROR
    return WAITING
