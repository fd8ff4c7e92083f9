"""SIGKILL the operator process after each GCP write, during create and delete; a restart converges.

The operator runs as `runnet run` in a subprocess; both stand-ins run in this process. Operations
take 0.3 s, so most kills land while an operation is still RUNNING on the GCP side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.stack import Stack, running_stack
from tests.operator.conftest import EXAMPLES, deploy_service

PROJECT, REGION = "my-project", "asia-northeast1"
RUNNET = str(Path(sys.executable).parent / "runnet")
CREATE_WRITES = 6  # network, address, subnet, router, NAT, Cloud Run service
DELETE_WRITES = 5  # Cloud Run service, NAT, subnet, router, network
SERVICE = f"projects/{PROJECT}/locations/{REGION}/services/direct-vpc-egress"
ADDRESS = f"projects/{PROJECT}/regions/{REGION}/addresses/static-ip"
CONVERGED = {
    SERVICE,
    ADDRESS,
    f"projects/{PROJECT}/global/networks/vpc-cloud-run",
    f"projects/{PROJECT}/regions/{REGION}/subnetworks/subnet-cloud-run",
    f"projects/{PROJECT}/regions/{REGION}/routers/router-cloud-run",
}


def start_operator(stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    args = [RUNNET, "run", "--kubeconfig", str(stack.kubeconfig), "--gcp-endpoint", stack.gcp.base_url]
    return subprocess.Popen([*args, "--resync-interval", "2"], stdout=log.open("ab"), stderr=subprocess.STDOUT)


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


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(EmulatorConfig(operation_latency=0.3, seed=1), tmp_path) as s:
        deploy_service(s.clients, PROJECT, REGION, "direct-vpc-egress")
        s.gcp.log.clear()
        yield s


def converge_after_kill(stack: Stack, tmp_path: Path, kill_after: int) -> None:
    body = yaml.safe_load((EXAMPLES / "egress-fixed-ip.yaml").read_text())
    body["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    first = start_operator(stack, tmp_path / "operator.log")
    try:
        stack.apply(body)
        wait_for_writes(stack, kill_after)
    finally:
        kill(first)
    second = start_operator(stack, tmp_path / "operator.log")
    try:
        stack.wait_ready("EgressGateway", "fixed-ip", timeout=60)
    finally:
        kill(second)


@pytest.mark.parametrize("kill_after", range(1, CREATE_WRITES + 1))
def test_killed_during_create_converges_without_duplicates_or_leaks(stack, tmp_path, kill_after) -> None:
    converge_after_kill(stack, tmp_path, kill_after)
    assert inventory(stack) == CONVERGED
    router = stack.clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
    assert [n.name for n in router.nats] == ["nat-cloud-run"]
    conflicts = [e for e in stack.gcp.log.writes() if e.status == 409]
    # A re-sent insert of something still being created is a 409 the operator waits out, never a duplicate.
    assert all("already exists" in str(e.response_body) for e in conflicts)


@pytest.mark.parametrize("kill_after", range(1, DELETE_WRITES + 1))
def test_killed_during_delete_finishes_the_deletion(stack, tmp_path, kill_after) -> None:
    body = yaml.safe_load((EXAMPLES / "egress-fixed-ip.yaml").read_text())
    body["spec"]["nat"]["addressDeletionPolicy"] = "Delete"
    first = start_operator(stack, tmp_path / "operator.log")
    try:
        stack.apply(body)
        stack.wait_ready("EgressGateway", "fixed-ip", timeout=60)
        assert inventory(stack) == CONVERGED
        done = len([e for e in stack.gcp.log.writes() if e.status < 400])
        stack.delete("EgressGateway", "fixed-ip")
        wait_for_writes(stack, done + kill_after)
    finally:
        kill(first)
    second = start_operator(stack, tmp_path / "operator.log")
    try:
        stack.wait_gone("EgressGateway", "fixed-ip", timeout=60)
    finally:
        kill(second)
    assert inventory(stack) == {SERVICE}
    svc = stack.clients.run_services.get_service(name=SERVICE)
    assert not svc.template.vpc_access.network_interfaces and "runnet.dev/egress-gateway" not in svc.annotations


PRODUCER = "producer-project"
PSC_CREATE_KILLS = [2, 5, 8, 11, 14]  # spread over the ~16 writes of an export and its endpoint
PSC_DELETE_KILLS = [1, 4, 8, 12]


@pytest.fixture
def psc_stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(EmulatorConfig(operation_latency=0.3, seed=1), tmp_path) as s:
        deploy_service(s.clients, PRODUCER, REGION, "hello-service")
        s.gcp.log.clear()
        yield s


def psc_bodies() -> list[dict]:
    return [yaml.safe_load((EXAMPLES / name).read_text()) for name in ("psc-export.yaml", "psc-endpoint.yaml")]


def psc_ready(stack: Stack) -> None:
    stack.wait_ready("PSCExport", "hello", timeout=90)
    stack.wait_ready("PSCEndpoint", "hello", timeout=90)


@pytest.mark.parametrize("kill_after", PSC_CREATE_KILLS)
def test_psc_killed_during_create_converges_without_duplicates(psc_stack, tmp_path, kill_after) -> None:
    stack = psc_stack
    first = start_operator(stack, tmp_path / "operator.log")
    try:
        for body in psc_bodies():
            stack.apply(body)
        wait_for_writes(stack, kill_after)
    finally:
        kill(first)
    second = start_operator(stack, tmp_path / "operator.log")
    try:
        psc_ready(stack)
        assert (stack.get("PSCEndpoint", "hello") or {})["status"]["connectionStatus"] == "ACCEPTED"
    finally:
        kill(second)
    made = inventory(stack)
    assert len([p for p in made if "/forwardingRules/" in p]) == 2
    assert len([p for p in made if "/serviceAttachments/" in p]) == 1
    assert len([p for p in made if "/addresses/" in p]) == 1


@pytest.mark.parametrize("kill_after", PSC_DELETE_KILLS)
def test_psc_killed_during_delete_leaves_nothing_behind(psc_stack, tmp_path, kill_after) -> None:
    stack = psc_stack
    first = start_operator(stack, tmp_path / "operator.log")
    try:
        for body in psc_bodies():
            stack.apply(body)
        psc_ready(stack)
        done = len([e for e in stack.gcp.log.writes() if e.status < 400])
        stack.delete("PSCEndpoint", "hello")
        stack.delete("PSCExport", "hello")
        wait_for_writes(stack, done + kill_after)
    finally:
        kill(first)
    second = start_operator(stack, tmp_path / "operator.log")
    try:
        stack.wait_gone("PSCEndpoint", "hello", timeout=90)
        stack.wait_gone("PSCExport", "hello", timeout=90)
    finally:
        kill(second)
    assert inventory(stack) == {f"projects/{PRODUCER}/locations/{REGION}/services/hello-service"}
