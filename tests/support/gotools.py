"""The Go tools under tools/ for the GitOps health tests, built by make into tools/bin/.

``ensure("kstatus")`` runs ``make -s kstatus`` (a no-op when the binary is newer than its sources)
and returns tools/bin/kstatus, or, where ``go`` is not installed, the one-line reason to skip.
:func:`kstatus` and :func:`argo_health` run the binaries on objects given as dicts.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import argocd

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "tools" / "bin"


@functools.cache
def ensure(target: str) -> Path | str:
    """tools/bin/<target>, built first if its sources changed; a skip reason (str) when go is absent.

    A failing build raises: only a missing toolchain is a reason to skip.
    """
    if shutil.which(os.environ.get("GO", "go")) is None:
        return f"go is not installed: `make {target}` builds tools/bin/{target}"
    if shutil.which("make") is None:
        return f"make is not installed: `make {target}` builds tools/bin/{target}"
    result = subprocess.run(["make", "-s", target], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`make -s {target}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return BIN / target


def require(target: str) -> Path:
    """:func:`ensure`, skipping the calling test when the tool cannot be built here."""
    tool = ensure(target)
    if isinstance(tool, str):
        pytest.skip(tool)
    return tool


def kstatus(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kstatus (cli-utils ``status.Compute``, what Flux's health checks use) of each object, in order.

    Each result is ``{"kind", "namespace", "name", "status", "message"}``; status is one of InProgress,
    Current, Failed, Terminating, Unknown.
    """
    if not objects:
        return []
    stream = "\n".join(json.dumps(obj) for obj in objects)
    result = subprocess.run(
        [str(require("kstatus"))], input=stream, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"kstatus failed (exit {result.returncode}): {result.stderr}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    if len(lines) != len(objects):
        raise RuntimeError(f"kstatus printed {len(lines)} results for {len(objects)} objects:\n{result.stdout}")
    return lines


def argo_health(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What Argo CD shows for ``obj`` with deploy/argocd's health script for ``kind``: ``{"status", "message"}``.

    The script runs as Argo CD runs a user's script (no string or math library, 1 s timeout); a
    script error raises.
    """
    script = argocd.script_path(kind)
    if not script.is_file():
        raise ValueError(f"no Argo CD health script for {kind} at {script}")
    result = subprocess.run(
        [str(require("argo-health")), "eval", str(script), "-"],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"argo-health failed on {kind} (exit {result.returncode}): {result.stderr}")
    health: dict[str, Any] = json.loads(result.stdout)
    return health
