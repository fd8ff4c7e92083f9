"""Observation by list (issue 11): converged objects share one list per kind, what runnet writes is read again,
a change a list shows wakes the objects that read it, and a NAT's status is not read on every pass."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from typing import Any

import pytest
from google.cloud import compute_v1

from runnet.controllers import egress
from runnet.emulator.gcp import EmulatorConfig, GCPEmulator
from runnet.emulator.gcp.clock import ManualClock
from runnet.engine import Adapter, Engine, Node, Observation
from runnet.gcp.calls import compute_write, deferring_waits
from runnet.gcp.clients import Clients
from runnet.gcp.inventory import ACCEPTED_AGE, Inventory
from runnet.gcp.router import NAT_STATUS_TTL
from tests.operator.conftest import Driver, deploy_service, example

PROJECT, REGION = "my-project", "asia-northeast1"
RESYNC_AGE = 108.0
"""What a converged object's resync accepts with the default interval of 120 s."""


@pytest.fixture
def gcp_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """The emulator, with an operation latency where a test asks for one (parametrized)."""
    return EmulatorConfig(seed=1, operation_latency=getattr(request, "param", 0.0))


def gateway(i: int) -> dict[str, Any]:
    body = copy.deepcopy(example("egress-fixed-ip.yaml"))
    body["metadata"]["name"] = f"gw-{i}"
    body["metadata"]["uid"] = f"0f6a3b9e-1111-4c2e-9d55-5d1b0c8a7e{i:02d}"
    spec = body["spec"]
    spec["network"]["name"] = f"vpc-{i}"
    spec["subnet"] = {"name": f"subnet-{i}", "ipCidrRange": f"10.10.{i}.0/24"}
    spec["router"]["name"] = f"router-{i}"
    spec["nat"]["name"] = f"nat-{i}"
    spec["nat"]["addresses"] = [f"ip-{i}"]
    spec["services"] = [{"name": f"svc-{i}", "egress": "ALL_TRAFFIC"}]
    return body


async def ready(driver: Driver, passes: int = 5) -> None:
    for _ in range(passes):
        await driver.reconcile()
        if driver.condition()["status"] == "True":
            return
    raise AssertionError(driver.condition())


async def resync(driver: Driver, age: float = RESYNC_AGE) -> None:
    token = ACCEPTED_AGE.set(age)
    try:
        await driver.reconcile()
    finally:
        ACCEPTED_AGE.reset(token)


def calls(gcp: GCPEmulator, since: int) -> list[str]:
    return [e.method_id for e in gcp.log.snapshot()[since:]]


@pytest.fixture
def gateways(driver_factory: Any, clients: Clients) -> list[Driver]:
    drivers = []
    for i in range(3):
        deploy_service(clients, PROJECT, REGION, f"svc-{i}")
        drivers.append(driver_factory(egress.reconcile, egress.finalize, gateway(i)))
    return drivers


async def test_converged_gateways_share_one_list_per_kind_and_get_nothing(
    gateways: list[Driver], gcp: GCPEmulator
) -> None:
    for driver in gateways:
        await ready(driver)
    for driver in gateways:
        await resync(driver, age=0)  # as a converged pass that lists every kind it reads, once
    start = len(gcp.log.snapshot())
    for driver in gateways:
        await resync(driver)
    seen = calls(gcp, start)
    assert all(d.condition()["status"] == "True" for d in gateways)
    # The three passes read from the snapshot their predecessors listed: no GET, no list, no write. Only
    # the NAT's status, which has no list form, is read while its configuration is new (see below).
    assert [m for m in seen if m != "compute.routers.getRouterStatus"] == []
    for driver in gateways:
        start = len(gcp.log.snapshot())
        await resync(driver, age=0)
        lists = [m for m in calls(gcp, start) if m != "compute.routers.getRouterStatus"]
        # A pass that accepts nothing older lists each kind it reads once, and GETs nothing.
        assert sorted(lists) == sorted(set(lists)), lists
        assert {"compute.routers.list", "compute.addresses.list", "run.projects.locations.services.list"} <= set(lists)
        assert not [m for m in lists if not m.endswith((".list", "services.list"))], lists


async def test_a_change_a_list_shows_wakes_the_objects_that_read_it(gateways: list[Driver], clients: Clients) -> None:
    for driver in gateways:
        await ready(driver)
    woken: list[Any] = []
    clients.inventory.on_change = lambda watchers, _listed_at: woken.extend(watchers)
    # By hand: the NAT of gw-0 goes away (a router write that runnet did not make).
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-0")
    router.nats = []
    clients.routers.update(project=PROJECT, region=REGION, router="router-0", router_resource=router).result()
    await resync(gateways[1], age=0)  # another gateway's pass lists routers again...
    assert ("EgressGateway", "default", "gw-0") in woken  # ...and gw-0, which read router-0, is told
    assert ("EgressGateway", "default", "gw-1") not in woken
    await resync(gateways[0], age=RESYNC_AGE)  # its pass repairs it from the fresh snapshot
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-0")
    assert [n.name for n in router.nats] == ["nat-0"]


