"""Cloud Run Admin v2 services in the GCP emulator, through google-cloud-run's REST client."""

from __future__ import annotations

import base64
import json
from typing import Any

import googleapiclient
import pytest
from google.api import launch_stage_pb2
from google.api_core import exceptions as gexc
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import field_mask_pb2

from runnet.emulator.gcp import EmulatorConfig, GCPEmulator, ids, run_enums
from runnet.emulator.gcp.config import Fault
from runnet.gcp.clients import Clients

PROJECT = "demo-project"
REGION = "asia-northeast1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
IMAGE = "us-docker.pkg.dev/cloudrun/container/hello"
Egress = run_v2.VpcAccess.VpcEgress
State = run_v2.Condition.State


def make(clients: Clients, service_id: str = "hello", **fields: Any) -> run_v2.Service:
    template = run_v2.RevisionTemplate(containers=[run_v2.Container(image=IMAGE)], **fields.pop("template", {}))
    op = clients.run_services.create_service(
        parent=PARENT, service_id=service_id, service=run_v2.Service(template=template, **fields)
    )
    return op.result(timeout=30)


def update(clients: Clients, service: run_v2.Service, *mask: str) -> Any:
    request = run_v2.UpdateServiceRequest(service=service)
    if mask:
        request.update_mask = field_mask_pb2.FieldMask(paths=list(mask))
    return clients.run_services.update_service(request=request)


def seed_vpc(gcp: GCPEmulator, network: str, subnet: str, region: str = REGION) -> None:
    """A network and subnet in the Compute store: Run only reads them (their own tests live elsewhere)."""
    net_path = f"projects/{PROJECT}/global/networks/{network}"
    gcp.store.put(net_path, {"kind": "compute#network", "name": network, "selfLink": ids.self_link(net_path)})
    sub_path = f"projects/{PROJECT}/regions/{region}/subnetworks/{subnet}"
    gcp.store.put(
        sub_path,
        {
            "kind": "compute#subnetwork",
            "name": subnet,
            "network": ids.self_link(net_path),
            "ipCidrRange": "10.10.10.0/24",
        },
    )


def direct_vpc(network: str = "", subnetwork: str = "", egress: Any = Egress.ALL_TRAFFIC) -> run_v2.VpcAccess:
    nic = run_v2.VpcAccess.NetworkInterface(network=network, subnetwork=subnetwork)
    return run_v2.VpcAccess(network_interfaces=[nic], egress=egress)


def responses(gcp: GCPEmulator, method_id: str) -> list[Any]:
    return [e.response_body for e in gcp.log.snapshot() if e.method_id == method_id]


def test_create_returns_a_ready_service_with_the_server_defaults(clients: Clients) -> None:
    service = make(clients)
    name = f"{PARENT}/services/hello"
    assert service.name == name and service.generation == 1 and service.observed_generation == 1
    assert service.terminal_condition.type_ == "Ready" and service.terminal_condition.state == State.CONDITION_SUCCEEDED
    assert [c.type_ for c in service.conditions] == ["RoutesReady", "ConfigurationsReady"]
    assert service.latest_ready_revision == service.latest_created_revision
    assert service.latest_created_revision.startswith(f"{name}/revisions/hello-00001-")
    assert service.uri.startswith("https://hello-") and service.uri.endswith("-an.a.run.app")
    assert service.uri in service.urls
    assert not service.reconciling
    assert service.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
    assert service.launch_stage == launch_stage_pb2.GA
    assert [(t.type_, t.percent) for t in service.traffic_statuses] == [
        (run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, 100)
    ]
    template = service.template
    assert template.timeout.seconds == 300 and template.max_instance_request_concurrency == 80
    assert template.scaling.max_instance_count == 100
    assert template.service_account == f"{ids.project_number(PROJECT)}-compute@developer.gserviceaccount.com"
    container = template.containers[0]
    assert dict(container.resources.limits) == {"cpu": "1000m", "memory": "512Mi"} and container.resources.cpu_idle
    assert [(p.name, p.container_port) for p in container.ports] == [("http1", 8080)]
    probe = container.startup_probe
    assert (probe.timeout_seconds, probe.period_seconds, probe.failure_threshold) == (240, 240, 1)
    assert probe.tcp_socket.port == 8080
    # etag: the quoted "<Timestamp proto of updateTime>/<name>" real Cloud Run returns.
    assert service.etag.startswith('"') and service.etag.endswith('"')
    encoded_name = service.etag.strip('"').split("/", 1)[1]
    assert base64.urlsafe_b64decode(encoded_name + "=" * (-len(encoded_name) % 4)).decode() == name


