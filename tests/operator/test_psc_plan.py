"""The PSC plans, pure: graph shape, default names, teardown; and the links between the two kinds."""

from __future__ import annotations

import asyncio
from typing import Any

from runnet.api.psc import PSCEndpointSpec, PSCExportSpec
from runnet.controllers.base import Object
from runnet.engine import Node, Policy
from runnet.gcp.clients import Clients
from runnet.gcp.context import Context
from runnet.gcp.ownership import Owner
from runnet.handlers.psc import ENDPOINTS, EXPORTS, Links, _again_if_poked, endpoint_targets
from runnet.plan import psc as plan
from runnet.runtime import SETTLE, OperatorSettings, Runtime
from runnet.status import Outcome_
from tests.operator.conftest import example

ATTACHMENT = "projects/producer-project/regions/asia-northeast1/serviceAttachments/hello-service-attachment"


def _ctx(project: str) -> Context:
    return Context(Clients(), Owner("PSCExport", "default", "hello", "uid"), project, "asia-northeast1")


def _export(body: dict[str, Any] | None = None) -> list[Node]:
    spec = PSCExportSpec.model_validate((body or example("psc-export.yaml"))["spec"])
    return plan.build_export(spec, _ctx("producer-project"), export="default/hello", name="hello")


def _ancestors(nodes: list[Node], key: str) -> set[str]:
    deps = {n.key: n.depends_on for n in nodes}
    seen: set[str] = set()
    todo = list(deps[key])
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(deps[dep])
    return seen


def _depth(nodes: list[Node], key: str) -> int:
    deps = {n.key: n.depends_on for n in nodes}
    return 1 + max((_depth(nodes, d) for d in deps[key]), default=0)


def test_subnets_and_the_neg_chain_do_not_wait_for_each_other() -> None:
    nodes = _export()
    subnets = {"subnet/loadBalancer", "subnet/proxyOnly", "subnet/pscNat"}
    chain = {"neg", "backendService", "urlMap", "targetProxy"}
    for key in chain:
        assert not _ancestors(nodes, key) & (subnets | {"network"}), key
    for key in subnets:
        assert _ancestors(nodes, key) == {"network", "region"}
    assert _ancestors(nodes, "forwardingRule") >= chain | {"subnet/loadBalancer", "subnet/proxyOnly"}
    assert _ancestors(nodes, "attachment") >= {"forwardingRule", "subnet/pscNat"}
    # The critical path: NEG → backend service → URL map → proxy → forwarding rule → attachment.
    assert max(_depth(nodes, n.key) for n in nodes) == 6
    assert _ancestors(nodes, "service/invokers") == {"service/ingress"}


def test_names_default_from_metadata_name() -> None:
    body = example("psc-export.yaml")
    body["spec"].pop("loadBalancer")
    body["spec"]["attachment"].pop("name")
    names = {n.key: n.adapter.name for n in _export(body)}
    assert names["neg"] == "hello-neg"
    assert names["backendService"] == "hello-backend-service"
    assert names["urlMap"] == "hello-url-map"
    assert names["targetProxy"] == "hello-http-proxy"
    assert names["forwardingRule"] == "hello-forwarding-rule"
    assert names["attachment"] == "hello-attachment"


def test_teardown_never_touches_the_ingress() -> None:
    spec = PSCExportSpec.model_validate(example("psc-export.yaml")["spec"])
    nodes = plan.teardown_export(spec, _ctx("producer-project"), export="default/hello", name="hello")
    assert "service/ingress" not in {n.key for n in nodes}
    assert all("service/ingress" not in n.depends_on for n in nodes)
    assert "service/invokers" in {n.key for n in nodes}


def test_endpoint_rule_is_only_read_until_the_attachment_is_known() -> None:
    spec = PSCEndpointSpec.model_validate(example("psc-endpoint.yaml")["spec"])
    ctx = _ctx("consumer-project")
    unknown = {n.key: n.policy for n in plan.build_endpoint(spec, ctx, attachment=None)}
    assert list(unknown) == ["region", "network", "subnet", "address", "forwardingRule"]
    assert unknown["forwardingRule"] is Policy.OBSERVE
    torn = {n.key: n.policy for n in plan.build_endpoint(spec, ctx, attachment=None, teardown=True)}
    assert torn["forwardingRule"] is Policy.MANAGE
    nodes = plan.build_endpoint(spec, ctx, attachment=ATTACHMENT)
    assert _ancestors(nodes, "forwardingRule") == {"address", "subnet", "network", "region"}


def test_pokes_reach_the_other_side() -> None:
    runtime = Runtime(OperatorSettings())
    links = Links(runtime)
    endpoint = example("psc-endpoint.yaml")
    links.endpoints = {k: ["default/hello"] for k in endpoint_targets("default", endpoint["spec"], {})}
    links.exports = {("default", "hello"): [{"status": {"serviceAttachment": "https://x/compute/v1/" + ATTACHMENT}}]}
    assert links.endpoints_of("default/hello", ATTACHMENT) == ["default/hello"]
    by_uri = {"target": {"serviceAttachment": ATTACHMENT}}
    assert links.exports_of(by_uri, {"serviceAttachment": ATTACHMENT}, "default") == ["default/hello"]
    assert links.exports_of(endpoint["spec"], {}, "default") == ["default/hello"]
    runtime.schedule(ENDPOINTS, "default/hello", None)
    assert not runtime.due(ENDPOINTS, "default/hello")
    links.begin(EXPORTS, "default/hello")
    links.poke(ENDPOINTS, ["default/hello"])
    assert runtime.due(ENDPOINTS, "default/hello")
    # A poke that lands while the poked object is reconciling makes it run again at the next tick.
    obj = Object("default", "hello", "uid", 1, endpoint["spec"], {})
    assert _again_if_poked(links, ENDPOINTS, obj, Outcome_(status={}, retry_after=None)).retry_after == 0.0
    links.begin(ENDPOINTS, "default/hello")
    assert _again_if_poked(links, ENDPOINTS, obj, Outcome_(status={}, retry_after=None)).retry_after is None
    assert links.get("default", "hello") == {"status": {"serviceAttachment": "https://x/compute/v1/" + ATTACHMENT}}
    assert links.get("default", "other") is None


class Stopped:
    """kopf's ``stopped`` flag as a timer sees it: true once set, and awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()


async def test_a_poke_wakes_the_waiting_resync_at_once() -> None:
    runtime, key = Runtime(OperatorSettings()), "default/hello"
    runtime.schedule(ENDPOINTS, key, None)  # next due in 120 s
    waiting = asyncio.create_task(runtime.until_due(ENDPOINTS, key, Stopped()))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    Links(runtime).poke(ENDPOINTS, [key])
    assert await asyncio.wait_for(waiting, 0.5) is True
    # The object is deleted (kopf sets the timer's flag): the wait ends, and no pass follows.
    runtime.schedule(ENDPOINTS, key, None)
    stopped = Stopped()
    waiting = asyncio.create_task(runtime.until_due(ENDPOINTS, key, stopped))
    await asyncio.sleep(0.05)
    stopped.event.set()
    assert await asyncio.wait_for(waiting, 0.5) is False
    # "Again at once" waits until the status the pass wrote can be back through the watch.
    runtime.schedule(ENDPOINTS, key, 0.0)
    assert not runtime.due(ENDPOINTS, key)
    assert await asyncio.wait_for(runtime.until_due(ENDPOINTS, key, Stopped()), SETTLE + 0.5) is True
