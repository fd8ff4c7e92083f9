"""One real kube-apiserver + etcd per session (tests/support/control_plane.py), and kubectl aimed at it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.support.control_plane import ControlPlane

KUBECTL = shutil.which("kubectl")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def kubectl(real_kube: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """The real kubectl as the cluster admin: ``kubectl("get", "ns", check=False)``; fails the test by default."""
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    env = {
        **os.environ,
        "KUBECONFIG": str(real_kube.kubeconfig),
        "KUBECACHEDIR": str(tmp_path_factory.mktemp("kubectl-cache")),
    }

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}")
        return done

    return run
