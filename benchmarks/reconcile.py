"""Reconcile benchmark: time to Ready, GCP calls per create and per converged resync, RSS.

Runs the operator's controllers (engine, adapters, official clients over HTTP) against the GCP
emulator with an operation latency L, the way the kopf handlers call them: reconcile until Ready.
Prints figures next to the critical-path bound (longest chain of dependent operations x L).

    .venv/bin/python benchmarks/reconcile.py [--latency 1.0] [--gateways 50]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.operator.conftest import Driver, deploy_service, example

from runnet.controllers import egress
from runnet.emulator.gcp import EmulatorConfig, EmulatorThread, GCPEmulator
from runnet.engine import Engine
from runnet.gcp.clients import Clients, GCPSettings

PROJECT, REGION = "my-project", "asia-northeast1"
# network -> subnet/router -> NAT (router patch) -> Cloud Run service update.
EGRESS_CRITICAL_PATH = 4


def gateway(i: int) -> dict[str, Any]:
    body = copy.deepcopy(example("egress-fixed-ip.yaml"))
    spec = body["spec"]
    body["metadata"]["name"] = f"gw-{i}"
    spec["network"]["name"] = f"vpc-{i}"
    spec["subnet"] = {"name": f"subnet-{i}", "ipCidrRange": f"10.{i // 250}.{i % 250}.0/24"}
    spec["router"]["name"] = f"router-{i}"
    spec["nat"]["name"] = f"nat-{i}"
    spec["nat"]["addresses"] = [f"ip-{i}"]
    spec["services"] = [{"name": f"svc-{i}"}]
    body["metadata"]["uid"] = f"00000000-0000-4000-8000-{i:012d}"
    return body


async def until_ready(driver: Driver) -> float:
    start = time.perf_counter()
    for _ in range(20):
        await driver.reconcile()
        if driver.condition()["status"] == "True":
            return time.perf_counter() - start
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{driver.body['metadata']['name']} not Ready: {driver.condition()}")


def calls(emu: GCPEmulator) -> tuple[int, int]:
    log = emu.log.snapshot()
    reads = sum(1 for e in log if not e.mutating and "/operations/" not in e.path)
    return reads, sum(1 for e in log if e.mutating)


async def bench(latency: float, count: int) -> None:
    thread = EmulatorThread(EmulatorConfig(operation_latency=latency, seed=1))
    emu = thread.start()
    clients = Clients(GCPSettings(endpoint=emu.base_url))
    engine = Engine(64)
    for i in range(count):
        deploy_service(clients, PROJECT, REGION, f"svc-{i}")

    def driver(i: int) -> Driver:
        d = Driver(egress.reconcile, egress.finalize, clients, gateway(i))
        d.engine = engine
        return d

    bound = EGRESS_CRITICAL_PATH * latency
    emu.log.clear()
    one = driver(0)
    t_one = await until_ready(one)
    reads, writes = calls(emu)
    emu.log.clear()
    await one.reconcile()
    resync_reads, resync_writes = calls(emu)
    managed = len(one.status["resources"])

    many = [driver(i) for i in range(1, count)]
    start = time.perf_counter()
    await asyncio.gather(*(until_ready(d) for d in many))
    t_many = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    thread.stop()

    print(f"operation latency L = {latency:.2f} s; critical path = {EGRESS_CRITICAL_PATH} operations")
    print(f"one gateway Ready in {t_one:.2f} s; bound {bound:.2f} s; ratio {t_one / bound:.2f} (target <= 1.25)")
    print(f"{count - 1} gateways at once Ready in {t_many:.2f} s; ratio to one {t_many / t_one:.2f} (target <= 2)")
    print(f"GCP calls to create one gateway: {reads} reads, {writes} writes (operation polls not counted)")
    print(
        f"GCP calls per converged resync: {resync_reads} reads, {resync_writes} writes; "
        f"managed resources: {managed} (targets: 0 writes, reads <= resources)"
    )
    print(f"peak RSS of the benchmark process (operator + emulator): {rss_mb:.0f} MB")


# neg -> backend service -> URL map -> target proxy -> forwarding rule -> service attachment.
EXPORT_CRITICAL_PATH = 6
TRACE = False
# The endpoint's network, subnet and address are built meanwhile; its forwarding rule comes last.
EXPORT_AND_ENDPOINT_CRITICAL_PATH = EXPORT_CRITICAL_PATH + 1


async def bench_psc(latency: float) -> None:
    from runnet.controllers import psc

    thread = EmulatorThread(EmulatorConfig(operation_latency=latency, seed=1))
    emu = thread.start()
    clients = Clients(GCPSettings(endpoint=emu.base_url))
    deploy_service(clients, "producer-project", REGION, "hello-service")
    exports: dict[tuple[str, str], dict[str, Any]] = {}
    export = Driver(psc.reconcile_export, psc.finalize_export, clients, example("psc-export.yaml"))
    endpoint_controller = psc.EndpointController(psc.MappingResolver(exports))
    endpoint = Driver(
        endpoint_controller.reconcile, endpoint_controller.finalize, clients, example("psc-endpoint.yaml")
    )
    export.engine = endpoint.engine = Engine(64)

    def publish() -> None:
        exports[("default", "hello")] = {**export.body, "status": export.status}

    async def export_until_ready() -> float:
        start = time.perf_counter()
        for _ in range(20):
            await export.reconcile()
            publish()
            if export.condition()["status"] == "True":
                return time.perf_counter() - start
            await asyncio.sleep(0.05)
        raise RuntimeError(f"PSCExport not Ready: {export.condition()}")

    async def endpoint_until_ready() -> float:
        start = time.perf_counter()
        for _ in range(400):
            await endpoint.reconcile()
            if TRACE:
                print(
                    f"  {time.perf_counter() - start:5.2f} endpoint {endpoint.condition().get('reason')}: "
                    f"{endpoint.condition().get('message', '')[:90]}"
                )
            if endpoint.condition()["status"] == "True":
                return time.perf_counter() - start
            await asyncio.sleep(0.05)  # the operator pokes the endpoint when the export turns Ready
        raise RuntimeError(f"PSCEndpoint not Ready: {endpoint.condition()}")

    publish()  # kopf's index holds the export from the moment it is applied
    emu.log.clear()
    t_export, t_both = await asyncio.gather(export_until_ready(), endpoint_until_ready())
    await export.reconcile()  # picks up the accepted connection
    publish()
    emu.log.clear()
    await export.reconcile()
    export_reads, export_writes = calls(emu)
    emu.log.clear()
    await endpoint.reconcile()
    endpoint_reads, endpoint_writes = calls(emu)
    thread.stop()
    bound_export = EXPORT_CRITICAL_PATH * latency
    bound_both = EXPORT_AND_ENDPOINT_CRITICAL_PATH * latency
    print(f"\nPSC, L = {latency:.2f} s")
    ratio_export, ratio_both = t_export / bound_export, t_both / bound_both
    print(
        f"one export Ready in {t_export:.2f} s; bound {bound_export:.2f} s; ratio {ratio_export:.2f} (target <= 1.25)"
    )
    print(
        f"export + endpoint applied together Ready in {t_both:.2f} s; bound {bound_both:.2f} s; ratio {ratio_both:.2f}"
    )
    print(
        f"GCP calls per converged resync: export {export_reads} reads, {export_writes} writes "
        f"({len(export.status['resources'])} resources); endpoint {endpoint_reads} reads, {endpoint_writes} writes "
        f"({len(endpoint.status['resources'])} resources)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--gateways", type=int, default=51, help="one measured alone, then the rest at once")
    args = parser.parse_args()
    asyncio.run(bench(args.latency, args.gateways))
    asyncio.run(bench_psc(args.latency))


if __name__ == "__main__":
    main()
