"""Fixtures shared by every test: a GCP emulator on a free port and the official clients aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runnet.emulator.gcp import EmulatorConfig, EmulatorThread, GCPEmulator
from runnet.gcp.clients import Clients, GCPSettings


@pytest.fixture
def gcp_config() -> EmulatorConfig:
    """Override in a test module (or parametrize) to set latency, faults or permissions."""
    return EmulatorConfig(seed=1)


@pytest.fixture
def gcp(gcp_config: EmulatorConfig) -> Iterator[GCPEmulator]:
    """A fresh GCP emulator in its own thread, so blocking clients can call it from anywhere."""
    thread = EmulatorThread(gcp_config)
    with thread.running() as emu:
        yield emu


@pytest.fixture
def clients(gcp: GCPEmulator) -> Clients:
    """The official google-cloud-compute / google-cloud-run clients, over HTTP to the emulator."""
    return Clients(GCPSettings(endpoint=gcp.base_url))
