"""GCP's rate quotas from the operator's side (issue 11): the shared limiter, and rateLimitExceeded as transient.

The emulator enforces its quotas on a ``ManualClock``; the limiter under test reads the same clock
and "sleeps" by moving it, so a minute's window costs no real time.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import run_v2

from runnet.controllers import egress
from runnet.emulator.gcp import EmulatorConfig, GCPEmulator
from runnet.emulator.gcp.clock import ManualClock
from runnet.gcp.clients import Clients, GCPSettings
from runnet.gcp.limiter import RateLimiter, classify_request, default_rates
from runnet.status import RATE_LIMITED
from tests.operator.conftest import Driver, deploy_service, example
from tests.operator.test_psc_controller import topology

PROJECT, REGION = "my-project", "asia-northeast1"
READS = 3
"""The emulator's read quota per minute in these tests: a gateway's first pass needs more (its reads are lists,
with a GET only of what it wrote)."""
CLOCK = ManualClock()


@pytest.fixture
def gcp_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    CLOCK.next_minute()
    setting = getattr(request, "param", {"quotas": {"read": READS}})
    return EmulatorConfig(
        seed=1, quotas=setting.get("quotas"), clock=CLOCK, operation_latency=setting.get("latency", 0)
    )


def limited(gcp: GCPEmulator, **rates: int) -> Clients:
    limiter = RateLimiter(default_rates(1.0, rates), clock=CLOCK, sleep=CLOCK.advance)
    return Clients(GCPSettings(endpoint=gcp.base_url), limiter=limiter)


def refusals(gcp: GCPEmulator) -> list[str]:
    return [f"{e.method} {e.path}" for e in gcp.log.snapshot() if e.status in (403, 429)]


def test_the_limiter_lets_n_calls_a_minute_through_per_project_group_and_region() -> None:
    clock = ManualClock()
    limiter = RateLimiter(
        {"compute/read_requests_per_region": 3, "compute/default": 2}, clock=clock, sleep=clock.advance
    )
    start = clock()
    for _ in range(3):
        assert limiter.acquire("p", "compute/read_requests_per_region", "r1") == 0
    assert limiter.acquire("p", "compute/read_requests_per_region", "r2") == 0  # another region: its own count
    assert limiter.acquire("q", "compute/read_requests_per_region", "r1") == 0  # another project
    assert limiter.acquire("p", "compute/list_requests", "") == 0  # no limit set: never waits
    assert limiter.acquire("p", "compute/read_requests_per_region", "r1") == 60.0  # the oldest call a minute ago
    assert clock() == start + 60
    clock.advance(59)
    assert limiter.acquire("p", "compute/read_requests_per_region", "r1") == 0  # the 2nd..3rd slots left at +0
    # GCP said the group is spent (someone else used it): nothing until the next minute, or Retry-After.
    clock.next_minute()
    clock.advance(15)
    until = limiter.close("p", "compute/default", "r1")
    assert until == clock() + 45
    assert limiter.acquire("p", "compute/default") == 45
    assert limiter.close("p", "compute/default", "", retry_after=7) == clock() + 7
    assert limiter.acquire("p", "compute/default") == 7


def test_the_default_leaves_a_fifth_of_each_quota_and_flags_override_it() -> None:
    rates = default_rates(0.8, {"read": 100})
    assert rates["compute/default_per_region"] == 1200
    assert rates["run/write_regional"] == 48
    assert rates["compute/read_requests"] == rates["compute/read_requests_per_region"] == 100


@pytest.mark.parametrize("gcp_config", [{"latency": 0.02}], indirect=True)
async def test_every_call_runnet_makes_counts_where_the_emulator_counts_it(service: Any, gcp: GCPEmulator) -> None:
    """The limiter's group, project and region for each request agree with the emulator's, over whole lifecycles."""
    clients = Clients(GCPSettings(endpoint=gcp.base_url))
    deploy_service(clients, "producer-project", REGION, "hello-service")
    gateway = Driver(egress.reconcile, egress.finalize, clients, example("egress-fixed-ip.yaml"))
    topo = topology(lambda r, f, body: Driver(r, f, clients, body))
    for _ in range(3):
        await gateway.reconcile()
    await topo.converge()
    await gateway.finalize()
    await topo.endpoint.finalize()
    await topo.export.finalize()
    seen = set()
    for entry in gcp.log.snapshot():
        call = classify_request(entry.method, entry.path)
        expected = (entry.quota_group, entry.project, entry.region if "per_region" in entry.quota_group else "")
        got = (call.group, call.project, call.location if "per_region" in call.group else "") if call else ("", "", "")
        if entry.quota_group.startswith("run/"):
            got = (got[0], got[1], "")
            expected = (expected[0], expected[1], "")
        assert got == expected, f"{entry.method} {entry.path}"
        seen.add(entry.method_id)
    assert {"compute.regionOperations.get", "compute.routers.patch", "run.projects.locations.services.patch"} <= seen


@pytest.fixture
def service(gcp: GCPEmulator) -> run_v2.Service:
    CLOCK.next_minute()
    service = deploy_service(Clients(GCPSettings(endpoint=gcp.base_url)), PROJECT, REGION, "direct-vpc-egress")
    CLOCK.next_minute()
    return service


async def test_without_the_limiter_rate_limited_is_reported_as_the_projects_quota(service: Any, gcp) -> None:
    clients = Clients(GCPSettings(endpoint=gcp.base_url))
    gateway = Driver(egress.reconcile, egress.finalize, clients, example("egress-fixed-ip.yaml"))
    outcome = await gateway.reconcile()
    assert refusals(gcp), "the read quota was not reached: the test proves nothing"
    ready = gateway.condition()
    assert (ready["status"], ready["reason"]) == ("False", RATE_LIMITED), ready
    assert f"project {PROJECT}" in ready["message"] and "Read requests per minute per region" in ready["message"]
    assert gateway.condition("Reconciling")["reason"] == RATE_LIMITED
    assert not any(c["type"] == "Stalled" for c in gateway.status["conditions"])
    assert outcome.retry_after is not None  # retried, not left for a person


async def test_with_the_limiter_calls_queue_and_gcp_never_refuses_one(service: Any, gcp: GCPEmulator) -> None:
    clients = limited(gcp, read=READS - 1)
    gateway = Driver(egress.reconcile, egress.finalize, clients, example("egress-fixed-ip.yaml"))
    for _ in range(6):
        await gateway.reconcile()
        if gateway.condition()["status"] == "True":
            break
    assert gateway.condition()["status"] == "True", gateway.condition()
    assert refusals(gcp) == []
    assert clients.limiter is not None and clients.limiter.waited >= 60  # it did queue, across minutes
