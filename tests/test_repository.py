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
