"""Tenancy end to end: a namespace manages only the GCP projects bound to it, as its own Google identity.

The GCP emulator enforces IAM per principal: runnet's own identity may only impersonate the teams'
service accounts (roles/iam.serviceAccountTokenCreator), each of which holds the runnet role in its
team's project only. Every call is logged with its principal.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.gcp.iam import DEFAULT_PRINCIPAL, IamPolicy
from runnet.emulator.stack import Stack
from tests.e2e.conftest import operator
from tests.operator.conftest import EXAMPLES, deploy_service

REPO = Path(__file__).resolve().parents[2]
REGION = "asia-northeast1"
SA_A = "runnet-team-a@team-a-prod.iam.gserviceaccount.com"
SA_B = "runnet-team-b@team-b-prod.iam.gserviceaccount.com"
SA_D = "runnet-team-d@team-d-prod.iam.gserviceaccount.com"  # nobody let runnet act as this one
TEAM_PROJECTS = ("team-a-prod", "team-b-prod", "team-c-prod", "team-d-prod")


@pytest.fixture
def stack_config() -> EmulatorConfig:
    grants: dict[str, Any] = {
        "roles": {"runnet": str(REPO / "deploy" / "gcp" / "runnet-operator-role.yaml")},
        # runnet's own identity: impersonate team A's and B's accounts; the test deploys services as it too.
        DEFAULT_PRINCIPAL: {
            f"projects/-/serviceAccounts/{SA_A}": ["roles/iam.serviceAccountTokenCreator"],
            f"projects/-/serviceAccounts/{SA_B}": ["roles/iam.serviceAccountTokenCreator"],
            **{p: ["runnet"] for p in ("my-project", "producer-project", "consumer-project")},
            **{p: ["run.services.create", "run.operations.get", "run.services.get"] for p in TEAM_PROJECTS},
        },
        f"serviceAccount:{SA_A}": {"team-a-prod": ["runnet"]},
        f"serviceAccount:{SA_B}": {"team-b-prod": ["runnet"]},
        f"serviceAccount:{SA_D}": {"team-d-prod": ["runnet"]},
    }
    return EmulatorConfig(seed=1, iam_policy=IamPolicy.from_mapping(grants))


def gateway(namespace: str, name: str, project: str) -> dict[str, Any]:
    body = copy.deepcopy(yaml.safe_load((EXAMPLES / "egress-fixed-ip.yaml").read_text()))
    body["metadata"].update(name=name, namespace=namespace)
    body["spec"]["project"] = project
    return body


def export(namespace: str, project: str) -> dict[str, Any]:
    body = copy.deepcopy(yaml.safe_load((EXAMPLES / "psc-export.yaml").read_text()))
    body["metadata"]["namespace"] = namespace
    body["spec"]["project"] = project
    return body


async def wait_reason(
    stack: Stack, kind: str, name: str, namespace: str, reason: str, timeout: float = 60, saying: str = ""
) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    cond: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        cond = await asyncio.to_thread(stack.condition, kind, name, "Ready", namespace)
        if cond.get("reason") == reason and saying in cond.get("message", ""):
            return cond
        await asyncio.sleep(0.1)
    raise AssertionError(f"{kind} {namespace}/{name}: {cond}, not {reason}")


def calls(stack: Stack, project: str, since: int = 0) -> list[Any]:
    """Calls on a project's resources (the impersonation itself, IAM Credentials, is runnet's own call)."""
    return [
        e for e in stack.gcp.log.snapshot()[since:] if e.project == project and not e.method_id.startswith("iamcred")
    ]


async def test_each_team_manages_only_its_project_as_its_own_identity(stack: Stack) -> None:
    for ns in ("team-a", "team-b", "team-c", "team-d"):
        await asyncio.to_thread(stack.namespace, ns)
    await asyncio.to_thread(stack.bind, "team-a-prod", ["team-a"], SA_A)
    await asyncio.to_thread(stack.bind, "team-b-prod", ["team-b"], SA_B)
    await asyncio.to_thread(stack.bind, "team-c-prod", ["team-c"])
    await asyncio.to_thread(stack.bind, "team-d-prod", ["team-d"], SA_D)
    await asyncio.to_thread(deploy_service, stack.clients, "team-a-prod", REGION, "direct-vpc-egress")
    await asyncio.to_thread(deploy_service, stack.clients, "team-b-prod", REGION, "hello-service")
    setup = len(stack.gcp.log.snapshot())
    async with operator(stack):
        await asyncio.to_thread(stack.apply, gateway("team-a", "fixed-ip", "team-a-prod"))
        await asyncio.to_thread(stack.apply, export("team-b", "team-b-prod"))
        await asyncio.to_thread(stack.wait_ready, "EgressGateway", "fixed-ip", 90, "team-a")
        await asyncio.to_thread(stack.wait_ready, "PSCExport", "hello", 90, "team-b")
        # Every call runnet made in a team's project was made as that team's service account.
        for project, account in (("team-a-prod", SA_A), ("team-b-prod", SA_B)):
            made = calls(stack, project, setup)
            assert made and {e.principal for e in made} == {f"serviceAccount:{account}"}, {e.principal for e in made}
        # Team A names a project bound only to team-c: ProjectNotBound, Stalled, and not one call there.
        await asyncio.to_thread(stack.apply, gateway("team-a", "sneaky", "team-c-prod"))
        cond = await wait_reason(stack, "EgressGateway", "sneaky", "team-a", "ProjectNotBound")
        assert "ProjectBinding with spec.project team-c-prod and team-a in spec.namespaces" in cond["message"]
        stalled = await asyncio.to_thread(stack.condition, "EgressGateway", "sneaky", "Stalled", "team-a")
        assert stalled.get("status") == "True"
        assert calls(stack, "team-c-prod") == []
        # A binding whose service account runnet may not impersonate: Stalled, naming the missing grant.
        await asyncio.to_thread(stack.apply, gateway("team-d", "fixed-ip", "team-d-prod"))
        cond = await wait_reason(stack, "EgressGateway", "fixed-ip", "team-d", "ImpersonationDenied")
        assert "roles/iam.serviceAccountTokenCreator" in cond["message"]
        assert [e for e in stack.gcp.log.writes() if e.project == "team-d-prod"] == []
        # Team A's binding goes: its gateway stops being managed, and nothing changes in GCP because of it.
        before = sorted(p for p, _ in stack.gcp.store.items() if "/team-a-prod/" in p and "/operations/" not in p)
        mark = len(stack.gcp.log.snapshot())
        await asyncio.to_thread(stack.delete, "ProjectBinding", "team-a-prod")
        await wait_reason(stack, "EgressGateway", "fixed-ip", "team-a", "ProjectNotBound", timeout=20)
        assert calls(stack, "team-a-prod", mark) == []
        after = sorted(p for p, _ in stack.gcp.store.items() if "/team-a-prod/" in p and "/operations/" not in p)
        assert after == before
        # Restored, the gateway is managed again.
        await asyncio.to_thread(stack.bind, "team-a-prod", ["team-a"], SA_A)
        await wait_reason(stack, "EgressGateway", "fixed-ip", "team-a", "Reconciled", timeout=20)
        # The binding counts what uses it (the refused "sneaky" gateway does not).
        await objects_counted(stack, "team-a-prod", 1)
        # An unbound object's deletion waits for a binding (deleting changes GCP too), unless it orphans.
        await asyncio.to_thread(stack.delete, "EgressGateway", "sneaky", "team-a")
        cond = await wait_reason(
            stack, "EgressGateway", "sneaky", "team-a", "ProjectNotBound", saying="deletes nothing"
        )
        assert "deletionPolicy: Orphan" in cond["message"]
        for name, ns in (("sneaky", "team-a"), ("fixed-ip", "team-d")):
            orphan = gateway(ns, name, "team-c-prod" if name == "sneaky" else "team-d-prod")
            orphan["spec"]["deletionPolicy"] = "Orphan"
            await asyncio.to_thread(stack.apply, orphan)
        await asyncio.to_thread(stack.delete, "EgressGateway", "fixed-ip", "team-d")
        await asyncio.to_thread(stack.delete, "EgressGateway", "fixed-ip", "team-a")
        await asyncio.to_thread(stack.delete, "PSCExport", "hello", "team-b")
        for name, ns in (("sneaky", "team-a"), ("fixed-ip", "team-d"), ("fixed-ip", "team-a")):
            await asyncio.to_thread(stack.wait_gone, "EgressGateway", name, 60, ns)


async def objects_counted(stack: Stack, binding: str, count: int, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    status: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        status = (await asyncio.to_thread(stack.get, "ProjectBinding", binding) or {}).get("status", {})
        if status.get("objects") == count:
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "True" and f"{count} object(s) use it" in ready["message"]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"ProjectBinding {binding}: {status}")
