"""regions.get and regions.list, and GCP's answer to a regional call in a region that does not exist.

The list is Google Cloud's public regions (late 2026). A regional write in an unknown region is
refused with "Unknown region." as GCP refuses it; a regional read answers 404 naming the region.
Which of the two real GCP gives for reads is not confirmed; both are errors a client cannot take
for an empty result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import invalid, not_found

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

REGIONS = (
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west10",
    "europe-west12",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "northamerica-south1",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
)
_KNOWN = frozenset(REGIONS)


def check_region(call: Call, *, mutating: bool) -> None:
    """GCP's error for a regional call in a region that does not exist (nothing when it exists)."""
    region = call.params.get("region")
    if region is None or region in _KNOWN:
        return
    if mutating:
        raise invalid(f"Invalid value for field 'region': '{region}'. Unknown region.")
    raise not_found(f"projects/{call.project}/regions/{region}")


def region_body(project: str, name: str) -> dict[str, Any]:
    zones = [ids.self_link(f"projects/{project}/zones/{name}-{z}") for z in "abc"]
    return {
        "kind": "compute#region",
        "id": str(1000 + REGIONS.index(name)),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": name,
        "description": name,
        "status": "UP",
        "zones": zones,
        "selfLink": ids.self_link(f"projects/{project}/regions/{name}"),
        "supportsPzs": False,
    }


async def get_region(call: Call) -> Any:
    name = call.params["name"]
    if name not in _KNOWN:
        raise not_found(f"projects/{call.project}/regions/{name}")
    return region_body(call.project, name)


async def list_regions(call: Call) -> Any:
    from runnet.emulator.gcp.listing import compute_list

    items = [region_body(call.project, r) for r in REGIONS]
    return compute_list(call, "compute#regionList", items, f"projects/{call.project}/regions")


def register(emu: GCPEmulator) -> None:
    emu.route(
        "GET",
        "regions/{name}",
        get_region,
        method_id="compute.regions.get",
        permission="compute.regions.get",
        mutating=False,
    )
    emu.route(
        "GET",
        "regions",
        list_regions,
        method_id="compute.regions.list",
        permission="compute.regions.list",
        mutating=False,
    )
