"""`/metrics` scraped over HTTP while objects are created, changed and deleted, parsed with prometheus_client's parser.

On the stand-in only: the metrics come from the operator's passes, which both backends drive alike.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from runnet import metrics
from runnet.emulator.stack import Stack
from tests.e2e.conftest import operator
from tests.operator.conftest import EXAMPLES, deploy_service

PROJECT, PRODUCER, REGION = "my-project", "producer-project", "asia-northeast1"
Sample = tuple[str, dict[str, str], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> list[Sample]:
    """Every sample, parsed by prometheus_client's own parser (it fails on malformed exposition text)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    served = {f.name for f in families}
    missing = {name.removesuffix("_total") for name in metrics.NAMES} - served
    assert not missing, f"not served: {missing}"
    return [(s.name, dict(s.labels), s.value) for f in families for s in f.samples]


def values(samples: list[Sample], metric: str, /, **labels: str) -> list[float]:
    return [v for n, lab, v in samples if n == metric and all(lab.get(k) == w for k, w in labels.items())]


def labelsets(samples: list[Sample], metric: str, /, **labels: str) -> list[dict[str, str]]:
    return [lab for n, lab, _ in samples if n == metric and all(lab.get(k) == w for k, w in labels.items())]


async def until(port: int, check: Callable[[list[Sample]], bool], timeout: float = 30) -> list[Sample]:
    """Scrape until ``check`` holds (a pass's metrics follow its status write by a moment)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            samples = await asyncio.to_thread(scrape, port)
        except urllib.error.URLError:
            samples = None  # not listening yet
        if samples is not None and check(samples):
            return samples
        assert asyncio.get_running_loop().time() < deadline, "metrics did not get there in time"
        await asyncio.sleep(0.1)


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


@pytest.mark.parametrize("stack", ["stand-in"], indirect=True)
async def test_metrics_follow_the_objects_through_their_lifecycle(stack: Stack) -> None:
    await asyncio.to_thread(deploy_service, stack.clients, PROJECT, REGION, "direct-vpc-egress")
    await asyncio.to_thread(deploy_service, stack.clients, PRODUCER, REGION, "hello-service")
    port = free_port()
    gateway = load("egress-fixed-ip.yaml")
    gw = {"namespace": "default", "name": "fixed-ip"}
    async with operator(stack, metrics_port=port):
        first = await until(port, lambda s: True)  # the operator starts in the background
        assert values(first, "runnet_objects", kind="EgressGateway", ready="true") == [0.0]

        # Ready: the objects gauge, the NAT IP GCP reports, the headroom figures, reconcile and GCP counters.
        await asyncio.to_thread(stack.apply, gateway)
        ip = (await asyncio.to_thread(stack.wait_ready, "EgressGateway", "fixed-ip"))["status"]["natIPs"][0]
        ready = await until(port, lambda s: values(s, "runnet_objects", kind="EgressGateway", ready="true") == [1.0])
        assert labelsets(ready, "runnet_nat_ip_info", **gw) == [{**gw, "ip": ip, "state": "Active"}]
        # The service scales to 100 instances (Cloud Run's default): 1 IP at 64 ports a VM serves 1008, and the
        # /24 has 252 usable IPs for the 200 they need.
        assert values(ready, "runnet_nat_port_headroom_ratio", **gw) == [pytest.approx(1 - 100 / 1008, abs=1e-4)]
        assert values(ready, "runnet_subnet_ip_headroom_ratio", **gw) == [pytest.approx(1 - 200 / 252, abs=1e-4)]
        assert values(ready, "runnet_reconcile_total", kind="EgressGateway", result="ready")[0] >= 1
        assert values(ready, "runnet_reconcile_duration_seconds_count", kind="EgressGateway")[0] >= 1
        inserted = values(ready, "runnet_gcp_requests_total", service="compute", method="routers.insert", code="200")
        assert inserted == [1.0]
        assert values(ready, "runnet_gcp_request_duration_seconds_count", service="compute", method="routers.insert")

        # A second IP, then the first one taken out while connections still use it: it drains, then (its
        # drainTimeout shortened) it is Retained (still reserved); never shown as Active once taken out.
        gateway["spec"]["nat"]["addresses"] = ["static-ip", "static-ip-2"]
        await asyncio.to_thread(stack.apply, gateway)
        two = await until(port, lambda s: len(labelsets(s, "runnet_nat_ip_info", state="Active", **gw)) == 2)
        assert values(two, "runnet_nat_port_headroom_ratio", **gw) == [pytest.approx(1 - 100 / 2016, abs=1e-4)]
        ip2 = next(lab["ip"] for lab in labelsets(two, "runnet_nat_ip_info", **gw) if lab["ip"] != ip)
        stack.gcp.extra["nat_ip_endpoints"] = {ip: 2}
        gateway["spec"]["nat"]["addresses"] = ["static-ip-2"]
        await asyncio.to_thread(stack.apply, gateway)
        draining = await until(port, lambda s: bool(labelsets(s, "runnet_nat_ip_info", state="Draining", **gw)))
        shown = sorted((lab["ip"], lab["state"]) for lab in labelsets(draining, "runnet_nat_ip_info", **gw))
        assert shown == sorted([(ip2, "Active"), (ip, "Draining")])
        gateway["spec"]["nat"]["drainTimeout"] = "0s"
        await asyncio.to_thread(stack.apply, gateway)
        moved = await until(port, lambda s: bool(labelsets(s, "runnet_nat_ip_info", state="Retained", **gw)))
        shown = sorted((lab["ip"], lab["state"]) for lab in labelsets(moved, "runnet_nat_ip_info", **gw))
        assert shown == sorted([(ip2, "Active"), (ip, "Retained")])

        # A GCP 4xx: a gateway naming a region that does not exist reads it and gets a 404. (A missing Cloud Run
        # service is not a 404: services are read by list.)
        def missing(s: list[Sample]) -> float:
            return sum(values(s, "runnet_gcp_requests_total", service="compute", method="regions.get", code="404"))

        before = missing(moved)
        broken = load("egress-fixed-ip.yaml")
        broken["metadata"]["name"] = "no-service"
        broken["spec"]["services"] = [{"name": "not-deployed", "egress": "ALL_TRAFFIC"}]
        for part in ("network", "subnet", "router", "nat"):
            broken["spec"][part]["name"] += "-2"
        broken["spec"]["nat"]["addresses"] = ["static-ip-3"]
        broken["spec"]["region"] = "asia-northeast9"
        await asyncio.to_thread(stack.apply, broken)
        await until(port, lambda s: missing(s) > before)

        def results(s: list[Sample]) -> set[str]:
            return {lab["result"] for lab in labelsets(s, "runnet_reconcile_total", kind="EgressGateway")}

        # One scrape collects the families one after another: a pass may end between two of them.
        failing = await until(
            port,
            lambda s: (
                values(s, "runnet_objects", kind="EgressGateway", ready="false") == [1.0]
                and bool(results(s) & {metrics.WAITING, metrics.ERROR, metrics.STALLED})
            ),
        )
        assert results(failing) <= set(metrics.RESULTS)

        # PSC: an export with an endpoint connected: one ACCEPTED connection, and none PENDING.
        await asyncio.to_thread(stack.apply, load("psc-export.yaml"))
        await asyncio.to_thread(stack.apply, load("psc-endpoint.yaml"))
        await asyncio.to_thread(stack.wait_ready, "PSCEndpoint", "hello")
        hello = {"namespace": "default", "name": "hello"}
        psc = await until(
            port, lambda s: values(s, "runnet_psc_connections", status="ACCEPTED", **hello) == [1.0], timeout=15
        )
        assert values(psc, "runnet_psc_connections", status="PENDING", **hello) == [0.0]
        assert values(psc, "runnet_objects", kind="PSCEndpoint", ready="true") == [1.0]

        # Deleted: every series naming the objects goes, the objects gauges go back to 0.
        for kind, name in [("PSCEndpoint", "hello"), ("PSCExport", "hello"), ("EgressGateway", "fixed-ip")]:
            await asyncio.to_thread(stack.delete, kind, name)
            await asyncio.to_thread(stack.wait_gone, kind, name)
        await asyncio.to_thread(stack.delete, "EgressGateway", "no-service")
        await asyncio.to_thread(stack.wait_gone, "EgressGateway", "no-service")
        gone = await until(port, lambda s: sum(values(s, "runnet_objects")) == 0)
        for name in ("runnet_nat_ip_info", "runnet_psc_connections", "runnet_nat_port_headroom_ratio"):
            assert labelsets(gone, name) == [], name
        assert labelsets(gone, "runnet_subnet_ip_headroom_ratio") == []
        assert values(gone, "runnet_reconcile_total", kind="PSCExport", result="deleted") == [1.0]
