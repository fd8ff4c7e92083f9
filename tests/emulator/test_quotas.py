"""Rate quotas (issue 11): per project, per group (and region), per wall-clock minute, as GCP answers.

The emulator's clock is a ``ManualClock`` here: a test moves to the next minute instead of
sleeping. Every call goes over HTTP through the official clients (or plain HTTP where a test
needs the raw body), and the ``gcp`` fixture checks each answer, the refusals included, against
the discovery documents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httplib2
import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import compute_v1 as c
from google.cloud import run_v2
from googleapiclient.http import BatchHttpRequest

from runnet.emulator.gcp import EmulatorConfig, EmulatorThread, GCPEmulator, ids, quota
from runnet.emulator.gcp.clock import ManualClock
from runnet.gcp.clients import Clients, GCPSettings
from tests.emulator.test_batch import compute as discovery_compute
from tests.support.compute import R2, P, R, network, raw, router, subnet

OTHER = "other-proj"
CLOCK = ManualClock()


@pytest.fixture
def gcp_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    limits: dict[str, int] | None = getattr(request, "param", None)
    CLOCK.next_minute()
    return EmulatorConfig(seed=1, quotas=limits, clock=CLOCK)


def network_body(name: str) -> c.Network:
    return c.Network(name=name, auto_create_subnetworks=False)


def limits(**sizes: int) -> Any:
    return pytest.param(sizes, id=",".join(f"{k}={v}" for k, v in sizes.items()))


def rate_limited(body: dict[str, Any], metric: str, limit: str, service: str = "compute") -> None:
    """The body GCP sends when a rate quota is spent (message, ErrorInfo, Help)."""
    error = body["error"]
    message = (
        f"Quota exceeded for quota metric '{metric}' and limit '{limit}' of service '{service}.googleapis.com' "
        f"for consumer 'project_number:{ids.project_number(P)}'."
    )
    assert error["message"] == message
    info, help_ = error["details"]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info["reason"], info["domain"]) == ("RATE_LIMIT_EXCEEDED", "googleapis.com")
    assert info["metadata"]["consumer"] == f"projects/{ids.project_number(P)}"
    assert info["metadata"]["service"] == f"{service}.googleapis.com"
    assert help_["@type"] == "type.googleapis.com/google.rpc.Help" and help_["links"][0]["url"].startswith("https://")


@pytest.mark.parametrize("gcp_config", [limits(read=3)], indirect=True)
def test_the_fourth_get_in_a_minute_gets_403_rate_limit_exceeded(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)  # insert + operation poll + get: the get is the first read of the minute
    clients.networks.get(project=P, network="vpc")
    clients.networks.get(project=P, network="vpc")
    with pytest.raises(gexc.Forbidden) as err:
        clients.networks.get(project=P, network="vpc")
    # What the official client makes of it: Forbidden, with the errors[] item and the ErrorInfo.
    assert err.value.errors[0]["reason"] == "rateLimitExceeded"
    assert err.value.errors[0]["domain"] == "usageLimits"
    assert err.value.reason == "RATE_LIMIT_EXCEEDED"
    assert err.value.metadata["quota_metric"] == "compute.googleapis.com/read_requests"
    assert err.value.metadata["quota_limit"] == "ReadRequestsPerMinutePerProject"
    assert err.value.metadata["quota_limit_value"] == "3"
    assert err.value.metadata["quota_location"] == "global"
    refused = raw(gcp, "GET", "global/networks/vpc")
    assert refused.status_code == 403
    body = refused.json()
    assert body["error"]["code"] == 403 and body["error"]["status"] == "PERMISSION_DENIED"
    assert body["error"]["errors"] == [
        {"message": body["error"]["message"], "domain": "usageLimits", "reason": "rateLimitExceeded"}
    ]
    rate_limited(body, "Read requests", "Read requests per minute")
    # Other groups, and other projects, are counted apart.
    assert [n.name for n in clients.networks.list(project=P)] == ["vpc"]
    clients.networks.insert(project=P, network_resource=c.Network(name="vpc2", auto_create_subnetworks=False)).result(
        timeout=10
    )
    with pytest.raises(gexc.NotFound):
        clients.networks.get(project=OTHER, network="vpc")
    # Refusals consume nothing, and the group refills at the start of the next minute.
    CLOCK.advance(59 - CLOCK() % 60)
    with pytest.raises(gexc.Forbidden):
        clients.networks.get(project=P, network="vpc")
    CLOCK.advance(1)
    assert CLOCK() % 60 == 0
    for _ in range(3):
        clients.networks.get(project=P, network="vpc")
    with pytest.raises(gexc.Forbidden):
        clients.networks.get(project=P, network="vpc2")
    log = gcp.log.snapshot()
    assert [e.status for e in log if e.method_id == "compute.networks.get"][-5:] == [403, 200, 200, 200, 403]
    assert {e.quota_group for e in log if e.method_id == "compute.networks.get"} == {"compute/read_requests"}


@pytest.mark.parametrize("gcp_config", [limits(**{"compute/read_requests_per_region": 2})], indirect=True)
def test_regional_reads_are_counted_per_region(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    subnet(clients, "a", "10.0.0.0/24")  # its own get is the first regional read in R
    clients.subnetworks.get(project=P, region=R, subnetwork="a")
    with pytest.raises(gexc.Forbidden) as err:
        clients.subnetworks.get(project=P, region=R, subnetwork="a")
    assert err.value.metadata["quota_location"] == R
    assert err.value.metadata["quota_unit"] == "1/min/{project}/{region}"
    rate_limited(
        raw(gcp, "GET", f"regions/{R}/subnetworks/a").json(), "Read requests", "Read requests per minute per region"
    )
    with pytest.raises(gexc.NotFound):  # another region has its own count
        clients.subnetworks.get(project=P, region=R2, subnetwork="a")
    clients.networks.get(project=P, network="vpc")  # the global read group is not limited
    CLOCK.next_minute()
    assert clients.subnetworks.get(project=P, region=R, subnetwork="a").name == "a"


@pytest.mark.parametrize("gcp_config", [limits(list=1)], indirect=True)
def test_list_calls_count_against_the_list_group(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    assert [n.name for n in clients.networks.list(project=P)] == ["vpc"]
    with pytest.raises(gexc.Forbidden) as err:
        list(clients.networks.list(project=P))
    assert err.value.metadata["quota_metric"] == "compute.googleapis.com/list_requests"
    list(clients.subnetworks.list(project=P, region=R))  # regional lists: a group of their own
    with pytest.raises(gexc.Forbidden):
        list(clients.subnetworks.list(project=P, region=R))
    clients.networks.get(project=P, network="vpc")  # reads are not lists
    agg = raw(gcp, "GET", "aggregated/subnetworks")  # aggregatedList: heavy-weight reads, not lists
    assert agg.status_code == 200, agg.text


@pytest.mark.parametrize("gcp_config", [limits(operation_read=1, heavy_weight_read=1)], indirect=True)
def test_operation_polls_and_waits_count_against_their_groups(gcp: GCPEmulator, clients: Clients) -> None:
    """regionOperations.get: operation reads; regionOperations.wait: heavy-weight reads (both per region)."""
    insert = clients.networks.insert_unary(
        project=P, network_resource=c.Network(name="vpc", auto_create_subnetworks=False)
    )
    clients.global_operations.get(project=P, operation=insert.name)
    with pytest.raises(gexc.Forbidden) as err:
        clients.global_operations.get(project=P, operation=insert.name)
    assert err.value.metadata["quota_metric"] == "compute.googleapis.com/operation_read_requests"
    body = c.Subnetwork(name="a", network="global/networks/vpc", ip_cidr_range="10.0.0.0/24")
    op = clients.subnetworks.insert_unary(project=P, region=R, subnetwork_resource=body)
    clients.region_operations.get(project=P, region=R, operation=op.name)
    with pytest.raises(gexc.Forbidden) as err:
        clients.region_operations.get(project=P, region=R, operation=op.name)
    assert err.value.metadata["quota_limit"] == "OperationReadRequestsPerMinutePerRegion"
    clients.region_operations.wait(project=P, region=R, operation=op.name)
    with pytest.raises(gexc.Forbidden) as err:
        clients.region_operations.wait(project=P, region=R, operation=op.name)
    assert err.value.metadata["quota_metric"] == "compute.googleapis.com/heavy_weight_read_requests_per_region"
    groups = {e.method_id: e.quota_group for e in gcp.log.snapshot()}
    assert groups["compute.regionOperations.wait"] == "compute/heavy_weight_read_requests_per_region"
    assert groups["compute.globalOperations.get"] == "compute/operation_read_requests"


def _service() -> run_v2.Service:
    template = run_v2.RevisionTemplate(
        containers=[run_v2.Container(image="us-docker.pkg.dev/cloudrun/container/hello")]
    )
    return run_v2.Service(template=template)


@pytest.mark.parametrize("gcp_config", [limits(run_read=2, run_write=1)], indirect=True)
def test_cloud_run_answers_429_resource_exhausted(gcp: GCPEmulator, clients: Clients) -> None:
    parent = f"projects/{P}/locations/{R}"
    op = clients.run_services.create_service(parent=parent, service_id="hello", service=_service())
    op.result(timeout=30)
    with pytest.raises(gexc.TooManyRequests) as err:  # the second write of the minute
        clients.run_services.create_service(parent=parent, service_id="hello2", service=_service())
    assert err.value.metadata["quota_metric"] == "run.googleapis.com/write_regional"
    assert err.value.metadata["quota_limit"] == "WritePerMinutePerProjectRegion"
    with pytest.raises(gexc.TooManyRequests) as err:  # reads (operation polls included) until refused
        for _ in range(3):
            clients.run_services.get_service(name=f"{parent}/services/hello")
    assert "'Read requests per minute per region' of service 'run.googleapis.com'" in err.value.message
    reads = [e.status for e in gcp.log.snapshot() if e.quota_group == "run/read_regional"]
    assert reads == [200, 200, 429]
    response = requests.get(f"{gcp.base_url}/v2/{parent}/services/hello", timeout=10)
    assert response.status_code == 429
    body = response.json()
    assert (body["error"]["code"], body["error"]["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert "errors" not in body["error"]
    rate_limited(body, "Read requests", "Read requests per minute per region", service="run")
    assert list(clients.run_services.list_services(parent=f"projects/{P}/locations/{R2}")) == []


@pytest.mark.parametrize("gcp_config", [limits(read=2)], indirect=True)
def test_each_part_of_a_batch_counts(gcp: GCPEmulator) -> None:
    api = discovery_compute(gcp)
    answers: dict[str, int] = {}

    def collect(request_id: str, response: Any, error: Any) -> None:
        answers[request_id] = error.resp.status if error is not None else 200

    batch = BatchHttpRequest(callback=collect, batch_uri=f"{gcp.base_url}/batch/compute/v1")
    for name in ("a", "b", "c"):
        batch.add(api.addresses().get(project=P, region=R, address=name), request_id=name)
    batch.execute(http=httplib2.Http())
    assert answers == {"a": 404, "b": 404, "c": 403}  # regional reads: the per-region group
    refused = [e for e in gcp.log.snapshot() if e.status == 403]
    assert len(refused) == 1 and refused[0].batched
    assert refused[0].response_body["error"]["errors"][0]["reason"] == "rateLimitExceeded"


def test_quotas_set_on_a_running_emulator(gcp: GCPEmulator, clients: Clients) -> None:
    gcp.config.quotas = {"list": 1}  # an alias, as a test may set it after start
    list(clients.networks.list(project=P))
    with pytest.raises(gexc.Forbidden, match="List requests per minute"):
        list(clients.networks.list(project=P))
    assert gcp.config.quotas == {"compute/list_requests": 1, "compute/list_requests_per_region": 1}


def test_quotas_are_off_by_default(gcp: GCPEmulator) -> None:
    with requests.Session() as session:
        url = f"{gcp.base_url}/compute/v1/projects/{P}/global/networks/vpc"
        codes = {session.get(url, timeout=10).status_code for _ in range(2000)}
    assert codes == {404}


@pytest.mark.parametrize("gcp_config", [quota.gcp_defaults()], indirect=True)
def test_gcp_default_sizes_refuse_the_1501st_read(gcp: GCPEmulator) -> None:
    with requests.Session() as session:
        url = f"{gcp.base_url}/compute/v1/projects/{P}/global/networks/vpc"
        codes = [session.get(url, timeout=10).status_code for _ in range(1501)]
    assert codes.count(404) == 1500 and codes[-1] == 403


@pytest.mark.parametrize(
    ("method_id", "group"),
    [
        ("compute.networks.get", "compute/read_requests"),
        ("compute.routers.get", "compute/read_requests_per_region"),
        ("compute.routers.getRouterStatus", "compute/read_requests_per_region"),
        ("compute.networks.list", "compute/list_requests"),
        ("compute.subnetworks.list", "compute/list_requests_per_region"),
        ("compute.subnetworks.aggregatedList", "compute/heavy_weight_read_requests"),
        ("compute.networks.insert", "compute/default"),
        ("compute.routers.patch", "compute/default_per_region"),
        ("compute.globalOperations.get", "compute/operation_read_requests"),
        ("compute.regionOperations.get", "compute/operation_read_requests_per_region"),
        ("compute.regionOperations.wait", "compute/heavy_weight_read_requests_per_region"),
        (
            "compute.regionNetworkEndpointGroups.listNetworkEndpoints",
            "compute/regional_network_endpoint_list_requests_per_region",
        ),
        ("run.projects.locations.services.get", "run/read_regional"),
        ("run.projects.locations.services.create", "run/write_regional"),
        ("run.projects.locations.services.setIamPolicy", "run/write_regional"),
        ("run.projects.locations.operations.wait", "run/read_regional"),
        ("run.namespaces.services.replaceService", "run/write_regional"),
        ("cloudresourcemanager.projects.get", "cloudresourcemanager/read_requests"),
        ("serviceusage.services.enable", None),
        ("iamcredentials.projects.serviceAccounts.generateAccessToken", None),
    ],
)
def test_each_method_falls_into_its_group(method_id: str, group: str | None) -> None:
    routes = [r for r in GCPEmulator().routes if r.method_id == method_id]
    assert routes and {r.quota_group for r in routes} == {group}


def test_group_names_aliases_and_files(tmp_path: Path) -> None:
    assert quota.normalise({"read": 3}) == {"compute/read_requests": 3, "compute/read_requests_per_region": 3}
    assert quota.normalise({"compute.googleapis.com/list_requests": 5}) == {"compute/list_requests": 5}
    assert quota.normalise({"write_regional": 7}) == {"run/write_regional": 7}
    assert quota.parse_assignment("run_read = 9") == ("run_read", 9)
    with pytest.raises(ValueError, match="unknown quota group 'reads'"):
        quota.normalise({"reads": 1})
    with pytest.raises(ValueError, match="whole number"):
        quota.normalise({"read": -1})
    with pytest.raises(ValueError, match="GROUP=N"):
        quota.parse_assignment("read")
    path = tmp_path / "quotas.yaml"
    path.write_text("defaults: gcp\nread: 3\nrun_write: 10\n")
    loaded = quota.load_file(path)
    assert loaded["compute/read_requests"] == 3 and loaded["run/write_regional"] == 10
    assert loaded["compute/list_requests"] == 1500 and loaded["run/read_regional"] == 600
    assert set(loaded) == set(quota.GROUPS)
    path.write_text("list: 2\n")
    assert quota.load_file(path) == {"compute/list_requests": 2, "compute/list_requests_per_region": 2}
    assert EmulatorConfig(quotas={"mutation": 4}).quotas == {"compute/default": 4, "compute/default_per_region": 4}


def test_request_log_file_has_one_json_line_per_request(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    config = EmulatorConfig(quotas={"read": 1}, clock=ManualClock(), request_log_path=path)
    with EmulatorThread(config).running() as gcp:
        clients = Clients(GCPSettings(endpoint=gcp.base_url))
        network(clients)
        with pytest.raises(gexc.Forbidden):
            clients.networks.get(project=P, network="vpc")
        router(clients)
        # Written and flushed as each call is answered: readable while the emulator runs.
        lines = path.read_text().splitlines()
        assert len(lines) == len(gcp.log.snapshot())
    records = [json.loads(line) for line in lines]
    for record in records:
        assert {"time", "epoch", "principal", "method", "project", "status", "quotaGroup", "latencyMs"} <= set(record)
        assert record["principal"] == config.default_principal and record["project"] == P
        assert record["time"] == "2026-01-01T00:00:00.000Z"
    assert [(r["method"], r["status"]) for r in records[:3]] == [
        ("compute.networks.insert", 200),  # DONE at once: the client does not poll it
        ("compute.networks.get", 200),
        ("compute.networks.get", 403),
    ]
    assert records[2]["quotaGroup"] == "compute/read_requests" and records[2]["region"] is None
    router_insert = next(r for r in records if r["method"] == "compute.routers.insert")
    assert router_insert["region"] == R and router_insert["quotaGroup"] == "compute/default_per_region"
