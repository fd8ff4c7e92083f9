"""Rate quotas: per project (and region, for regional groups), per group, per wall-clock minute.

What GCP documents (Compute Engine "Rate quotas", cloud.google.com/compute/api-quota): quotas
apply per project, each to a group of methods; they are enforced per minute and refill "at the
start of the next synchronized interval" (reached at 10:00:15, refilled at 10:01:00); each group
is counted separately; exceeding one is "a 403 error with the reason rateLimitExceeded".
Regional and zonal methods have groups of their own (``*_per_region``), counted per region.

The groups below are Compute's legacy metrics (the ones error messages name, e.g. "limit 'Read
requests per minute per region'"), Cloud Run Admin's regional read and write groups, and
Resource Manager's reads. Default sizes: Compute's ``default`` and ``read_requests`` were 1,500
a minute in the page's older table; the other Compute groups are given the same 1,500 (not
confirmed); Cloud Run's were seen as 600 reads and 60 writes a minute per region (not
confirmed as defaults); Resource Manager documents 600 v1 reads a minute. Service Usage and IAM
Credentials calls are not counted.

Quotas are off unless configured (``EmulatorConfig.quotas``): a group without a size is not
limited. Calls refused by a quota consume nothing; every other call a route matches counts,
whatever its answer, and each part of a batch counts as one call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError

HELP_URL = "https://cloud.google.com/docs/quotas/help/request_increase"


@dataclass(frozen=True)
class QuotaGroup:
    id: str
    """``SERVICE/METRIC`` without ``.googleapis.com``: ``compute/read_requests_per_region``."""
    metric_name: str
    """What error messages call the metric: ``Read requests``."""
    limit_name: str
    """What error messages call the limit: ``Read requests per minute per region``."""
    limit_id: str
    """The quota limit id in ErrorInfo metadata: ``ReadRequestsPerMinutePerRegion``."""
    default: int
    """GCP's default size per minute (see the module docstring for how sure that is)."""
    regional: bool

    @property
    def service(self) -> str:
        return f"{self.id.split('/', 1)[0]}.googleapis.com"

    @property
    def metric(self) -> str:
        """``compute.googleapis.com/read_requests_per_region``."""
        return f"{self.service}/{self.id.split('/', 1)[1]}"

    @property
    def http_code(self) -> int:
        """Compute answers 403 (reason rateLimitExceeded); the google.rpc-style APIs 429."""
        return 403 if self.id.startswith("compute/") else 429


def _compute(metric: str, name: str, limit_id: str, *, regional: bool = False) -> QuotaGroup:
    suffix = " per region" if regional else ""
    return QuotaGroup(f"compute/{metric}", name, f"{name} per minute{suffix}", limit_id, 1500, regional)


GROUPS: dict[str, QuotaGroup] = {
    g.id: g
    for g in (
        _compute("default", "Queries", "defaultPerMinutePerProject"),
        _compute("read_requests", "Read requests", "ReadRequestsPerMinutePerProject"),
        _compute("list_requests", "List requests", "ListRequestsPerMinutePerProject"),
        _compute("operation_read_requests", "Operation read requests", "OperationReadRequestsPerMinutePerProject"),
        _compute(
            "heavy_weight_read_requests", "Heavy-weight read requests", "HeavyWeightReadRequestsPerMinutePerProject"
        ),
        _compute("default_per_region", "Queries", "QueriesPerMinutePerRegion", regional=True),
        _compute("read_requests_per_region", "Read requests", "ReadRequestsPerMinutePerRegion", regional=True),
        _compute("list_requests_per_region", "List requests", "ListRequestsPerMinutePerRegion", regional=True),
        _compute(
            "operation_read_requests_per_region",
            "Operation read requests",
            "OperationReadRequestsPerMinutePerRegion",
            regional=True,
        ),
        _compute(
            "heavy_weight_read_requests_per_region",
            "Heavy-weight read requests",
            "HeavyWeightReadRequestsPerMinutePerRegion",
            regional=True,
        ),
        _compute(
            "regional_network_endpoint_list_requests_per_region",
            "Regional network endpoint list requests",
            "RegionalNetworkEndpointListRequestsPerMinutePerProjectPerRegion",
            regional=True,
        ),
        QuotaGroup(
            "run/read_regional",
            "Read requests",
            "Read requests per minute per region",
            "ReadPerMinutePerProjectRegion",
            600,
            True,
        ),
        QuotaGroup(
            "run/write_regional",
            "Write requests",
            "Write requests per minute per region",
            "WritePerMinutePerProjectRegion",
            60,
            True,
        ),
        QuotaGroup(
            "cloudresourcemanager/read_requests",
            "Read requests",
            "Read requests per minute",
            "ReadRequestsPerMinutePerProject",
            600,
            False,
        ),
    )
}

