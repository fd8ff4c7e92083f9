"""A real kube-apiserver and etcd for tests: ``tools/bin/kube-control-plane``, built by ``make control-plane``.

The binary (tools/control-plane) prints the server URL once ``/readyz`` is ok, writes an admin
kubeconfig, and on SIGTERM stops the apiserver and etcd and exits 0. ``ensure_built()`` builds it
(a no-op when up to date) or returns None where Go is absent, so tests can skip with ``NO_GO``;
``running()`` starts one on a free port in a folder of the caller's and stops it on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "tools" / "bin" / "kube-control-plane"
GO_MOD = REPO / "tools" / "control-plane" / "go.mod"
NO_GO = "needs a real kube-apiserver: Go is not on PATH to build it (`make control-plane`)"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def kubernetes_version() -> tuple[int, int, int]:
    """The k8s.io/kubernetes release the binary is built from, as tools/control-plane/go.mod requires it."""
    for line in GO_MOD.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[-2] == "k8s.io/kubernetes" and words[-1].startswith("v1."):
            major, minor, patch = words[-1][1:].split(".")[:3]
            return int(major), int(minor), int(patch)
    raise LookupError(f"no k8s.io/kubernetes requirement in {GO_MOD}")


def ensure_built() -> Path | None:
    """Run ``make -s control-plane`` (a no-op when up to date) and return the binary.

    None when Go is not on PATH and there is no binary (the caller skips with ``NO_GO``); where Go is
    absent a binary built earlier is used as it is. A failing build raises. A cold build takes minutes
    (26 on a loaded 2-core machine): run ``make control-plane`` before pytest rather than in a test.
    """
    if shutil.which("go") is None:
        return BINARY if BINARY.is_file() else None
    done = subprocess.run(["make", "-s", "control-plane"], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"make control-plane failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return BINARY


@dataclass
class ControlPlane:
    """A running kube-control-plane: ``url`` and an admin ``kubeconfig`` to reach it."""

    url: str
    kubeconfig: Path
    data_dir: Path
    process: subprocess.Popen[bytes]
    started_in: float  # seconds from exec to the URL line
    stopped_in: float | None = None  # seconds from SIGTERM to exit, once stopped

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.data_dir, lines)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait for the exit code (killed and an error after ``timeout`` seconds)."""
        if self.process.poll() is None:
            begin = time.monotonic()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"kube-control-plane did not stop within {timeout}s\n{self.log_tail()}") from None
            self.stopped_in = time.monotonic() - begin
        return self.process.returncode


PR_SET_PDEATHSIG = 1
# Looked up here, not in the child: between fork and exec the child should only make the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Have Linux send SIGTERM to the control plane if the test process dies without stopping it."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(data_dir: Path, lines: int = 40) -> str:
    """The end of the apiserver's and etcd's log (control-plane.log), and what the binary wrote to stderr."""
    parts = []
    for name in ("stderr.txt", "control-plane.log"):
        path = data_dir / name
        if path.exists():
            parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(parts)


@contextlib.contextmanager
def running(
    binary: Path, data_dir: Path, *, port: int = 0, ready_timeout: float = READY_TIMEOUT
) -> Iterator[ControlPlane]:
    """Start ``binary`` with its data in ``data_dir``, yield it once ready, stop it on exit (exit 0 expected).

    ``port`` 0 lets the binary pick a free one. The control plane gets SIGTERM if this process dies first.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = data_dir / "kubeconfig"
    command = [str(binary), "--port", str(port), "--kubeconfig", str(kubeconfig), "--data-dir", str(data_dir)]
    begin = time.monotonic()
    with open(data_dir / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=_die_with_parent if _prctl is not None else None,
        )
    try:
        try:
            url = _read_line(process, ready_timeout)
        except (TimeoutError, EOFError, ValueError) as exc:
            _kill(process)
            raise RuntimeError(
                f"kube-control-plane did not start: {exc} (exit code {process.returncode})\n{log_tail(data_dir)}"
            ) from None
        plane = ControlPlane(url, kubeconfig, data_dir, process, time.monotonic() - begin)
        try:
            yield plane
        except BaseException:
            _kill(process)
            raise
        code = plane.stop()
        if code != 0:
            raise RuntimeError(f"kube-control-plane exited {code} on SIGTERM\n{plane.log_tail()}")
    finally:
        if process.stdout is not None:
            process.stdout.close()


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line of the process's stdout, within ``timeout`` seconds (TimeoutError otherwise)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"kube-control-plane printed no URL within {timeout}s")
            if selector.select(left):
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise EOFError("kube-control-plane closed its stdout without printing a URL")
                data += chunk
    line = data.split(b"\n", 1)[0].decode(errors="replace").strip()
    if not line.startswith("https://"):
        raise ValueError(f"kube-control-plane printed {line!r}, not a URL")
    return line
