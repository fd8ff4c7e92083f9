"""The conformance layer itself: the discovery validator, error shapes, and the emulator's routes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from runnet.emulator.gcp import EmulatorThread, GCPEmulator, batch
from runnet.emulator.gcp.request_log import LogEntry
from tests.support import conformance, discovery

LINK = "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1"
ROUTER: dict[str, Any] = {
    "kind": "compute#router",
    "id": "1234567890123456789",
    "creationTimestamp": "2024-04-01T12:34:56.123-07:00",
    "name": "r1",
    "selfLink": f"{LINK}/routers/r1",
    "region": LINK,
    "network": "https://www.googleapis.com/compute/v1/projects/p/global/networks/n1",
    "encryptedInterconnectRouter": False,
    "nats": [
        {
            "name": "nat1",
            "natIpAllocateOption": "MANUAL_ONLY",
            "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
            "natIps": [f"{LINK}/addresses/ip1"],
            "minPortsPerVm": 64,
        }
    ],
}
SERVICE: dict[str, Any] = {
    "name": "projects/p/locations/us-central1/services/hello",
    "uid": "6a0f7f0c-2f55-4d4e-8d5f-0c7b8e0b7d8e",
    "generation": "1",
    "createTime": "2024-04-01T12:34:56.123456Z",
    "etag": '"CMvxYw"',
    "launchStage": "GA",
    "template": {"containers": [{"image": "us-docker.pkg.dev/cloudrun/container/hello"}], "timeout": "300s"},
}


def router_problems(body: dict[str, Any]) -> list[str]:
    return discovery.validate(discovery.compute(), "Router", body, must_have=conformance.must_have)


def service_problems(body: dict[str, Any], *, int_enums: bool = False) -> list[str]:
    doc = discovery.run()
    return discovery.validate(
        doc, "GoogleCloudRunV2Service", body, int_enums=int_enums, must_have=conformance.must_have
    )


def entry(method_id: str, body: Any, *, status: int = 200, path: str = "/x", query: Any = None) -> LogEntry:
    api = "run" if method_id.startswith("run.") else "compute"
    return LogEntry("GET", path, query or {}, status, method_id, "", False, api, None, body)  # type: ignore[arg-type]


def mutated(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with ``a.b.0.c`` set to ``value`` (or removed when value is ...)."""
    out = copy.deepcopy(body)
    *parents, last = dotted.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def test_a_valid_router_and_service_pass() -> None:
    assert router_problems(ROUTER) == []
    assert service_problems(SERVICE) == []


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("nats.0.natIpsX", ["x"], "$.nats[0].natIpsX: unknown field"),
        ("id", 1234, "$.id: expected a string"),  # uint64 is a JSON string
        ("id", "12ab", "is not a uint64"),
        ("nats.0.minPortsPerVm", "64", "$.nats[0].minPortsPerVm: expected an integer"),  # int32 is a number
        ("nats", {"name": "nat1"}, "$.nats: expected an array"),
        ("encryptedInterconnectRouter", "false", "expected a boolean"),
        ("nats.0.natIpAllocateOption", "MANUAL", "is not one of the enum values"),
        ("kind", "compute#routers", "the schema says 'compute#router'"),
        ("creationTimestamp", "yesterday", "is not an RFC3339 timestamp"),
        ("selfLink", "http://127.0.0.1:1/compute/v1/projects/p/regions/r/routers/r1", "does not start with"),
        ("creationTimestamp", ..., "missing output field 'creationTimestamp'"),
        ("id", ..., "missing output field 'id'"),
        ("nats.0.name", None, "got null"),
    ],
)
def test_a_bad_router_fails(dotted: str, value: Any, expected: str) -> None:
    problems = router_problems(mutated(ROUTER, dotted, value))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("uid", ..., "missing output field 'uid'"),
        ("generation", 1, "expected a string"),  # int64 is a JSON string
        ("template.timeout", "5m", "is not a duration"),
        ("launchStage", "SOON", "is not one of the enum values"),
        ("template.containers.0.imageUri", "x", "unknown field"),
    ],
)
def test_a_bad_service_fails(dotted: str, value: Any, expected: str) -> None:
    problems = service_problems(mutated(SERVICE, dotted, value))
    assert any(expected in p for p in problems), problems


def test_run_integer_enums_only_when_asked_and_only_proto_values() -> None:
    ga = mutated(SERVICE, "launchStage", 4)  # GA is 4 in the proto, 6th in the discovery list
    assert service_problems(ga, int_enums=True) == []
    assert any("did not ask for enum-encoding=int" in p for p in service_problems(ga))
    assert any(
        "not a value of the proto enum" in p
        for p in service_problems(mutated(SERVICE, "launchStage", 99), int_enums=True)
    )
    condition = mutated(SERVICE, "terminalCondition", {"type": "Ready", "state": 4})
    assert service_problems(condition, int_enums=True) == []  # CONDITION_SUCCEEDED