ALIASES: dict[str, tuple[str, ...]] = {
    # Compute's global group and its per-region twin share a name on the command line.
    **{
        alias: (f"compute/{metric}", f"compute/{metric}_per_region")
        for alias, metric in (
            ("read", "read_requests"),
            ("list", "list_requests"),
            ("operation_read", "operation_read_requests"),
            ("heavy_weight_read", "heavy_weight_read_requests"),
            ("default", "default"),
            ("mutation", "default"),
        )
    },
    "run_read": ("run/read_regional",),
    "run_write": ("run/write_regional",),
    "projects_read": ("cloudresourcemanager/read_requests",),
}


def gcp_defaults() -> dict[str, int]:
    """Every group at GCP's default size."""
    return {g.id: g.default for g in GROUPS.values()}


def resolve(name: str) -> tuple[str, ...]:
    """The group ids a name stands for: an alias, an id, a full metric name, or a unique metric."""
    name = name.strip()
    if name in ALIASES:
        return ALIASES[name]
    candidate = name.replace(".googleapis.com/", "/")
    if candidate in GROUPS:
        return (candidate,)
    by_metric = [g.id for g in GROUPS.values() if g.id.split("/", 1)[1] == name]
    if len(by_metric) == 1:
        return (by_metric[0],)
    known = ", ".join([*ALIASES, *GROUPS])
    raise ValueError(f"unknown quota group {name!r}; known: {known}")


def normalise(limits: Mapping[str, int]) -> dict[str, int]:
    """Sizes by group id (aliases expanded, later entries winning), each a whole number >= 0."""
    out: dict[str, int] = {}
    for name, size in limits.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"quota {name!r}: the size per minute must be a whole number >= 0, got {size!r}")
        for group in resolve(name):
            out[group] = size
    return out


def parse_assignment(text: str) -> tuple[str, int]:
    """``GROUP=N`` (the ``--quota`` form)."""
    name, sep, size = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"quota {text!r} must be GROUP=N, e.g. read=3")
    try:
        return name.strip(), int(size)
    except ValueError as exc:
        raise ValueError(f"quota {text!r}: N must be a whole number") from exc


def load_file(path: Path) -> dict[str, int]:
    """A YAML mapping ``GROUP: N``; ``defaults: gcp`` first fills every group with GCP's size."""
    import yaml

    data: Any = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of quota groups to sizes per minute")
    limits: dict[str, int] = {}
    defaults = data.pop("defaults", None)
    if defaults == "gcp":
        limits.update(gcp_defaults())
    elif defaults not in (None, "none"):
        raise ValueError(f"{path}: 'defaults' is 'gcp' or 'none', got {defaults!r}")
    limits.update(normalise({str(k): v for k, v in data.items()}))
    return limits


# -- which group a method falls into ---------------------------------------------------------


