"""Leader election (runnet.leader) over the wire: candidates talk to a real kube-apiserver (and to the stand-in,
which serves coordination.k8s.io Leases too) through the official client, as `runnet run --leader-elect` does.

Durations are short (a 2 s lease, 1.5 s renew deadline, 0.2 s retry period) so the file takes seconds;
the defaults (15/10/2) only scale the same logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import pytest
import yaml

from runnet.emulator.kube import KubeEmulatorThread, write_kubeconfig
from runnet.leader import LeaderElector, LeaseConfig
from tests.support.control_plane import ControlPlane

NAMESPACE = "default"
FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}
RUNNET = str(Path(sys.executable).with_name("runnet"))


@pytest.fixture(params=["real", "stand-in"])
def kubeconfig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    if request.param == "real":
        yield request.getfixturevalue("real_kube").kubeconfig
        return
    thread = KubeEmulatorThread()
    emulator = thread.start()
    try:
        yield write_kubeconfig(tmp_path / "kubeconfig", str(emulator.base_url))
    finally:
        thread.stop()


def coordination(kubeconfig: Path, host: str | None = None) -> Any:
    """A CoordinationV1Api from the kubeconfig, optionally through another address (a proxy)."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)  # type: ignore[no-untyped-call]
    if host is not None:
        config.host = host
    return kubernetes.client.CoordinationV1Api(kubernetes.client.ApiClient(config))


@pytest.fixture
def lease_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def candidate(kubeconfig: Path, name: str, identity: str, host: str | None = None) -> LeaderElector:
    return LeaderElector(LeaseConfig(NAMESPACE, name, identity, **FAST), coordination(kubeconfig, host))


def read(kubeconfig: Path, name: str) -> Any:
    return coordination(kubeconfig).read_namespaced_lease(name, NAMESPACE).spec


async def test_one_of_two_candidates_wins_renews_and_a_release_hands_over_at_once(
    kubeconfig: Path, lease_name: str
) -> None:
    a, b = candidate(kubeconfig, lease_name, "a"), candidate(kubeconfig, lease_name, "b")
    stop = asyncio.Event()
    assert await a.acquire(stop)
    assert not await b.try_acquire_or_renew() and b.holder == "a"
    first = read(kubeconfig, lease_name)
    assert (first.holder_identity, first.lease_duration_seconds, first.lease_transitions) == ("a", 2, 0)
    assert first.acquire_time and first.renew_time

    assert await a.try_acquire_or_renew()  # a renewal: renewTime moves, acquireTime stays
    renewed = read(kubeconfig, lease_name)
    assert renewed.renew_time > first.renew_time and renewed.acquire_time == first.acquire_time

    await a.release()
    released = read(kubeconfig, lease_name)
    assert not released.holder_identity and released.lease_transitions == 0
    started = time.monotonic()
    assert await b.acquire(stop)
    assert time.monotonic() - started < 1.0, "a released lease is taken at once, not after its duration"
    taken = read(kubeconfig, lease_name)
    assert (taken.holder_identity, taken.lease_transitions) == ("b", 1)


async def test_a_lease_its_holder_stopped_renewing_is_taken_over_after_its_duration_and_not_before(
    kubeconfig: Path, lease_name: str
) -> None:
    a, b = candidate(kubeconfig, lease_name, "a"), candidate(kubeconfig, lease_name, "b")
    assert await a.acquire(asyncio.Event())  # then a "crashes": no renewal, no release
    started = time.monotonic()
    assert await asyncio.wait_for(b.acquire(asyncio.Event()), 10)
    waited = time.monotonic() - started
    assert 2.0 <= waited < 3.5, f"took over after {waited:.2f} s; the lease lasts 2 s"
    taken = read(kubeconfig, lease_name)
    assert (taken.holder_identity, taken.lease_transitions) == ("b", 1)
    assert taken.acquire_time > dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)


async def test_candidates_racing_for_a_free_lease_elect_exactly_one(kubeconfig: Path, lease_name: str) -> None:
    """First for a lease that does not exist yet (one create wins), then for a released one (one update wins: each
    carries the resourceVersion it read)."""
    electors = [candidate(kubeconfig, lease_name, f"c{i}") for i in range(4)]
    for _ in range(2):
        won = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
        assert sum(won) == 1, won
        winner = electors[won.index(True)]
        assert read(kubeconfig, lease_name).holder_identity == winner.identity
        winner.leading = True
        await winner.release()


