"""The region a spec names: it must exist before anything is written in it."""

from __future__ import annotations

import difflib

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import GCPCallError, find
from runnet.gcp.context import Context


class RegionAdapter(Adapter):
    """Read-only: a region that does not exist is an invalid spec (GCP would refuse every write in it)."""

    kind = "Region"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.region)
        self.ctx = ctx

    def observe(self) -> Observation:
        c = self.ctx
        if (c.project, c.region) in c.clients.known_regions:
            return Observation(exists=True)
        region = find(f"reading region {c.region}", lambda: c.clients.regions.get(project=c.project, region=c.region))
        if region is not None:
            c.clients.known_regions.add((c.project, c.region))
            return Observation(exists=True, self_link=region.self_link)
        return Observation(exists=False, invalid=self._unknown())

    def _unknown(self) -> str:
        c = self.ctx
        hint = ""
        try:
            pages = find("listing regions", lambda: c.clients.regions.list(project=c.project))
            names = [r.name for r in pages or []]
            close = difflib.get_close_matches(c.region, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
        except GCPCallError:
            pass
        return (
            f"spec.region {c.region} is not a Google Cloud region{hint}: re-create the {c.owner.kind} with an "
            "existing region (spec.region is immutable)"
        )

    def create(self) -> None:
        raise GCPCallError(f"region {self.name} does not exist", retryable=False)

    def delete(self, observed: Observation) -> None:
        """Regions are never deleted."""
