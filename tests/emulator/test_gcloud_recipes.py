"""The public recipes' gcloud commands, run unchanged against the emulator (issue 13).

Each command sequence is a test, checked by what gcloud prints. gcloud's ``run`` commands use
Cloud Run Admin v1 on regional endpoints, reached through the emulator as gcloud's HTTP proxy
(``runnet.emulator.gcp.gcloud_config``); the v2 checks use google-cloud-run, as runnet does.
Set-up that is not the recipe under test goes through the Python clients (gcloud costs seconds).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2

from runnet.emulator.gcp import GCPEmulator, gcloud_config, ids
from runnet.emulator.gcp.service_usage import NO_SOURCE_BUILD
from runnet.gcp.clients import Clients
from tests.emulator.test_run import direct_vpc, update
from tests.support.compute import network, subnet
from tests.support.gcloud import GCLOUD, Gcloud

pytestmark = [
    pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed (needs the Cloud SDK)"),
    pytest.mark.timeout(600),  # gcloud takes seconds per command on a busy machine
]

P = "net-proj"  # tests.support.compute's project, so its builders seed the networks
R = "asia-northeast1"
IMAGE = "us-docker.pkg.dev/cloudrun/container/hello"
INVOKER = "serviceAccount:123456789-compute@developer.gserviceaccount.com"


@pytest.fixture
def gcloud(gcp: GCPEmulator, tmp_path: Path) -> Iterator[Gcloud]:
    yield Gcloud(gcp.base_url, tmp_path / "gcloud-config", project=P)


def test_the_readme_settings_and_a_batch_create_and_delete(gcp: GCPEmulator, tmp_path: Path) -> None:
    """The README's ``gcloud config set`` lines as they are; then two commands that each send one batch."""
    gcloud = Gcloud(gcp.base_url, tmp_path / "by-hand", project=P, configure=False)
    for line in gcloud_config.commands(gcp.base_url):
        gcloud(line.removeprefix("gcloud "))
    created = gcloud("compute addresses create ip-a ip-b --region=europe-west1")
    for name in ("ip-a", "ip-b"):
        assert (
            f"Created [https://www.googleapis.com/compute/v1/projects/{P}/regions/europe-west1/addresses/{name}]"
            in (created.stderr)
        )
    assert gcloud("compute addresses list --format=value(name,status)").stdout.split() == [
        "ip-a",
        "RESERVED",
        "ip-b",
        "RESERVED",
    ]
    deleted = gcloud("compute addresses delete ip-a ip-b --region=europe-west1 --quiet")
    assert deleted.stderr.count("Deleted [") == 2
    assert gcloud.json("compute addresses list") == []
    batched = [e.method_id for e in gcp.log.snapshot() if e.batched and e.mutating]
    assert batched == ["compute.addresses.insert"] * 2 + ["compute.addresses.delete"] * 2


def test_deploy_describe_list_iam_and_delete_hello_service(gcp: GCPEmulator, gcloud: Gcloud) -> None:
    deployed = gcloud(
        f"run deploy hello-service --image={IMAGE} --platform=managed --no-allow-unauthenticated "
        f"--ingress=internal --region={R}"
    )
    number = ids.project_number(P)
    assert "Service [hello-service] revision [hello-service-00001-" in deployed.stderr
    assert f"Service URL: https://hello-service-{number}.{R}.run.app" in deployed.stderr
    url = gcloud.value(f"run services describe hello-service --region={R}", "status.url")
    assert url == gcp.store.get(f"projects/{P}/locations/{R}/services/hello-service")["uri"]  # type: ignore[index]
    listed = gcloud(f"run services list --region={R}").stdout
    assert "hello-service" in listed and R in listed

    member = f'--member="{INVOKER}" --role="roles/run.invoker"'
    added = gcloud(f"run services add-iam-policy-binding hello-service --region={R} {member}")
    assert "Updated IAM policy for service [hello-service]." in added.stderr and INVOKER in added.stdout
    policy = gcloud.json(f"run services get-iam-policy hello-service --region={R}")
    assert policy["bindings"] == [{"members": [INVOKER], "role": "roles/run.invoker"}]
    gcloud(f"run services remove-iam-policy-binding hello-service --region={R} {member}")
    assert "bindings" not in gcloud.json(f"run services get-iam-policy hello-service --region={R}")

    assert (
        "Deleted service [hello-service]." in gcloud(f"run services delete hello-service --region={R} --quiet").stderr
    )
    assert gcp.store.get(f"projects/{P}/locations/{R}/services/hello-service") is None
    hosts = {e.host for e in gcp.log.snapshot() if e.method_id.startswith("run.namespaces.")}
    assert hosts == {f"{R}-run.googleapis.com"}  # gcloud's regional endpoint, through the proxy