async def test_a_leader_whose_lease_was_taken_stops_at_its_next_renewal(kubeconfig: Path, lease_name: str) -> None:
    a = candidate(kubeconfig, lease_name, "a")
    assert await a.acquire(asyncio.Event())
    api = coordination(kubeconfig)
    lease = api.read_namespaced_lease(lease_name, NAMESPACE)
    lease.spec.holder_identity = "intruder"
    api.replace_namespaced_lease(lease_name, NAMESPACE, lease)
    reason = await asyncio.wait_for(a.hold(), 3)
    assert reason == "the lease is now held by intruder" and not a.leading


@contextlib.asynccontextmanager
async def tcp_proxy(target: str) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Forward a local port to ``target`` (scheme://host:port) until the event is set; then refuse and cut every
    connection, as a lost network would. Yields the proxy's URL and that event."""
    where = urlsplit(target)
    cut = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(where.hostname, where.port)
        writers.extend([writer, up_writer])
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def cutter() -> None:
        await cut.wait()
        server.close()
        for writer in writers:
            writer.transport.abort()

    task = asyncio.create_task(cutter())
    try:
        yield f"{where.scheme}://127.0.0.1:{port}", cut
    finally:
        cut.set()
        await task


async def test_a_leader_that_cannot_reach_the_api_server_stops_within_its_renew_deadline(
    kubeconfig: Path, lease_name: str
) -> None:
    server = coordination(kubeconfig).api_client.configuration.host
    async with tcp_proxy(server) as (via, cut):
        a = candidate(kubeconfig, lease_name, "a", host=via)
        assert await a.acquire(asyncio.Event())
        holding = asyncio.create_task(a.hold())
        await asyncio.sleep(0.6)
        assert not holding.done(), "renewals through the proxy succeed"
        cut.set()
        cut_at = time.monotonic()
        reason = await asyncio.wait_for(holding, 5)
    stopped = time.monotonic() - cut_at
    assert reason == "no renewal of the lease in 1.5 s" and not a.leading
    # It stops before any other candidate may take over (2 s after the last renewal it saw).
    assert stopped < 2.0, f"stopped {stopped:.2f} s after the network was cut"


def test_runnet_run_refuses_durations_that_could_let_two_replicas_act(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    args = [RUNNET, "run", "--kubeconfig", str(kubeconfig), "--leader-elect"]
    for flags, words in [
        (["--leader-elect-lease-duration", "10"], "--leader-elect-lease-duration (10 s) must be longer than"),
        (["--leader-elect-retry-period", "9"], "--leader-elect-renew-deadline (10 s) must be longer than 1.2 x"),
    ]:
        done = subprocess.run([*args, *flags], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and words in done.stderr, done.stderr


async def test_runnet_run_exits_non_zero_within_its_renew_deadline_when_it_loses_the_api_server(
    real_kube: ControlPlane, tmp_path: Path
) -> None:
    """The whole operator, not only the elector: `runnet run --leader-elect` leading (kopf running) through a proxy
    that is then cut stops acting by exiting 1, before a standby may take over (the lease lasts 3 s)."""
    config = yaml.safe_load(real_kube.kubeconfig.read_text())
    async with tcp_proxy(config["clusters"][0]["cluster"]["server"]) as (via, cut):
        config["clusters"][0]["cluster"]["server"] = via
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
        log = tmp_path / "operator.log"
        args = [RUNNET, "run", "--kubeconfig", str(tmp_path / "kubeconfig"), "--tenancy", "open", "--leader-elect"]
        args += ["--leader-election-namespace", NAMESPACE, "--leader-election-id", f"test-{uuid.uuid4().hex[:8]}"]
        args += ["--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2"]
        args += ["--leader-elect-retry-period", "0.5", "--gcp-endpoint", "http://127.0.0.1:9", "--metrics-port", "0"]
        proc = await asyncio.create_subprocess_exec(*args, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while "kopf.activities.startup" not in log.read_text():  # leading, and kopf has started
                assert proc.returncode is None and time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
            cut.set()
            cut_at = time.monotonic()
            code = await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    exited = time.monotonic() - cut_at
    assert code == 1 and "lost the leadership (no renewal of the lease in 2 s)" in log.read_text()
    assert exited < 3.0, f"exited {exited:.2f} s after the API server was cut off"
