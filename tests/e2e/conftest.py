"""End-to-end fixtures: both stand-ins and the real operator (kopf) in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.stack import Stack, running_stack
from runnet.runtime import OperatorSettings, run_operator


@pytest.fixture
def stack_config() -> EmulatorConfig:
    return EmulatorConfig(seed=1)


@pytest.fixture
def stack(stack_config: EmulatorConfig, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(stack_config, tmp_path) as s:
        yield s


@contextlib.asynccontextmanager
async def operator(stack: Stack, resync: float = 120) -> AsyncIterator[None]:
    """The operator as `runnet run` runs it; blocking calls in the test must go to a thread."""
    stop = asyncio.Event()
    settings = OperatorSettings(
        kubeconfig=str(stack.kubeconfig), gcp_endpoint=stack.gcp.base_url, resync_interval=resync
    )
    task = asyncio.create_task(run_operator(settings, stop_flag=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
