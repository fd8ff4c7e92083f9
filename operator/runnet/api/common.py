"""Types shared by every runnet kind: GCP names, references, conditions, the common status."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "runnet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# GCP resource names (RFC 1035): what Compute accepts for networks, subnets, routers, addresses...
GCP_NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
# Project ids: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter.
PROJECT_PATTERN = r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$"
REGION_PATTERN = r"^[a-z]+-[a-z]+[0-9]+$"
IPV4 = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
IPV4_PATTERN = f"^{IPV4}$"
CIDR_PATTERN = f"^{IPV4}/([0-9]|[12][0-9]|3[0-2])$"

GCPName = Annotated[str, Field(pattern=GCP_NAME_PATTERN, max_length=63)]
ProjectId = Annotated[str, Field(pattern=PROJECT_PATTERN)]


def immutable(what: str, kind: str) -> dict[str, Any]:
    """The CEL rule that makes a field immutable once set, with a message naming the fix."""
    return {
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": f"{what} is immutable: create a new {kind} instead"}
        ]
    }


class Model(BaseModel):
    """camelCase on the wire (as Kubernetes users write it), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    ORPHAN = "Orphan"


class NamedRef(Model):
    """A GCP resource by name, in the resource's project and region."""

    name: GCPName = Field(description="Name of the GCP resource; created when absent, used as-is when it exists.")


class Condition(Model):
    """A kstatus-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None


class ManagedResource(Model):
    """One GCP resource this object uses, and whether runnet owns (created) it."""

    kind: str
    name: str
    self_link: str = ""
    owned: bool = False
    state: str = ""


class CommonStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    resources: list[ManagedResource] = Field(
        default_factory=list, description="The GCP resources behind this object, with their selfLinks."
    )
