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
from pathlib import Path
from typing import Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError
from runnet.gcp.quota_groups import (
    ALIASES,
    GROUPS,
    QuotaGroup,
    classify,
    gcp_defaults,
    normalise,
    parse_assignment,
    resolve,
)

__all__ = [
    "ALIASES",
    "GROUPS",
    "QuotaGroup",
    "RateLimitExceeded",
    "RateQuotas",
    "classify",
    "exceeded",
    "gcp_defaults",
    "load_file",
    "normalise",
    "parse_assignment",
    "resolve",
]

HELP_URL = "https://cloud.google.com/docs/quotas/help/request_increase"


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
