"""Cloud Run Admin v1 (Knative) through google-api-python-client's run v1 client, against the emulator.

v1 and v2 are two views of one store: what a v1 client (gcloud) deploys is what google-cloud-run
(runnet) reads, and what runnet changes through v2 is what v1 shows. The client reaches the
regional endpoint ``{region}-run.googleapis.com`` through the emulator as its HTTP proxy, as
gcloud does with the README's settings.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from googleapiclient.errors import HttpError

from runnet.emulator.gcp import EmulatorConfig, GCPEmulator, ids
from runnet.gcp.clients import Clients
from tests.emulator.test_run import IMAGE, PARENT, PROJECT, REGION, direct_vpc, make, seed_vpc, update
from tests.support.api_clients import run_v1

NUMBER = ids.project_number(PROJECT)
NS = f"namespaces/{PROJECT}"
INTERFACES = "run.googleapis.com/network-interfaces"
Egress = run_v2.VpcAccess.VpcEgress


def knative(name: str, *, annotations: Any = None, template: Any = None, image: str = IMAGE) -> dict[str, Any]:
    """A v1 Service as gcloud sends it (``gcloud run deploy NAME --image=IMAGE ...``)."""
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": PROJECT, "annotations": annotations or {}},
        "spec": {
            "template": {
                "metadata": {"annotations": template or {}},
                "spec": {"containers": [{"image": image}]},
            }
        },
    }


def create(gcp: GCPEmulator, body: dict[str, Any], region: str = REGION) -> dict[str, Any]:
    return run_v1(gcp, region).namespaces().services().create(parent=NS, body=body).execute()  # type: ignore[no-any-return]


def get(gcp: GCPEmulator, name: str, region: str | None = REGION) -> dict[str, Any]:
    return run_v1(gcp, region).namespaces().services().get(name=f"{NS}/services/{name}").execute()  # type: ignore[no-any-return]


def condition(service: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next(c for c in service["status"]["conditions"] if c["type"] == kind)


def test_a_v1_deploy_is_the_service_runnet_reads_through_v2(gcp: GCPEmulator, clients: Clients) -> None:
    seed_vpc(gcp, "my-vpc", "run-subnet")
    nic = '[{"network": "my-vpc", "subnetwork": "run-subnet"}]'
    body = knative(
        "api",
        annotations={"run.googleapis.com/ingress": "internal-and-cloud-load-balancing"},
        template={INTERFACES: nic, "run.googleapis.com/vpc-access-egress": "private-ranges-only"},
    )
    created = create(gcp, body)
    meta = created["metadata"]
    assert (meta["name"], meta["namespace"], meta["generation"]) == ("api", NUMBER, 1)
    assert meta["labels"]["cloud.googleapis.com/location"] == REGION
    assert meta["selfLink"] == f"/apis/serving.knative.dev/v1/namespaces/{NUMBER}/services/api"
    assert condition(created)["status"] == "True"

    service = clients.run_services.get_service(name=f"{PARENT}/services/api")
    assert service.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
    [interface] = service.template.vpc_access.network_interfaces
    assert (interface.network, interface.subnetwork) == ("my-vpc", "run-subnet")
    assert service.template.vpc_access.egress == Egress.PRIVATE_RANGES_ONLY
    assert service.template.containers[0].image == IMAGE
    assert created["status"]["url"] == service.uri
    assert created["status"]["latestReadyRevisionName"] == service.latest_ready_revision.rsplit("/", 1)[1]
    assert created["spec"]["template"]["metadata"]["annotations"][INTERFACES] == nic  # gcloud's own spelling


def test_what_runnet_changes_through_v2_is_what_v1_shows(gcp: GCPEmulator, clients: Clients) -> None:
    seed_vpc(gcp, "vpc-cloud-run", "subnet-cloud-run")
    service = make(clients, "direct-vpc-egress")
    service.template.vpc_access = direct_vpc("vpc-cloud-run", "subnet-cloud-run")
    service.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    update(clients, service).result(timeout=30)
    invoker = "serviceAccount:123456789-compute@developer.gserviceaccount.com"
    policy = policy_pb2.Policy(bindings=[policy_pb2.Binding(role="roles/run.invoker", members=[invoker])])
    name = f"{PARENT}/services/direct-vpc-egress"
    clients.run_services.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=name, policy=policy))

    shown = get(gcp, "direct-vpc-egress")
    annotations = shown["metadata"]["annotations"]
    assert annotations["run.googleapis.com/ingress"] == annotations["run.googleapis.com/ingress-status"] == "internal"
    template = shown["spec"]["template"]["metadata"]["annotations"]
    assert json.loads(template[INTERFACES]) == [{"network": "vpc-cloud-run", "subnetwork": "subnet-cloud-run"}]
    assert template["run.googleapis.com/vpc-access-egress"] == "all-traffic"
    assert (shown["metadata"]["generation"], shown["status"]["observedGeneration"]) == (2, 2)
    assert shown["status"]["latestReadyRevisionName"].startswith("direct-vpc-egress-00002-")
    locations = run_v1(gcp, None).projects().locations().services()
    v1_policy = locations.getIamPolicy(resource=name).execute()
    assert v1_policy["bindings"] == [{"role": "roles/run.invoker", "members": [invoker]}]


def test_replace_service_bumps_the_generation_and_checks_the_resource_version(gcp: GCPEmulator) -> None:
    created = create(gcp, knative("hello"))
    services = run_v1(gcp).namespaces().services()
    changed = json.loads(json.dumps(created))
    changed["metadata"]["annotations"]["run.googleapis.com/ingress"] = "internal"
    replaced = services.replaceService(name=f"{NS}/services/hello", body=changed).execute()
    assert replaced["metadata"]["generation"] == 2
    first = created["status"]["latestReadyRevisionName"]
    assert replaced["status"]["latestReadyRevisionName"] == first  # no template change, no revision
    assert replaced["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    with pytest.raises(HttpError) as stale:
        services.replaceService(name=f"{NS}/services/hello", body=changed).execute()
    assert stale.value.resp.status == 409 and "the object has been modified" in str(stale.value)
    replaced["spec"]["template"]["spec"]["containers"][0]["image"] = "gcr.io/cloudrun/placeholder"
    newer = services.replaceService(name=f"{NS}/services/hello", body=replaced).execute()
    assert newer["status"]["latestReadyRevisionName"].startswith("hello-00002-")


def test_regional_endpoints_hold_their_region_and_the_global_one_lists_all(gcp: GCPEmulator) -> None:
    create(gcp, knative("tokyo"))
    create(gcp, knative("iowa"), region="us-central1")
    regional = run_v1(gcp).namespaces().services().list(parent=NS).execute()
    assert [s["metadata"]["name"] for s in regional["items"]] == ["tokyo"]
    assert regional["kind"] == "ServiceList"
    everywhere = run_v1(gcp, None).namespaces().services().list(parent=NS).execute()
    assert sorted(s["metadata"]["name"] for s in everywhere["items"]) == ["iowa", "tokyo"]
    assert get(gcp, "iowa", region=None)["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    with pytest.raises(HttpError) as missing:
        get(gcp, "iowa")
    assert missing.value.resp.status == 404
    assert "Resource 'iowa' of kind 'SERVICE' in region 'asia-northeast1'" in str(missing.value)
    with pytest.raises(HttpError) as global_write:
        create(gcp, knative("nowhere"), region=None)
    assert global_write.value.resp.status == 400 and "regional endpoint" in str(global_write.value)
    assert {e.host for e in gcp.log.snapshot()} == {
        "asia-northeast1-run.googleapis.com",
        "us-central1-run.googleapis.com",
        "run.googleapis.com",
    }


def test_a_revision_that_cannot_deploy_is_ready_false_with_cloud_runs_reason(gcp: GCPEmulator) -> None:
    body = knative("broken", template={INTERFACES: '[{"network": "no-such-vpc"}]'})
    created = create(gcp, body)
    ready = condition(created)
    assert ready["status"] == "False" and ready["reason"] == "VpcNetworkNotFound"
    assert f"VPC network 'projects/{PROJECT}/global/networks/no-such-vpc' does not exist." in ready["message"]
    assert condition(created, "ConfigurationsReady")["status"] == "False"


@pytest.mark.parametrize("gcp_config", [EmulatorConfig(seed=1, operation_latency=0.3)])
def test_a_service_reads_unknown_until_its_revision_is_ready(gcp: GCPEmulator) -> None:
    created = create(gcp, knative("slow"))
    assert [c["status"] for c in created["status"]["conditions"]] == ["Unknown"] * 3
    assert "observedGeneration" not in created["status"] and "url" not in created["status"]
    deadline = time.monotonic() + 5
    while condition(shown := get(gcp, "slow"))["status"] == "Unknown" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition(shown)["status"] == "True" and shown["status"]["observedGeneration"] == 1


@pytest.mark.parametrize(
    ("annotations", "template", "message"),
    [
        ({"run.googleapis.com/ingress": "private"}, {}, "Allowed values: all, internal"),
        ({"run.googleapis.com/not-a-thing": "x"}, {}, "'run.googleapis.com/not-a-thing' is not supported"),
        ({}, {"autoscaling.knative.dev/maxScale": "many"}, "Invalid value 'many'"),
        ({}, {INTERFACES: "not json"}, "Invalid value 'not json'"),
    ],
)
def test_what_v1_cannot_mean_is_a_400(gcp: GCPEmulator, annotations: Any, template: Any, message: str) -> None:
    with pytest.raises(HttpError) as refused:
        create(gcp, knative("bad", annotations=annotations, template=template))
    assert refused.value.resp.status == 400 and message in str(refused.value)
    assert gcp.store.get(f"{PARENT}/services/bad") is None


def test_delete_answers_a_status_and_the_service_is_gone_from_both_views(gcp: GCPEmulator, clients: Clients) -> None:
    uid = create(gcp, knative("gone"))["metadata"]["uid"]
    status = run_v1(gcp).namespaces().services().delete(name=f"{NS}/services/gone").execute()
    assert status == {
        "status": "Success",
        "details": {"name": "gone", "group": "serving.knative.dev", "kind": "services", "uid": uid},
    }
    with pytest.raises(HttpError):
        get(gcp, "gone")
    assert not list(clients.run_services.list_services(parent=PARENT))


def test_iam_through_v1_is_the_v2_policy(gcp: GCPEmulator, clients: Clients) -> None:
    services = run_v1(gcp, None).projects().locations().services()
    name = f"{PARENT}/services/hello"
    held = services.testIamPermissions(resource=name, body={"permissions": ["run.services.setIamPolicy"]}).execute()
    assert held == {"permissions": ["run.services.setIamPolicy"]}  # asked before a new service exists
    create(gcp, knative("hello"))
    etag = services.getIamPolicy(resource=name).execute()["etag"]
    policy = {"bindings": [{"role": "roles/run.invoker", "members": ["user:a@example.com"]}], "etag": etag}
    services.setIamPolicy(resource=name, body={"policy": policy}).execute()
    v2 = clients.run_services.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=name))
    assert [(b.role, list(b.members)) for b in v2.bindings] == [("roles/run.invoker", ["user:a@example.com"])]


def test_a_dry_run_fills_defaults_and_stores_nothing(gcp: GCPEmulator) -> None:
    services = run_v1(gcp).namespaces().services()
    preview = services.create(parent=NS, body=knative("hello"), dryRun="all").execute()
    spec = preview["spec"]["template"]["spec"]
    assert (spec["timeoutSeconds"], spec["containerConcurrency"]) == (300, 80)
    assert spec["serviceAccountName"] == f"{NUMBER}-compute@developer.gserviceaccount.com"
    assert gcp.store.get(f"{PARENT}/services/hello") is None
    created = create(gcp, knative("hello"))
    changed = {**created, "metadata": {**created["metadata"], "annotations": {"run.googleapis.com/ingress": "none"}}}
    services.replaceService(name=f"{NS}/services/hello", body=changed, dryRun="all").execute()
    assert get(gcp, "hello")["metadata"]["annotations"]["run.googleapis.com/ingress"] == "all"
