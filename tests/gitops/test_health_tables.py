"""GitOps health of runnet objects: Argo CD's health scripts and Flux's kstatus on the same test objects.

The objects are deploy/argocd/runnet.dev/<Kind>/testdata/*.yaml (Argo CD's layout, with the
expected Argo CD health in each health_test.yaml); KSTATUS says what kstatus must make of each case.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runnet.emulator.kube import cel, schema
from tests.support import argocd, gotools

# The first test to need a tool builds it: from an empty Go build cache, kstatus (which compiles
# k8s.io/api) took about 4 minutes on 2 cores, longer than the suite's 120 s default.
pytestmark = pytest.mark.timeout(600)

# What kstatus (Flux) makes of each test case, by file name. Every test object must be listed.
KSTATUS = {
    "healthy": "Current",
    "healthy-nat-capacity-insufficient": "Current",  # informational conditions do not count
    "healthy-service-not-serving": "Current",
    "creating": "InProgress",  # Reconciling=True
    "generation-lag": "InProgress",  # status.observedGeneration != metadata.generation
    "gcp-503-retrying": "InProgress",  # Reconciling=True, reason GCPError
    "waiting-for-service": "InProgress",
    "waiting-for-export": "InProgress",
    "connection-pending": "InProgress",
    "connection-closed": "InProgress",
    "invalid-spec": "Failed",  # Stalled=True
    "conflict": "Failed",
    "permission-denied": "Failed",
    "project-not-bound": "Failed",
    "connection-rejected": "Failed",
    # Ready=False alone never fails in kstatus: without Stalled, a stall reason reads as InProgress
    # (Argo CD's script still says Degraded).
    "stall-reason-without-stalled": "InProgress",
    "deleting": "Terminating",
    # kstatus calls an object with no status at all Current (no observedGeneration, no conditions).
    "no-status": "Current",
}

# The cases every kind must have; PSCEndpoint also the connection states.
REQUIRED = {
    "healthy",
    "creating",
    "generation-lag",
    "invalid-spec",
    "conflict",
    "gcp-503-retrying",
    "deleting",
    "no-status",
}
REQUIRED_BY_KIND = {"PSCEndpoint": REQUIRED | {"connection-pending", "connection-rejected"}}
MIN_TESTS = 44  # written with this change: 12 EgressGateway, 11 PSCExport, 12 PSCEndpoint, 9 ProjectBinding


def kind_dir(kind: str) -> Path:
    return argocd.ARGOCD / argocd.GROUP / kind


def health_tests(kind: str) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load((kind_dir(kind) / "health_test.yaml").read_text())["tests"]
    return tests


def cases() -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """(kind, case name, object, expected Argo CD health) for every test in every health_test.yaml."""
    out = []
    for kind in argocd.KINDS:
        for test in health_tests(kind):
            path = kind_dir(kind) / test["inputPath"]
            out.append((kind, path.stem, yaml.safe_load(path.read_text()), test["healthStatus"]))
    return out


def test_every_kind_has_its_cases_and_every_testdata_file_a_test() -> None:
    for kind in argocd.KINDS:
        inputs = [test["inputPath"] for test in health_tests(kind)]
        assert len(inputs) == len(set(inputs)), f"{kind}: a testdata file is used twice"
        files = sorted(p.relative_to(kind_dir(kind)).as_posix() for p in (kind_dir(kind) / "testdata").glob("*.yaml"))
        assert sorted(inputs) == files, f"{kind}: health_test.yaml and testdata/ differ"
        missing = REQUIRED_BY_KIND.get(kind, REQUIRED) - {Path(i).stem for i in inputs}
        assert not missing, f"{kind} has no test for {sorted(missing)}"


def test_testdata_objects_fit_the_crds() -> None:
    """Each test object is one the API server would store as it is: no pruned field, valid schema and CEL rules.

    ProjectBinding has no CRD yet: its objects are checked once crds/ has one.
    """
    schemas = {}
    for path in (argocd.ROOT / "crds").glob(f"*.{argocd.GROUP}.yaml"):
        crd = yaml.safe_load(path.read_text())
        schemas[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert {"EgressGateway", "PSCExport", "PSCEndpoint"} <= set(schemas)
    wrong = []
    for kind, name, obj, _ in cases():
        if kind not in schemas:
            continue
        dropped = schema.prune(copy.deepcopy(obj), schemas[kind])
        causes = schema.validate(obj, schemas[kind])
        causes += cel.check({k: v for k, v in obj.items() if k != "metadata"}, schemas[kind])
        if dropped or causes:
            wrong.append(f"{kind}/{name}: pruned {dropped}, invalid {[str(c) for c in causes]}")
    assert not wrong, "\n".join(wrong)


def test_argo_health_tables_pass() -> None:
    tool = gotools.require("argo-health")
    result = subprocess.run([tool, "test", argocd.ARGOCD], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"^PASS: (\d+) tests in (\d+) kinds$", result.stdout, re.MULTILINE)
    assert summary, result.stdout
    assert int(summary[2]) == len(argocd.KINDS), result.stdout
    assert int(summary[1]) == len(cases()) >= MIN_TESTS, result.stdout


def test_argo_health_reports_a_wrong_expectation(tmp_path: Path) -> None:
    """The table runner really compares: one changed expectation makes it fail, naming the case."""
    tool = gotools.require("argo-health")
    copy = tmp_path / "argocd"
    shutil.copytree(argocd.ARGOCD, copy)
    tests_file = copy / argocd.GROUP / "PSCEndpoint" / "health_test.yaml"
    data = yaml.safe_load(tests_file.read_text())
    pending = next(t for t in data["tests"] if t["inputPath"] == "testdata/connection-pending.yaml")
    pending["healthStatus"]["status"] = "Degraded"
    tests_file.write_text(yaml.safe_dump(data))
    result = subprocess.run([tool, "test", copy], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL runnet.dev/PSCEndpoint/testdata/connection-pending.yaml: got {Progressing" in result.stdout
    assert re.search(r"^FAIL: 1 of \d+ tests", result.stdout, re.MULTILINE), result.stdout


def test_argo_health_helper_agrees_with_the_tables() -> None:
    """gotools.argo_health (one object at a time, as on objects read back from an API server)."""
    wrong = []
    for kind, name, obj, want in cases():
        got = gotools.argo_health(kind, obj)
        if got != {"status": want["status"], "message": want["message"]}:
            wrong.append(f"{kind}/{name}: got {got}, want {want}")
    assert not wrong, "\n".join(wrong)


def test_kstatus_of_every_case() -> None:
    all_cases = cases()
    unlisted = sorted({name for _, name, _, _ in all_cases} - set(KSTATUS))
    assert not unlisted, f"add the expected kstatus of {unlisted} to KSTATUS"
    results = gotools.kstatus([obj for _, _, obj, _ in all_cases])
    wrong = []
    for (kind, name, obj, _), got in zip(all_cases, results, strict=True):
        assert (got["kind"], got["name"]) == (kind, obj["metadata"]["name"])
        if got["status"] != KSTATUS[name]:
            wrong.append(f"{kind}/{name}: kstatus {got['status']} ({got['message']}), want {KSTATUS[name]}")
        stalled = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Stalled"]
        if got["status"] == "Failed" and got["message"] != stalled[0]["message"]:
            wrong.append(f"{kind}/{name}: Failed with {got['message']!r}, not Stalled's message")
    assert not wrong, "\n".join(wrong)


def test_generated_files_are_in_sync() -> None:
    stale = [str(p.relative_to(argocd.ROOT)) for p in argocd.stale()]
    assert not stale, f"{stale} differ from deploy/argocd/runnet-health.lua: run `{argocd.REGENERATE}`"


def test_argocd_cm_patch_carries_each_kinds_script() -> None:
    patch = yaml.safe_load(argocd.PATCH.read_text())
    assert (patch["apiVersion"], patch["kind"]) == ("v1", "ConfigMap")
    assert patch["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    assert sorted(patch["data"]) == sorted(argocd.cm_key(kind) for kind in argocd.KINDS)
    for kind in argocd.KINDS:
        assert patch["data"][argocd.cm_key(kind)] == argocd.script_path(kind).read_text(), kind


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_argocd_cm_patch_merges_into_an_existing_argocd_cm(tmp_path: Path) -> None:
    """The documented `kubectl patch --patch-file` keeps argocd-cm's other keys and adds runnet's."""
    existing: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": "argocd", "labels": {"app.kubernetes.io/part-of": "argocd"}},
        "data": {
            "url": "https://argocd.example.com",
            "resource.customizations.health.cert-manager.io_Certificate": "hs = {}\nreturn hs\n",
        },
    }
    cm = tmp_path / "argocd-cm.yaml"
    cm.write_text(yaml.safe_dump(existing))
    result = subprocess.run(
        [str(KUBECTL), "patch", "--local", "-f", cm, "--patch-file", argocd.PATCH, "-o", "yaml"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    patched = yaml.safe_load(result.stdout)
    assert patched["metadata"]["labels"] == existing["metadata"]["labels"]
    want = dict(existing["data"]) | {argocd.cm_key(k): argocd.script_path(k).read_text() for k in argocd.KINDS}
    assert patched["data"] == want