def classify(api: str, method_id: str, pattern: str, mutating: bool) -> str | None:
    """The quota group of a route, from its discovery method id and path; None: not counted."""
    name = method_id.rsplit(".", 1)[-1]
    if api == "compute":
        return _compute_group(method_id, name, regional="/regions/{region}" in pattern, mutating=mutating)
    if api in ("run", "run.v1"):
        write = mutating or name in ("delete", "create", "patch", "replaceService", "setIamPolicy")
        return "run/write_regional" if write else "run/read_regional"
    if api == "cloudresourcemanager":
        return "cloudresourcemanager/read_requests"
    return None


def _compute_group(method_id: str, name: str, *, regional: bool, mutating: bool) -> str:
    collection = method_id.split(".")[1] if method_id.count(".") >= 2 else ""
    per_region = "_per_region" if regional else ""
    if collection in ("regionOperations", "globalOperations"):
        if name == "get":
            return f"compute/operation_read_requests{per_region}"
        if name == "wait":  # documented for regionOperations.wait; the global twin by analogy
            return f"compute/heavy_weight_read_requests{per_region}"
    if name == "aggregatedList":
        return "compute/heavy_weight_read_requests"
    if mutating:
        return f"compute/default{per_region}"
    if name == "listNetworkEndpoints" and collection == "regionNetworkEndpointGroups":
        return "compute/regional_network_endpoint_list_requests_per_region"
    if name.startswith("list"):
        return f"compute/list_requests{per_region}"
    if name.startswith("get"):  # get, and the read-only getRouterStatus, getNatMappingInfo...
        return f"compute/read_requests{per_region}"
    return f"compute/default{per_region}"  # testIamPermissions and other non-read calls


# -- counting ----------------------------------------------------------------------------------


class RateQuotas:
    """Counters per (project, group, location), reset when the wall-clock minute changes."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def charge(self, limits: Mapping[str, int], group_id: str, project: str, location: str, now: float) -> None:
        """Count one call; raise GCP's rate-limit error instead when the group's minute is spent."""
        limit = limits.get(group_id)
        if limit is None:
            return
        group = GROUPS[group_id]
        where = location if group.regional and location not in ("", "-") else "global"
        key, minute = (project, group_id, where), int(now // 60)
        with self._lock:
            started, used = self._counts.get(key, (minute, 0))
            if started != minute:
                used = 0
            if used >= limit:
                raise exceeded(group, project, where, limit)
            self._counts[key] = (minute, used + 1)

    def used(self, group_id: str, project: str, location: str = "global", *, now: float) -> int:
        """Calls counted against a group in the current minute (for tests and benchmarks)."""
        with self._lock:
            started, used = self._counts.get((project, group_id, location), (0, 0))
        return used if started == int(now // 60) else 0

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class RateLimitExceeded(GCPError):
    """GCP's answer to a spent rate quota: Compute's 403 rateLimitExceeded, others' 429."""

    def compute_body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "usageLimits", "reason": "rateLimitExceeded"}],
                "status": self.status,
                "details": self.details,
            }
        }


def exceeded(group: QuotaGroup, project: str, location: str, limit: int) -> RateLimitExceeded:
    number = ids.project_number(project)
    message = (
        f"Quota exceeded for quota metric '{group.metric_name}' and limit '{group.limit_name}' "
        f"of service '{group.service}' for consumer 'project_number:{number}'."
    )
    unit = "1/min/{project}/{region}" if group.regional else "1/min/{project}"
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "googleapis.com",
        "metadata": {
            "consumer": f"projects/{number}",
            "quota_limit": group.limit_id,
            "quota_limit_value": str(limit),
            "quota_location": location,
            "quota_metric": group.metric,
            "quota_unit": unit,
            "service": group.service,
        },
    }
    help_links = {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Request a higher quota limit.", "url": HELP_URL}],
    }
    code = group.http_code
    status = "PERMISSION_DENIED" if code == 403 else "RESOURCE_EXHAUSTED"
    return RateLimitExceeded(code, "rateLimitExceeded", message, status=status, details=[info, help_links])
