"""State machines that throw random sequences at the controllers, the way a hostile user would.

Valid and invalid spec edits, GCP drift made by hand, injected faults and operator restarts (the
status lost, too), against the GCP emulator over HTTP. After every pass the invariants that make
runnet's status trustworthy are checked:

- every address carrying the gateway's owner marker is listed, translated to by the NAT, or in
  ``status.addresses`` as Draining or Retained (so nothing billed and allowlisted is ever
  forgotten), and a Draining one is in the NAT's drain pool;
- ``status.natIPs`` are the IPs GCP reports the NAT translating to;
- a converged pass writes nothing;
- deletion leaves exactly what the policies say;
- for PSC: the export's connections are the attachment's, the endpoint's state is its rule's.

``make test`` runs a bounded number of examples; ``RUNNET_SOAK=1`` (``make soak``) runs many more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from google.cloud import compute_v1, run_v2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from runnet.controllers import egress, psc
from runnet.emulator.gcp import Fault, GCPEmulator
from runnet.engine import Engine
from runnet.gcp.clients import Clients
from runnet.gcp.ownership import Owner
from tests.operator.conftest import Driver, deploy_service, example

SOAK = os.environ.get("RUNNET_SOAK") == "1"
EXAMPLES, STEPS = (200, 40) if SOAK else (12, 16)
REGION = "asia-northeast1"
POOL = ["ip-a", "ip-b", "ip-c"]
_projects = itertools.count()
TALLY: Counter[str] = Counter()
"""Steps run per rule (printed at the end of each test: the note reports them)."""


def machine_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


class Harness:
    """What every machine shares within one test: the emulator, clients, an engine and an event loop."""

    gcp: GCPEmulator
    clients: Clients
    engine: Engine
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


H = Harness()


@pytest.fixture
def harness(gcp: GCPEmulator, clients: Clients) -> Any:
    H.gcp, H.clients = gcp, clients
    H.loop = asyncio.new_event_loop()
    H.engine = H.loop.run_until_complete(_engine())
    yield H
    H.loop.close()


async def _engine() -> Engine:
    return Engine(8)


def writes_since(mark: int) -> list[Any]:
    return H.gcp.log.writes()[mark:]


@contextlib.contextmanager
def by_hand() -> Iterator[None]:
    """The test's own GCP calls (a person, drift) are not subject to the faults injected for the operator."""
    faults = list(H.gcp.config.faults)
    H.gcp.config.faults.clear()
    try:
        yield
    finally:
        H.gcp.config.faults.extend(faults)


class FaultsMixin:
    faulted: bool = False

    def _inject(self, kind: str, method: str) -> None:
        H.gcp.config.faults.append(Fault(method=method, rate=0.5, kind=kind, times=2))  # type: ignore[arg-type]
        self.faulted = True

    def _clear(self) -> None:
        H.gcp.config.faults.clear()


