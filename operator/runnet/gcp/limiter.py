"""The operator's own rate limit: it stays below GCP's per-project, per-minute rate quotas.

GCP counts every call against a quota group (``quota_groups``) per project (and per region for
regional groups) per wall-clock minute, and answers ``rateLimitExceeded`` once a group is spent,
for runnet and for every other tool and person in the project. One ``RateLimiter`` per operator
process, shared by every object and identity, lets at most N calls of a group through in any 60
seconds (a sliding window: whatever GCP's minute boundaries are, no minute of GCP's sees more than
N), with N a share of GCP's default (80%: headroom for people and other tools) unless set. A call
over the limit waits, asleep, until the oldest call in the window is a minute old. A
``rateLimitExceeded`` that gets through anyway (someone else spent the quota) closes the group
until the next minute, or its Retry-After.

The limiter sits in the HTTP session of every client (``LimitedAdapter``), so each request is
counted the way GCP counts it, pages of a list and operation waits included.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from runnet.gcp import quota_groups

WINDOW = 60.0
DEFAULT_SHARE = 0.8
"""Of GCP's default quota, what runnet uses when a group's rate is not set."""


def default_rates(share: float = DEFAULT_SHARE, rates: Mapping[str, int] | None = None) -> dict[str, int]:
    """Calls per minute by group id: ``share`` of GCP's default sizes, overridden by ``rates`` (aliases allowed)."""
    limits = {group: max(1, int(size * share)) for group, size in quota_groups.gcp_defaults().items()}
    limits.update(quota_groups.normalise(dict(rates or {})))
    return limits


Key = tuple[str, str, str]
"""(project, group id, location): location is the region for a regional group, else 'global'."""


class RateLimiter:
    """At most ``limits[group]`` calls per key in any ``WINDOW`` seconds; callers over it sleep (never spin)."""

    def __init__(
        self,
        limits: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.limits = dict(limits)
        self._clock = clock
        self._sleep = sleep
        self._calls: dict[Key, deque[float]] = {}
        self._closed: dict[Key, float] = {}
        self._lock = threading.Lock()
        self.waited = 0.0
        """Seconds callers spent waiting, in total (for benchmarks and logs)."""

    def key(self, project: str, group: str, location: str) -> Key:
        regional = quota_groups.GROUPS[group].regional if group in quota_groups.GROUPS else False
        return (project, group, location if regional and location else "global")

    def acquire(self, project: str, group: str, location: str = "") -> float:
        """Count one call, first sleeping as long as the group's window is full; returns the seconds slept."""
        limit = self.limits.get(group)
        if limit is None:
            return 0.0
        key = self.key(project, group, location)
        slept = 0.0
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay(key, limit, now)
                if delay <= 0:
                    self._calls.setdefault(key, deque()).append(now)
                    self.waited += slept
                    return slept
            self._sleep(delay)
            slept += delay

    def _delay(self, key: Key, limit: int, now: float) -> float:
        closed = self._closed.get(key, 0.0)
        if closed > now:
            return closed - now
        calls = self._calls.get(key)
        if calls is None:
            return 0.0
        while calls and calls[0] <= now - WINDOW:
            calls.popleft()
        if len(calls) < limit:
            return 0.0
        return calls[0] + WINDOW - now

    def close(self, project: str, group: str, location: str, retry_after: float | None = None) -> float:
        """GCP said the group is spent: no call until ``retry_after`` seconds, else the next minute; returns when."""
        key = self.key(project, group, location)
        with self._lock:
            now = self._clock()
            until = now + retry_after if retry_after is not None else (now // WINDOW + 1) * WINDOW
            self._closed[key] = max(self._closed.get(key, 0.0), until)
            return until


# -- which call is which group -----------------------------------------------------------------

_VERBS = {"GET": "get", "POST": "insert", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}
_READ_ONLY_POSTS = {"wait", "testIamPermissions"}
_REGIONAL_TWINS = {"networkEndpointGroups", "backendServices", "urlMaps", "targetHttpProxies", "healthChecks"}
"""Collections whose regional methods are another resource in the discovery document (regionUrlMaps...)."""


@dataclass(frozen=True)
class Call:
    """One request as GCP's quotas see it."""

    group: str
    project: str
    location: str


def classify_request(method: str, url: str) -> Call | None:
    """The quota group, project and location of an HTTP request to Compute or Cloud Run; None: not counted."""
    path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    parts = ["", *path.split("/")]
    if path.startswith("compute/v1/projects/"):
        return _compute_call(method, parts[4:])
    if re.match(r"v[12]/projects/[^/]+/locations/[^/]+/", path):
        return _run_call(method, parts[2:])
    return None


def _compute_call(method: str, parts: list[str]) -> Call | None:
    project, rest = parts[0], parts[1:]
    location, regional = "", False
    if rest[:1] == ["regions"] and len(rest) >= 3:
        location, regional, rest = rest[1], True, rest[2:]
    elif rest[:1] in (["global"], ["zones"]):
        rest = rest[1:] if rest[0] == "global" else rest[2:]
    if not rest:
        rest = ["projects", project]
    collection, tail = rest[0], rest[1:]
    if collection == "operations":
        collection = "regionOperations" if regional else "globalOperations"
    elif regional and collection in _REGIONAL_TWINS:
        collection = "region" + collection[0].upper() + collection[1:]
    if collection == "aggregated":
        name = "aggregatedList"
    elif method == "GET":
        name = "list" if not tail else ("get" if len(tail) == 1 else tail[1])
    else:
        name = tail[1] if len(tail) >= 2 else _VERBS.get(method, "")
    mutating = method != "GET" and name not in _READ_ONLY_POSTS and not name.startswith("list")
    pattern = "/projects/{project}/regions/{region}" if regional else "/projects/{project}/global"
    group = quota_groups.classify("compute", f"compute.{collection}.{name}", pattern, mutating)
    return Call(group, project, location) if group else None


def _run_call(method: str, parts: list[str]) -> Call | None:
    project, location = parts[1], parts[3]
    last = parts[-1]
    name = last.rsplit(":", 1)[1] if ":" in last else _VERBS.get(method, "")
    if method == "GET" and ":" not in last:
        name = "list" if len(parts) % 2 == 1 else "get"
    mutating = method != "GET" and name not in _READ_ONLY_POSTS
    group = quota_groups.classify("run", f"run.projects.locations.services.{name}", "", mutating)
    return Call(group, project, location) if group else None


def rate_limited(response: Response) -> bool:
    """Whether an answer is GCP's rateLimitExceeded (Compute's 403, or a 429)."""
    if response.status_code not in (403, 429):
        return False
    try:
        error: Any = json.loads(response.content or b"{}").get("error", {})
    except (ValueError, AttributeError):
        return response.status_code == 429
    reasons = {str(e.get("reason", "")) for e in error.get("errors", []) if isinstance(e, dict)}
    reasons |= {str(d.get("reason", "")) for d in error.get("details", []) if isinstance(d, dict)}
    return bool(reasons & {"rateLimitExceeded", "RATE_LIMIT_EXCEEDED"}) or response.status_code == 429


def retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class LimitedAdapter(HTTPAdapter):
    """A requests transport adapter that takes a place in the limiter before sending each request."""

    def __init__(self, limiter: RateLimiter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limiter = limiter

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        call = classify_request(request.method or "GET", request.url or "")
        if call is not None:
            self.limiter.acquire(call.project, call.group, call.location)
        response = super().send(request, *args, **kwargs)
        if call is not None and rate_limited(response):
            self.limiter.close(call.project, call.group, call.location, retry_after(response))
        return response
