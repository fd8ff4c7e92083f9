"""Cloud Resource Manager v1 ``projects.get``: what ``gcloud projects describe P`` calls.

The emulator has no project lifecycle: every well-formed project id exists, ACTIVE, with the
stable number ``ids.project_number`` gives it, the same number Cloud Run puts in default service
accounts (``NUMBER-compute@developer.gserviceaccount.com``) and in ``*.run.app`` URLs. A
project can also be named by that number once the emulator has seen its id. An id that cannot
be a project answers like a project the caller may not see: 403, as Resource Manager does
rather than reveal whether a project exists.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call, GCPEmulator

# "6 to 30 characters ... lowercase letters, digits, or hyphens ... start with a letter ... no trailing hyphen"
PROJECT_ID_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
CREATED = ids.run_timestamp(1_600_000_000.0)
"""Every emulated project was created at the same (arbitrary, fixed) moment."""


def known_projects(emu: GCPEmulator) -> set[str]:
    """Project ids the emulator has seen: in stored resources and in earlier project calls."""
    seen: set[str] = emu.extra.setdefault("projects", set())
    return seen | {path.split("/")[1] for path, _ in emu.store.items() if path.startswith("projects/")}


def project_id(emu: GCPEmulator, name: str, *, denied: str) -> str:
    """The project id a path names (an id or a number); 403 ``denied`` when there is none."""
    if name.isdigit():
        for known in known_projects(emu):
            if ids.project_number(known) == name:
                return known
    elif PROJECT_ID_RE.match(name):
        emu.extra.setdefault("projects", set()).add(name)
        return name
    raise GCPError(403, "forbidden", denied, status="PERMISSION_DENIED")


async def get_project(call: Call) -> Any:
    name = call.params["project"]
    project = project_id(
        call.emu,
        name,
        denied=f"The caller does not have permission (project '{name}' does not exist, or it is not visible).",
    )
    return {
        "projectNumber": ids.project_number(project),
        "projectId": project,
        "lifecycleState": "ACTIVE",
        "name": project,
        "createTime": CREATED,
    }


def register(emu: GCPEmulator) -> None:
    emu.route(
        "GET",
        "/v1/projects/{project:[^/:]+}",
        get_project,
        method_id="cloudresourcemanager.projects.get",
        permission="resourcemanager.projects.get",
        mutating=False,
        api="cloudresourcemanager",
    )
