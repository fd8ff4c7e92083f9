"""kopf handlers for PSCExport and PSCEndpoint."""

from __future__ import annotations

import kopf

from runnet.runtime import Runtime


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """PSC kinds are registered once their controllers exist."""
