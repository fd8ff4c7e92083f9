"""The real helm CLI (tools/bin/helm, built from its Go module by ``make helm``) and the two ways to install runnet.

:func:`helm` returns the binary, building it first where Go is present (a no-op when up to date) and
skipping the calling test with a one-line message where it cannot be had. :func:`template` renders
the chart; :func:`kustomize` builds the kustomize base with kubectl's kustomize.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import gotools

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "runnet"
BASE = REPO / "deploy"
BINARY = gotools.BIN / "helm"


def helm() -> Path:
    """tools/bin/helm, built if its go.mod changed; skips the test where there is neither Go nor a binary."""
    tool = gotools.ensure("helm")
    if isinstance(tool, Path):
        return tool
    if BINARY.is_file():
        return BINARY
    pytest.skip(tool)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``helm ARGS`` with a throwaway home (no repositories, no cache); fails the test on a non-zero exit."""
    done = subprocess.run(
        [str(helm()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp/runnet-helm",  # its discovery cache (~/.kube/cache) too
            "HELM_CACHE_HOME": "/tmp/runnet-helm/cache",
            "HELM_CONFIG_HOME": "/tmp/runnet-helm/config",
            "HELM_DATA_HOME": "/tmp/runnet-helm/data",
        },
    )
    if check and done.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}")
    return done


def template(
    values: dict[str, Any] | None = None,
    release: str = "runnet",
    namespace: str = "runnet-system",
    tmp: Path | None = None,
) -> list[dict[str, Any]]:
    """The chart rendered (CRDs included) with ``values`` laid over values.yaml, as a list of objects."""
    args = ["template", release, str(CHART), "--namespace", namespace, "--include-crds"]
    if values:
        if tmp is None:
            raise ValueError("template(values=...) needs tmp, a folder for the values file")
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["--values", str(path)]
    return [doc for doc in yaml.safe_load_all(run(*args).stdout) if doc]


def kustomize(path: Path = BASE) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` as a list of objects; skips where kubectl is absent."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH (it builds the kustomize base)")
    done = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize {path} exited {done.returncode}:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The objects of ``kind`` (and ``name``, if given)."""
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``); fails the test naming what there is otherwise."""
    found = find(objects, kind, name)
    if len(found) != 1:
        have = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        pytest.fail(f"expected one {kind}{'/' + name if name else ''}, found {len(found)} among {have}")
    return found[0]