class GatewayMachine(FaultsMixin, RuleBasedStateMachine):
    """One EgressGateway through edits, drift, faults and restarts."""

    def __init__(self) -> None:
        super().__init__()
        self.project = f"sm{next(_projects):04d}-egress"
        body = example("egress-fixed-ip.yaml")
        body["spec"]["project"] = self.project
        body["spec"]["nat"]["addresses"] = ["ip-a"]
        body["spec"]["services"] = [{"name": "svc"}]
        self.driver = Driver(egress.reconcile, egress.finalize, H.clients, body)
        self.driver.engine = H.engine
        self.broken: str = ""
        self.range = "10.10.10.0/24"
        self.owner = Owner("EgressGateway", "default", body["metadata"]["name"])

    @property
    def spec(self) -> dict[str, Any]:
        return self.driver.body["spec"]  # type: ignore[no-any-return]

    def _edit(self) -> None:
        self.driver.body["metadata"]["generation"] += 1
        self._pass()

    @initialize()
    def deploy(self) -> None:
        TALLY[f"{type(self).__name__}.deploy"] += 1
        deploy_service(H.clients, self.project, REGION, "svc")

    # -- spec edits -------------------------------------------------------------------------------

    @rule(names=st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True))
    def edit_addresses(self, names: list[str]) -> None:
        TALLY[f"{type(self).__name__}.edit_addresses"] += 1
        self.spec["nat"]["addresses"] = names
        self._edit()

    @rule(timeout=st.sampled_from(["0s", "15m"]))
    def edit_drain_timeout(self, timeout: str) -> None:
        TALLY[f"{type(self).__name__}.edit_drain_timeout"] += 1
        self.spec["nat"]["drainTimeout"] = timeout
        self._edit()

    @rule(held=st.booleans())
    def connections(self, held: bool) -> None:
        """Endpoints keep (or close) their connections on every NAT IP: what ends a drain early or not."""
        TALLY[f"{type(self).__name__}.connections"] += 1
        H.gcp.extra["nat_ip_endpoints"] = {a.address: int(held) for a in self._owned()}
        self._pass()

    @rule(policy=st.sampled_from(["Retain", "Delete"]))
    def edit_policy(self, policy: str) -> None:
        TALLY[f"{type(self).__name__}.edit_policy"] += 1
        self.spec["nat"]["addressDeletionPolicy"] = policy
        self._edit()

    @rule(how=st.sampled_from(["host bits", "ports", "shrink"]))
    def break_spec(self, how: str) -> None:
        TALLY[f"{type(self).__name__}.break_spec"] += 1
        self.broken = how
        if how == "host bits":
            self.spec["subnet"]["ipCidrRange"] = self.range.replace(".0/", ".7/")
        elif how == "ports":
            self.spec["nat"]["maxPortsPerVm"] = 128
        else:
            base, prefix = self.range.split("/")
            self.spec["subnet"]["ipCidrRange"] = f"{base}/{int(prefix) + 1}"
        self._edit()

    @precondition(lambda self: bool(self.broken))
    @rule()
    def fix_spec(self) -> None:
        TALLY[f"{type(self).__name__}.fix_spec"] += 1
        self.spec["subnet"]["ipCidrRange"] = self.range
        self.spec["nat"].pop("maxPortsPerVm", None)
        self.broken = ""
        self._edit()

    @precondition(lambda self: not self.broken and self.range.endswith("/24"))
    @rule()
    def grow_subnet(self) -> None:
        TALLY[f"{type(self).__name__}.grow_subnet"] += 1
        self.range = "10.10.10.0/23"
        self.spec["subnet"]["ipCidrRange"] = self.range
        self._edit()

    @rule()
    def toggle_service(self) -> None:
        TALLY[f"{type(self).__name__}.toggle_service"] += 1
        self.spec["services"] = [] if self.spec["services"] else [{"name": "svc"}]
        self._edit()

    # -- the world changing under runnet -----------------------------------------------------------

    @rule(what=st.sampled_from(["nat", "retained", "service", "nat ips"]))
    def drift(self, what: str) -> None:
        TALLY[f"{type(self).__name__}.drift"] += 1
        with by_hand():
            self._drift(what)
        self._pass()

    def _drift(self, what: str) -> None:
        router = _find(lambda: H.clients.routers.get(project=self.project, region=REGION, router="router-cloud-run"))
        if what == "nat" and router is not None and router.nats:
            router.nats = []
            H.clients.routers.update(
                project=self.project, region=REGION, router=router.name, router_resource=router
            ).result()
        elif what == "nat ips" and router is not None and router.nats:
            free = [a for a in self._owned() if a.status == "RESERVED"]
            if free:
                router.nats[0].nat_ips = [free[0].self_link]
                H.clients.routers.update(
                    project=self.project, region=REGION, router=router.name, router_resource=router
                ).result()
        elif what == "retained":
            idle = [a for a in self._owned() if a.status == "RESERVED" and a.name not in self.spec["nat"]["addresses"]]
            if idle:
                H.clients.addresses.delete(project=self.project, region=REGION, address=idle[0].name).result()
        elif what == "service":
            svc = H.clients.run_services.get_service(name=f"projects/{self.project}/locations/{REGION}/services/svc")
            svc.template.vpc_access = run_v2.VpcAccess()
            H.clients.run_services.update_service(service=svc).result(timeout=30)

    @rule(kind=st.sampled_from(["503", "429", "operation"]), method=st.sampled_from(["compute.*", "run.*", "*"]))
    def inject_faults(self, kind: str, method: str) -> None:
        TALLY[f"{type(self).__name__}.inject_faults"] += 1
        self._inject(kind, method)
        self._pass()

    @rule(lose_status=st.booleans())
    def restart(self, lose_status: bool) -> None:
        """A new operator process: it starts from what the API server kept, or from nothing."""
        TALLY[f"{type(self).__name__}.restart"] += 1
        if lose_status:
            self.driver.status = {}
        self._pass()

    # -- passes and what must hold after them --------------------------------------------------------

    @rule(passes=st.integers(min_value=1, max_value=3))
    def reconcile(self, passes: int) -> None:
        TALLY[f"{type(self).__name__}.reconcile"] += 1
        self._pass(passes)

    def _pass(self, passes: int = 1) -> None:
        """The operator's passes after a step (under the faults injected, if any), then a clean one and the
        invariants."""
        for _ in range(passes):
            H.run(self.driver.reconcile())
        faulted, self.faulted = self.faulted, False
        self._clear()
        if faulted:
            return
        H.run(self.driver.reconcile())  # one clean pass, then the invariants
        self._check_memory()
        self._check_nat_ips()
        if self.driver.condition()["status"] == "True":
            self._check_idempotent()

    def _owned(self) -> list[compute_v1.Address]:
        pages = H.clients.addresses.list(project=self.project, region=REGION)
        return [a for a in pages if self.owner.owns(a.description)]

    def _check_memory(self) -> None:
        status = self.driver.status
        retained = {a["name"] for a in status.get("retainedAddresses", [])}
        states = {a["name"]: a["state"] for a in status.get("addresses", [])}
        translated = set(status.get("natIPs", []))
        router = _find(lambda: H.clients.routers.get(project=self.project, region=REGION, router="router-cloud-run"))
        pool = {ip.rsplit("/", 1)[-1] for n in (router.nats if router else []) for ip in n.drain_nat_ips}
        for address in self._owned():
            known = address.name in self.spec["nat"]["addresses"] or address.name in retained
            known = known or states.get(address.name) in ("Draining", "Retained")
            assert known or address.address in translated, (
                f"{address.name} ({address.address}) is runnet's but neither listed, draining, retained nor in "
                f"natIPs: {status}"
            )
            assert (states.get(address.name) == "Draining") == (address.name in pool), (address.name, pool, status)

    def _check_nat_ips(self) -> None:
        router = _find(lambda: H.clients.routers.get(project=self.project, region=REGION, router="router-cloud-run"))
        if router is None or not router.nats:
            return
        status = H.clients.routers.get_router_status(project=self.project, region=REGION, router=router.name).result
        entry = next((s for s in status.nat_status if s.name == "nat-cloud-run"), None)
        gcp = sorted([*entry.user_allocated_nat_ips, *entry.auto_allocated_nat_ips]) if entry else []
        assert sorted(self.driver.status.get("natIPs", [])) == gcp, (self.driver.status, gcp)

    def _check_idempotent(self) -> None:
        mark = len(H.gcp.log.writes())
        outcome = H.run(self.driver.reconcile())
        assert writes_since(mark) == [], [e.path for e in writes_since(mark)]
        assert self.driver.condition()["status"] == "True" and outcome.events == [], outcome.events

    def teardown(self) -> None:
        self._clear()
        before = {a.name for a in self._owned()}
        policy = self.spec["nat"].get("addressDeletionPolicy", "Retain")
        for _ in range(10):
            if H.run(self.driver.finalize()).retry_after is None:
                break
        else:
            raise AssertionError(f"the gateway's deletion never finished: {self.driver.status}")
        left = sorted(p for p, _ in H.gcp.store.items() if f"projects/{self.project}/" in p and "/operations/" not in p)
        kept = {p.rsplit("/", 1)[-1] for p in left if "/addresses/" in p}
        assert kept == (before if policy == "Retain" else set()), (policy, before, left)
        others = [p for p in left if "/addresses/" not in p and "/services/" not in p]
        assert others == [], others
        svc = H.clients.run_services.get_service(name=f"projects/{self.project}/locations/{REGION}/services/svc")
        assert "runnet.dev/egress-gateway" not in svc.annotations


