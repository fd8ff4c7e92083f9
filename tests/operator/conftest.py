"""Fixtures for controller tests: a Cloud Run service in the emulator and a reconcile driver."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import run_v2

from runnet.controllers.base import Object
from runnet.engine import Engine
from runnet.gcp.clients import Clients

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str, kind: str | None = None) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
    return next(d for d in docs if kind is None or d["kind"] == kind)


def deploy_service(clients: Clients, project: str, region: str, name: str, **template: Any) -> run_v2.Service:
    """Create a Cloud Run service the way a user would, through the official client."""
    service = run_v2.Service(
        template=run_v2.RevisionTemplate(
            containers=[run_v2.Container(image="us-docker.pkg.dev/cloudrun/container/hello")], **template
        )
    )
    op = clients.run_services.create_service(
        parent=f"projects/{project}/locations/{region}", service=service, service_id=name
    )
    return op.result(timeout=30)


class Driver:
    """Runs a controller's reconcile/finalize like the handlers do, keeping the status between passes."""

    def __init__(
        self, reconcile: Callable[..., Any], finalize: Callable[..., Any], clients: Clients, body: dict[str, Any]
    ):
        self.reconcile_fn = reconcile
        self.finalize_fn = finalize
        self.clients = clients
        self.engine = Engine(8)
        self.body = copy.deepcopy(body)
        self.body.setdefault("metadata", {}).setdefault("namespace", "default")
        self.body["metadata"].setdefault("uid", "0f6a3b9e-1111-4c2e-9d55-5d1b0c8a7e21")
        self.body["metadata"].setdefault("generation", 1)
        self.status: dict[str, Any] = {}
        self.events: list[Any] = []

    def obj(self) -> Object:
        meta = self.body["metadata"]
        return Object(meta["namespace"], meta["name"], meta["uid"], meta["generation"], self.body["spec"], self.status)

    async def reconcile(self) -> Any:
        outcome = await self.reconcile_fn(self.obj(), self.engine, self.clients)
        self.status = {**self.status, **outcome.status}
        self.events.extend(outcome.events)
        return outcome

    async def finalize(self) -> Any:
        outcome = await self.finalize_fn(self.obj(), self.engine, self.clients)
        self.events.extend(outcome.events)
        return outcome

    def condition(self, type_: str = "Ready") -> dict[str, Any]:
        return next(c for c in self.status.get("conditions", []) if c["type"] == type_)


@pytest.fixture
def driver_factory(clients: Clients) -> Callable[..., Driver]:
    def make(reconcile: Callable[..., Any], finalize: Callable[..., Any], body: dict[str, Any]) -> Driver:
        return Driver(reconcile, finalize, clients, body)

    return make
