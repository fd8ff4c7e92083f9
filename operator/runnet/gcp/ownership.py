"""Ownership markers: how a GCP resource says which custom resource created it.

Every kind runnet creates has a ``description``; that is the marker (labels are added too where
the kind has them, for people filtering in the console). The owner is identified by kind,
namespace and name, so a custom resource deleted and re-created under the same name takes back
what its predecessor retained (the reserved NAT IPs a partner allowlisted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARKER = re.compile(r"runnet\.dev owner=(?P<kind>\w+)/(?P<namespace>[-a-z0-9.]+)/(?P<name>[-a-z0-9.]+)")


@dataclass(frozen=True)
class Owner:
    kind: str
    namespace: str
    name: str
    uid: str = ""

    def description(self) -> str:
        return (
            f"Managed by runnet.dev owner={self.kind}/{self.namespace}/{self.name} uid={self.uid}. "
            "Manual changes are reverted."
        )

    def labels(self) -> dict[str, str]:
        return {"managed-by": "runnet", "runnet-owner-uid": self.uid.lower()[:63]}

    def owns(self, description: str | None) -> bool:
        found = _MARKER.search(description or "")
        if found is None:
            return False
        return (found["kind"], found["namespace"], found["name"]) == (
            self.kind,
            self.namespace,
            self.name,
        )

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def owner_of(description: str | None) -> str | None:
    """Who owns a resource according to its marker ("EgressGateway default/x"), or None."""
    found = _MARKER.search(description or "")
    return f"{found['kind']} {found['namespace']}/{found['name']}" if found else None
