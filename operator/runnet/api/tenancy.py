"""ProjectBinding: which namespaces may manage which GCP project, and as which Google identity.

Cluster-scoped, written by cluster administrators only. With ``runnet run --tenancy bound`` (the
default) an object whose ``spec.project`` no binding grants to its namespace makes no GCP call at
all; with a ``serviceAccount`` every call for those namespaces' objects in that project is made as
that Google service account (impersonated), never as the operator's own identity.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from runnet.api.common import Condition, Model, ProjectId, shape

KIND = "ProjectBinding"
DESCRIPTION = (
    "Grants namespaces the right to manage one GCP project through runnet, optionally as a Google service "
    "account runnet impersonates for them. Cluster-scoped: only cluster administrators write it."
)

NAMESPACE = shape(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
    "a Kubernetes namespace name: 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter "
    "or digit",
    63,
)
SERVICE_ACCOUNT = shape(
    r"^[a-z][-a-z0-9]{4,28}[a-z0-9]@[a-z][-a-z0-9]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com$",
    "a Google service account email such as runnet-team-a@team-a-prod.iam.gserviceaccount.com",
    100,
)


class ProjectBindingSpec(Model):
    project: ProjectId = Field(description="The GCP project id the namespaces may manage.")
    namespaces: list[Annotated[str, Field(pattern=NAMESPACE.pattern, max_length=NAMESPACE.max_length)]] = Field(
        min_length=1,
        max_length=100,
        description="Namespaces whose runnet objects may manage this project.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(n, self.filter(m, m == n).size() == 1)",
                    "message": "spec.namespaces must not repeat a namespace",
                }
            ]
        },
    )
    service_account: (
        Annotated[str, Field(pattern=SERVICE_ACCOUNT.pattern, max_length=SERVICE_ACCOUNT.max_length)] | None
    ) = Field(
        default=None,
        description="Google service account runnet impersonates for these namespaces' objects in this project "
        "(runnet's own identity needs roles/iam.serviceAccountTokenCreator on it). Without it, runnet uses its own.",
    )


class ProjectBindingStatus(Model):
    observed_generation: int | None = Field(default=None, description="The metadata.generation the last pass saw.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready: the binding is in effect.")
    objects: int = Field(default=0, description="How many runnet objects use the binding now.")