async def test_a_pass_reads_again_what_runnet_wrote(driver_factory: Any, clients: Clients, gcp: GCPEmulator) -> None:
    deploy_service(clients, PROJECT, REGION, "svc-0")
    driver = driver_factory(egress.reconcile, egress.finalize, gateway(0))
    await ready(driver)
    start = len(gcp.log.snapshot())
    driver.body["spec"]["nat"]["minPortsPerVm"] = 128
    driver.body["metadata"]["generation"] += 1
    await resync(driver, age=RESYNC_AGE)  # the snapshot is fresh: the router is read from it, then written
    seen = calls(gcp, start)
    assert seen.count("compute.routers.patch") == 1
    # The write's resource is read again with a GET: the status comes from what GCP has after the write.
    after = seen[seen.index("compute.routers.patch") :]
    assert "compute.routers.get" in after
    nat = next(n for n in clients.routers.get(project=PROJECT, region=REGION, router="router-0").nats)
    assert nat.min_ports_per_vm == 128 and driver.condition()["status"] == "True"
    start = len(gcp.log.snapshot())
    await resync(driver)
    assert not [m for m in calls(gcp, start) if m.endswith((".patch", ".insert", ".update"))]


async def test_a_nats_status_is_read_while_new_then_kept_until_its_configuration_changes(
    driver_factory: Any, clients: Clients, gcp: GCPEmulator
) -> None:
    clock = ManualClock()
    clients.inventory = Inventory(clock=clock)
    deploy_service(clients, PROJECT, REGION, "svc-0")
    driver = driver_factory(egress.reconcile, egress.finalize, gateway(0))
    await ready(driver)

    def status_reads(passes: int, step: float) -> Any:
        async def run() -> int:
            start = len(gcp.log.snapshot())
            for _ in range(passes):
                clock.advance(step)
                await resync(driver)
            return calls(gcp, start).count("compute.routers.getRouterStatus")

        return run()

    # Read while the pass converged; it showed exactly the IPs the configuration lists, so it is kept...
    assert await status_reads(5, 100.0) == 0
    assert driver.status["natIPs"] and driver.condition()["status"] == "True"
    # ...until the NAT's configuration changes (here by hand, seen in the next list): a new version, read again.
    router = clients.routers.get(project=PROJECT, region=REGION, router="router-0")
    router.nats[0].min_ports_per_vm = 256
    patch = compute_v1.Router(nats=router.nats)
    clients.routers.patch(project=PROJECT, region=REGION, router="router-0", router_resource=patch).result()
    clock.advance(RESYNC_AGE + 1)
    assert await status_reads(1, 0.0) >= 1  # (runnet repairs the drift: one more new version, read too)
    assert await status_reads(3, 100.0) == 0
    assert await status_reads(1, NAT_STATUS_TTL) == 1  # and once per TTL in any case


async def test_a_nat_status_that_trails_its_configuration_is_read_until_it_agrees(
    driver_factory: Any, clients: Clients, gcp: GCPEmulator
) -> None:
    deploy_service(clients, PROJECT, REGION, "svc-0")
    driver = driver_factory(egress.reconcile, egress.finalize, gateway(0))
    await ready(driver)
    # GCP's status lags: it goes on showing the NAT as it is now after the next configuration change.
    path = f"projects/{PROJECT}/regions/{REGION}/routers/router-0"
    gcp.extra["router_status_lag"] = {path}
    clients.routers.get_router_status(project=PROJECT, region=REGION, router="router-0")
    driver.body["spec"]["nat"]["addresses"] = ["ip-0", "ip-extra"]
    driver.body["metadata"]["generation"] += 1
    await resync(driver)
    start = len(gcp.log.snapshot())
    for _ in range(3):
        await resync(driver)
    assert calls(gcp, start).count("compute.routers.getRouterStatus") == 3  # never kept while it disagrees
    assert len(driver.status["natIPs"]) == 1  # what GCP says it uses, not what runnet asked for
    gcp.extra["router_status_lag"] = set()
    await resync(driver)
    assert len(driver.status["natIPs"]) == 2
    start = len(gcp.log.snapshot())
    for _ in range(3):
        await resync(driver)
    assert calls(gcp, start).count("compute.routers.getRouterStatus") == 0


class _Blocking(Adapter):
    """A node whose observe blocks until released: a call waiting for its API's rate quota."""

    api = "run"

    def __init__(self, name: str, release: threading.Event) -> None:
        super().__init__(name)
        self.release = release

    def observe(self) -> Observation:
        assert self.release.wait(10)
        return Observation(exists=True, owned=True)

    def create(self) -> None: ...

    def delete(self, observed: Observation) -> None: ...


class _Quick(_Blocking):
    api = "compute"

    def observe(self) -> Observation:
        return Observation(exists=True, owned=True)


