"""One probe per row of TESTING.md's Kubernetes table (and the extras the stand-in adds), over HTTP.

Each would fail against plain kmock 0.8, so a kmock upgrade that changes behaviour under the
subclass is caught here first.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import kmock

from runnet.emulator.kube import KubeEmulator
from tests.kube.conftest import WIDGETS, Http, widget

TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json"


async def test_server_fills_metadata(http: Http) -> None:
    obj = await http.create(widget())
    meta = obj["metadata"]
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0 and meta["generation"] == 1 and meta["namespace"] == "default"


async def test_generation_moves_on_spec_changes_only(http: Http) -> None:
    await http.create(widget())
    _, obj, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 4}})
    assert obj["metadata"]["generation"] == 2
    _, obj, _ = await http.merge(f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "b"}}})
    assert obj["metadata"]["generation"] == 2
    _, obj, _ = await http.merge(f"{WIDGETS}/w1/status", {"status": {"observedGeneration": 2}})
    assert obj["metadata"]["generation"] == 2 and obj["status"]["observedGeneration"] == 2


async def test_status_subresource_splits_spec_and_status(http: Http) -> None:
    created = await http.create({**widget(), "status": {"natIPs": ["1.1.1.1"]}})
    assert "status" not in created  # dropped on create
    _, obj, _ = await http.merge(f"{WIDGETS}/w1/status", {"spec": {"size": 9}, "status": {"natIPs": ["2.2.2.2"]}})
    assert obj["spec"]["size"] == 3 and obj["status"]["natIPs"] == ["2.2.2.2"]
    _, obj, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 5}, "status": {"natIPs": ["6.6.6.6"]}})
    assert obj["spec"]["size"] == 5 and obj["status"]["natIPs"] == ["2.2.2.2"]


async def test_resource_version_moves_and_stale_writes_conflict(http: Http) -> None:
    first = await http.create(widget())
    rv1 = first["metadata"]["resourceVersion"]
    _, second, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 4}})
    rv2 = second["metadata"]["resourceVersion"]
    assert int(rv2) > int(rv1)
    _, same, _ = await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 4}})
    assert same["metadata"]["resourceVersion"] == rv2  # a no-op write is not a write
    status, body, _ = await http.call("PUT", f"{WIDGETS}/w1", first)
    assert status == 409 and body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    status, body, _ = await http.merge(f"{WIDGETS}/w1", {"metadata": {"resourceVersion": rv1}, "spec": {"size": 6}})
    assert status == 409 and body["kind"] == "Status"


async def test_failed_json_patch_test_is_422(http: Http) -> None:
    created = await http.create(widget())
    rv = created["metadata"]["resourceVersion"]
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x.dev/f"]},
    ]
    status, body, _ = await http.call("PATCH", f"{WIDGETS}/w1", stale, "application/json-patch+json")
    assert status == 422 and body["reason"] == "Invalid"
    fresh = [{**stale[0], "value": rv}, stale[1]]
    status, body, _ = await http.call("PATCH", f"{WIDGETS}/w1", fresh, "application/json-patch+json")
    assert status == 200 and body["metadata"]["finalizers"] == ["x.dev/f"]


async def test_put_replaces_the_object(http: Http) -> None:
    created = await http.create(widget(name="full", tags=["a"]))
    replacement = {**created, "spec": {"zone": "zone-a", "size": 2}}
    status, body, _ = await http.call("PUT", f"{WIDGETS}/w1", replacement)
    assert status == 200 and "tags" not in body["spec"] and body["spec"]["size"] == 2
    del replacement["metadata"]["resourceVersion"]
    status, body, _ = await http.call("PUT", f"{WIDGETS}/w1", replacement)
    assert status == 422 and "must be specified for an update" in body["message"]


async def test_list_has_kind_and_resource_version(http: Http) -> None:
    created = await http.create(widget())
    listed = await http.get(WIDGETS)
    assert listed["kind"] == "WidgetList" and listed["apiVersion"] == "test.runnet.dev/v1"
    assert int(listed["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]


async def _watch(http: Http, query: str, count: int) -> list[dict[str, Any]]:
    events = []
    async with http.session.get(f"{http.base}{WIDGETS}?watch=true&{query}") as rsp:
        while len(events) < count:
            line = await asyncio.wait_for(rsp.content.readline(), 3)
            events.append(json.loads(line))
    return events


async def test_watch_resumes_from_a_resource_version_and_410s_when_too_old(http: Http, emu: KubeEmulator) -> None:
    await http.create(widget())
    listed = await http.get(WIDGETS)
    await http.merge(f"{WIDGETS}/w1", {"spec": {"size": 7}})
    events = await _watch(http, f"resourceVersion={listed['metadata']['resourceVersion']}", 1)
    assert [(e["type"], e["object"]["spec"]["size"]) for e in events] == [("MODIFIED", 7)]
    emu.compact()
    [gone] = await _watch(http, f"resourceVersion={listed['metadata']['resourceVersion']}", 1)
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410 and gone["object"]["reason"] == "Expired"


async def test_watch_with_selector_sees_objects_enter_and_leave(http: Http) -> None:
    listed = await http.get(WIDGETS)
    rv = listed["metadata"]["resourceVersion"]
    await http.create(widget())
    await http.merge(f"{WIDGETS}/w1", {"metadata": {"labels": {"tier": "web"}}})
    await http.merge(f"{WIDGETS}/w1", {"metadata": {"labels": {"tier": "db"}}})
    events = await _watch(http, f"resourceVersion={rv}&labelSelector=tier%3Dweb", 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_label_and_field_selectors(http: Http) -> None:
    await http.create({**widget("a", color="green"), "metadata": {"name": "a", "labels": {"app": "x", "tier": "web"}}})
    await http.create({**widget("b"), "metadata": {"name": "b", "labels": {"app": "x"}}})
    await http.create(widget("c"), "/apis/test.runnet.dev/v1/namespaces/other/widgets")

    async def names(query: str, path: str = WIDGETS) -> list[str]:
        return [i["metadata"]["name"] for i in (await http.get(f"{path}?{query}"))["items"]]

    assert await names("labelSelector=app%3Dx,tier%21%3Dweb") == ["b"]
    assert await names("labelSelector=tier%20in%20(web,db)") == ["a"]
    assert await names("fieldSelector=metadata.name%3Db") == ["b"]
    assert await names("fieldSelector=spec.color%3Dgreen") == ["a"]  # a CRD selectableField
    assert await names("fieldSelector=metadata.namespace%3Dother", "/apis/test.runnet.dev/v1/widgets") == ["c"]
    status, body, _ = await http.call("GET", f"{WIDGETS}?fieldSelector=spec.size%3D3")
    assert status == 400 and body["message"] == "field label not supported: spec.size"


async def test_namespaces_list_and_appear_on_demand(http: Http) -> None:
    await http.create(widget(), "/apis/test.runnet.dev/v1/namespaces/team-a/widgets")
    listed = await http.get("/api/v1/namespaces")
    assert listed["kind"] == "NamespaceList"
    names = [i["metadata"]["name"] for i in listed["items"]]
    assert {"default", "kube-system", "team-a"} <= set(names)
    assert (await http.get("/api/v1/namespaces/team-a"))["status"]["phase"] == "Active"


async def test_table_output_from_printer_columns(http: Http) -> None:
    await http.create(widget())
    status = {
        "natIPs": ["1.2.3.4", "5.6.7.8"],
        "conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}],
    }
    await http.merge(f"{WIDGETS}/w1/status", {"status": status})
    table = await http.get(WIDGETS, Accept=TABLE)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "IPs", "Size", "Zone", "Age"]
    [row] = table["rows"]
    assert row["cells"][:5] == ["w1", "True", "[1.2.3.4 5.6.7.8]", 3, "zone-a"]
    assert row["cells"][5].endswith("s") and row["object"]["kind"] == "PartialObjectMetadata"
    ns_table = await http.get("/api/v1/namespaces", Accept=TABLE)
    assert [c["name"] for c in ns_table["columnDefinitions"]] == ["Name", "Status", "Age"]


async def test_dry_run_is_not_stored(http: Http, emu: KubeEmulator) -> None:
    status, body, _ = await http.call("POST", f"{WIDGETS}?dryRun=All", widget())
    assert status == 201 and body["spec"]["size"] == 3
    assert emu.get_object("test.runnet.dev", "widgets", "default", "w1") is None
    await http.create(widget())
    status, body, _ = await http.call(
        "PATCH", f"{WIDGETS}/w1?dryRun=All", {"spec": {"size": 8}}, "application/merge-patch+json"
    )
    assert status == 200 and body["spec"]["size"] == 8
    assert (await http.get(f"{WIDGETS}/w1"))["spec"]["size"] == 3


async def test_openapi_v3_lets_kubectl_validate_server_side(http: Http) -> None:
    index = await http.get("/openapi/v3")
    doc = await http.get(index["paths"]["apis/test.runnet.dev/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/apis/test.runnet.dev/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "test.runnet.dev", "version": "v1", "kind": "Widget"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]


async def test_schema_validation_is_worded_like_the_api_server(http: Http) -> None:
    bad = widget(color="pink", name="Bad", size=11, tags=["a", "b", "c", "d", "e", "f"], ip="x", port=1.5)
    del bad["spec"]["zone"]
    status, body, _ = await http.call("POST", WIDGETS, bad)
    assert status == 422 and body["kind"] == "Status" and body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Widget" and body["details"]["group"] == "test.runnet.dev"
    causes = {c["field"]: (c["reason"], c["message"]) for c in body["details"]["causes"]}
    assert causes["spec.color"] == (
        "FieldValueNotSupported",
        'Unsupported value: "pink": supported values: "red", "green", "blue"',
    )
    assert causes["spec.name"][1] == "Invalid value: \"Bad\": spec.name in body should match '^[a-z][a-z0-9-]*$'"
    assert causes["spec.size"][1] == "Invalid value: 11: spec.size in body should be less than or equal to 10"
    assert causes["spec.tags"] == ("FieldValueTooMany", "Too many: 6: must have at most 5 items")
    assert causes["spec.ip"][1] == 'Invalid value: "x": spec.ip in body must be of type ipv4: "x"'
    assert causes["spec.zone"] == ("FieldValueRequired", "Required value")
    assert "spec.port" in causes  # int-or-string takes neither a float
    assert body["message"].startswith('Widget.test.runnet.dev "w1" is invalid: [')


async def test_pruning_defaults_and_field_validation(http: Http) -> None:
    status, body, headers = await http.call("POST", WIDGETS, widget(bogus=1, extra={"free": {"form": True}}))
    assert status == 201 and "bogus" not in body["spec"] and body["spec"]["extra"] == {"free": {"form": True}}
    assert body["spec"]["color"] == "red" and body["spec"]["size"] == 3  # defaults
    assert headers.getall("Warning") == ['299 - "unknown field \\"spec.bogus\\""']
    status, body, _ = await http.call("POST", f"{WIDGETS}?fieldValidation=Strict", widget("w2", bogus=1))
    assert status == 400 and body["message"] == 'strict decoding error: unknown field "spec.bogus"'
    _, obj, _ = await http.merge(f"{WIDGETS}/w1/status", {"status": {"undeclared": 1, "natIPs": ["1.1.1.1"]}})
    assert obj["status"] == {"natIPs": ["1.1.1.1"]}  # status writes are pruned too


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