def _find(fn: Any) -> Any:
    from google.api_core import exceptions

    try:
        return fn()
    except exceptions.NotFound:
        return None


class PSCMachine(FaultsMixin, RuleBasedStateMachine):
    """An export and an endpoint through consumer-list edits, drift, faults and restarts."""

    consumer: ClassVar[str] = "consumer-project"

    def __init__(self) -> None:
        super().__init__()
        n = next(_projects)
        self.producer = f"sm{n:04d}-producer"
        self.exports: dict[tuple[str, str], dict[str, Any]] = {}
        export = example("psc-export.yaml")
        export["spec"]["project"] = self.producer
        endpoint = example("psc-endpoint.yaml")
        self.consumer_project = endpoint["spec"]["project"] = f"sm{n:04d}-consumer"
        export["spec"]["attachment"]["consumers"] = []
        self.export = Driver(psc.reconcile_export, psc.finalize_export, H.clients, export)
        self.export.body["metadata"]["uid"] = "7d1c2f0a-0000-4b1e-8c7d-000000000001"
        controller = psc.EndpointController(psc.MappingResolver(self.exports))
        self.endpoint = Driver(controller.reconcile, controller.finalize, H.clients, endpoint)
        for driver in (self.export, self.endpoint):
            driver.engine = H.engine
        self.broken = False

    @property
    def attachment(self) -> dict[str, Any]:
        return self.export.body["spec"]["attachment"]  # type: ignore[no-any-return]

    def _publish(self) -> None:
        meta = self.export.body["metadata"]
        self.exports[(meta["namespace"], meta["name"])] = {**self.export.body, "status": self.export.status}

    def _edit(self) -> None:
        self.export.body["metadata"]["generation"] += 1
        self._pass()

    @initialize()
    def deploy(self) -> None:
        TALLY[f"{type(self).__name__}.deploy"] += 1
        deploy_service(H.clients, self.producer, REGION, "hello-service")

    @rule(state=st.sampled_from(["accepted", "unlisted", "rejected"]))
    def decide(self, state: str) -> None:
        TALLY[f"{type(self).__name__}.decide"] += 1
        self.attachment["consumers"] = [{"project": self.consumer_project}] if state == "accepted" else []
        self.attachment["rejected"] = [self.consumer_project] if state == "rejected" else []
        self._edit()

    @rule(preference=st.sampled_from(["ACCEPT_MANUAL", "ACCEPT_AUTOMATIC"]))
    def preference(self, preference: str) -> None:
        TALLY[f"{type(self).__name__}.preference"] += 1
        self.attachment["connectionPreference"] = preference
        self._edit()

    @rule()
    def break_export(self) -> None:
        TALLY[f"{type(self).__name__}.break_export"] += 1
        self.export.body["spec"]["subnets"]["pscNat"]["ipCidrRange"] = "10.0.1.128/25"  # overlaps the LB subnet
        self.broken = True
        self._edit()

    @precondition(lambda self: self.broken)
    @rule()
    def fix_export(self) -> None:
        TALLY[f"{type(self).__name__}.fix_export"] += 1
        self.export.body["spec"]["subnets"]["pscNat"]["ipCidrRange"] = "10.0.3.0/24"
        self.broken = False
        self._edit()

    @rule()
    def drift(self) -> None:
        """Someone edits the attachment's accept list by hand."""
        TALLY[f"{type(self).__name__}.drift"] += 1
        with by_hand():
            self._drift()
        self._pass()

    def _drift(self) -> None:
        sa = _find(
            lambda: H.clients.service_attachments.get(
                project=self.producer, region=REGION, service_attachment="hello-service-attachment"
            )
        )
        if sa is None:
            return
        hand = compute_v1.ServiceAttachment(
            fingerprint=sa.fingerprint,
            consumer_accept_lists=[
                compute_v1.ServiceAttachmentConsumerProjectLimit(
                    project_id_or_num="intruder-project", connection_limit=1
                )
            ],
        )
        H.clients.service_attachments.patch(
            project=self.producer, region=REGION, service_attachment=sa.name, service_attachment_resource=hand
        ).result()

    @rule(kind=st.sampled_from(["503", "operation"]), method=st.sampled_from(["compute.*", "run.*"]))
    def inject_faults(self, kind: str, method: str) -> None:
        TALLY[f"{type(self).__name__}.inject_faults"] += 1
        self._inject(kind, method)
        self._pass()

    @rule(lose_status=st.booleans())
    def restart(self, lose_status: bool) -> None:
        TALLY[f"{type(self).__name__}.restart"] += 1
        if lose_status:
            self.export.status, self.endpoint.status = {}, {}
            self._publish()
        self._pass()

    @rule(passes=st.integers(min_value=1, max_value=2))
    def reconcile(self, passes: int) -> None:
        TALLY[f"{type(self).__name__}.reconcile"] += 1
        self._pass(passes)

    def _pass(self, passes: int = 1) -> None:
        for _ in range(passes):
            H.run(self.export.reconcile())
            self._publish()
            H.run(self.endpoint.reconcile())
        faulted, self.faulted = self.faulted, False
        self._clear()
        if faulted:
            return
        H.run(self.export.reconcile())
        self._publish()
        H.run(self.endpoint.reconcile())
        H.run(self.export.reconcile())  # sees the endpoint's connection
        self._publish()
        self._check_connections()
        for driver in (self.export, self.endpoint):
            if driver.condition()["status"] == "True":
                mark = len(H.gcp.log.writes())
                H.run(driver.reconcile())
                assert writes_since(mark) == [], [e.path for e in writes_since(mark)]

    def _check_connections(self) -> None:
        sa = _find(
            lambda: H.clients.service_attachments.get(
                project=self.producer, region=REGION, service_attachment="hello-service-attachment"
            )
        )
        shown = {(c["endpoint"], c["status"]) for c in self.export.status.get("connections", [])}
        actual = {(e.endpoint.split("/compute/v1/")[-1], e.status) for e in sa.connected_endpoints} if sa else set()
        assert shown == actual, (shown, actual)
        rule = _find(
            lambda: H.clients.forwarding_rules.get(
                project=self.consumer_project, region=REGION, forwarding_rule="psc-endpoint"
            )
        )
        state = (rule.psc_connection_status or "PENDING") if rule else ""
        assert self.endpoint.status.get("connectionStatus", "") == state, (self.endpoint.status, state)

    def teardown(self) -> None:
        self._clear()
        for driver in (self.endpoint, self.export):
            for _ in range(10):
                if H.run(driver.finalize()).retry_after is None:
                    break
            else:
                raise AssertionError(f"deletion never finished: {driver.status}")
        left = sorted(
            p
            for p, _ in H.gcp.store.items()
            if p.startswith((f"projects/{self.producer}/", f"projects/{self.consumer_project}/"))
            and "/operations/" not in p
        )
        assert left == [f"projects/{self.producer}/locations/{REGION}/services/hello-service"], left


@pytest.mark.timeout(3600 if SOAK else 600)
def test_egress_gateways_keep_their_promises_under_random_sequences(harness: Harness) -> None:
    TALLY.clear()
    run_state_machine_as_test(GatewayMachine, settings=machine_settings())
    print("\nstate machine steps:", dict(sorted(TALLY.items())))


@pytest.mark.timeout(3600 if SOAK else 600)
def test_psc_exports_and_endpoints_keep_their_promises_under_random_sequences(harness: Harness) -> None:
    TALLY.clear()
    run_state_machine_as_test(PSCMachine, settings=machine_settings())
    print("\nstate machine steps:", dict(sorted(TALLY.items())))