@pytest.mark.parametrize("gcp_config", [EmulatorConfig(seed=1, operation_latency=0.3)])
def test_create_operation_reports_a_reconciling_service_until_done(clients: Clients, gcp: GCPEmulator) -> None:
    op = clients.run_services.create_service(
        parent=PARENT, service_id="slow", service=run_v2.Service(template={"containers": [{"image": IMAGE}]})
    )
    first = responses(gcp, "run.projects.locations.services.create")[0]
    assert "done" not in first
    assert first["metadata"]["@type"] == "type.googleapis.com/google.cloud.run.v2.Service"
    meta = first["metadata"]
    assert meta["reconciling"] is True and meta["generation"] == "1" and meta["createTime"] == meta["updateTime"]
    assert meta["terminalCondition"] == {"state": 1}  # CONDITION_PENDING, as an integer: the client asked
    assert meta["launchStage"] == 4 and "ingress" not in meta
    during = clients.run_services.get_service(name=f"{PARENT}/services/slow")
    assert during.reconciling and during.terminal_condition.state == State.CONDITION_PENDING
    service = op.result(timeout=30)
    assert service.terminal_condition.state == State.CONDITION_SUCCEEDED and not service.reconciling
    polls = responses(gcp, "run.projects.locations.operations.get")
    assert polls and polls[-1]["done"] is True
    # Operation polls carry no $alt: enums come back as names there.
    assert polls[-1]["response"]["launchStage"] == "GA"
    assert polls[-1]["response"]["terminalCondition"]["state"] == "CONDITION_SUCCEEDED"


@pytest.mark.parametrize("gcp_config", [EmulatorConfig(seed=1, operation_latency=0.2)])
def test_an_update_during_the_create_supersedes_it(clients: Clients) -> None:
    run = clients.run_services
    created = run.create_service(
        parent=PARENT, service_id="racy", service=run_v2.Service(template={"containers": [{"image": IMAGE}]})
    )
    pending = run.get_service(name=f"{PARENT}/services/racy")
    pending.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    updated = update(clients, pending).result(timeout=30)
    assert updated.generation == updated.observed_generation == 2
    assert updated.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    assert updated.latest_ready_revision.rsplit("/", 1)[-1].startswith("racy-00001-")
    assert created.result(timeout=30).generation == 2  # the create's operation reports the newer write


def test_get_list_and_not_found(clients: Clients) -> None:
    make(clients, "one")
    make(clients, "two")
    run = clients.run_services
    assert run.get_service(name=f"{PARENT}/services/one").name == f"{PARENT}/services/one"
    assert sorted(s.name.rsplit("/", 1)[-1] for s in run.list_services(parent=PARENT)) == ["one", "two"]
    everywhere = run.list_services(parent=f"projects/{PROJECT}/locations/-")
    assert len(list(everywhere)) == 2
    pages = run.list_services(request={"parent": PARENT, "page_size": 1})
    assert len(list(pages)) == 2
    with pytest.raises(gexc.NotFound) as caught:
        run.get_service(name=f"{PARENT}/services/missing")
    expected = f"Resource 'missing' of kind 'SERVICE' in region '{REGION}' in project '{PROJECT}' does not exist."
    assert expected in str(caught.value)


def test_create_refuses_a_taken_or_malformed_service_id(clients: Clients, gcp: GCPEmulator) -> None:
    make(clients)
    with pytest.raises(gexc.Conflict) as caught:
        make(clients)
    assert "Resource 'hello' already exists." in str(caught.value)
    for bad in ("Hello", "9lives", "trailing-", "x" * 50):
        with pytest.raises(gexc.BadRequest, match="service_id"):
            make(clients, bad)
    statuses = [e.response_body["error"]["status"] for e in gcp.log.snapshot() if e.status >= 400]
    assert statuses == ["ALREADY_EXISTS"] + ["INVALID_ARGUMENT"] * 4


