"""kopf handlers for EgressGateway."""

from __future__ import annotations

import kopf

from runnet.controllers import egress
from runnet.handlers.common import register_kind
from runnet.runtime import Runtime


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    register_kind(registry, runtime, "egressgateways", egress.reconcile, egress.finalize)
