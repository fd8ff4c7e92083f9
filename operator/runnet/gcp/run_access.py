"""Who may reach an exported Cloud Run service: its ingress setting and its invoker IAM bindings.

Ingress is only ever narrowed by the export and never widened again when the export goes. Invoker
bindings are a read-modify-write of the service's IAM policy with its etag; the members runnet
added are remembered on the service itself (an annotation, per export), written before the grant,
so that a crash between the two never leaves a grant runnet would not know to remove, and so that
a binding someone else made is never removed.
"""

from __future__ import annotations

import json

from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, options_pb2, policy_pb2

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import GCPCallError, call, find
from runnet.gcp.context import Context
from runnet.gcp.run_service import read_service, readiness, service_path, update_service

INVOKER = "roles/run.invoker"
GRANTED = "runnet.dev/psc-invokers"
"""Annotation: JSON ``{"<namespace>/<export>": [members runnet granted]}``."""
PUBLIC = ("allUsers", "allAuthenticatedUsers")
Ingress = run_v2.IngressTraffic
# Widest first: moving right narrows who can reach the service.
_BREADTH = [
    Ingress.INGRESS_TRAFFIC_ALL,
    Ingress.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER,
    Ingress.INGRESS_TRAFFIC_INTERNAL_ONLY,
    Ingress.INGRESS_TRAFFIC_NONE,
]


def narrows(old: run_v2.IngressTraffic, new: run_v2.IngressTraffic) -> bool:
    was = Ingress.INGRESS_TRAFFIC_ALL if old == Ingress.INGRESS_TRAFFIC_UNSPECIFIED else old
    return _BREADTH.index(new) > _BREADTH.index(was)


def missing_service(ctx: Context, name: str) -> str:
    """Why the service is not there: another region, or nowhere in the project."""
    parent = f"projects/{ctx.project}/locations/-"
    pages = find(f"looking for Cloud Run service {name}", lambda: ctx.clients.run_services.list_services(parent=parent))
    for svc in pages or []:
        parts = svc.name.split("/")
        if parts[-1] == name:
            return (
                f"Cloud Run service {name} is in {parts[3]}, not {ctx.region}: a PSC export must be in its "
                "service's region"
            )
    return (
        f"Cloud Run service {name} does not exist in project {ctx.project} region {ctx.region}: "
        "deploy it first or fix spec.service"
    )


class RunIngressAdapter(Adapter):
    """The service's ingress, set to the spec's (INTERNAL_ONLY or INTERNAL_LOAD_BALANCER)."""

    kind = "CloudRunService"
    api = "run"

    def __init__(self, ctx: Context, name: str, *, ingress: str) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.ingress = Ingress.__members__[f"INGRESS_TRAFFIC_{ingress}"]
        self.narrowed_from: str = ""
        """Set when this pass narrowed the ingress (for an Event)."""

    def observe(self) -> Observation:
        svc = read_service(self.ctx, self.name)
        if svc is None:
            return Observation(exists=False, invalid=missing_service(self.ctx, self.name))
        obs = Observation(exists=True, self_link=svc.name, body=svc, up_to_date=svc.ingress == self.ingress)
        # Only a rollout in progress holds the export back: a failed latest revision leaves the last
        # ready one serving, and redeploying it is the service owner's call (reported, not retried).
        serving, why = readiness(svc)
        obs.ready = not (svc.reconciling or svc.observed_generation < svc.generation)
        obs.message = "" if obs.ready else why
        obs.outputs.update(ingress=Ingress(svc.ingress).name, serving=serving, health=why, uri=svc.uri)
        return obs

    def create(self) -> None:
        raise GCPCallError(f"Cloud Run service {self.name} does not exist", retryable=False)

    def update(self, observed: Observation) -> None:
        svc = observed.body
        before = Ingress(svc.ingress)
        svc.ingress = self.ingress
        update_service(self.ctx, svc, f"setting the ingress of Cloud Run service {self.name} to {self.ingress.name}")
        if narrows(before, self.ingress):
            self.narrowed_from = before.name

    def delete(self, observed: Observation) -> None:
        """Never widen the ingress again: a service once private stays private."""


