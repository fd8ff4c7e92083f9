"""Two `runnet run --leader-elect` processes on the real kube-apiserver: exactly one acts; SIGKILL the acting one
while a gateway is being created, and again while it is being torn down; the other takes over and everything
converges, with no duplicate and no leak in the GCP emulator's inventory.

The Lease is short here (4 s lease, 3 s renew deadline, 0.5 s retry period) to keep the test lean; the
failover time printed (kill -> the new leader's first GCP request) scales with --leader-elect-lease-duration.
Run `pytest -s tests/realkube/test_failover.py` to see the figures.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.stack import Stack, running_stack
from tests.e2e.test_kill_restart import CONVERGED, PROJECT, REGION, SERVICE, gateway_body, inventory, succeeded
from tests.operator.conftest import deploy_service
from tests.support.control_plane import ControlPlane
from tests.support.real_stack import RealKube

pytestmark = pytest.mark.timeout(240)
RUNNET = str(Path(sys.executable).parent / "runnet")
# RUNNET_FAILOVER_LEASE="15,10,2" measures the defaults (lease duration, renew deadline, retry period).
LEASE = dict(
    zip(
        ("duration", "renew", "retry"),
        map(float, os.environ.get("RUNNET_FAILOVER_LEASE", "4,3,0.5").split(",")),
        strict=True,
    )
)
BECAME = "became the leader"
ACTING = ("kopf", "runnet.handlers", "runnet.controllers", "runnet.engine", "runnet.gcp")


@pytest.fixture
def stack(real_kube: ControlPlane, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(EmulatorConfig(operation_latency=0.3, seed=1), tmp_path, RealKube(real_kube)) as stack:
        stack.bind(PROJECT)
        yield stack


class Replica:
    """One operator process, as one pod of deploy/'s Deployment (its POD_NAME is its identity in the Lease)."""

    def __init__(self, name: str, stack: Stack, lease: str, logs: Path) -> None:
        self.name, self.log = name, logs / f"{name}.log"
        args = [RUNNET, "run", "--kubeconfig", str(stack.kubeconfig), "--gcp-endpoint", stack.gcp.base_url]
        args += ["--resync-interval", "2", "--metrics-port", "0"]  # two on one machine: no shared port
        args += ["--leader-elect", "--leader-election-namespace", "default"]
        args += ["--leader-election-id", lease, "--leader-elect-lease-duration", str(LEASE["duration"])]
        args += [
            "--leader-elect-renew-deadline",
            str(LEASE["renew"]),
            "--leader-elect-retry-period",
            str(LEASE["retry"]),
        ]
        env = {**os.environ, "POD_NAME": name, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(args, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env)

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def standing_by(self) -> bool:
        return any("standing by" in line for line in self.lines())

    def became_leader_at(self) -> float | None:
        """Wall-clock time of its "became the leader" log line."""
        line = next((line for line in self.lines() if BECAME in line), None)
        return None if line is None else dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    def acted_while_standing_by(self) -> list[str]:
        """Lines of kopf or runnet's reconcile code logged before it held the Lease (must be none)."""
        out = []
        for line in self.lines():
            if BECAME in line:
                break
            words = line.split()
            if len(words) > 3 and words[3].rstrip(":").startswith(ACTING):
                out.append(line)
        return out

    def kill(self) -> float:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        return time.time()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def holder(stack: Stack, lease: str) -> str:
    api = kubernetes.client.CoordinationV1Api(stack.api.api_client)
    try:
        return api.read_namespaced_lease(lease, "default").spec.holder_identity or ""
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return ""
        raise


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not after {timeout:.0f} s"
        time.sleep(0.05)


def first_request_after(stack: Stack, moment: float) -> float:
    """How long after ``moment`` the GCP emulator received its next request (the new leader's first action)."""
    later = [e.at for e in stack.gcp.log.snapshot() if e.at > moment]
    assert later, "no GCP request after the kill"
    return min(later) - moment


def test_two_replicas_one_acts_and_the_other_finishes_create_and_teardown_after_sigkills(
    stack: Stack, tmp_path: Path
) -> None:
    lease = f"runnet-{uuid.uuid4().hex[:6]}"
    deploy_service(stack.clients, PROJECT, REGION, "direct-vpc-egress")
    replicas = {name: Replica(name, stack, lease, tmp_path) for name in ("runnet-a", "runnet-b")}
    try:
        wait_for(lambda: holder(stack, lease) in replicas, 90, "a leader")
        first = replicas[holder(stack, lease)]
        standby = next(r for r in replicas.values() if r is not first)
        wait_for(lambda: standby.standing_by(), 60, f"{standby.name} standing by")

        stack.gcp.log.clear()
        stack.apply(gateway_body())
        wait_for(lambda: succeeded(stack) >= 2, 30, "two GCP writes")  # network and subnet in flight, at least
        killed_at = first.kill()
        spare = replicas["runnet-c"] = Replica("runnet-c", stack, lease, tmp_path)  # the pod Kubernetes starts instead
        stack.wait_ready("EgressGateway", "fixed-ip", timeout=60)
        create_failover = first_request_after(stack, killed_at)
        assert holder(stack, lease) == standby.name
        took = (standby.became_leader_at() or 0) - killed_at
        assert inventory(stack) == CONVERGED
        router = stack.clients.routers.get(project=PROJECT, region=REGION, router="router-cloud-run")
        assert [n.name for n in router.nats] == ["nat-cloud-run"]
        conflicts = [e for e in stack.gcp.log.writes() if e.status == 409]
        assert all("already exists" in str(e.response_body) for e in conflicts), conflicts

        wait_for(lambda: spare.standing_by(), 60, f"{spare.name} standing by")
        before = succeeded(stack)
        stack.delete("EgressGateway", "fixed-ip")
        wait_for(lambda: succeeded(stack) >= before + 2, 30, "two teardown writes")
        killed_at = standby.kill()
        stack.wait_gone("EgressGateway", "fixed-ip", timeout=60)
        delete_failover = first_request_after(stack, killed_at)
        assert holder(stack, lease) == spare.name
        assert inventory(stack) == {SERVICE}
        svc = stack.clients.run_services.get_service(name=SERVICE)
        assert not svc.template.vpc_access.network_interfaces

        for replica in replicas.values():
            assert replica.acted_while_standing_by() == [], replica.name
        assert replicas["runnet-c"].stop() == 0
        assert holder(stack, lease) == "", "a graceful stop releases the Lease"
    finally:
        for replica in replicas.values():
            replica.stop()
    print(
        f"\nfailover with a {LEASE['duration']:g} s lease ({LEASE['retry']:g} s retry): create {create_failover:.2f} s"
        f" (lease taken {took:.2f} s after the kill), teardown {delete_failover:.2f} s"
    )
    # The lease, timed from the standby's last read of it, then its next attempt (each up to 2.2 retry periods
    # apart with client-go's jitter), then kopf's start (seconds on a loaded machine).
    bound = LEASE["duration"] + 2 * 2.2 * LEASE["retry"] + 3.0
    assert create_failover < bound and delete_failover < bound, (create_failover, delete_failover)
    # The standby times the lease from its own last read of it, at most a renewal period before the kill.
    assert took >= LEASE["duration"] - 2 * LEASE["retry"] - 0.5, "the standby waited out the dead leader's lease"
