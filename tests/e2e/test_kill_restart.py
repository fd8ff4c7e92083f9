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