def test_run_operation_metadata_is_checked_as_the_type_it_names() -> None:
    meta = {"@type": "type.googleapis.com/google.cloud.run.v2.Service", **SERVICE}
    op = {"name": "projects/p/locations/l/operations/1", "metadata": meta}
    assert conformance.entry_problems(entry("run.projects.locations.operations.get", op)) == []
    bad = {**op, "metadata": {**meta, "bogus": 1}}
    assert any(
        "$.metadata.bogus: unknown field" in p
        for p in conformance.entry_problems(entry("run.projects.locations.operations.get", bad))
    )
    untyped = {**op, "metadata": SERVICE}
    assert any(
        "needs '@type'" in p
        for p in conformance.entry_problems(entry("run.projects.locations.operations.get", untyped))
    )
    done_without_result = {**op, "done": True}
    assert any(
        "exactly one of error/response" in p
        for p in conformance.entry_problems(entry("run.projects.locations.operations.get", done_without_result))
    )


def compute_operation(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "compute#operation",
        "id": "42",
        "name": "operation-1-abc",
        "status": "RUNNING",
        "operationType": "insert",
        "region": LINK,
        "selfLink": f"{LINK}/operations/operation-1-abc",
        **extra,
    }


def test_compute_operation_invariants() -> None:
    method_id = "compute.routers.insert"
    assert conformance.entry_problems(entry(method_id, compute_operation())) == []
    failed = compute_operation(
        status="DONE",
        endTime="2024-04-01T12:34:56.123-07:00",
        error={"errors": [{"code": "X", "message": "m"}]},
    )
    assert any("lacks 'httpErrorStatusCode'" in p for p in conformance.entry_problems(entry(method_id, failed)))
    global_op = compute_operation()
    assert any(
        "is regional" in p for p in conformance.entry_problems(entry(method_id, mutated(global_op, "region", ...)))
    )
    assert any("is global" in p for p in conformance.entry_problems(entry("compute.networks.insert", global_op)))
    assert any(
        "missing output field 'status'" in p
        for p in conformance.entry_problems(entry(method_id, mutated(global_op, "status", ...)))
    )


def test_error_shapes() -> None:
    compute_404 = {
        "error": {
            "code": 404,
            "message": "m",
            "errors": [{"domain": "global", "reason": "notFound", "message": "m"}],
        }
    }
    run_404 = {"error": {"code": 404, "message": "m", "status": "NOT_FOUND"}}
    assert conformance.entry_problems(entry("compute.routers.get", compute_404, status=404)) == []
    assert conformance.entry_problems(entry("run.projects.locations.services.get", run_404, status=404)) == []
    assert any("non-empty errors[]" in p for p in conformance.error_problems("compute", 404, run_404))
    # Google's front end adds a google.rpc status to Compute errors (rate quotas, expired tokens).
    with_status = {"error": {**compute_404["error"], "status": "NOT_FOUND"}}
    assert conformance.error_problems("compute", 404, with_status) == []
    wrong_status = {"error": {**compute_404["error"], "status": "PERMISSION_DENIED"}}
    assert any(
        "not a google.rpc code for HTTP 404" in p for p in conformance.error_problems("compute", 404, wrong_status)
    )
    unknown = {"error": {**compute_404["error"], "reason": "notFound"}}
    assert any("unknown field in a compute error" in p for p in conformance.error_problems("compute", 404, unknown))
    assert any(
        "non-empty errors[]" in p
        for p in conformance.error_problems("compute", 404, {"error": {"code": 404, "message": "m"}})
    )
    assert any("differs from the HTTP status" in p for p in conformance.error_problems("compute", 409, compute_404))
    assert any("not a google.rpc code" in p for p in conformance.error_problems("run", 409, run_404))
    assert any("unknown field in a run error" in p for p in conformance.error_problems("run", 404, compute_404))
    untyped_detail = {"error": {**run_404["error"], "details": [{"reason": "x"}]}}
    assert any("'@type'" in p for p in conformance.error_problems("run", 404, untyped_detail))


def test_report_lists_unserved_paths_unless_allowed() -> None:
    unserved = entry("", {"error": {"code": 404, "message": "m", "errors": []}}, status=404, path="/compute/v1/nope")
    text = conformance.report([unserved])
    assert "GET /compute/v1/nope -> 404 [unserved]" in text
    assert conformance.report([unserved], allow_unserved=True) == ""


def test_every_route_is_a_discovery_method_with_the_same_verb_and_path() -> None:
    emu = GCPEmulator()
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for route in emu.routes:
        meth = discovery.method(route.method_id, route.api)
        key = (route.method, discovery.template(route.pattern))
        if key in seen:
            problems.append(f"{route.method_id}: same verb and path as {seen[key]}")
        seen[key] = route.method_id
        if meth is None:
            problems.append(f"{route.method_id}: no such method in the {route.api} discovery document")
            continue
        if meth.http_method != route.method:
            problems.append(f"{route.method_id}: served as {route.method}, discovery says {meth.http_method}")
        if discovery.template(meth.path) != key[1]:
            problems.append(f"{route.method_id}: served at {route.pattern}, discovery says {meth.path}")
    assert problems == []
    assert len(emu.routes) >= 12  # the framework's own operations endpoints at least
    assert {route.api for route in emu.routes} == set(discovery.DOCUMENTS)


