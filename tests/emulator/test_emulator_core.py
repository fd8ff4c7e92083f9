"""Framework behaviours of the GCP emulator: operations and latency, faults, IAM, requestId, request log, CLI."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import compute_v1 as c
from google.cloud import run_v2
from hypothesis import given, settings
from hypothesis import strategies as st

from runnet.emulator.gcp import EmulatorConfig, Fault, GCPEmulator
from runnet.gcp.calls import find
from runnet.gcp.clients import Clients
from tests.support.compute import R2, P, R, network, raw, router, subnet, wait

VPC = c.Network(name="vpc", auto_create_subnetworks=False)


@pytest.fixture
def gcp_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    return getattr(request, "param", None) or EmulatorConfig(seed=1)


def config(**fields: object) -> object:
    return pytest.param(EmulatorConfig(seed=7, **fields), id=",".join(fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("gcp_config", [config(operation_latency=0.3)], indirect=True)
def test_operation_latency(gcp: GCPEmulator, clients: Clients) -> None:
    started = time.monotonic()
    op = clients.networks.insert_unary(project=P, network_resource=VPC)
    assert op.status == c.Operation.Status.RUNNING and op.progress == 0
    with pytest.raises(gexc.NotFound):  # not visible before the operation is DONE
        clients.networks.get(project=P, network="vpc")
    done = clients.global_operations.wait(project=P, operation=op.name)  # blocks until DONE
    assert done.status == c.Operation.Status.DONE and done.progress == 100 and done.end_time
    assert time.monotonic() - started >= 0.25
    assert clients.networks.get(project=P, network="vpc").name == "vpc"
    # The official client's ExtendedOperation polls (region operations, injected endpoint) until DONE.
    body = c.Subnetwork(name="sn", network="global/networks/vpc", ip_cidr_range="10.0.0.0/24")
    started = time.monotonic()
    subnet_op = clients.subnetworks.insert(project=P, region=R, subnetwork_resource=body)
    with pytest.raises(gexc.NotFound):
        clients.subnetworks.get(project=P, region=R, subnetwork="sn")
    subnet_op.result(timeout=10)
    assert time.monotonic() - started >= 0.25
    assert clients.subnetworks.get(project=P, region=R, subnetwork="sn").gateway_address == "10.0.0.1"
    polls = [e for e in gcp.log.snapshot() if e.method_id == "compute.regionOperations.get"]
    assert polls and polls[-1].response_body["status"] == "DONE"


@pytest.mark.parametrize("gcp_config", [config(operation_latency=0.3)], indirect=True)
def test_gcloud_style_wait_and_concurrent_insert(gcp: GCPEmulator) -> None:
    first = raw(gcp, "POST", "global/networks", {"name": "vpc", "autoCreateSubnetworks": False}).json()
    assert first["status"] == "RUNNING" and "region" not in first
    again = raw(gcp, "POST", "global/networks", {"name": "vpc", "autoCreateSubnetworks": False})
    assert again.status_code == 409  # the name is taken while the insert runs
    assert wait(gcp, first)["status"] == "DONE"
    assert raw(gcp, "GET", "global/networks/vpc").status_code == 200


def test_failed_operation_makes_result_raise(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    subnet(clients, "sn", "10.0.0.0/24")
    op = clients.networks.delete(project=P, network="vpc")
    with pytest.raises(gexc.BadRequest) as err:
        op.result(timeout=10)
    assert "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE" in str(err.value)
    body = gcp.log.writes()[-1].response_body
    assert (body["httpErrorStatusCode"], body["httpErrorMessage"]) == (400, "BAD REQUEST")


@pytest.mark.parametrize(
    ("gcp_config", "error"),
    [
        (EmulatorConfig(faults=[Fault("compute.networks.create", 1.0, "429")]), gexc.TooManyRequests),
        (EmulatorConfig(faults=[Fault("compute.networks.create", 1.0, "500")]), gexc.InternalServerError),
        (EmulatorConfig(faults=[Fault("compute.networks.*", 1.0, "503")]), gexc.ServiceUnavailable),
    ],
    indirect=["gcp_config"],
    ids=["429", "500", "503"],
)
def test_injected_http_faults(gcp: GCPEmulator, clients: Clients, error: type[Exception]) -> None:
    with pytest.raises(error, match="injected"):
        clients.networks.insert(project=P, network_resource=VPC)
    assert gcp.store.get(f"projects/{P}/global/networks/vpc") is None
    assert gcp.log.snapshot()[-1].status == error.code  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "gcp_config", [config(faults=[Fault("compute.networks.create", 1.0, "operation")])], indirect=True
)
def test_injected_operation_failure(gcp: GCPEmulator, clients: Clients) -> None:
    op = clients.networks.insert(project=P, network_resource=VPC)
    assert gcp.log.snapshot()[-1].status == 200  # accepted, then the operation fails
    with pytest.raises(gexc.InternalServerError):
        op.result(timeout=10)
    with pytest.raises(gexc.NotFound):
        clients.networks.get(project=P, network="vpc")
    assert [n.name for n in clients.networks.list(project=P)] == []


@pytest.mark.parametrize("gcp_config", [config(faults=[Fault("compute.networks.list", 0.2, "503")])], indirect=True)
def test_fault_rate_is_roughly_honoured(gcp: GCPEmulator, clients: Clients) -> None:
    with requests.Session() as session:
        url = f"{gcp.base_url}/compute/v1/projects/{P}/global/networks"
        codes = [session.get(url, timeout=10).status_code for _ in range(300)]
    assert set(codes) == {200, 503}
    assert 35 <= codes.count(503) <= 85  # 60 expected
    # runnet retries a 503 on reads in place (the client's own retries are off), so a flaky list still succeeds.
    assert find("listing networks", lambda: list(clients.networks.list(project=P))) == []


@pytest.mark.parametrize(
    "gcp_config",
    [config(allowed_permissions={"compute.networks.get", "compute.networks.list", "compute.globalOperations.get"})],
    indirect=True,
)
def test_iam_allow_list(clients: Clients) -> None:
    with pytest.raises(gexc.Forbidden, match=r"compute\.networks\.create") as err:
        clients.networks.insert(project=P, network_resource=VPC)
    assert err.value.errors[0]["reason"] == "forbidden"
    assert list(clients.networks.list(project=P)) == []


def test_request_id_makes_inserts_idempotent(gcp: GCPEmulator, clients: Clients) -> None:
    def insert(request_id: str) -> c.Operation:
        request = c.InsertNetworkRequest(project=P, network_resource=VPC, request_id=request_id)
        return clients.networks.insert_unary(request=request)

    request_id = str(uuid.uuid4())
    first, retry = insert(request_id), insert(request_id)
    assert retry.name == first.name and retry.status == c.Operation.Status.DONE
    assert [e.query.get("requestId") for e in gcp.log.writes()] == [request_id, request_id]
    assert [n.name for n in clients.networks.list(project=P)] == ["vpc"]
    with pytest.raises(gexc.Conflict):
        insert(str(uuid.uuid4()))


def test_request_log(gcp: GCPEmulator, clients: Clients) -> None:
    network(clients)
    router(clients)
    insert = gcp.log.snapshot()[0]
    assert (insert.method, insert.path, insert.status) == ("POST", f"/compute/v1/projects/{P}/global/networks", 200)
    assert insert.mutating and insert.method_id == "compute.networks.insert"
    assert insert.permission == "compute.networks.create"
    gcp.log.clear()
    clients.networks.get(project=P, network="vpc")
    list(clients.routers.list(project=P, region=R))
    clients.routers.get_router_status(project=P, region=R, router="rt")
    with pytest.raises(gexc.NotFound):
        clients.routers.get(project=P, region=R, router="missing")
    assert gcp.log.writes() == []  # a read-only flow writes nothing
    assert [(e.method, e.status) for e in gcp.log.reads()] == [("GET", 200)] * 3 + [("GET", 404)]


def test_aggregated_operations_group_compute_operations_by_scope(clients: Clients) -> None:
    """What plain ``gcloud compute operations list`` reads: ``global`` plus one scope per region."""
    network(clients)
    subnet(clients, "a", "10.0.0.0/24")
    subnet(clients, "b", "10.0.1.0/24", region=R2)
    router(clients)
    clients.subnetworks.delete(project=P, region=R, subnetwork="a").result(timeout=10)
    clients.networks.insert(project="other-proj", network_resource=VPC).result(timeout=10)
    template = run_v2.RevisionTemplate(
        containers=[run_v2.Container(image="us-docker.pkg.dev/cloudrun/container/hello")]
    )
    clients.run_services.create_service(
        parent=f"projects/{P}/locations/{R}", service_id="hello", service=run_v2.Service(template=template)
    ).result(timeout=30)

    def scopes(expression: str = "") -> dict[str, list[tuple[str, str]]]:
        request = c.AggregatedListGlobalOperationsRequest(project=P, filter=expression or None)
        return {
            scope: [(op.operation_type, op.target_link.rsplit("/", 1)[1]) for op in listed.operations]
            for scope, listed in clients.global_operations.aggregated_list(request=request)
        }

    assert scopes() == {  # neither the other project's nor Cloud Run's operations
        "global": [("insert", "vpc")],
        f"regions/{R}": [("insert", "a"), ("insert", "rt"), ("delete", "a")],
        f"regions/{R2}": [("insert", "b")],
    }
    assert scopes('targetLink eq ".*/subnetworks/.*"') == {
        f"regions/{R}": [("insert", "a"), ("delete", "a")],
        f"regions/{R2}": [("insert", "b")],
    }
    assert scopes('operationType ne "insert"') == {f"regions/{R}": [("delete", "a")]}


def test_cli_serves_on_a_free_port() -> None:
    runnet = Path(sys.executable).parent / "runnet"
    proc = subprocess.Popen([str(runnet), "emulator", "gcp", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        response = requests.get(f"{url}/compute/v1/projects/{P}/global/networks", timeout=10)
        assert response.status_code == 200 and response.json()["kind"] == "compute#networkList"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_users_from_the_reference_index_are_the_users_a_walk_finds() -> None:
    """``users_of`` answers from an index kept by put and delete: the same answers as a walk over every body."""
    from runnet.emulator.gcp.ids import COMPUTE_BASE
    from runnet.emulator.gcp.store import Store

    store, base = Store(), "projects/p/regions/r"
    net = "projects/p/global/networks/n"
    store.put(net, {"name": "n", "selfLink": COMPUTE_BASE + net})
    for i in range(3):
        store.put(f"{base}/addresses/a{i}", {"name": f"a{i}", "selfLink": f"{COMPUTE_BASE}{base}/addresses/a{i}"})
    store.put(f"{base}/subnetworks/s", {"name": "s", "network": COMPUTE_BASE + net})
    store.put(f"{base}/routers/r", {"name": "r", "nats": [{"natIps": [f"{base}/addresses/a0"], "name": "nat"}]})
    store.put(
        f"{base}/forwardingRules/f", {"IPAddress": f"https://compute.googleapis.com/compute/beta/{base}/addresses/a1"}
    )
    users = {path: store.users_of(path) for path, _ in store.items()}
    assert users[net] == [f"{base}/subnetworks/s"] and users[f"{base}/addresses/a2"] == []
    assert users[f"{base}/addresses/a0"] == [f"{base}/routers/r"]
    assert users[f"{base}/addresses/a1"] == [f"{base}/forwardingRules/f"]
    # Replaced: the router now uses a2, not a0; deleted: the rule no longer uses a1.
    store.put(f"{base}/routers/r", {"name": "r", "nats": [{"natIps": [f"{base}/addresses/a2"], "name": "nat"}]})
    store.delete(f"{base}/forwardingRules/f")
    assert store.users_of(f"{base}/addresses/a0") == [] and store.users_of(f"{base}/addresses/a1") == []
    assert store.users_of(f"{base}/addresses/a2") == [f"{base}/routers/r"]
    assert store.index_problems() == []
    # A body changed in place after its put is what the index cannot see: index_problems names it.
    store.get(f"{base}/subnetworks/s")["network"] = "projects/p/global/networks/other"  # type: ignore[index]
    assert store.index_problems() and store.index_problems()[0].startswith(f"{base}/subnetworks/s: ")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["put", "delete"]), st.integers(0, 5), st.lists(st.integers(0, 5), max_size=3)))
)
def test_the_reference_index_agrees_with_a_walk_after_any_puts_and_deletes(steps: list[Any]) -> None:
    from runnet.emulator.gcp.ids import COMPUTE_BASE
    from runnet.emulator.gcp.store import Store, _references

    store = Store()
    paths = [f"projects/p/regions/r/{kind}/x{i}" for i, kind in enumerate(["addresses", "routers"] * 3)]
    for verb, target, refs in steps:
        if verb == "put":
            body = {"name": "x", "refs": [COMPUTE_BASE + paths[r] if r % 2 else paths[r] for r in refs]}
            store.put(paths[target], body)
        else:
            store.delete(paths[target])
    for path in paths:
        walked = sorted(
            other for other, body in store.items() if other != path and _references(body, path, COMPUTE_BASE + path)
        )
        assert store.users_of(path) == walked
    assert store.index_problems() == []
    for prefix in ("projects/", "projects/p/regions/r/", "projects/p/regions/r/routers/", "projects/q/"):
        for kind in ("addresses", "routers"):
            walked_kind = [
                (path, body)
                for path, body in sorted(store.items())
                if path.startswith(prefix) and path.split("/")[-2] == kind
            ]
            assert store.under(prefix, kind) == walked_kind
    collection = "projects/p/regions/r/addresses"
    assert store.children(collection) == [body for path, body in store.under(collection + "/", "addresses")]