def test_direct_vpc_egress_deploys_are_what_runnet_reads(gcp: GCPEmulator, gcloud: Gcloud, clients: Clients) -> None:
    network(clients, "my-vpc")
    subnet(clients, "run-subnet", "10.8.0.0/26", net="my-vpc")
    network(clients, "vpc-cloud-run")
    subnet(clients, "subnet-cloud-run", "10.10.10.0/24", net="vpc-cloud-run")
    gcloud(
        f"run deploy api --image={IMAGE} --region={R} --ingress internal-and-cloud-load-balancing "
        f"--network projects/{P}/global/networks/my-vpc --subnet projects/{P}/regions/{R}/subnetworks/run-subnet "
        "--vpc-egress private-ranges-only"
    )
    gcloud(
        f"run deploy direct-vpc-egress --image={IMAGE} --vpc-egress all-traffic --network vpc-cloud-run "
        f"--subnet subnet-cloud-run --no-allow-unauthenticated --region {R}"
    )
    api = clients.run_services.get_service(name=f"projects/{P}/locations/{R}/services/api")
    assert api.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
    [nic] = api.template.vpc_access.network_interfaces
    assert nic.network == f"projects/{P}/global/networks/my-vpc"
    assert nic.subnetwork == f"projects/{P}/regions/{R}/subnetworks/run-subnet"
    assert api.template.vpc_access.egress == run_v2.VpcAccess.VpcEgress.PRIVATE_RANGES_ONLY
    egress = clients.run_services.get_service(name=f"projects/{P}/locations/{R}/services/direct-vpc-egress")
    [nic] = egress.template.vpc_access.network_interfaces
    assert (nic.network, nic.subnetwork) == ("vpc-cloud-run", "subnet-cloud-run")
    assert egress.template.vpc_access.egress == run_v2.VpcAccess.VpcEgress.ALL_TRAFFIC
    described = gcloud(f"run services describe direct-vpc-egress --region {R}").stdout
    assert "Network:         vpc-cloud-run" in described and "Egress:          all-traffic" in described


def test_what_runnet_changes_through_v2_is_what_gcloud_describes(
    gcp: GCPEmulator, gcloud: Gcloud, clients: Clients
) -> None:
    network(clients, "vpc-cloud-run")
    subnet(clients, "subnet-cloud-run", "10.10.10.0/24", net="vpc-cloud-run")
    gcloud(f"run deploy sample-function-1 --image={IMAGE} --region {R} --no-allow-unauthenticated")
    gcloud(f"run services update sample-function-1 --region {R} --ingress internal")
    name = f"projects/{P}/locations/{R}/services/sample-function-1"
    service = clients.run_services.get_service(name=name)
    assert service.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY and service.generation == 2

    # What runnet's EgressGateway and PSCExport do to a service, through google-cloud-run.
    service.template.vpc_access = direct_vpc("vpc-cloud-run", "subnet-cloud-run")
    service.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
    update(clients, service).result(timeout=30)
    policy = policy_pb2.Policy(bindings=[policy_pb2.Binding(role="roles/run.invoker", members=[INVOKER])])
    clients.run_services.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=name, policy=policy))

    shown = gcloud.json(f"run services describe sample-function-1 --region {R}")
    annotations = shown["spec"]["template"]["metadata"]["annotations"]
    assert json.loads(annotations["run.googleapis.com/network-interfaces"]) == [
        {"network": "vpc-cloud-run", "subnetwork": "subnet-cloud-run"}
    ]
    assert annotations["run.googleapis.com/vpc-access-egress"] == "all-traffic"
    assert shown["metadata"]["annotations"]["run.googleapis.com/ingress"] == "internal-and-cloud-load-balancing"
    latest = clients.run_services.get_service(name=name)
    assert (shown["metadata"]["generation"], shown["status"]["observedGeneration"]) == (3, 3)
    assert shown["status"]["latestReadyRevisionName"] == latest.latest_ready_revision.rsplit("/", 1)[1]
    assert shown["status"]["url"] == latest.uri
    assert [c["status"] for c in shown["status"]["conditions"]] == ["True", "True", "True"]
    assert INVOKER in gcloud(f"run services get-iam-policy sample-function-1 --region {R}").stdout


