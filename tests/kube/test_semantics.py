"""Probes of what the stand-in adds beyond TESTING.md's table: CEL, finalizers, namespaces, CRDs over
the API, discovery, events, paging, and that kmock's own DSL and object history still work.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import kmock

from runnet.emulator.kube import KubeEmulator
from tests.kube.conftest import WIDGETS, Http, widget

TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json"


async def test_cel_rules_with_old_self_and_message_expression(http: Http) -> None:
    await http.create(widget(tags=["a"]))
    status, body, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"zone": "zone-b"}})
    assert status == 422
    assert (
        body["message"]
        == 'Widget.test.runnet.dev "w1" is invalid: spec.zone: Invalid value: "string": zone is immutable'
    )
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "string": zone is immutable', "field": "spec.zone"}
    ]
    status, body, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 1, "tags": ["a", "b"]}})
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.tags"
    assert "no more tags than size" in body["message"]
    status, body, _ = await http.call("POST", WIDGETS, widget("w2", name="x-one"))
    assert status == 422 and "name x-one is reserved" in body["message"]


async def test_finalizers_hold_deletion_until_removed(http: Http) -> None:
    await http.create({**widget(), "metadata": {"name": "w1", "finalizers": ["test.runnet.dev/hold"]}})
    status, body, _ = await http.call("DELETE", f"{WIDGETS}/w1")
    assert status == 200 and body["metadata"]["deletionTimestamp"]
    held = await http.get(f"{WIDGETS}/w1")
    assert held["metadata"]["deletionTimestamp"] == body["metadata"]["deletionTimestamp"]
    status, body, _ = await http.merge(
        f"{WIDGETS}/w1", {"metadata": {"finalizers": ["test.runnet.dev/hold", "new.dev/f"]}}
    )
    assert status == 422 and "no new finalizers can be added" in body["message"]
    status, _, _ = await http.merge(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}})
    assert status == 200
    status, body, _ = await http.call("GET", f"{WIDGETS}/w1")
    assert (
        status == 404 and body["reason"] == "NotFound" and body["message"] == 'widgets.test.runnet.dev "w1" not found'
    )


async def test_deleting_a_namespace_empties_it_first(http: Http) -> None:
    doomed = "/apis/test.runnet.dev/v1/namespaces/doomed/widgets"
    await http.create({**widget("held"), "metadata": {"name": "held", "finalizers": ["test.runnet.dev/hold"]}}, doomed)
    await http.create(widget("plain"), doomed)
    status, body, _ = await http.call("DELETE", "/api/v1/namespaces/doomed")
    assert status == 200 and body["status"]["phase"] == "Terminating"
    assert [i["metadata"]["name"] for i in (await http.get(doomed))["items"]] == ["held"]
    status, body, _ = await http.call("POST", doomed, widget("late"))
    assert status == 403 and "because it is being terminated" in body["message"]
    await http.merge(f"{doomed}/held", {"metadata": {"finalizers": None}})
    status, _, _ = await http.call("GET", "/api/v1/namespaces/doomed")
    assert status == 404


async def test_multi_version_crds_share_storage(http: Http) -> None:
    def version(name: str, storage: bool, fields: dict[str, Any]) -> dict[str, Any]:
        spec = {"type": "object", "properties": fields}
        schema = {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}}
        return {"name": name, "served": True, "storage": storage, "schema": schema}

    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.test.runnet.dev"},
        "spec": {
            "group": "test.runnet.dev",
            "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [
                version("v1beta1", False, {"a": {"type": "string"}}),
                version("v1", True, {"a": {"type": "string"}, "b": {"type": "string"}}),
            ],
        },
    }
    await http.create(crd, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    beta = "/apis/test.runnet.dev/v1beta1/namespaces/default/things"
    made = await http.create(
        {
            "apiVersion": "test.runnet.dev/v1beta1",
            "kind": "Thing",
            "metadata": {"name": "t"},
            "spec": {"a": "x", "b": "y"},
        },
        beta,
    )
    assert made["spec"] == {"a": "x"}  # pruned by the v1beta1 schema
    got = await http.get("/apis/test.runnet.dev/v1/namespaces/default/things/t")
    assert got["apiVersion"] == "test.runnet.dev/v1" and got["spec"] == {"a": "x"}
    group = await http.get("/apis/test.runnet.dev")
    assert group["preferredVersion"]["version"] == "v1"


async def test_events_are_storable_and_selectable(http: Http) -> None:
    event = {
        "metadata": {"generateName": "w1-"},
        "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default"},
        "reason": "Made",
        "message": "hi",
        "type": "Normal",
    }
    created = await http.create({"apiVersion": "v1", "kind": "Event", **event}, "/api/v1/namespaces/default/events")
    assert created["metadata"]["name"].startswith("w1-") and len(created["metadata"]["name"]) == 8
    found = await http.get(
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dw1,involvedObject.kind%3DWidget"
    )
    assert [e["reason"] for e in found["items"]] == ["Made"]
    new_style = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e2"},
        "reason": "R",
        "regarding": {"name": "w1"},
    }
    await http.create(new_style, "/apis/events.k8s.io/v1/namespaces/default/events")
    assert len((await http.get("/apis/events.k8s.io/v1/namespaces/default/events"))["items"]) == 1


async def test_crds_installed_over_the_api_update_discovery(http: Http) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.runnet.dev"},
        "spec": {
            "group": "test.runnet.dev",
            "scope": "Cluster",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    created = await http.create(crd, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert {c["type"]: c["status"] for c in created["status"]["conditions"]}["Established"] == "True"
    resources = await http.get("/apis/test.runnet.dev/v1")
    assert {r["name"]: r["namespaced"] for r in resources["resources"] if "/" not in r["name"]} == {
        "gadgets": False,
        "widgets": True,
    }
    aggregated = await http.get("/apis", Accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    group = next(i for i in aggregated["items"] if i["metadata"]["name"] == "test.runnet.dev")
    assert {r["resource"] for r in group["versions"][0]["resources"]} == {"gadgets", "widgets"}
    await http.create(
        {"apiVersion": "test.runnet.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}},
        "/apis/test.runnet.dev/v1/gadgets",
    )
    status, _, _ = await http.call(
        "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.test.runnet.dev"
    )
    assert status == 200
    status, _, _ = await http.call("GET", "/apis/test.runnet.dev/v1/gadgets")
    assert status == 404


async def test_discovery_declares_what_kopf_needs(http: Http) -> None:
    core = await http.get("/api/v1")
    assert {"namespaces", "events"} <= {r["name"] for r in core["resources"]}
    group = await http.get("/apis/test.runnet.dev/v1")
    entries = {r["name"]: r for r in group["resources"]}
    assert entries["widgets/status"]["verbs"] == ["get", "patch", "update"] and entries["widgets"]["kind"] == "Widget"
    status, _, _ = await http.call("GET", "/apis/kopf.dev")  # no peering CRDs: kopf must see a 404
    assert status == 404


async def test_paging_with_limit_and_continue(http: Http) -> None:
    for name in ("a", "b", "c"):
        await http.create(widget(name))
    first = await http.get(f"{WIDGETS}?limit=2")
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"] and first["metadata"][
        "remainingItemCount"
    ] == 1
    rest = await http.get(f"{WIDGETS}?limit=2&continue={first['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"] and "continue" not in rest["metadata"]


async def test_strategic_merge_patch_is_refused_for_custom_resources(http: Http) -> None:
    await http.create(widget())
    status, body, _ = await http.call(
        "PATCH", f"{WIDGETS}/w1", {"spec": {"size": 2}}, "application/strategic-merge-patch+json"
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


async def test_kmock_reactions_win_and_objects_keep_history(http: Http, emu: KubeEmulator) -> None:
    await http.create(widget())
    await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 5}})
    history = emu.objects["test.runnet.dev/v1/widgets", "default", "w1"].history
    assert [v["spec"]["size"] for v in history if v is not None] == [3, 5]
    emu["patch", kmock.resource("test.runnet.dev/v1/widgets")] << 503
    status, _, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 6}})
    assert status == 503
    assert len(list(emu[kmock.method.PATCH])) == 2  # kmock's request log still sees everything


async def test_unknown_paths_answer_like_the_api_server(http: Http) -> None:
    status, body, _ = await http.call("GET", "/apis/nope.dev/v1/things")
    assert status == 404 and body["message"] == "the server could not find the requested resource"
    async with aiohttp.ClientSession() as session, session.get(f"{http.base}/openapi/v2") as rsp:
        assert rsp.status == 404  # real servers answer protobuf only; clients take 404 as "none"


CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def test_tightened_schemas_ratchet_unchanged_values(http: Http) -> None:
    await http.create(widget())  # size: 3, the default
    crd = await http.get(f"{CRD_PATH}/widgets.test.runnet.dev")
    size = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"]
    size["maximum"] = 2
    status, body, _ = await http.call("PUT", f"{CRD_PATH}/widgets.test.runnet.dev", crd)
    assert status == 422 and "default: Invalid value: 3" in body["message"]  # a default must pass its schema
    size["default"] = 1
    status, body, _ = await http.call("PUT", f"{CRD_PATH}/widgets.test.runnet.dev", crd)
    assert status == 200, body
    status, body, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"color": "blue"}})
    assert status == 200  # size 3 is now too big, but unchanged: ratcheted
    status, body, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 4}})
    assert status == 422 and "spec.size in body should be less than or equal to 2" in body["message"]


async def test_object_names_are_checked(http: Http) -> None:
    status, body, _ = await http.call("POST", WIDGETS, widget("Bad_Name"))
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    assert "a lowercase RFC 1123 subdomain" in body["message"]
    status, body, _ = await http.call("POST", WIDGETS, {**widget(), "metadata": {"generateName": "w-"}})
    assert status == 201 and body["metadata"]["name"].startswith("w-")


async def test_watch_initial_events_bookmark_and_single_objects(http: Http) -> None:
    await http.create(widget("a"))
    await http.create(widget("b"))
    events = await http.watch("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", 3)
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    listed = await http.get(WIDGETS)
    await http.merge(f"{WIDGETS}/a", {"spec": {"size": 2}})
    await http.merge(f"{WIDGETS}/b", {"spec": {"size": 5}})
    [only_b] = await http.watch(f"resourceVersion={listed['metadata']['resourceVersion']}", 1, f"{WIDGETS}/b")
    assert only_b["object"]["metadata"]["name"] == "b" and only_b["object"]["spec"]["size"] == 5


async def test_delete_collection_by_label(http: Http) -> None:
    await http.create({**widget("a"), "metadata": {"name": "a", "labels": {"batch": "1"}}})
    await http.create(widget("b"))
    status, body, _ = await http.call("DELETE", f"{WIDGETS}?labelSelector=batch%3D1")
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["a"]
    assert [i["metadata"]["name"] for i in (await http.get(WIDGETS))["items"]] == ["b"]
