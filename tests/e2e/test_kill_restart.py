"""SIGKILL the operator process after GCP writes, during create and delete; restarts converge.

The operator runs as `runnet run` in a subprocess; the GCP emulator runs in this process, the
Kubernetes API is the stand-in or a real kube-apiserver (both, parametrized). Operations take 0.3 s,
so most kills land while an operation is still RUNNING on the GCP side. Each test kills the same
operator again and again: after the 1st successful write, restarts it, kills it after the next
write, and so on, so that one run covers a kill after every write (and many restarts in a row).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.stack import Stack
from tests.operator.conftest import EXAMPLES, deploy_service

PROJECT, REGION = "my-project", "asia-northeast1"
RUNNET = str(Path(sys.executable).parent / "runnet")
SERVICE = f"projects/{PROJECT}/locations/{REGION}/services/direct-vpc-egress"
ADDRESS = f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip"
CONVERGED = {
    SERVICE,
    ADDRESS,
    f"projects/{PROJECT}/global/networks/vpc-cloud-run",
    f"projects/{PROJECT}/regions/{REGION}/subnetworks/subnet-cloud-run",
    f"projects/{PROJECT}/regions/{REGION}/routers/router-cloud-run",
}


@pytest.fixture
def stack_config() -> EmulatorConfig:
    return EmulatorConfig(operation_latency=0.3, seed=1)


def start_operator(stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    args = [RUNNET, "run", "--kubeconfig", str(stack.kubeconfig), "--gcp-endpoint", stack.gcp.base_url]
    return subprocess.Popen(
        [*args, "--resync-interval", "2", "--metrics-port", "0"], stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def wait_for_writes(stack: Stack, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len([e for e in stack.gcp.log.writes() if e.status < 400]) < count:
        assert time.monotonic() < deadline, f"fewer than {count} writes after {timeout} s"
        time.sleep(0.005)


def inventory(stack: Stack) -> set[str]:
    return {p for p, _ in stack.gcp.store.items() if "/operations/" not in p}


def succeeded(stack: Stack) -> int:
    return len([e for e in stack.gcp.log.writes() if e.status < 400])


def kill_after_each_write(stack: Stack, log: Path, done: Callable[[], bool], *, every: int = 1, limit: int = 40) -> int:
    """Start the operator; kill it after each further ``every`` successful writes and start it again, until
    ``done()``; a last operator finishes the job. Returns how many times it was killed."""
    kills = 0
    while not done() and kills < limit:
        proc = start_operator(stack, log)
        target = succeeded(stack) + every
        try:
            deadline = time.monotonic() + 30
            while succeeded(stack) < target and not done():
                assert time.monotonic() < deadline, f"no write after {30} s"
                time.sleep(0.005)
        finally:
            kill(proc)
        kills += 1
    return kills


def gateway_body() -> dict:
    body = yaml.safe_load((EXAMPLES / "egress-fixed-ip.yaml").read_text())
    body["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    return body


def ready(stack: Stack, kind: str, name: str) -> bool:
    obj = stack.get(kind, name) or {}
    status = obj.get("status", {})
    cond = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
    return cond.get("status") == "True" and status.get("observedGeneration") == obj["metadata"].get("generation")


def finish(stack: Stack, log: Path, wait: Callable[[], None]) -> None:
    proc = start_operator(stack, log)
    try:
        wait()
    finally:
        kill(proc)


def test_killed_after_every_write_of_a_create_converges_without_duplicates_or_leaks(stack, tmp_path) -> None:
    deploy_service(stack.clients, PROJECT, REGION, "direct-vpc-egress")
    stack.gcp.log.clear()
    stack.apply(gateway_body())
    log = tmp_path / "operator.log"
    kills = kill_after_each_write(stack, log, lambda: ready(stack, "EgressGateway", "fixed-ip"))
    assert kills >= 5, "a kill after each of the create's writes (network, subnet, router, address, NAT, service)"
    finish(stack, log, lambda: stack.wait_ready("EgressGateway", "fixed-ip", timeout=60))
    assert inventory(stack) == CONVERGED
    router = stack.clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    assert [n.name for n in router.nats] == ["nat-cloud-run"]
    conflicts = [e for e in stack.gcp.log.writes() if e.status == 409]
    # A re-sent insert of something still being created is a 409 the operator waits out, never a duplicate.
    assert all("already exists" in str(e.response_body) for e in conflicts)


def test_killed_after_every_write_of_a_delete_finishes_the_deletion(stack, tmp_path) -> None:
    deploy_service(stack.clients, PROJECT, REGION, "direct-vpc-egress")
    log = tmp_path / "operator.log"
    stack.apply(gateway_body())
    finish(stack, log, lambda: stack.wait_ready("EgressGateway", "fixed-ip", timeout=60))
    assert inventory(stack) == CONVERGED
    stack.delete("EgressGateway", "fixed-ip")
    kills = kill_after_each_write(stack, log, lambda: stack.get("EgressGateway", "fixed-ip") is None)
    assert kills >= 4, "a kill after each of the delete's writes"
    finish(stack, log, lambda: stack.wait_gone("EgressGateway", "fixed-ip", timeout=60))
    assert inventory(stack) == {SERVICE}
    svc = stack.clients.run_services.get_service(name=SERVICE)
    assert not svc.template.vpc_access.network_interfaces and "runnet.dev/egress-gateway" not in svc.annotations


PRODUCER = "producer-project"


def psc_bodies() -> list[dict]:
    return [yaml.safe_load((EXAMPLES / name).read_text()) for name in ("psc-export.yaml", "psc-endpoint.yaml")]


def psc_ready(stack: Stack) -> None:
    stack.wait_ready("PSCExport", "hello", timeout=90)
    stack.wait_ready("PSCEndpoint", "hello", timeout=90)


def test_psc_killed_again_and_again_during_create_converges_without_duplicates(stack, tmp_path) -> None:
    deploy_service(stack.clients, PRODUCER, REGION, "hello-service")
    stack.gcp.log.clear()
    for body in psc_bodies():
        stack.apply(body)
    log = tmp_path / "operator.log"
    both = lambda: ready(stack, "PSCExport", "hello") and ready(stack, "PSCEndpoint", "hello")  # noqa: E731
    kills = kill_after_each_write(stack, log, both, every=4)
    assert kills >= 3, "kills spread over the ~16 writes of an export and its endpoint"
    finish(stack, log, lambda: psc_ready(stack))
    assert (stack.get("PSCEndpoint", "hello") or {})["status"]["connectionStatus"] == "ACCEPTED"
    made = inventory(stack)
    assert len([p for p in made if "/forwardingRules/" in p]) == 2
    assert len([p for p in made if "/serviceAttachments/" in p]) == 1
    assert len([p for p in made if "/addresses/" in p]) == 1


def test_psc_killed_again_and_again_during_delete_leaves_nothing_behind(stack, tmp_path) -> None:
    deploy_service(stack.clients, PRODUCER, REGION, "hello-service")
    log = tmp_path / "operator.log"
    for body in psc_bodies():
        stack.apply(body)
    finish(stack, log, lambda: psc_ready(stack))
    stack.delete("PSCEndpoint", "hello")
    stack.delete("PSCExport", "hello")
    gone = lambda: stack.get("PSCEndpoint", "hello") is None and stack.get("PSCExport", "hello") is None  # noqa: E731
    kills = kill_after_each_write(stack, log, gone, every=4)
    assert kills >= 3
    finish(stack, log, lambda: (stack.wait_gone("PSCEndpoint", "hello", 90), stack.wait_gone("PSCExport", "hello", 90)))
    assert inventory(stack) == {f"projects/{PRODUCER}/locations/{REGION}/services/hello-service"}
