"""The real gcloud CLI on what issue 12 needs from the emulator: a NAT IP rotation with drain, and
PSC NAT subnet capacity (an endpoint beyond it NEEDS_ATTENTION until the producer adds a subnet).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.emulator import lb_topology as t
from tests.emulator.lb_topology import CONSUMER, PRODUCER, REGION
from tests.emulator.test_gcloud import EGRESS, R1
from tests.support.gcloud import GCLOUD, Gcloud

SA = "hello-service-attachment"
pytestmark = [
    pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed (needs the Cloud SDK)"),
    pytest.mark.timeout(600),  # gcloud takes seconds per command on a busy machine
]


@pytest.fixture
def gcloud(gcp: GCPEmulator, tmp_path: Path) -> Iterator[Gcloud]:
    yield Gcloud(gcp.base_url, tmp_path / "gcloud-config", project="egress-proj")


def test_nat_ip_rotation_with_drain(gcp: GCPEmulator, gcloud: Gcloud) -> None:
    """Add an IP, drain the old one in the same update, watch it drain, then release it."""
    gcloud.script(EGRESS)
    # Not "static-ip-2": gcloud's drain-only form drops every natIps URL that *contains* the drained
    # address's relative name (nats_utils._ContainIp), and would empty natIps.
    gcloud(f"compute addresses create new-static-ip {R1}")
    old, new = (gcloud.json(f"compute addresses describe {n} {R1}") for n in ("static-ip", "new-static-ip"))
    nat = f"nat-cloud-run --router=router-cloud-run {R1}"
    gcloud(
        f"compute routers nats update {nat} --nat-external-ip-pool=new-static-ip --nat-external-drain-ip-pool=static-ip"
    )
    described = gcloud.json(f"compute routers nats describe {nat}")
    assert (described["natIps"], described["drainNatIps"]) == ([new["selfLink"]], [old["selfLink"]])
    [status] = gcloud.json(f"compute routers get-status router-cloud-run {R1}")["result"]["natStatus"]
    assert (status["userAllocatedNatIps"], status["drainUserAllocatedNatIps"]) == ([new["address"]], [old["address"]])

    info = f"compute routers get-nat-ip-info router-cloud-run {R1}"
    gcp.extra["nat_ip_endpoints"] = {old["address"]: 2}  # connections still open on the old IP
    [result] = gcloud.json(info)["result"]
    old_usage = {"natIp": old["address"], "mode": "MANUAL"}
    assert result["natIpInfoMappings"] == [
        {"natIp": new["address"], "usage": "UNUSED", "mode": "MANUAL"},
        {**old_usage, "usage": "IN_USE"},
    ]
    gcp.extra["nat_ip_endpoints"] = {}  # they ended
    assert gcloud.json(info)["result"][0]["natIpInfoMappings"][1] == {**old_usage, "usage": "UNUSED"}
    assert gcloud.json(f"compute addresses describe static-ip {R1}")["status"] == "IN_USE"  # still the NAT's

    gcloud(f"compute routers nats update {nat} --clear-nat-external-drain-ip-pool")
    assert gcloud.json(f"compute addresses describe static-ip {R1}")["status"] == "RESERVED"
    late = gcloud(f"compute routers nats update {nat} --nat-external-drain-ip-pool=static-ip", ok=False)
    assert "drainNatIps[0]" in late.stderr and "not previously a NAT IP" in late.stderr, late.describe()


def test_psc_nat_subnet_capacity(gcp: GCPEmulator, clients: Clients, gcloud: Gcloud) -> None:
    """A /29 NAT subnet serves four endpoints; the fifth NEEDS_ATTENTION until a subnet is added."""
    p = t.producer(clients)  # the reference producer, built with the Python client (faster)
    for name, cidr in (("psc-small", "10.0.4.0/29"), ("psc-more", "10.0.5.0/29")):
        t.subnet(clients, PRODUCER, name, cidr, p.vpc, "PRIVATE_SERVICE_CONNECT")
    in_p = f"--region={REGION} --project={PRODUCER}"
    gcloud(
        f"compute service-attachments create {SA} {in_p} --producer-forwarding-rule=hello-forwarding-rule "
        "--connection-preference=ACCEPT_AUTOMATIC --nat-subnets=psc-small --propagated-connection-limit=3 "
        "--enable-proxy-protocol"
    )
    vpc, _ = t.consumer_network(clients)
    for n in range(5):
        t.endpoint(clients, CONSUMER, f"ep-{n}", t.link(PRODUCER, "serviceAttachments", SA), vpc, f"10.1.0.{10 + n}")

    describe = f"compute service-attachments describe {SA} {in_p}"
    shown = gcloud.json(describe)
    assert (shown["propagatedConnectionLimit"], shown["enableProxyProtocol"]) == (3, True)
    assert [e["status"] for e in shown["connectedEndpoints"]] == ["ACCEPTED"] * 4 + ["NEEDS_ATTENTION"]
    rule = gcloud.json(f"compute forwarding-rules describe ep-4 --region={REGION} --project={CONSUMER}")
    assert rule["pscConnectionStatus"] == "NEEDS_ATTENTION"

    update = f"compute service-attachments update {SA} {in_p}"
    gcloud(f"{update} --nat-subnets=psc-small,psc-more")
    [*_, fifth] = gcloud.json(describe)["connectedEndpoints"]
    assert (fifth["status"], fifth["natIps"]) == ("ACCEPTED", ["10.0.5.2"])
    in_use = gcloud(f"{update} --nat-subnets=psc-more", ok=False)
    assert "natSubnets" in in_use.stderr and "cannot be removed" in in_use.stderr, in_use.describe()
    gcloud(f"{update} --no-enable-proxy-protocol --propagated-connection-limit=0")
    shown = gcloud.json(describe)
    assert (shown["propagatedConnectionLimit"], shown["enableProxyProtocol"]) == (0, False)