async def test_calls_waiting_on_one_apis_quota_never_hold_back_another_apis() -> None:
    release = threading.Event()
    engine = Engine(concurrency=2)
    waiting = [Node(f"run-{i}", _Blocking(f"run-{i}", release)) for i in range(4)]
    slow = asyncio.create_task(engine.reconcile(waiting))
    await asyncio.sleep(0.2)  # Cloud Run's slots are all taken by calls waiting for their turn
    quick = await asyncio.wait_for(engine.reconcile([Node("net", _Quick("net", release))]), 5)
    assert quick.ready and not slow.done()
    release.set()
    assert (await slow).ready


def test_a_poked_pass_accepts_what_is_as_new_as_its_poke_and_a_converged_resync_almost_an_interval() -> None:
    from runnet.runtime import FRESH, RESYNC_SNAPSHOT, OperatorSettings, Runtime

    runtime = Runtime(OperatorSettings(resync_interval=120.0))
    key = ("egressgateways", "default/gw-0")
    assert runtime.accepted_age(*key, resync=True) == FRESH  # never converged yet
    runtime.schedule(*key, retry_after=None)
    assert runtime.accepted_age(*key, resync=True) == 120.0 * RESYNC_SNAPSHOT
    assert runtime.accepted_age(*key, resync=False) == FRESH  # an edit
    listed_at = time.monotonic() - 3.0
    runtime.poke(*key, since=listed_at)  # a list begun 3 s ago showed a change
    age = runtime.accepted_age(*key, resync=True)
    assert 3.0 <= age < 4.0
    assert runtime.accepted_age(*key, resync=True) == 120.0 * RESYNC_SNAPSHOT  # the poke is used once
    runtime.schedule(*key, retry_after=10.0)
    assert runtime.accepted_age(*key, resync=True) == FRESH  # a retry


def test_a_collection_runnet_wrote_to_is_listed_again_once_never_read_with_a_get_per_written_resource() -> None:
    """While hundreds of resources are being created in one collection, every reader of the collection (proxy-only
    subnet discovery, owned addresses) used to GET every written one: 15 GETs per subnet at 1,000 gateways."""
    now = [0.0]
    inventory = Inventory(clock=lambda: now[0])
    gcp = {"a": "A1"}
    lists: list[float] = []

    class Item:
        def __init__(self, name: str, value: str) -> None:
            self.name, self.value = name, value

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Item) and (self.name, self.value) == (other.name, other.value)

    def list_all() -> list[Item]:
        lists.append(now[0])
        return [Item(n, v) for n, v in sorted(gcp.items())]

    path = "projects/p/regions/r/subnetworks"
    assert [i.value for i in inventory.collection(path, list_all, since=0.0)] == ["A1"]
    now[0] = 10.0
    assert [i.value for i in inventory.collection(path, list_all, since=0.0)] == ["A1"]
    assert lists == [0.0], "fresh enough, and nothing written since: no list"
    inventory.touch(f"{path}/b")  # runnet creates b and c
    inventory.touch(f"{path}/c")
    now[0] = 11.0
    gcp.update(b="B1", c="C1")
    for _ in range(3):  # three readers: one list between them, no GET
        assert [i.value for i in inventory.collection(path, list_all, since=0.0)] == ["A1", "B1", "C1"]
    assert lists == [0.0, 11.0]
    assert not inventory.touched(f"{path}/b"), "the list began after the write: b reads from the snapshot now"
    # The write's operation is seen done: touched again, so what a list saw while it ran is not trusted.
    now[0] = 12.0
    inventory.touch(f"{path}/b")
    gcp["b"] = "B2"
    now[0] = 13.0
    assert [i.value for i in inventory.collection(path, list_all, since=0.0)] == ["A1", "B2", "C1"]
    assert lists == [0.0, 11.0, 13.0]


@pytest.mark.parametrize("gcp_config", [0.5], indirect=True)
def test_what_a_list_saw_while_runnets_write_ran_is_not_taken_for_its_result(clients: Clients) -> None:
    """Over HTTP with the emulator: a list of the collection begun while an address insert's operation runs (it
    clears the write's touch, and does not show the address yet) is not trusted once the operation is done."""
    path = f"projects/{PROJECT}/regions/{REGION}/addresses"

    def listed() -> list[str]:
        found = clients.inventory.collection(
            path, lambda: list(clients.addresses.list(project=PROJECT, region=REGION)), since=0.0
        )
        return [a.name for a in found]

    assert listed() == []
    body = compute_v1.Address(name="ip-0", address_type="EXTERNAL")
    pending = deferring_waits(
        lambda: compute_write(
            clients,
            "reserving ip-0",
            lambda: clients.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=body),
        )
    )
    assert listed() == [], "listed while the insert runs: the address is not there yet"
    (operation,) = pending
    operation.wait_here()
    assert listed() == ["ip-0"], "the operation is done: the collection is listed again"
