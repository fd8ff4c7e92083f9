"""Fixtures shared by every test: a GCP emulator on a free port and the official clients aimed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runnet.emulator.gcp import EmulatorConfig, EmulatorThread, GCPEmulator
from runnet.gcp.clients import Clients, GCPSettings
from tests.support import conformance, control_plane
from tests.support.control_plane import ControlPlane


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_unserved: the test hits paths the GCP emulator does not serve on purpose "
        "(otherwise the gcp fixture reports them as fidelity bugs)",
    )


@pytest.fixture
def gcp_config() -> EmulatorConfig:
    """Override in a test module (or parametrize) to set latency, faults or permissions."""
    return EmulatorConfig(seed=1)


@pytest.fixture
def gcp(gcp_config: EmulatorConfig, request: pytest.FixtureRequest) -> Iterator[GCPEmulator]:
    """A fresh GCP emulator in its own thread, so blocking clients can call it from anywhere.

    At teardown every response it sent is checked against the discovery schema of its method
    (tests/support/conformance.py): a non-conforming response fails the test.
    """
    thread = EmulatorThread(gcp_config)
    with thread.running() as emu:
        yield emu
    allow_unserved = request.node.get_closest_marker("allow_unserved") is not None
    problems = conformance.report(emu.log.snapshot(), allow_unserved=allow_unserved)
    if problems:
        pytest.fail(problems, pytrace=False)
    stale = emu.store.index_problems()
    if stale:
        pytest.fail("the emulator changed bodies in place, behind its reference index:\n" + "\n".join(stale))


@pytest.fixture
def clients(gcp: GCPEmulator) -> Clients:
    """The official google-cloud-compute / google-cloud-run clients, over HTTP to the emulator."""
    return Clients(GCPSettings(endpoint=gcp.base_url))


@pytest.fixture(scope="session")
def control_plane_binary() -> Path:
    """tools/bin/kube-control-plane, built if missing or stale; the test skips where Go is absent."""
    binary = control_plane.ensure_built()
    if binary is None:
        pytest.skip(control_plane.NO_GO)
    return binary


@pytest.fixture(scope="session")
def real_kube(control_plane_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real kube-apiserver and etcd on a free loopback port, shared by the session; stopped (exit 0) at its end."""
    with control_plane.running(control_plane_binary, tmp_path_factory.mktemp("kube-control-plane")) as plane:
        yield plane
