"""PSCExport and PSCEndpoint reconcile against the GCP emulator, through the official clients over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import compute_v1, run_v2
from google.iam.v1 import iam_policy_pb2

from runnet.controllers import psc
from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.operator.conftest import Driver, deploy_service, example

PRODUCER, CONSUMER, REGION = "producer-project", "consumer-project", "asia-northeast1"
SERVICE = f"projects/{PRODUCER}/locations/{REGION}/services/hello-service"
ATTACHMENT = f"projects/{PRODUCER}/regions/{REGION}/serviceAttachments/hello-service-attachment"
INVOKER = "serviceAccount:123456789-compute@developer.gserviceaccount.com"


@pytest.fixture
def service(clients: Clients) -> run_v2.Service:
    return deploy_service(clients, PRODUCER, REGION, "hello-service")


class Topology:
    """An export and an endpoint driven like the handlers drive them, the endpoint resolving its exportRef."""

    def __init__(self, driver_factory: Any, export: dict[str, Any], endpoint: dict[str, Any]) -> None:
        self.exports: dict[tuple[str, str], dict[str, Any]] = {}
        self.export: Driver = driver_factory(psc.reconcile_export, psc.finalize_export, export)
        self.export.body["metadata"]["uid"] = "7d1c2f0a-0000-4b1e-8c7d-000000000001"
        controller = psc.EndpointController(psc.MappingResolver(self.exports))
        self.endpoint: Driver = driver_factory(controller.reconcile, controller.finalize, endpoint)
        self.publish()

    def publish(self) -> None:
        """What kopf's index of PSCExports holds: the export's body with its latest status."""
        meta = self.export.body["metadata"]
        self.exports[(meta["namespace"], meta["name"])] = {**self.export.body, "status": self.export.status}

    async def export_pass(self) -> Any:
        outcome = await self.export.reconcile()
        self.publish()
        return outcome

    async def converge(self, passes: int = 4) -> None:
        for _ in range(passes):
            await self.export_pass()
            await self.endpoint.reconcile()
            if self.export.condition()["status"] == self.endpoint.condition()["status"] == "True":
                await self.export_pass()
                return


def topology(driver_factory: Any, export: dict[str, Any] | None = None) -> Topology:
    return Topology(
        driver_factory,
        export or example("psc-export.yaml"),
        example("psc-endpoint.yaml"),
    )


def ready(driver: Driver) -> tuple[str, str]:
    cond = driver.condition()
    return cond["status"], cond["reason"]


def owned_inventory(gcp: GCPEmulator) -> list[str]:
    return sorted(p for p, _ in gcp.store.items() if "/operations/" not in p)


async def test_reference_topology_converges_with_the_consumer_accepted(driver_factory, service, clients, gcp) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    assert ready(topo.export) == ("True", "Reconciled"), topo.export.condition()
    assert ready(topo.endpoint) == ("True", "Reconciled"), topo.endpoint.condition()
    status = topo.export.status
    assert status["serviceAttachment"] == f"https://www.googleapis.com/compute/v1/{ATTACHMENT}"
    assert status["summary"] == {"attachment": ATTACHMENT}
    assert (status["accepted"], status["pending"], status["rejected"]) == (1, 0, 0)
    rule = clients.forwarding_rules.get(project=CONSUMER, region=REGION, forwarding_rule="psc-endpoint")
    (conn,) = status["connections"]
    assert conn == {
        "project": CONSUMER,
        "network": f"projects/{CONSUMER}/global/networks/consumer-vpc",
        "endpoint": f"projects/{CONSUMER}/regions/{REGION}/forwardingRules/psc-endpoint",
        "pscConnectionId": str(rule.psc_connection_id),
        "status": "ACCEPTED",
    }
    ep = topo.endpoint.status
    assert (ep["ip"], ep["connectionStatus"], ep["pscConnectionId"]) == ("10.1.0.5", "ACCEPTED", conn["pscConnectionId"])
    assert rule.psc_connection_status == "ACCEPTED" and rule.I_p_address == "10.1.0.5"
    sa = clients.service_attachments.get(project=PRODUCER, region=REGION, service_attachment="hello-service-attachment")
    assert sa.connection_preference == "ACCEPT_MANUAL"
    assert [(a.project_id_or_num, a.connection_limit) for a in sa.consumer_accept_lists] == [(CONSUMER, 10)]
    svc = clients.run_services.get_service(name=SERVICE)
    assert svc.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    assert _invokers(clients) == {INVOKER}
    assert status["grantedInvokers"] == [INVOKER]
    assert {e.reason for e in topo.export.events} >= {"IngressNarrowed", "ConnectionAccepted"}
    names = {(r["kind"], r["name"]) for r in status["resources"] if r["owned"]}
    assert ("ServiceAttachment", "hello-service-attachment") in names
    assert ("Subnetwork", "producer-proxy-subnet") in names


def _invokers(clients: Clients) -> set[str]:
    policy = clients.run_services.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=SERVICE))
    return {m for b in policy.bindings if b.role == "roles/run.invoker" for m in b.members}


async def test_converged_export_and_endpoint_cost_zero_writes(driver_factory, service, gcp) -> None:
    topo = topology(driver_factory)
    await topo.converge()
    for driver in (topo.export, topo.endpoint):
        gcp.log.clear()
        outcome = await driver.reconcile()
        assert gcp.log.writes() == []
        reads = [e.path for e in gcp.log.reads()]
        assert len(reads) <= len(driver.status["resources"]), reads
        assert outcome.events == []
        assert outcome.retry_after is None


_unused = compute_v1