def test_a_deploy_that_cannot_reach_its_network_fails_with_cloud_runs_reason(gcloud: Gcloud) -> None:
    failed = gcloud(f"run deploy broken --image={IMAGE} --network=no-such-vpc --region={R}", ok=False)
    assert f"VPC network 'projects/{P}/global/networks/no-such-vpc' does not exist." in failed.stderr


def test_deploy_from_source_is_refused_in_one_line(gcp: GCPEmulator, gcloud: Gcloud, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('hello')\n")
    refused = gcloud(f"run deploy from-source --source={tmp_path / 'src'} --region={R}", ok=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [f"ERROR: (gcloud.run.deploy) FAILED_PRECONDITION: {NO_SOURCE_BUILD}"], refused.describe()
    assert not [e for e in gcp.log.snapshot() if e.api == "run.v1" and e.mutating]


def test_projects_describe_and_services_enable(gcp: GCPEmulator, gcloud: Gcloud) -> None:
    number = gcloud('projects describe consumer-project --format="value(projectNumber)"').stdout.strip()
    assert number == ids.project_number("consumer-project")
    enabled = gcloud(f"services enable run.googleapis.com compute.googleapis.com --project={P}")
    assert enabled.stderr == ""  # already enabled: a done no-op, which gcloud reports with silence
    pubsub = gcloud(f"services enable pubsub.googleapis.com --project={P}")
    assert 'Operation "operations/acat.p2-' in pubsub.stderr and "finished successfully." in pubsub.stderr
    names = gcloud(f"services list --enabled --project={P} --format=value(config.name)").stdout.split()
    assert {"run.googleapis.com", "compute.googleapis.com", "pubsub.googleapis.com"} <= set(names)


def test_firewall_rule_and_subnet_flow_logs(gcp: GCPEmulator, gcloud: Gcloud, clients: Clients) -> None:
    network(clients, "consumer-vpc")
    subnet(clients, "consumer-subnet", "10.1.0.0/24", net="consumer-vpc")
    rule = "allow-iap-ssh --network=consumer-vpc --allow=tcp:22 --source-ranges=35.235.240.0/20"
    created = gcloud(f"compute firewall-rules create {rule}")
    assert created.stdout.split() == [
        *("NAME", "NETWORK", "DIRECTION", "PRIORITY", "ALLOW", "DENY", "DISABLED"),
        *("allow-iap-ssh", "consumer-vpc", "INGRESS", "1000", "tcp:22", "False"),
    ]
    missing = gcloud("compute firewall-rules create other --network=no-such-vpc --allow=tcp:22", ok=False)
    assert f"The resource 'projects/{P}/global/networks/no-such-vpc' was not found" in missing.stderr

    gcloud(f"compute networks subnets update consumer-subnet --region={R} --enable-flow-logs")
    shown = gcloud.json(f"compute networks subnets describe consumer-subnet --region={R}")
    assert shown["enableFlowLogs"] is True and shown["logConfig"]["enable"] is True
