"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Exactly one replica acts: it holds the Lease and renews it every retry period. The others try every
retry period (with jitter) and take the Lease over when its holder released it (``holderIdentity``
empty) or when its record has not changed for ``leaseDurationSeconds`` as *they* observed it: each
candidate times the record on its own clock, so clock skew between nodes does not matter. A leader
that has not renewed within the renew deadline, or finds someone else holding the Lease, stops acting.

Writes are an ``update`` carrying the ``resourceVersion`` just read, so of two candidates racing for an
expired Lease one gets 409 Conflict and stays a candidate. The verbs used are get, create and update.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAMESPACE = "runnet-system"
DEFAULT_NAME = "runnet-leader"
JITTER = 1.2
"""client-go's JitterFactor: a candidate waits retry period x (1 + up to 1.2) between attempts."""
OnLost = Callable[[str], None]
"""What to do when the leader loses the Lease, given why."""


def pod_namespace() -> str:
    """The namespace runnet's pod runs in (its ServiceAccount's), else runnet-system."""
    with contextlib.suppress(OSError):
        found = NAMESPACE_FILE.read_text().strip()
        if found:
            return found
    return DEFAULT_NAMESPACE


def default_identity() -> str:
    """The pod's name (``POD_NAME``, from the downward API), else hostname_pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str = DEFAULT_NAME
    identity: str = ""
    lease_duration: float = 15.0
    """Seconds a candidate waits, after it last saw the Lease change, before taking it over."""
    renew_deadline: float = 10.0
    """Seconds a leader keeps acting without a successful renewal."""
    retry_period: float = 2.0
    """Seconds between a leader's renewals, and between a candidate's attempts (plus jitter)."""

    def problem(self) -> str:
        """Why these durations cannot work ('' when they can): client-go's own rules."""
        if min(self.lease_duration, self.renew_deadline, self.retry_period) <= 0:
            return "the leader election durations must be positive"
        if self.lease_duration <= self.renew_deadline:
            return (
                f"--leader-elect-lease-duration ({self.lease_duration:g} s) must be longer than "
                f"--leader-elect-renew-deadline ({self.renew_deadline:g} s), or two replicas could act at once"
            )
        if self.renew_deadline <= JITTER * self.retry_period:
            return (
                f"--leader-elect-renew-deadline ({self.renew_deadline:g} s) must be longer than 1.2 x "
                f"--leader-elect-retry-period ({self.retry_period:g} s), or one slow renewal would lose the lease"
            )
        return ""


