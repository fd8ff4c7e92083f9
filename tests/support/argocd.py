"""Argo CD health checks for the runnet.dev kinds, kept in one place: deploy/argocd/runnet-health.lua.

Argo CD wants one ``health.lua`` per ``<group>/<Kind>/`` directory (its ``resource_customizations/``
layout, where a contribution upstream goes) and one ``argocd-cm`` key per kind. runnet's kinds share
one status contract, so they share one script: :func:`render` derives the per-kind copies and the
``argocd-cm`` patch from the source, ``python -m tests.support.argocd`` writes them, and
tests/gitops/test_health_tables.py fails while any of them differs from what it renders.
"""

from __future__ import annotations

from pathlib import Path

GROUP = "runnet.dev"
KINDS = ("EgressGateway", "PSCExport", "PSCEndpoint", "ProjectBinding")
ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
SOURCE = ARGOCD / "runnet-health.lua"
PATCH = ARGOCD / "argocd-cm-patch.yaml"
REGENERATE = "python -m tests.support.argocd"


def cm_key(kind: str) -> str:
    """The argocd-cm key Argo CD reads a kind's health script from."""
    return f"resource.customizations.health.{GROUP}_{kind}"


def script_path(kind: str) -> Path:
    return ARGOCD / GROUP / kind / "health.lua"


def cm_patch(script: str) -> str:
    """The argocd-cm patch: one literal block per kind, each equal to ``script``."""
    block = "".join(f"    {line}\n" if line else "\n" for line in script.splitlines())
    out = [
        f"# Generated from deploy/argocd/runnet-health.lua by `{REGENERATE}`: edit that file.",
        "# kubectl -n argocd patch configmap argocd-cm --patch-file deploy/argocd/argocd-cm-patch.yaml",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  namespace: argocd",
        "data:",
    ]
    text = "\n".join(out) + "\n"
    for kind in KINDS:
        text += f"  {cm_key(kind)}: |\n{block}"
    return text


def render() -> dict[Path, str]:
    """Every generated file and the text it must have."""
    script = SOURCE.read_text()
    files = {script_path(kind): script for kind in KINDS}
    files[PATCH] = cm_patch(script)
    return files


def stale() -> list[Path]:
    """The generated files that are missing or differ from :func:`render`."""
    return [path for path, text in render().items() if not path.is_file() or path.read_text() != text]


def main() -> None:
    for path, text in render().items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
