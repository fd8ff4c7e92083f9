"""The resource kinds the GCP emulator serves; each module adds its routes to an emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runnet.emulator.gcp import (
    compute_address,
    compute_firewall,
    compute_lb,
    compute_network,
    compute_psc,
    compute_region,
    compute_router,
    compute_subnet_expand,
    iam_credentials,
    operation_routes,
    projects,
    run,
    run_v1,
    service_usage,
)

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import GCPEmulator

REGISTRARS: list[Callable[[GCPEmulator], None]] = [
    compute_region.register,
    operation_routes.register,
    compute_network.register,
    compute_firewall.register,
    compute_subnet_expand.register,
    compute_address.register,
    compute_router.register,
    compute_lb.register,
    compute_psc.register,
    run.register,
    run_v1.register,
    projects.register,
    service_usage.register,
    iam_credentials.register,
]
