"""The real gcloud CLI against the emulator: the README's two sequences and what users run next.

Each sequence is one test (gcloud costs ~0.7 s per command). The ``gcp`` fixture also checks
every response gcloud received against the discovery schema.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runnet.emulator.gcp import GCPEmulator
from tests.support.gcloud import GCLOUD, Gcloud

pytestmark = [
    pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed (needs the Cloud SDK)"),
    pytest.mark.timeout(600),  # gcloud takes seconds per command on a busy machine
]

EGRESS = """
gcloud compute networks create vpc-cloud-run --subnet-mode=custom
gcloud compute networks subnets create subnet-cloud-run --region=asia-northeast1 --network=vpc-cloud-run --range=10.10.10.0/24
gcloud compute routers create router-cloud-run --region=asia-northeast1 --network=vpc-cloud-run
gcloud compute addresses create static-ip --region=asia-northeast1
gcloud compute routers nats create nat-cloud-run --router=router-cloud-run --region=asia-northeast1 --nat-all-subnet-ip-ranges --nat-external-ip-pool=static-ip
"""  # noqa: E501
R1 = "--region=asia-northeast1"


@pytest.fixture
def gcloud(gcp: GCPEmulator, tmp_path: Path) -> Iterator[Gcloud]:
    yield Gcloud(gcp.base_url, tmp_path / "gcloud-config", project="egress-proj")


def test_fixed_egress_ip_sequence(gcp: GCPEmulator, gcloud: Gcloud) -> None:
    gcloud.script(EGRESS)
    ip = gcloud(f"compute addresses describe static-ip {R1} --format='get(address)'").stdout.strip()
    assert ipaddress.ip_address(ip).is_global, ip

    router = gcloud.json(f"compute routers describe router-cloud-run {R1}")
    [nat] = router["nats"]
    address = gcloud.json(f"compute addresses describe static-ip {R1}")
    assert nat["natIps"] == [address["selfLink"]]  # what gcloud shows on real GCP, not the endpoint override
    assert (nat["natIpAllocateOption"], nat["sourceSubnetworkIpRangesToNat"]) == (
        "MANUAL_ONLY",
        "ALL_SUBNETWORKS_ALL_IP_RANGES",
    )
    patches = [e for e in gcp.log.snapshot() if e.method_id == "compute.routers.patch"]
    assert patches and "creationTimestamp" in patches[0].request_body  # gcloud PATCHes the whole router
    assert any(e.method_id == "compute.regionOperations.wait" for e in gcp.log.snapshot())

    assert (address["status"], address["users"]) == ("IN_USE", [router["selfLink"]])
    status = gcloud.json(f"compute routers get-status router-cloud-run {R1}")
    assert status["result"]["natStatus"][0]["userAllocatedNatIps"] == [ip]
    check_egress_reads(gcloud, ip)
    update_and_delete_egress(gcloud)


def check_egress_reads(gcloud: Gcloud, ip: str) -> None:
    """Describe and list of each kind, as a user inspecting the setup would."""
    network, subnet, nat, listed_addresses = gcloud.parallel(
        [
            "compute networks describe vpc-cloud-run --format=json",
            f"compute networks subnets describe subnet-cloud-run {R1} --format=json",
            f"compute routers nats describe nat-cloud-run --router=router-cloud-run {R1} --format=json",
            "compute addresses list --format=json",
        ]
    )
    assert network.json()["autoCreateSubnetworks"] is False
    assert subnet.json()["gatewayAddress"] == "10.10.10.1"
    assert nat.json()["name"] == "nat-cloud-run"
    assert [(a["name"], a["address"]) for a in listed_addresses.json()] == [("static-ip", ip)]
    networks, subnets, routers = gcloud.parallel(
        [
            "compute networks list --format=value(name)",
            "compute networks subnets list --network=vpc-cloud-run --format=value(name,ipCidrRange)",
            "compute routers list --regions=asia-northeast1 --format=value(name)",
        ]
    )
    assert networks.stdout.split() == ["vpc-cloud-run"]
    assert subnets.stdout.split() == ["subnet-cloud-run", "10.10.10.0/24"]
    assert routers.stdout.split() == ["router-cloud-run"]


def update_and_delete_egress(gcloud: Gcloud) -> None:
    nat = f"nat-cloud-run --router=router-cloud-run {R1}"
    gcloud(f"compute routers nats update {nat} --min-ports-per-vm=128")
    assert gcloud.json(f"compute routers nats describe {nat}")["minPortsPerVm"] == 128

    in_use = gcloud("compute networks delete vpc-cloud-run", ok=False)
    assert "is already being used by" in in_use.stderr, in_use.describe()
    missing = gcloud(f"compute routers describe no-such-router {R1}", ok=False)
    assert "was not found" in missing.stderr, missing.describe()

    gcloud(f"compute routers nats delete nat-cloud-run --router=router-cloud-run {R1}")
    assert "nats" not in gcloud.json(f"compute routers describe router-cloud-run {R1}")
    assert gcloud.json(f"compute addresses describe static-ip {R1}")["status"] == "RESERVED"
    gcloud.parallel([f"compute addresses delete static-ip {R1}", f"compute routers delete router-cloud-run {R1}"])
    gcloud(f"compute networks subnets delete subnet-cloud-run {R1}")
    gcloud("compute networks delete vpc-cloud-run")
    assert gcloud.json("compute networks list") == []


def test_what_users_run_next_on_the_egress_setup(gcp: GCPEmulator, gcloud: Gcloud) -> None:
    """NAT IP and mapping info, NEG endpoints, a subnet expansion and the operations list."""
    gcloud.script(EGRESS)
    gcloud.parallel(
        [
            f"compute networks subnets create other {R1} --network=vpc-cloud-run --range=10.10.64.0/24",
            f"compute network-endpoint-groups create neg {R1} --network-endpoint-type=serverless "
            "--cloud-run-service=hello",
        ]
    )
    ip = gcloud.value(f"compute addresses describe static-ip {R1}", "address")
    router = f"router-cloud-run {R1}"
    [info] = gcloud.json(f"compute routers get-nat-ip-info {router}")["result"]
    assert info == {
        "natName": "nat-cloud-run",
        "natIpInfoMappings": [{"natIp": ip, "usage": "UNUSED", "mode": "MANUAL"}],  # no VM endpoint yet
    }
    egress_router = "projects/egress-proj/regions/asia-northeast1/routers/router-cloud-run"
    gcp.extra["nat_vm_endpoints"] = {(egress_router, "nat-cloud-run"): 1}
    ip_info, mappings, endpoints = gcloud.parallel(
        [
            f"compute routers get-nat-ip-info {router} --nat-name=nat-cloud-run --format=json",
            f"compute routers get-nat-mapping-info {router} --format=json",
            f"compute network-endpoint-groups list-network-endpoints neg {R1} --format=json",
        ]
    )
    [info] = ip_info.json()["result"]
    assert info["natIpInfoMappings"] == [{"natIp": ip, "usage": "IN_USE", "mode": "MANUAL"}]
    assert (mappings.json(), endpoints.json()) == ([], [])  # no VM instances; a serverless NEG has no endpoints

    gcloud(f"compute networks subnets expand-ip-range subnet-cloud-run {R1} --prefix-length=20")
    subnet = gcloud.json(f"compute networks subnets describe subnet-cloud-run {R1}")
    assert (subnet["ipCidrRange"], subnet["gatewayAddress"]) == ("10.10.0.0/20", "10.10.10.1")
    overlap = gcloud(f"compute networks subnets expand-ip-range subnet-cloud-run {R1} --prefix-length=17", ok=False)
    assert "'resource.ipCidrRange'" in overlap.stderr and "subnetwork 'other'" in overlap.stderr, overlap.describe()

    operations = gcloud.json("compute operations list")
    assert ("insert", "vpc-cloud-run") in [(o["operationType"], o["targetLink"].rsplit("/", 1)[1]) for o in operations]
    expansions = gcloud.json("compute operations list --filter=operationType=expandIpCidrRange")
    assert [(o["status"], o["targetLink"]) for o in expansions] == [("DONE", subnet["selfLink"])]


PSC_PRODUCER = """
gcloud compute networks create producer-vpc --subnet-mode=custom --project={P}
gcloud compute networks subnets create producer-subnet --network=producer-vpc --range=10.0.1.0/24 --region={R} --project={P}
gcloud compute networks subnets create producer-proxy-subnet --network=producer-vpc --range=10.0.2.0/24 --region={R} --purpose=REGIONAL_MANAGED_PROXY --role=ACTIVE --project={P}
gcloud compute networks subnets create producer-psc-subnet --network=producer-vpc --range=10.0.3.0/24 --region={R} --purpose=PRIVATE_SERVICE_CONNECT --project={P}
gcloud compute network-endpoint-groups create hello-serverless-neg --region={R} --network-endpoint-type=serverless --cloud-run-service=hello-service --project={P}
gcloud compute backend-services create hello-backend-service --load-balancing-scheme=INTERNAL_MANAGED --protocol=HTTP --region={R} --project={P}
gcloud compute backend-services add-backend hello-backend-service --region={R} --network-endpoint-group=hello-serverless-neg --network-endpoint-group-region={R} --project={P}
gcloud compute url-maps create hello-url-map --default-service=hello-backend-service --region={R} --project={P}
gcloud compute target-http-proxies create hello-http-proxy --url-map=hello-url-map --region={R} --project={P}
gcloud compute forwarding-rules create hello-forwarding-rule --load-balancing-scheme=INTERNAL_MANAGED --network=producer-vpc --subnet=producer-subnet --target-http-proxy=hello-http-proxy --target-http-proxy-region={R} --region={R} --ports=80 --project={P}
gcloud compute service-attachments create hello-service-attachment --region={R} --producer-forwarding-rule=hello-forwarding-rule --connection-preference=ACCEPT_MANUAL --nat-subnets=producer-psc-subnet --consumer-accept-list={C}=10 --project={P}
"""  # noqa: E501
PSC_CONSUMER = """
gcloud compute networks create consumer-vpc --subnet-mode=custom --project={C}
gcloud compute networks subnets create consumer-subnet --network=consumer-vpc --range=10.1.0.0/24 --region={R} --project={C}
gcloud compute addresses create psc-endpoint-ip --region={R} --subnet=consumer-subnet --addresses=10.1.0.5 --project={C}
gcloud compute forwarding-rules create psc-endpoint --region={R} --network=consumer-vpc --address=psc-endpoint-ip --target-service-attachment={SA} --project={C}
"""  # noqa: E501
P, C, R = "producer-proj", "consumer-proj", "us-central1"
IN_P, IN_C = f"--region={R} --project={P}", f"--region={R} --project={C}"


def test_psc_export_sequence(gcp: GCPEmulator, gcloud: Gcloud) -> None:
    gcloud.script(PSC_PRODUCER, P=P, C=C, R=R)
    attachment = gcloud.value(f"compute service-attachments describe hello-service-attachment {IN_P}", "selfLink")
    assert attachment.endswith(f"projects/{P}/regions/{R}/serviceAttachments/hello-service-attachment")
    gcloud.script(PSC_CONSUMER, C=C, R=R, SA=attachment)

    shown = gcloud(
        f'compute service-attachments describe hello-service-attachment --region={R} --project={P} --format="yaml(connectedEndpoints)"'  # noqa: E501
    ).stdout
    [endpoint] = yaml.safe_load(shown)["connectedEndpoints"]
    assert endpoint["status"] == "ACCEPTED"
    assert endpoint["endpoint"].endswith(f"projects/{C}/regions/{R}/forwardingRules/psc-endpoint")
    rule = gcloud.json(f"compute forwarding-rules describe psc-endpoint {IN_C}")
    assert (rule["pscConnectionStatus"], rule["IPAddress"], rule["target"]) == ("ACCEPTED", "10.1.0.5", attachment)
    assert rule["pscConnectionId"] == endpoint["pscConnectionId"]
    check_producer_reads(gcloud)
    check_psc_updates_and_errors(gcloud)
    delete_psc(gcloud)


def check_producer_reads(gcloud: Gcloud) -> None:
    """Describe of each producer kind: the references gcloud resolved are stored and echoed."""
    neg, backend, url_map, proxy, lb_rule, proxy_subnet = (
        r.json()
        for r in gcloud.parallel(
            [
                f"compute network-endpoint-groups describe hello-serverless-neg {IN_P} --format=json",
                f"compute backend-services describe hello-backend-service {IN_P} --format=json",
                f"compute url-maps describe hello-url-map {IN_P} --format=json",
                f"compute target-http-proxies describe hello-http-proxy {IN_P} --format=json",
                f"compute forwarding-rules describe hello-forwarding-rule {IN_P} --format=json",
                f"compute networks subnets describe producer-proxy-subnet {IN_P} --format=json",
            ]
        )
    )
    assert (neg["networkEndpointType"], neg["cloudRun"]["service"]) == ("SERVERLESS", "hello-service")
    assert backend["backends"][0]["group"] == neg["selfLink"]
    assert url_map["defaultService"] == backend["selfLink"]
    assert proxy["urlMap"] == url_map["selfLink"]
    assert (lb_rule["target"], lb_rule["portRange"]) == (proxy["selfLink"], "80-80")
    assert ipaddress.ip_address(lb_rule["IPAddress"]) in ipaddress.ip_network("10.0.1.0/24")
    assert (proxy_subnet["purpose"], proxy_subnet["role"]) == ("REGIONAL_MANAGED_PROXY", "ACTIVE")
    kinds = ["network-endpoint-groups", "backend-services", "url-maps", "target-http-proxies", "forwarding-rules"]
    listed = gcloud.parallel([f"compute {kind} list --project={P} --format=value(name)" for kind in kinds])
    names = [r.stdout.split() for r in listed]
    assert names == [
        ["hello-serverless-neg"],
        ["hello-backend-service"],
        ["hello-url-map"],
        ["hello-http-proxy"],
        ["hello-forwarding-rule"],
    ]


def check_psc_updates_and_errors(gcloud: Gcloud) -> None:
    sa = f"compute service-attachments describe hello-service-attachment {IN_P}"
    gcloud(f"compute service-attachments update hello-service-attachment {IN_P} --consumer-accept-list={C}=20")
    accept = gcloud.json(sa)["consumerAcceptLists"]
    assert [(a["projectIdOrNum"], a["connectionLimit"]) for a in accept] == [(C, 20)]
    listed = gcloud(f"compute service-attachments list --project={P} --format=value(name)").stdout.split()
    assert listed == ["hello-service-attachment"]

    # List changes affect only new connections unless reconcileConnections is set (GCP docs,
    # "About controlling access to published services").
    update = f"compute service-attachments update hello-service-attachment {IN_P}"
    gcloud(f"{update} --consumer-reject-list={C} --consumer-accept-list=")
    [endpoint] = gcloud.json(sa)["connectedEndpoints"]
    assert endpoint["status"] == "ACCEPTED"
    gcloud(f"{update} --reconcile-connections")
    [endpoint] = gcloud.json(sa)["connectedEndpoints"]
    assert endpoint["status"] == "REJECTED"
    rule = gcloud.json(f"compute forwarding-rules describe psc-endpoint {IN_C}")
    assert rule["pscConnectionStatus"] == "REJECTED"

    in_use = gcloud(f"compute backend-services delete hello-backend-service {IN_P}", ok=False)
    assert "is already being used by" in in_use.stderr and "urlMaps/hello-url-map" in in_use.stderr, in_use.describe()
    missing = gcloud(f"compute forwarding-rules describe no-such-rule {IN_C}", ok=False)
    assert "was not found" in missing.stderr, missing.describe()


def delete_psc(gcloud: Gcloud) -> None:
    """Deletes in reverse order of creation; everything is gone at the end."""
    gcloud(f"compute forwarding-rules delete psc-endpoint {IN_C}")
    assert "connectedEndpoints" not in gcloud.json(
        f"compute service-attachments describe hello-service-attachment {IN_P}"
    )
    gcloud.parallel(
        [
            f"compute addresses delete psc-endpoint-ip {IN_C}",
            f"compute service-attachments delete hello-service-attachment {IN_P}",
        ]
    )
    gcloud.parallel(
        [
            f"compute networks subnets delete consumer-subnet {IN_C}",
            f"compute forwarding-rules delete hello-forwarding-rule {IN_P}",
        ]
    )
    gcloud.parallel(
        [
            f"compute networks delete consumer-vpc --project={C}",
            f"compute target-http-proxies delete hello-http-proxy {IN_P}",
        ]
    )
    gcloud(f"compute url-maps delete hello-url-map {IN_P}")
    gcloud(f"compute backend-services delete hello-backend-service {IN_P}")
    gcloud(f"compute network-endpoint-groups delete hello-serverless-neg {IN_P}")
    gcloud.parallel(
        [f"compute networks subnets delete producer-{s} {IN_P}" for s in ("subnet", "proxy-subnet", "psc-subnet")]
    )
    gcloud(f"compute networks delete producer-vpc --project={P}")
    for project in (P, C):
        assert gcloud.json(f"compute networks list --project={project}") == []