def test_direct_vpc_egress_update_creates_a_revision(clients: Clients, gcp: GCPEmulator) -> None:
    seed_vpc(gcp, "vpc-cloud-run", "subnet-cloud-run")
    service = make(clients)
    first_revision = service.latest_ready_revision
    service.template.vpc_access = direct_vpc("vpc-cloud-run", "subnet-cloud-run")
    updated = update(clients, service).result(timeout=30)
    assert updated.generation == 2 and updated.observed_generation == 2
    assert updated.latest_ready_revision.startswith(f"{PARENT}/services/hello/revisions/hello-00002-")
    assert updated.latest_ready_revision != first_revision
    nic = updated.template.vpc_access.network_interfaces[0]
    assert (nic.network, nic.subnetwork) == ("vpc-cloud-run", "subnet-cloud-run")
    assert updated.template.vpc_access.egress == Egress.ALL_TRAFFIC
    patch = next(e for e in gcp.log.snapshot() if e.method == "PATCH")
    assert patch.request_body["template"]["vpcAccess"]["egress"] == 1  # the client sends integers
    stored = gcp.store.get(f"{PARENT}/services/hello")
    assert stored is not None and stored["template"]["vpcAccess"]["egress"] == "ALL_TRAFFIC"


def test_network_alone_uses_the_subnet_of_the_same_name(clients: Clients, gcp: GCPEmulator) -> None:
    seed_vpc(gcp, "shared", "shared")
    service = make(clients, template={"vpc_access": direct_vpc(network=f"projects/{PROJECT}/global/networks/shared")})
    nic = service.template.vpc_access.network_interfaces[0]
    assert nic.subnetwork == f"projects/{PROJECT}/regions/{REGION}/subnetworks/shared"


def test_connector_switches_to_network_interfaces(clients: Clients, gcp: GCPEmulator) -> None:
    seed_vpc(gcp, "vpc", "subnet")
    connector = f"{PARENT}/connectors/c1"
    service = make(clients, template={"vpc_access": run_v2.VpcAccess(connector=connector)})
    assert service.template.vpc_access.connector == connector
    assert service.template.vpc_access.egress == Egress.PRIVATE_RANGES_ONLY  # the documented default
    service.template.vpc_access = direct_vpc("vpc", "subnet")
    updated = update(clients, service, "template.vpc_access").result(timeout=30)
    assert updated.template.vpc_access.connector == ""
    assert updated.template.vpc_access.network_interfaces[0].subnetwork == "subnet"
    assert updated.latest_ready_revision.rsplit("/", 1)[-1].startswith("hello-00002-")


def test_connector_and_network_interfaces_together_are_refused(clients: Clients, gcp: GCPEmulator) -> None:
    seed_vpc(gcp, "vpc", "subnet")
    service = make(clients)
    both = direct_vpc("vpc", "subnet")
    both.connector = f"{PARENT}/connectors/c1"
    service.template.vpc_access = both
    with pytest.raises(gexc.BadRequest, match="vpc_access"):
        update(clients, service)
    assert clients.run_services.get_service(name=service.name).generation == 1


def test_a_missing_subnet_fails_the_revision_and_the_operation(clients: Clients, gcp: GCPEmulator) -> None:
    seed_vpc(gcp, "vpc", "subnet")
    service = make(clients)
    service.template.vpc_access = direct_vpc("vpc", "no-such-subnet")
    with pytest.raises(gexc.FailedPrecondition, match="no-such-subnet"):
        update(clients, service).result(timeout=30)
    after = clients.run_services.get_service(name=service.name)
    assert after.terminal_condition.state == State.CONDITION_FAILED
    assert "does not exist" in after.terminal_condition.message
    assert after.terminal_condition.reason == run_v2.Condition.CommonReason.VPC_NETWORK_NOT_FOUND
    assert after.latest_created_revision != after.latest_ready_revision == service.latest_ready_revision
    assert after.observed_generation == after.generation == 2
    other_region = direct_vpc("vpc", f"projects/{PROJECT}/regions/us-central1/subnetworks/subnet")
    with pytest.raises(gexc.FailedPrecondition, match="region"):
        make(clients, "elsewhere", template={"vpc_access": other_region})


def test_ingress_change_bumps_generation_without_a_revision(clients: Clients) -> None:
    service = make(clients)
    service.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
    service.template.max_instance_request_concurrency = 5  # outside the mask: must not apply
    updated = update(clients, service, "ingress").result(timeout=30)
    assert updated.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
    assert updated.generation == 2 and updated.observed_generation == 2
    assert updated.latest_ready_revision == service.latest_ready_revision
    assert updated.template.max_instance_request_concurrency == 80
    assert updated.etag != service.etag


