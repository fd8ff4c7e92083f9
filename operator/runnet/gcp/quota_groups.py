"""Compute Engine's, Cloud Run Admin's and Resource Manager's rate quota groups, and which group a method is in.

Shared by the emulator (which enforces the quotas) and the operator (whose limiter stays below them), so
that both count a call against the same group. What GCP documents (Compute Engine "Rate quotas",
cloud.google.com/compute/api-quota): quotas apply per project, each to a group of methods, per minute;
``default`` (mutations), ``read_requests`` (``*.get``), ``list_requests`` (``*.list``) and
``operation_read_requests`` (``globalOperations.get``) are 1,500 a minute per project by default, and
regional methods have groups of their own (``*_per_region``), counted per region. The other Compute
groups are given the same 1,500 (not confirmed); Cloud Run's were seen as 600 reads and 60 writes a
minute per region (not confirmed as defaults); Resource Manager documents 600 v1 reads a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