def micro_time(moment: dt.datetime) -> str:
    """A Kubernetes MicroTime (``2006-01-02T15:04:05.000000Z``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def one_line(exc: Exception) -> str:
    """An API error as one line: its status and the server's message."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if status is not None:
        message = ""
        with contextlib.suppress(ValueError, TypeError):
            message = json.loads(body or "").get("message", "")
        return f"{status} {getattr(exc, 'reason', '')}: {message or body}".strip()
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class LeaderElector:
    """One candidate for one Lease. Talks to the API server through a ``kubernetes.client.CoordinationV1Api``."""

    def __init__(self, config: LeaseConfig, api: Any) -> None:
        self.config = config
        self.identity = config.identity or default_identity()
        self.api = api
        self.holder = ""
        """Who held the Lease when this candidate last read or wrote it."""
        self.leading = False
        self._observed_version = ""
        self._observed_at = 0.0
        self._timeout = max(1.0, config.renew_deadline / 2)

    # -- one attempt, blocking (run in a thread) ---------------------------------------------------

    def _observe(self, lease: Any) -> None:
        """Time the record on this candidate's clock: any write changes its resourceVersion."""
        version = lease.metadata.resource_version
        if version != self._observed_version:
            self._observed_version, self._observed_at = version, time.monotonic()

    def _body(self, version: str | None, spec: dict[str, Any]) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.config.name, "namespace": self.config.namespace}
        if version:
            metadata["resourceVersion"] = version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _spec(self, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
            "acquireTime": acquired,
            "renewTime": micro_time(dt.datetime.now(dt.UTC)),
            "leaseTransitions": transitions,
        }

    def _attempt(self) -> bool:
        """client-go's tryAcquireOrRenew: True when this candidate holds the Lease afterwards."""
        from kubernetes.client import ApiException

        ns, name, timeout = self.config.namespace, self.config.name, self._timeout
        now = micro_time(dt.datetime.now(dt.UTC))
        try:
            lease = self.api.read_namespaced_lease(name, ns, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                created = self.api.create_namespaced_lease(
                    ns, self._body(None, self._spec(now, 0)), _request_timeout=timeout
                )
            except ApiException as race:
                if race.status == 409:
                    return False  # another candidate created it first
                raise
            self._observe(created)
            self.holder = self.identity
            return True
        self._observe(lease)
        spec = lease.spec
        self.holder = spec.holder_identity or ""
        duration = spec.lease_duration_seconds or self.config.lease_duration
        if self.holder and self.holder != self.identity and time.monotonic() < self._observed_at + duration:
            return False  # a live leader holds it
        transitions = spec.lease_transitions or 0
        acquired = micro_time(spec.acquire_time) if spec.acquire_time else now
        if self.holder != self.identity:
            transitions, acquired = transitions + 1, now
        body = self._body(lease.metadata.resource_version, self._spec(acquired, transitions))
        try:
            updated = self.api.replace_namespaced_lease(name, ns, body, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 409:
                return False  # someone wrote it since we read it: read again next time
            raise
        self._observe(updated)
        self.holder = self.identity
        return True

    def _release(self) -> None:
        lease = self.api.read_namespaced_lease(self.config.name, self.config.namespace, _request_timeout=self._timeout)
        if lease.spec.holder_identity != self.identity:
            return
        now = micro_time(dt.datetime.now(dt.UTC))
        # As client-go releases: no holder, a 1 s duration; the transitions count is kept.
        spec = {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": lease.spec.lease_transitions or 0,
        }
        body = self._body(lease.metadata.resource_version, spec)
        self.api.replace_namespaced_lease(self.config.name, self.config.namespace, body, _request_timeout=self._timeout)

    # -- the loops -----------------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One attempt over the wire; an error counts as a failed attempt (and is logged)."""
        before = self.holder
        try:
            held = await asyncio.to_thread(self._attempt)
        except Exception as exc:
            log.warning(
                "could not read or write the lease %s/%s: %s", self.config.namespace, self.config.name, one_line(exc)
            )
            return False
        if not held and self.holder != before and self.holder:
            log.info("lease %s/%s is held by %s; standing by", self.config.namespace, self.config.name, self.holder)
        return held

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this candidate holds the Lease (True), or ``stop`` is set (False)."""
        while not stop.is_set():
            if await self.try_acquire_or_renew():
                self.leading = True
                log.info(
                    "became the leader: lease %s/%s held by %s", self.config.namespace, self.config.name, self.identity
                )
                return True
            delay = self.config.retry_period * (1 + random.random() * JITTER)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return False

    async def hold(self) -> str:
        """Renew every retry period; return why once leadership is lost (the caller must stop acting at once)."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.config.retry_period)
            if await self.try_acquire_or_renew():
                renewed = time.monotonic()
                continue
            if self.holder and self.holder != self.identity:
                self.leading = False
                return f"the lease is now held by {self.holder}"
            if time.monotonic() - renewed >= self.config.renew_deadline:
                self.leading = False
                return f"no renewal of the lease in {self.config.renew_deadline:g} s"

    async def release(self) -> None:
        """Give the Lease up (graceful shutdown), so that another replica takes over at once."""
        if not self.leading:
            return
        self.leading = False
        try:
            await asyncio.to_thread(self._release)
        except Exception as exc:
            log.warning("could not release the lease %s/%s: %s", self.config.namespace, self.config.name, one_line(exc))
            return
        log.info("released the lease %s/%s", self.config.namespace, self.config.name)


def exit_at_once(reason: str) -> None:
    """What a leader does on losing the Lease, as Go controllers do: exit non-zero now, in-flight work and all;
    Kubernetes restarts the container, which becomes a candidate again."""
    log.critical("lost the leadership (%s): exiting so that only the new leader acts", reason)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(1)


@contextlib.asynccontextmanager
async def standby_liveness(url: str | None, elector: LeaderElector) -> AsyncIterator[None]:
    """Answer the liveness probe while standing by (kopf serves it only once it runs), so that the kubelet does not
    restart a healthy standby replica; the port is free again for kopf when the block ends."""
    if not url:
        yield
        return
    from aiohttp import web

    where = urlsplit(url)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"standby": True, "leader": elector.holder})

    app = web.Application()
    app.router.add_get(where.path or "/", healthz)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, where.hostname or "0.0.0.0", where.port or 80, reuse_address=True)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()
