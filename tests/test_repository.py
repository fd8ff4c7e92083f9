"""The repository stays true to itself: generated CRDs, the README's IAM list, examples."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from runnet.api import crds

ROOT = Path(__file__).resolve().parents[1]


def test_committed_crds_match_the_models() -> None:
    assert crds.stale(ROOT / "crds") == [], "run `runnet crds` and commit crds/"


def test_crd_schemas_are_structural() -> None:
    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, where
            if "properties" in node or "items" in node:
                assert "type" in node, f"{where}: untyped node"
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for info in crds.KINDS:
        walk(crds.crd(info)["spec"]["versions"][0]["schema"], info.kind)


def test_readme_lists_exactly_the_role_permissions() -> None:
    role = yaml.safe_load((ROOT / "deploy/gcp/runnet-operator-role.yaml").read_text())["includedPermissions"]
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- permissions:start -->")[1].split("<!-- permissions:end -->")[0]
    listed = re.findall(r"`([a-z]+\.[A-Za-z.]+)`", block)
    assert sorted(listed) == sorted(role)


def test_kubectl_explain_has_words_for_every_field_and_no_regex() -> None:
    """Every spec and status field explains itself, and no refusal can show a pattern instead of words."""
    missing: list[str] = []
    patterns: list[str] = []

    def walk(node: dict[str, object], where: str) -> None:
        if "pattern" in node:
            patterns.append(where)
        for name, sub in (node.get("properties") or {}).items():  # type: ignore[union-attr]
            if not sub.get("description"):
                missing.append(f"{where}.{name}")
            walk(sub, f"{where}.{name}")
            if isinstance(sub.get("items"), dict):
                walk(sub["items"], f"{where}.{name}[*]")

    for info in crds.KINDS:
        schema = crds.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert "generated" not in schema["description"] and len(schema["description"]) > 80, info.kind
        walk(schema["properties"]["spec"], f"{info.kind}.spec")
        walk(schema["properties"]["status"], f"{info.kind}.status")
    assert missing == []
    assert patterns == [], "a pattern reaches users as a regex: use a Shape (api/common.py)"


def test_the_crds_kustomization_lists_every_generated_crd() -> None:
    listed = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(f"{info.crd_name}.yaml" for info in crds.KINDS)