class RunInvokersAdapter(Adapter):
    """``roles/run.invoker`` for the spec's members; only bindings runnet added are ever removed."""

    kind = "IAMPolicy"
    api = "run"

    def __init__(self, ctx: Context, name: str, *, invokers: list[str], export: str) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.invokers = sorted(set(invokers))
        self.export = export
        """namespace/name of the PSCExport: the key of its record on the service."""

    @property
    def path(self) -> str:
        return service_path(self.ctx, self.name)

    def _policy(self) -> policy_pb2.Policy:
        request = iam_policy_pb2.GetIamPolicyRequest(
            resource=self.path, options=options_pb2.GetPolicyOptions(requested_policy_version=3)
        )
        # A read: transient errors are retried in place, like every other GET.
        policy = find(
            f"reading the IAM policy of Cloud Run service {self.name}",
            lambda: self.ctx.clients.run_services.get_iam_policy(request=request),
        )
        if policy is None:
            raise GCPCallError(f"Cloud Run service {self.name} disappeared", retryable=True)
        return policy

    def observe(self) -> Observation:
        svc = read_service(self.ctx, self.name)
        if svc is None:
            return Observation(exists=False, invalid=missing_service(self.ctx, self.name))
        policy = self._policy()
        members = invokers_of(policy)
        recorded = _records(svc).get(self.export, [])
        obs = Observation(exists=True, self_link=svc.name, body=svc)
        obs.up_to_date = set(self.invokers) <= members and not (set(recorded) - set(self.invokers))
        obs.outputs["granted"] = sorted(set(recorded) & members)
        obs.outputs["public"] = sorted(members & set(PUBLIC))
        return obs

    def create(self) -> None:
        raise GCPCallError(f"Cloud Run service {self.name} does not exist", retryable=False)

    def update(self, observed: Observation) -> None:
        # Read again: the ingress node may have just updated the service (new etag).
        svc = self._service()
        policy = self._policy()
        members = invokers_of(policy)
        recorded = set(_records(svc).get(self.export, []))
        grant = set(self.invokers) - members
        revoke = recorded - set(self.invokers)
        self._record(svc, recorded | grant)
        self._set_policy(policy, add=grant, remove=revoke & members)
        if revoke:
            self._record(self._service(), (recorded | grant) - revoke)

    def delete(self, observed: Observation) -> None:
        """Remove the bindings runnet added for this export, then forget them."""
        svc = self._service()
        recorded = set(_records(svc).get(self.export, []))
        if not recorded:
            return
        policy = self._policy()
        self._set_policy(policy, add=set(), remove=recorded & invokers_of(policy))
        self._record(self._service(), set())

    def _service(self) -> run_v2.Service:
        svc = read_service(self.ctx, self.name)
        if svc is None:
            raise GCPCallError(f"Cloud Run service {self.name} disappeared", retryable=True)
        return svc

    def _record(self, svc: run_v2.Service, members: set[str]) -> None:
        """Write this export's record on the service (nothing when it already says that)."""
        records = _records(svc)
        wanted = dict(records)
        wanted.pop(self.export, None)
        if members:
            wanted[self.export] = sorted(members)
        if wanted == records:
            return
        if wanted:
            svc.annotations[GRANTED] = json.dumps(wanted, sort_keys=True, separators=(",", ":"))
        else:
            svc.annotations.pop(GRANTED, None)
        update_service(self.ctx, svc, f"recording runnet's invokers on Cloud Run service {self.name}")

    def _set_policy(self, policy: policy_pb2.Policy, *, add: set[str], remove: set[str]) -> None:
        if not add and not remove:
            return
        binding = next((b for b in policy.bindings if b.role == INVOKER and not b.HasField("condition")), None)
        if binding is None:
            binding = policy.bindings.add(role=INVOKER)
        kept = (set(binding.members) | add) - remove
        del binding.members[:]
        binding.members.extend(sorted(kept))
        if not kept:
            policy.bindings.remove(binding)
        request = iam_policy_pb2.SetIamPolicyRequest(resource=self.path, policy=policy)
        call(
            f"updating the invokers of Cloud Run service {self.name}",
            lambda: self.ctx.clients.run_services.set_iam_policy(request=request),
        )


def invokers_of(policy: policy_pb2.Policy) -> set[str]:
    """Members holding roles/run.invoker unconditionally."""
    return {m for b in policy.bindings if b.role == INVOKER and not b.HasField("condition") for m in b.members}


def _records(svc: run_v2.Service) -> dict[str, list[str]]:
    try:
        records = json.loads(svc.annotations.get(GRANTED, "") or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(k): sorted(str(m) for m in v) for k, v in records.items()} if isinstance(records, dict) else {}
