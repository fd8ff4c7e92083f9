"""Gateways converge while the GCP emulator injects 429/503 errors and failing operations."""

from __future__ import annotations

import pytest

from runnet.controllers import egress
from runnet.emulator.gcp import EmulatorConfig, Fault
from tests.operator.conftest import deploy_service, example

PROJECT, REGION = "my-project", "asia-northeast1"
EXPECTED = {
    f"projects/{PROJECT}/global/networks/vpc-cloud-run",
    f"projects/{PROJECT}/regions/{REGION}/subnetworks/subnet-cloud-run",
    f"projects/{PROJECT}/regions/{REGION}/routers/router-cloud-run",
    f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip",
    f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip-2",
    f"projects/{PROJECT}/locations/{REGION}/services/direct-vpc-egress",
}


def inventory(gcp) -> set[str]:
    return {p for p, _ in gcp.store.items() if "/operations/" not in p}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_gateway_converges_and_deletes_under_injected_faults(driver_factory, clients, gcp, seed) -> None:
    deploy_service(clients, PROJECT, REGION, "direct-vpc-egress")
    gcp.config.seed = seed
    gcp.config.__post_init__()
    faults = [
        Fault("compute.*", 0.1, "429"),
        Fault("compute.*", 0.1, "503"),
        Fault("run.services.*", 0.2, "503"),
        Fault("compute.*", 0.2, "operation"),
        Fault("run.services.update", 0.2, "operation"),
    ]
    gcp.config.faults = faults
    body = example("egress-fixed-ip.yaml")
    body["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2"]
    driver = driver_factory(egress.reconcile, egress.finalize, body)
    for _ in range(40):
        await driver.reconcile()
        if driver.condition()["status"] == "True":
            break
    assert driver.condition()["status"] == "True", driver.condition()
    injected = [e for e in gcp.log.snapshot() if e.status in (429, 503)]
    assert injected, "the faults were not exercised"
    assert inventory(gcp) == EXPECTED
    gcp.config.faults = []  # the test's own reads are not under test
    assert len(clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run").nats) == 1
    gcp.config.faults = faults
    for _ in range(40):
        if (await driver.finalize()).retry_after is None:
            break
    else:
        pytest.fail("deletion did not finish under faults")
    assert inventory(gcp) == {
        f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip",
        f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip-2",
        f"projects/{PROJECT}/locations/{REGION}/services/direct-vpc-egress",
    }


@pytest.fixture
def gcp_config() -> EmulatorConfig:
    return EmulatorConfig(seed=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_psc_export_and_endpoint_converge_and_delete_under_injected_faults(
    driver_factory, clients, gcp, seed
) -> None:
    from tests.operator.test_psc_controller import PRODUCER, topology

    deploy_service(clients, PRODUCER, REGION, "hello-service")
    before = inventory(gcp)
    gcp.config.seed = seed
    gcp.config.__post_init__()
    faults = [
        Fault("compute.*", 0.1, "429"),
        Fault("compute.*", 0.1, "503"),
        Fault("run.services.*", 0.2, "503"),
        Fault("compute.*", 0.2, "operation"),
    ]
    gcp.config.faults = faults
    both = topology(driver_factory)
    await both.converge(passes=40)
    assert both.export.condition()["status"] == "True", both.export.condition()
    assert both.endpoint.condition()["status"] == "True", both.endpoint.condition()
    assert [e for e in gcp.log.snapshot() if e.status in (429, 503)], "the faults were not exercised"
    created = inventory(gcp) - before
    assert len([p for p in created if "/serviceAttachments/" in p]) == 1
    assert len([p for p in created if "/forwardingRules/" in p]) == 2  # producer rule and consumer endpoint
    for driver in (both.endpoint, both.export):
        for _ in range(40):
            if (await driver.finalize()).retry_after is None:
                break
        else:
            pytest.fail(f"{driver.body['kind']} deletion did not finish under faults")
    assert inventory(gcp) == before


async def test_rate_limited_reads_are_retried_in_place_and_keep_a_converged_export_ready(
    driver_factory, clients, gcp
) -> None:
    from tests.operator.test_psc_controller import PRODUCER, topology

    deploy_service(clients, PRODUCER, REGION, "hello-service")
    both = topology(driver_factory)
    await both.converge()
    assert both.export.condition()["status"] == "True", both.export.condition()
    # The next two IAM policy reads are rate-limited: the third attempt of the same pass gets through.
    gcp.config.faults = [Fault("run.services.getIamPolicy", 1.0, "429", times=2)]
    gcp.log.clear()
    await both.export_pass()
    reads = [e.status for e in gcp.log.snapshot() if e.permission == "run.services.getIamPolicy"]
    assert reads == [429, 429, 200]
    assert both.export.condition()["status"] == "True", both.export.condition()
    assert gcp.log.writes() == []
