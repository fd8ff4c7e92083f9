"""Emulator settings: operation latency, injected faults, IAM grants, rate quotas, the request log."""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runnet.emulator.gcp import quota
from runnet.emulator.gcp.clock import Clock, system_clock
from runnet.emulator.gcp.iam import DEFAULT_PRINCIPAL, IamPolicy

FaultKind = Literal["429", "500", "503", "operation"]
FAULT_KINDS: tuple[FaultKind, ...] = ("429", "500", "503", "operation")


@dataclass
class Fault:
    """Inject ``kind`` into a share ``rate`` of calls whose permission matches ``method`` (a glob).

    ``method`` is matched against the IAM permission of the call (``compute.routers.update``,
    ``run.services.create``), which names every method uniquely enough; ``*`` matches all.
    ``operation`` makes a mutating call return an operation that then fails. ``times``, when set,
    stops the fault after that many injections (a deterministic "the next N calls fail").
    """

    method: str
    rate: float
    kind: FaultKind
    times: int | None = None

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``METHOD_GLOB:RATE:KIND``, e.g. ``compute.*:0.2:503`` (the command-line form)."""
        try:
            method, rate, kind = text.rsplit(":", 2)
            if kind not in FAULT_KINDS:
                raise ValueError(kind)
            return cls(method=method, rate=float(rate), kind=kind)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(
                f"fault {text!r} must be METHOD_GLOB:RATE:KIND with KIND one of {', '.join(FAULT_KINDS)}"
            ) from exc

    def matches(self, permission: str) -> bool:
        return fnmatch.fnmatchcase(permission, self.method)


@dataclass
class EmulatorConfig:
    operation_latency: float = 0.0
    """Seconds a mutating operation stays RUNNING. 0 completes operations before the response."""
    latency_jitter: float = 0.0
    """Up to this many extra seconds, drawn uniformly per operation."""
    faults: list[Fault] = field(default_factory=list)
    allowed_permissions: set[str] | None = None
    """When set, the default principal holds these permissions in every project (and no other)."""
    iam_policy: IamPolicy | None = None
    """Grants per principal and project (``iam``); with ``allowed_permissions``, IAM is enforced."""
    default_principal: str = DEFAULT_PRINCIPAL
    """Who calls without an access token the emulator issued (``iam``)."""
    max_token_lifetime: int = 3600
    """Longest ``lifetime`` generateAccessToken grants, in seconds (GCP: 1 hour unless an org policy says 12)."""
    quotas: dict[str, int] | None = None
    """Rate quota sizes per minute by group (``quota``: ids or aliases like ``read``); None: no quotas.
    ``quota.gcp_defaults()`` gives every group GCP's default size."""
    clock: Clock = system_clock
    """Wall-clock seconds for quota windows, token expiry and log times (``clock.ManualClock`` in tests)."""
    request_log_path: Path | str | None = None
    """Also write one JSON line per request to this file (flushed at once)."""
    seed: int | None = None
    nat_ip_prefix: str = "34.146"
    """External addresses are allocated from this /16 (the reference topology's region uses 34.146)."""

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        if self.quotas is not None:
            self.quotas = quota.normalise(self.quotas)

    @property
    def iam_enforced(self) -> bool:
        return self.allowed_permissions is not None or self.iam_policy is not None

    def pick_fault(self, permission: str, *, mutating: bool, method_id: str = "") -> FaultKind | None:
        """A fault for this call, if any: globs match the IAM permission or the discovery method id."""
        for fault in self.faults:
            if fault.kind == "operation" and not mutating:
                continue
            if fault.times is not None and fault.times <= 0:
                continue
            matched = fault.matches(permission) or (method_id and fault.matches(method_id))
            if matched and self.random.random() < fault.rate:
                if fault.times is not None:
                    fault.times -= 1
                return fault.kind
        return None

    def draw_latency(self) -> float:
        if self.latency_jitter <= 0:
            return self.operation_latency
        return self.operation_latency + self.random.uniform(0, self.latency_jitter)