def test_update_with_a_stale_etag_is_aborted(clients: Clients, gcp: GCPEmulator) -> None:
    service = make(clients)
    service.template.scaling.max_instance_count = 3
    update(clients, service).result(timeout=30)
    service.template.scaling.max_instance_count = 4  # still carries the first etag
    with pytest.raises(gexc.Conflict):
        update(clients, service)
    assert gcp.log.snapshot()[-1].response_body["error"]["status"] == "ABORTED"
    fresh = clients.run_services.get_service(name=service.name)
    assert fresh.template.scaling.max_instance_count == 3


def test_validate_only_and_allow_missing(clients: Clients) -> None:
    run = clients.run_services
    service = make(clients)
    service.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    preview = run.update_service(request={"service": service, "validate_only": True}).result(timeout=30)
    assert preview.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    assert run.get_service(name=service.name).ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
    fresh = run_v2.Service(name=f"{PARENT}/services/upserted", template={"containers": [{"image": IMAGE}]})
    with pytest.raises(gexc.NotFound):
        run.update_service(service=fresh)
    created = run.update_service(request={"service": fresh, "allow_missing": True}).result(timeout=30)
    assert created.generation == 1 and created.terminal_condition.state == State.CONDITION_SUCCEEDED


def test_delete_returns_the_deleted_service_and_takes_the_policy_along(clients: Clients, gcp: GCPEmulator) -> None:
    run = clients.run_services
    service = make(clients)
    policy = run.get_iam_policy(request={"resource": service.name})
    policy.bindings.add(role="roles/run.invoker", members=["allUsers"])
    run.set_iam_policy(request={"resource": service.name, "policy": policy})
    deleted = run.delete_service(name=service.name).result(timeout=30)
    assert deleted.generation == 2 and deleted.observed_generation == 2
    assert (deleted.expire_time - deleted.delete_time).days == 30
    meta = responses(gcp, "run.projects.locations.services.delete")[0]["metadata"]
    assert meta["generation"] == "2" and meta["deleteTime"]
    with pytest.raises(gexc.NotFound):
        run.get_service(name=service.name)
    with pytest.raises(gexc.NotFound):
        run.get_iam_policy(request={"resource": service.name})
    make(clients)
    assert not run.get_iam_policy(request={"resource": service.name}).bindings


def test_iam_policy_read_modify_write_with_etags(clients: Clients, gcp: GCPEmulator) -> None:
    run = clients.run_services
    name = make(clients).name
    empty = run.get_iam_policy(request={"resource": name})
    assert not empty.bindings and base64.b64encode(empty.etag).decode() == "ACAB"
    assert responses(gcp, "run.projects.locations.services.getIamPolicy")[0] == {"etag": "ACAB"}
    empty.bindings.add(role="roles/run.invoker", members=["serviceAccount:c@consumer.iam.gserviceaccount.com"])
    stored = run.set_iam_policy(request={"resource": name, "policy": empty})
    assert stored.version == 1 and stored.etag != empty.etag
    read = run.get_iam_policy(request={"resource": name})
    assert [(b.role, list(b.members)) for b in read.bindings] == [
        ("roles/run.invoker", ["serviceAccount:c@consumer.iam.gserviceaccount.com"])
    ]
    with pytest.raises(gexc.Conflict, match="concurrent policy changes"):
        run.set_iam_policy(request={"resource": name, "policy": empty})  # the etag it was read with
    assert gcp.log.snapshot()[-1].response_body["error"]["status"] == "ABORTED"
    bad = policy_pb2.Policy(bindings=[policy_pb2.Binding(role="roles/run.invoker", members=["alice@example.com"])])
    with pytest.raises(gexc.BadRequest, match=r"alice@example\.com"):
        run.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=name, policy=bad))
    asked = ["run.services.get", "run.routes.invoke"]
    held = run.test_iam_permissions(request={"resource": name, "permissions": asked})
    assert list(held.permissions) == asked


