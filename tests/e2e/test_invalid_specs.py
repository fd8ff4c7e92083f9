"""The census of invalid specs, through the API server with the operator running.

Every case is refused with one sentence that names the spec field and says what fits (never a
regex): by the CRD schema, or as Ready=False (with Stalled, and one Warning Event) by the operator,
which then has written nothing to GCP.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from runnet.emulator.gcp import EmulatorConfig
from runnet.emulator.stack import Stack, running_stack
from runnet.runtime import OperatorSettings, run_operator
from tests.e2e.conftest import BACKENDS, kube_backend
from tests.e2e.invalid_cases import CASES, Case
from tests.operator.conftest import EXAMPLES

REGEX_HINTS = ("should match", "^[", "]{", "(?:")


class OperatorThread:
    """The operator as `runnet run` runs it, in a thread of its own for a whole module of tests."""

    def __init__(self, stack: Stack) -> None:
        self.settings = OperatorSettings(kubeconfig=str(stack.kubeconfig), gcp_endpoint=stack.gcp.base_url)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(run_operator(self.settings, stop_flag=self.stop))

    def __enter__(self) -> OperatorThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


@pytest.fixture(scope="module", params=BACKENDS)
def census(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    kube = kube_backend(request, request.param)
    workdir = tmp_path_factory.mktemp("census")
    with running_stack(EmulatorConfig(seed=1), workdir, kube) as stack, OperatorThread(stack):
        yield stack


def body_of(case: Case, index: int) -> dict[str, Any]:
    body = copy.deepcopy(yaml.safe_load((EXAMPLES / case.example).read_text()))
    body["metadata"]["name"] = f"case-{index}"
    if case.where == "status":
        body["spec"]["project"] = f"case{index:03d}-project"  # GCP state of its own
    case.mutate(body["spec"])
    return body


def refusal(stack: Stack, body: dict[str, Any]) -> str:
    try:
        stack.apply(body)
    except kubernetes.client.ApiException as exc:
        assert exc.status == 422, exc.body
        return str(exc.body)
    return ""


def wait_for(stack: Stack, kind: str, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    ready: dict[str, Any] = {}
    while time.monotonic() < deadline:
        ready = stack.condition(kind, name)
        if ready.get("reason") == reason:
            return ready
        time.sleep(0.1)
    raise AssertionError(f"{kind} {name}: Ready is {ready}, not {reason}")


def warning_events(stack: Stack, name: str, reason: str, timeout: float = 10) -> list[Any]:
    core = kubernetes.client.CoreV1Api(stack.api.api_client)
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    while time.monotonic() < deadline and not found:
        events = core.list_namespaced_event("default").items
        found = [e for e in events if e.involved_object.name == name and e.reason == reason and e.type == "Warning"]
        time.sleep(0.1)
    return found


def test_the_census_has_at_least_a_hundred_cases() -> None:
    assert len(CASES) >= 100
    assert {c.example for c in CASES} == {"egress-fixed-ip.yaml", "psc-export.yaml", "psc-endpoint.yaml"}
    assert len({(c.example, c.name) for c in CASES}) == len(CASES)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.example.split('.')[0]}: {c.name}" for c in CASES])
def test_an_invalid_spec_gets_one_clear_sentence_and_no_gcp_write(census: Stack, index: int) -> None:
    case = CASES[index]
    body = body_of(case, index)
    if case.where == "status":
        census.bind(body["spec"]["project"])
    if case.setup is not None:
        case.setup(census.clients, body["spec"]["project"])
    writes = len(census.gcp.log.writes())
    kind, name = body["kind"], body["metadata"]["name"]
    try:
        refused = refusal(census, body)
        if case.where == "schema":
            assert refused, f"the API server accepted {case.name}"
            message = refused
        else:
            assert refused == "", refused
            ready = wait_for(census, kind, name, case.reason)
            message = ready["message"]
            stalled = census.condition(kind, name, "Stalled")
            assert (stalled.get("status"), stalled.get("reason")) == ("True", case.reason)
            assert len(warning_events(census, name, case.reason)) == 1
        assert case.message in message, message
        assert not any(hint in message for hint in REGEX_HINTS), f"a regex reached the user: {message}"
        assert census.gcp.log.writes()[writes:] == [], [e.path for e in census.gcp.log.writes()[writes:]]
    finally:
        if census.get(kind, name) is not None:
            census.delete(kind, name)
            census.wait_gone(kind, name, 30)


def test_the_readme_promises_what_the_census_checks() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for words in ("must be a GCP project id", "must be an IPv4 range in CIDR notation"):
        assert words in readme
