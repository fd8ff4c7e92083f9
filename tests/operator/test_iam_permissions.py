"""The GCP role in deploy/gcp is enough: whole lifecycles pass with the emulator allowing only it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runnet.controllers import egress
from runnet.emulator.gcp import EmulatorConfig
from tests.operator.conftest import deploy_service, example

ROLE = Path(__file__).resolve().parents[2] / "deploy" / "gcp" / "runnet-operator-role.yaml"
PROJECT, REGION = "my-project", "asia-northeast1"


def role_permissions() -> set[str]:
    return set(yaml.safe_load(ROLE.read_text())["includedPermissions"])


@pytest.fixture
def gcp_config() -> EmulatorConfig:
    # Latency makes every mutation go through operation polling, whose permissions count too.
    return EmulatorConfig(seed=1, operation_latency=0.05)


async def test_egress_gateway_lifecycle_needs_only_the_documented_role(driver_factory, clients, gcp) -> None:
    deploy_service(clients, PROJECT, REGION, "direct-vpc-egress")
    gcp.config.allowed_permissions = role_permissions()
    body = example("egress-fixed-ip.yaml")
    body["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    body["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2"]
    driver = driver_factory(egress.reconcile, egress.finalize, body)
    for _ in range(3):
        await driver.reconcile()
    assert driver.condition()["status"] == "True", driver.condition()
    # A rotation: the second IP drains (its label records when), then leaves once unused.
    gcp.extra["nat_ip_endpoints"] = {driver.status["natIPs"][1]: 1}
    driver.body["spec"]["nat"]["addresses"] = ["static-ip"]
    await driver.reconcile()
    assert [a["state"] for a in driver.status["addresses"]] == ["Active", "Draining"]
    gcp.extra["nat_ip_endpoints"] = {}
    await driver.reconcile()
    assert [a["state"] for a in driver.status["addresses"]] == ["Active", "Retained"]
    assert (await driver.finalize()).retry_after is None
    denied = [e for e in gcp.log.snapshot() if e.status == 403]
    assert denied == []
    used = {e.permission for e in gcp.log.snapshot() if e.permission}
    assert {"compute.routers.update", "compute.regionOperations.get", "run.services.update"} <= used
    assert "compute.addresses.setLabels" in used


async def test_a_missing_permission_shows_in_the_status(driver_factory, clients, gcp) -> None:
    deploy_service(clients, PROJECT, REGION, "direct-vpc-egress")
    gcp.config.allowed_permissions = role_permissions() - {"compute.routers.update"}
    driver = driver_factory(egress.reconcile, egress.finalize, example("egress-fixed-ip.yaml"))
    await driver.reconcile()
    ready = driver.condition()
    assert ready["status"] == "False" and "compute.routers.update" in ready["message"], ready


async def test_psc_export_and_endpoint_lifecycle_need_only_the_documented_role(driver_factory, clients, gcp) -> None:
    from tests.operator.test_psc_controller import PRODUCER, topology

    deploy_service(clients, PRODUCER, REGION, "hello-service")
    gcp.config.allowed_permissions = role_permissions()
    both = topology(driver_factory)
    await both.converge(passes=6)
    assert both.export.condition()["status"] == "True", both.export.condition()
    assert both.endpoint.condition()["status"] == "True", both.endpoint.condition()
    for driver in (both.endpoint, both.export):
        for _ in range(5):
            if (await driver.finalize()).retry_after is None:
                break
    assert [e.path for e in gcp.log.snapshot() if e.status == 403] == []
    used = {e.permission for e in gcp.log.snapshot() if e.permission}
    assert {"compute.serviceAttachments.create", "run.services.setIamPolicy", "compute.forwardingRules.create"} <= used