def test_enums_are_integers_only_when_the_client_asks(clients: Clients, gcp: GCPEmulator) -> None:
    make(clients)
    body = responses(gcp, "run.projects.locations.services.create")[0]["response"]
    assert (body["ingress"], body["launchStage"], body["terminalCondition"]["state"]) == (1, 4, 4)
    assert body["traffic"][0]["type"] == 1 and body["conditions"][0]["state"] == 4
    clients.run_services.get_service(name=f"{PARENT}/services/hello")
    assert responses(gcp, "run.projects.locations.services.get")[0]["launchStage"] == 4
    import requests

    plain = requests.get(f"{gcp.base_url}/v2/{PARENT}/services/hello", timeout=10).json()
    assert (plain["ingress"], plain["launchStage"]) == ("INGRESS_TRAFFIC_ALL", "GA")
    assert plain["terminalCondition"]["state"] == "CONDITION_SUCCEEDED"


def test_enum_table_matches_discovery_and_the_protos() -> None:
    path = f"{googleapiclient.__path__[0]}/discovery_cache/documents/run.v2.json"
    with open(path) as fh:
        schemas = json.load(fh)["schemas"]
    checked = 0
    for field_path, values in run_enums.SERVICE_ENUMS.items():
        schema, prop = _discovery_property(schemas, field_path)
        assert set(values) <= set(prop["enum"]), (field_path, set(values) - set(prop["enum"]))
        for name, number in values.items():
            assert _proto_number(schema, field_path[-1], name) == number, (field_path, name)
            checked += 1
    assert checked > 40


def _discovery_property(schemas: dict[str, Any], field_path: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    schema = "GoogleCloudRunV2Service"
    prop: dict[str, Any] = {}
    for key in field_path:
        if key == "[]":
            continue
        if prop:
            ref = prop.get("$ref") or prop.get("items", {}).get("$ref")
            schema = ref
        prop = schemas[schema]["properties"][key]
    return schema, prop


def _proto_number(schema: str, field: str, name: str) -> int:
    if field == "launchStage":
        return int(launch_stage_pb2.LaunchStage.Value(name))
    message = getattr(run_v2, schema.removeprefix("GoogleCloudRunV2"))
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in field)
    enum = message.meta.fields.get(snake) or message.meta.fields[snake + "_"]
    return int(enum.enum[name].value)


FAIL_CREATES = EmulatorConfig(seed=1, faults=[Fault("run.services.create", 1.0, "operation")])


@pytest.mark.parametrize("gcp_config", [FAIL_CREATES])
def test_a_failed_operation_leaves_a_failed_service_that_resending_repairs(clients: Clients) -> None:
    with pytest.raises(gexc.InternalServerError):
        make(clients)
    service = clients.run_services.get_service(name=f"{PARENT}/services/hello")
    assert service.terminal_condition.state == State.CONDITION_FAILED and not service.reconciling
    repaired = update(clients, service).result(timeout=30)
    assert repaired.terminal_condition.state == State.CONDITION_SUCCEEDED
    assert repaired.generation == 2 and repaired.uri
    assert repaired.latest_ready_revision.rsplit("/", 1)[-1].startswith("hello-00001-")


def test_malformed_requests_are_invalid_arguments(clients: Clients, gcp: GCPEmulator) -> None:
    import requests

    url = f"{gcp.base_url}/v2/{PARENT}/services"
    answer = requests.post(url, params={"serviceId": "x"}, json={"template": {"containers": "no"}}, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "service.template.containers" in answer.json()["error"]["message"]
    with pytest.raises(gexc.BadRequest, match="system key"):
        make(clients, "annotated", annotations={"run.googleapis.com/ingress": "all"})
    name = make(clients, annotations={"runnet.dev/egress-gateway": "ns/gw"}).name
    with pytest.raises(gexc.Conflict):
        clients.run_services.delete_service(request={"name": name, "etag": '"stale"'})
    assert clients.run_services.get_service(name=name).generation == 1


def test_a_named_revision_cannot_change_its_configuration(clients: Clients) -> None:
    service = make(clients, template={"revision": "hello-blue"})
    assert service.latest_ready_revision == f"{service.name}/revisions/hello-blue"
    service.template.max_instance_request_concurrency = 10
    with pytest.raises(gexc.Conflict, match="Revision named 'hello-blue' with different configuration"):
        update(clients, service)
    service.template.revision = "hello-green"
    assert update(clients, service).result(timeout=30).latest_ready_revision.endswith("/revisions/hello-green")
