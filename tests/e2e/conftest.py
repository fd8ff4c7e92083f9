"""End-to-end fixtures: both stand-ins and the real operator (kopf) in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.stack import KubeBackend, Stack, running_stack
from runnet.runtime import OperatorSettings, run_operator
from tests.support.real_stack import RealKube


@pytest.fixture
def stack_config() -> EmulatorConfig:
    return EmulatorConfig(seed=1)


BACKENDS = ["stand-in", "real"]
STANDARD_PROJECTS = ("my-project", "producer-project", "consumer-project")


def kube_backend(request: pytest.FixtureRequest, name: str) -> KubeBackend | None:
    """The Kubernetes API for a test: the embedded stand-in (None), or the session's real kube-apiserver."""
    if name == "stand-in":
        return None
    return RealKube(request.getfixturevalue("real_kube"))


@pytest.fixture(params=BACKENDS)
def stack(stack_config: EmulatorConfig, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Both stand-ins... or the GCP emulator with a real kube-apiserver: every e2e test runs on both."""
    with running_stack(stack_config, tmp_path, kube_backend(request, request.param)) as s:
        for project in STANDARD_PROJECTS:  # the operator runs with --tenancy bound, as deploy/ installs it
            s.bind(project)
        yield s
        stale = s.gcp.store.index_problems()
        assert not stale, "the emulator changed bodies in place, behind its reference index:\n" + "\n".join(stale)


@contextlib.asynccontextmanager
async def operator(stack: Stack, resync: float = 120, metrics_port: int = 0) -> AsyncIterator[None]:
    """The operator as `runnet run` runs it; blocking calls in the test must go to a thread."""
    stop = asyncio.Event()
    settings = OperatorSettings(
        kubeconfig=str(stack.kubeconfig),
        gcp_endpoint=stack.gcp.base_url,
        resync_interval=resync,
        metrics_port=metrics_port,
        metrics_host="127.0.0.1",
    )
    task = asyncio.create_task(run_operator(settings, stop_flag=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