def test_the_batch_endpoint_is_computes_batch_path() -> None:
    assert {"/" + discovery.compute().batch_path} == batch.BATCH_PATHS


def test_the_fixture_check_sees_what_went_over_the_wire(gcp: GCPEmulator) -> None:
    """Real HTTP to the framework's operations endpoints; their answers must conform."""
    base = f"{gcp.base_url}/compute/v1/projects/p"
    assert requests.get(f"{base}/regions/us-central1/operations", timeout=5).status_code == 200
    missing = requests.get(f"{base}/global/operations/operation-1", params={"alt": "json"}, timeout=5)
    assert missing.status_code == 404
    run_missing = requests.get(f"{gcp.base_url}/v2/projects/p/locations/l/operations/x", timeout=5)
    assert run_missing.json()["error"]["status"] == "NOT_FOUND"
    assert [e.method_id for e in gcp.log.snapshot()] == [
        "compute.regionOperations.list",
        "compute.globalOperations.get",
        "run.projects.locations.operations.get",
    ]
    assert conformance.report(gcp.log.snapshot()) == ""


def test_an_unserved_path_over_the_wire_is_reported() -> None:
    with EmulatorThread().running() as emu:
        response = requests.get(f"{emu.base_url}/compute/v1/projects/p/global/nothingHere", timeout=5)
        assert response.status_code == 404
        text = conformance.report(emu.log.snapshot())
    assert "GET /compute/v1/projects/p/global/nothingHere -> 404 [unserved]" in text


def test_a_loopback_url_in_a_compute_response_is_reported() -> None:
    leaked = mutated(ROUTER, "nats.0.natIps", ["http://127.0.0.1:41234/compute/v1/projects/p/regions/r/addresses/ip1"])
    problems = conformance.entry_problems(entry("compute.routers.get", leaked))
    assert problems == [
        "$.nats[0].natIps[0]: the emulator's own address leaked into a response: "
        "'http://127.0.0.1:41234/compute/v1/projects/p/regions/r/addresses/ip1'"
    ]
    relative = mutated(ROUTER, "nats.0.natIps", ["projects/p/regions/r/addresses/ip1"])
    assert conformance.entry_problems(entry("compute.routers.get", relative)) == []


def test_references_to_the_emulators_own_url_come_back_as_google_urls(gcp: GCPEmulator) -> None:
    """gcloud sends names resolved against its endpoint override; GCP shows www.googleapis.com URLs."""
    own = f"{gcp.base_url}/compute/v1/projects/p"
    posts = [
        ("global/networks", {"name": "n1", "autoCreateSubnetworks": False}),
        (
            "regions/us-central1/subnetworks",
            {"name": "s1", "network": f"{own}/global/networks/n1", "ipCidrRange": "10.0.0.0/24"},
        ),
        (
            "regions/us-central1/addresses",
            {"name": "a1", "addressType": "INTERNAL", "subnetwork": f"{own}/regions/us-central1/subnetworks/s1"},
        ),
    ]
    for collection, body in posts:
        assert requests.post(f"{own}/{collection}", json=body, timeout=5).status_code == 200
    address = requests.get(f"{own}/regions/us-central1/addresses/a1", timeout=5).json()
    assert address["subnetwork"] == f"{LINK}/subnetworks/s1"


@pytest.mark.parametrize(
    "method_id",
    [
        # What the gcloud sequences and the operator's clients rely on (guards against regressions).
        "compute.regionOperations.wait",
        "compute.globalOperations.wait",
        "compute.routers.patch",
        "compute.routers.update",
        "compute.routers.getRouterStatus",
        "compute.serviceAttachments.patch",
        "compute.regionTargetHttpProxies.setUrlMap",
        "compute.regionBackendServices.update",
        "compute.subnetworks.setPrivateIpGoogleAccess",
        *(
            f"compute.{kind}.aggregatedList"  # plain `gcloud compute <kind> list`
            for kind in (
                "addresses",
                "subnetworks",
                "routers",
                "forwardingRules",
                "serviceAttachments",
                "backendServices",
                "urlMaps",
                "targetHttpProxies",
                "networkEndpointGroups",
            )
        ),
        "run.projects.locations.operations.wait",
        # What users run next on those setups (gcloud routers get-nat-ip-info / get-nat-mapping-info,
        # networks subnets expand-ip-range, network-endpoint-groups list-network-endpoints, operations list).
        "compute.routers.getNatIpInfo",
        "compute.routers.getNatMappingInfo",
        "compute.subnetworks.expandIpCidrRange",
        "compute.regionNetworkEndpointGroups.listNetworkEndpoints",
        "compute.globalOperations.aggregatedList",
    ],
)
def test_methods_clients_call_are_served(method_id: str) -> None:
    assert method_id in {route.method_id for route in GCPEmulator().routes}
