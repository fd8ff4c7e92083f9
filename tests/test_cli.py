"""The ``runnet`` command off the happy path: one clear line instead of tracebacks, and a demo that stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUNNET = str(Path(sys.executable).with_name("runnet"))


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNNET, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_run_without_a_kubeconfig_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": ""}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = run("run", env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no usable Kubernetes credentials" in lines[0] and "--kubeconfig" in lines[0]
    assert "Traceback" not in done.stderr


def test_run_with_a_kubeconfig_that_is_not_there_stops_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run("run", "--kubeconfig", str(tmp_path / "nope"))
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: --kubeconfig {tmp_path / 'nope'}: no such file"


def test_crds_check_outside_a_checkout_says_crds_is_not_found(tmp_path: Path) -> None:
    done = run("crds", "--check", cwd=tmp_path)
    assert done.returncode == 1
    assert "crds/ not found" in done.stderr and "out of date" not in done.stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_serve_stops_on_a_signal_and_cleans_up(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [RUNNET, "demo", "--serve", "--latency", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    workdir = None
    try:
        for line in proc.stdout:
            found = re.search(r"KUBECONFIG=(\S+)/kubeconfig", line)
            workdir = Path(found.group(1)) if found else workdir
            if "Ctrl-C to stop" in line:
                break
        assert workdir is not None and workdir.is_dir()
        proc.send_signal(sig)
        time.sleep(0.5)
        proc.send_signal(sig)  # impatient users press it twice
        _, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, errors
    assert "InvalidStateError" not in errors and "Traceback" not in errors, errors
    assert not workdir.exists(), "the demo's temporary directory is removed"
