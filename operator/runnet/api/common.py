"""Types shared by every runnet kind: GCP names, references, conditions, the common status.

String shapes (project ids, GCP names, CIDRs...) are declared once, as a :class:`Shape` with the
regular expression and the words a user reads when a value does not fit. The CRD generator turns
each into a CEL rule whose message names the field ("spec.project must be a GCP project id: ..."),
and the operator's own parsing gives the same sentence: nobody is ever shown a regex.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "runnet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Shape:
    """A string format: its pattern, the words for it, and a length bound (CEL cost needs one)."""

    pattern: str
    expect: str
    """Completes "<field> must be ...": what a valid value looks like, in words."""
    max_length: int


SHAPES: dict[str, Shape] = {}


def shape(pattern: str, expect: str, max_length: int) -> Shape:
    found = Shape(pattern, expect, max_length)
    SHAPES[pattern] = found
    return found


def expectation(pattern: str) -> str:
    """The words for a registered pattern (what a parse error says instead of the regex)."""
    found = SHAPES.get(pattern)
    return found.expect if found else f"a value of the form {pattern}"


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"

GCP_NAME = shape(
    r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
    "a GCP resource name: 1 to 63 lowercase letters, digits or hyphens, starting with a letter and not ending "
    "with a hyphen",
    63,
)
PROJECT = shape(
    r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$",
    "a GCP project id: 6 to 30 lowercase letters, digits or hyphens, starting with a letter and not ending with a "
    "hyphen",
    30,
)
REGION = shape(r"^[a-z]+-[a-z]+[0-9]+$", "a GCP region such as asia-northeast1 or us-central1", 40)
IPV4_ADDRESS = shape(f"^{IPV4}$", "an IPv4 address such as 10.1.0.5", 15)
# GCP accepts primary subnet ranges from /8 to /29.
CIDR = shape(
    rf"^{IPV4}/([89]|1[0-9]|2[0-9])$",
    "an IPv4 range in CIDR notation with a prefix from /8 to /29, such as 10.10.10.0/24",
    18,
)
_SPAN = "[0-9]{1,5}"
DURATION = shape(
    rf"^(({_SPAN}h)({_SPAN}m)?({_SPAN}s)?|({_SPAN}m)({_SPAN}s)?|{_SPAN}s)$",
    "a duration in hours, minutes and seconds such as 15m, 25s or 1h30m (0s for none)",
    20,
)

# Kept for code that builds or checks names outside the models.
GCP_NAME_PATTERN = GCP_NAME.pattern
PROJECT_PATTERN = PROJECT.pattern
REGION_PATTERN = REGION.pattern
IPV4_PATTERN = IPV4_ADDRESS.pattern
CIDR_PATTERN = CIDR.pattern


GCPName = Annotated[str, Field(pattern=GCP_NAME.pattern, max_length=GCP_NAME.max_length)]
ProjectId = Annotated[str, Field(pattern=PROJECT.pattern, max_length=PROJECT.max_length)]
Region = Annotated[str, Field(pattern=REGION.pattern, max_length=REGION.max_length)]
Cidr = Annotated[str, Field(pattern=CIDR.pattern, max_length=CIDR.max_length)]
IPv4 = Annotated[str, Field(pattern=IPV4_ADDRESS.pattern, max_length=IPV4_ADDRESS.max_length)]
Duration = Annotated[str, Field(pattern=DURATION.pattern, max_length=DURATION.max_length)]


def seconds(duration: str) -> int:
    """A :data:`Duration` ("1h30m", "25s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)([hms])", duration))


def immutable(what: str, kind: str, *, why: str = "") -> dict[str, Any]:
    """The CEL rule that makes a field immutable once set, with a message naming the fix."""
    reason = f" ({why})" if why else ""
    return {
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": f"{what} is immutable{reason}: create a new {kind} instead"}
        ]
    }


def names_immutable(
    kind: str, *, required: Sequence[str] = (), optional: Sequence[str] = (), why: str = ""
) -> dict[str, Any]:
    """Spec-level transition rules keeping GCP names as they were at creation (renaming a GCP resource would leave
    the old one behind). ``required`` are dotted paths that always exist; ``optional`` are ``parent.field`` paths
    whose field may be absent (defaulted from metadata.name): it may not be set, changed or removed later."""
    reason = f" ({why})" if why else ""
    rules = []
    for path in required:
        rules.append(
            {
                "rule": f"self.{path} == oldSelf.{path}",
                "message": f"spec.{path} is immutable{reason}: create a new {kind} instead",
                "fieldPath": f".{path}",
            }
        )
    for path in optional:
        parent, field = path.rsplit(".", 1)
        old = f"has(oldSelf.{parent}) && has(oldSelf.{parent}.{field})"
        new = f"has(self.{parent}) && has(self.{parent}.{field})"
        rules.append(
            {
                "rule": f"(({old}) == ({new})) && (!({new}) || self.{path} == oldSelf.{path})",
                "message": f"spec.{path} cannot be set, changed or removed after creation{reason}: "
                f"create a new {kind} instead",
                "fieldPath": f".{path}",
            }
        )
    return {"x-kubernetes-validations": rules}


class Model(BaseModel):
    """camelCase on the wire (as Kubernetes users write it), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    ORPHAN = "Orphan"


DELETION_POLICY_HELP = (
    "Delete (default) removes the GCP resources runnet created when this object is deleted; Orphan leaves every "
    "GCP resource in place."
)


class NamedRef(Model):
    """A GCP resource by name, in the resource's project and region."""

    name: GCPName = Field(description="Name of the GCP resource; created when absent, used as-is when it exists.")


class Condition(Model):
    """A kstatus-style condition."""

    type: str = Field(description="Ready, Reconciling, Stalled, or a kind's own (NATCapacity...).")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word: why the condition has this status.")
    message: str = Field(default="", description="One sentence for people: what is wrong and how to fix it.")
    last_transition_time: str = Field(default="", description="When the status last changed.")
    observed_generation: int | None = Field(default=None, description="The metadata.generation this reflects.")


class ManagedResource(Model):
    """One GCP resource this object uses, and whether runnet owns (created) it."""

    kind: str = Field(description="GCP resource kind (Network, Subnetwork, Address, CloudNAT...).")
    name: str = Field(description="GCP resource name.")
    self_link: str = Field(default="", description="GCP selfLink (URL) of the resource.")
    owned: bool = Field(default=False, description="True when runnet created it (and may delete it).")
    state: str = Field(default="", description="What the last pass concluded for it (Ready, Waiting, Conflict...).")


class CommonStatus(Model):
    observed_generation: int | None = Field(default=None, description="The metadata.generation the last pass saw.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready; Reconciling and Stalled while True; the kind's own conditions."
    )
    resources: list[ManagedResource] = Field(
        default_factory=list, description="The GCP resources behind this object, with their selfLinks."
    )
