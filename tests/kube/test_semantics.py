"""Probes of what the stand-in adds beyond TESTING.md's table: CEL, finalizers, namespaces, CRDs over
the API, discovery, events, paging, and that kmock's own DSL and object history still work.
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

import kmock
import pytest

from runnet.emulator.kube import KubeEmulator
from tests.kube.conftest import Http, load_test_crds, widget, widgets_path
from tests.support import control_plane
from tests.support.kube_access import CRD_PATH

TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json"
MERGE = "application/merge-patch+json"


async def test_cel_rules_with_old_self_and_message_expression(http: Http) -> None:
    await http.create(widget(tags=["a"]))
    status, body, _ = await http.merge(f"{http.widgets}/w1", {"spec": {"zone": "zone-b"}})
    assert status == 422
    assert (  # a scalar's own value is shown
        body["message"]
        == 'Widget.test.runnet.dev "w1" is invalid: spec.zone: Invalid value: "zone-b": zone is immutable'
    )
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "zone-b": zone is immutable', "field": "spec.zone"}
    ]
    status, body, _ = await http.merge(f"{http.widgets}/w1", {"spec": {"size": 1, "tags": ["a", "b"]}})
    assert status == 422  # a rule on an object shows no value; fieldPath names the field
    assert body["message"] == 'Widget.test.runnet.dev "w1" is invalid: spec.tags: Invalid value: no more tags than size'
    status, body, _ = await http.call("POST", http.widgets, widget("w2", name="x-one"))
    assert status == 422 and body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "x-one": name x-one is reserved',
            "field": "spec.name",
        }
    ]


async def test_finalizers_hold_deletion_until_removed(http: Http) -> None:
    await http.create({**widget(), "metadata": {"name": "w1", "finalizers": ["test.runnet.dev/hold"]}})
    status, body, _ = await http.call("DELETE", f"{http.widgets}/w1")
    assert status == 200 and body["metadata"]["deletionTimestamp"]
    held = await http.get(f"{http.widgets}/w1")
    assert held["metadata"]["deletionTimestamp"] == body["metadata"]["deletionTimestamp"]
    status, body, _ = await http.merge(
        f"{http.widgets}/w1", {"metadata": {"finalizers": ["test.runnet.dev/hold", "new.dev/f"]}}
    )
    why = (
        "Forbidden: no new finalizers can be added if the object is being deleted, "
        'found new finalizers []string{"new.dev/f"}'
    )
    assert status == 422 and body["message"] == f'Widget.test.runnet.dev "w1" is invalid: metadata.finalizers: {why}'
    # the API server checks this twice for custom resources: the message says it once, the causes twice
    assert (
        body["details"]["causes"]
        == [{"reason": "FieldValueForbidden", "message": why, "field": "metadata.finalizers"}] * 2
    )
    status, _, _ = await http.merge(f"{http.widgets}/w1", {"metadata": {"finalizers": None}})
    assert status == 200
    status, body, _ = await http.call("GET", f"{http.widgets}/w1")
    assert (
        status == 404 and body["reason"] == "NotFound" and body["message"] == 'widgets.test.runnet.dev "w1" not found'
    )


async def test_a_deleted_namespace_takes_no_new_content(http: Http) -> None:
    doomed_ns = await http.namespace(f"{http.ns}-doomed")
    doomed = widgets_path(doomed_ns)
    # Something with a finalizer keeps the namespace Terminating here too (the stand-in empties it at once).
    await http.create({**widget("held"), "metadata": {"name": "held", "finalizers": ["test.runnet.dev/hold"]}}, doomed)
    status, body, _ = await http.call("DELETE", f"/api/v1/namespaces/{doomed_ns}")
    assert status == 200 and body["status"]["phase"] == "Terminating" and body["metadata"]["deletionTimestamp"]
    status, body, _ = await http.call("POST", doomed, widget("late"))
    assert status == 403 and body["message"] == (
        f'widgets.test.runnet.dev "late" is forbidden: unable to create new content in namespace {doomed_ns} '
        "because it is being terminated"
    )


@pytest.mark.standin_only(
    "the namespace controller, which empties a deleted namespace and then removes it, is part of "
    "kube-controller-manager, which the control plane does not run (a deleted namespace stays Terminating there)"
)
async def test_deleting_a_namespace_empties_it_first(http: Http) -> None:
    doomed_ns = await http.namespace(f"{http.ns}-doomed")
    doomed = widgets_path(doomed_ns)
    await http.create({**widget("held"), "metadata": {"name": "held", "finalizers": ["test.runnet.dev/hold"]}}, doomed)
    await http.create(widget("plain"), doomed)
    status, body, _ = await http.call("DELETE", f"/api/v1/namespaces/{doomed_ns}")
    assert status == 200 and body["status"]["phase"] == "Terminating"
    assert [i["metadata"]["name"] for i in (await http.get(doomed))["items"]] == ["held"]
    await http.merge(f"{doomed}/held", {"metadata": {"finalizers": None}})
    status, _, _ = await http.call("GET", f"/api/v1/namespaces/{doomed_ns}")
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
    await http.create(crd, CRD_PATH)
    await http.established("things.test.runnet.dev")
    beta = f"/apis/test.runnet.dev/v1beta1/namespaces/{http.ns}/things"
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
    got = await http.get(f"/apis/test.runnet.dev/v1/namespaces/{http.ns}/things/t")
    assert got["apiVersion"] == "test.runnet.dev/v1" and got["spec"] == {"a": "x"}
    group = await http.get("/apis/test.runnet.dev")
    assert group["preferredVersion"]["version"] == "v1"


async def test_events_are_storable_and_selectable(http: Http) -> None:
    event = {
        "metadata": {"generateName": "w1-"},
        "involvedObject": {"kind": "Widget", "name": "w1", "namespace": http.ns},
        "reason": "Made",
        "message": "hi",
        "type": "Normal",
    }
    created = await http.create({"apiVersion": "v1", "kind": "Event", **event}, f"/api/v1/namespaces/{http.ns}/events")
    assert created["metadata"]["name"].startswith("w1-") and len(created["metadata"]["name"]) == 8
    found = await http.get(
        f"/api/v1/namespaces/{http.ns}/events?fieldSelector=involvedObject.name%3Dw1,involvedObject.kind%3DWidget"
    )
    assert [e["reason"] for e in found["items"]] == ["Made"]
    new_style = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"}, "reason": "R"}
    status, body, _ = await http.call("POST", f"/apis/events.k8s.io/v1/namespaces/{http.ns}/events", new_style)
    assert status == 422 and body["details"]["causes"] == [  # checked as core Events: the old field names
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "": does not match event.namespace',
         "field": "involvedObject.namespace"},
        {"reason": "FieldValueRequired", "message": "Required value", "field": "eventTime"},
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "": has invalid value: ', "field": "type"},
    ]  # fmt: skip
    new_style |= {
        "regarding": {"kind": "Widget", "name": "w1", "namespace": http.ns},
        "eventTime": "2026-01-02T03:04:05.678901Z",
        "type": "Warning",
        "note": "hello",
        "action": "Probe",
        "reportingController": "runnet.dev/probe",
        "reportingInstance": "probe-1",
    }
    await http.create(new_style, f"/apis/events.k8s.io/v1/namespaces/{http.ns}/events")
    # One storage, two APIs: each lists both events, each in its own form.
    new_list = await http.get(f"/apis/events.k8s.io/v1/namespaces/{http.ns}/events?fieldSelector=regarding.name%3Dw1")
    assert {e["metadata"]["name"]: (e["reason"], e.get("note")) for e in new_list["items"]} == {
        "e2": ("R", "hello"),
        created["metadata"]["name"]: ("Made", "hi"),
    }
    old = await http.get(f"/api/v1/namespaces/{http.ns}/events/e2")
    assert (old["message"], old["reportingComponent"], old["involvedObject"]["name"]) == (
        "hello",
        "runnet.dev/probe",
        "w1",
    )


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
    created = await http.create(crd, CRD_PATH)
    # The answer is the CRD as created; the controllers accept its names and establish it right after.
    assert created["status"] == {
        "conditions": None,
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": ["v1"],
    }
    established = await http.established("gadgets.test.runnet.dev")
    assert int(established["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert established["status"]["acceptedNames"]["listKind"] == "GadgetList"
    resources = await http.get("/apis/test.runnet.dev/v1")
    assert {r["name"]: r["namespaced"] for r in resources["resources"] if "/" not in r["name"]} == {
        "gadgets": False,
        "widgets": True,
    }
    aggregated = await http.get("/apis", Accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    group = next(i for i in aggregated["items"] if i["metadata"]["name"] == "test.runnet.dev")
    assert {r["resource"] for r in group["versions"][0]["resources"]} == {"gadgets", "widgets"}
    gadget = {"apiVersion": "test.runnet.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    await http.create(gadget, "/apis/test.runnet.dev/v1/gadgets")
    await http.create({**gadget, "metadata": {"name": "held", "finalizers": ["test.runnet.dev/hold"]}},
                      "/apis/test.runnet.dev/v1/gadgets")  # fmt: skip
    status, body, _ = await http.call("DELETE", f"{CRD_PATH}/gadgets.test.runnet.dev")
    # Deleting a CRD marks it; its clean-up finalizer deletes its objects first (held waits for its finalizer).
    assert status == 200 and body["metadata"]["deletionTimestamp"]
    assert body["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    async with asyncio.timeout(10):
        while (await http.call("GET", "/apis/test.runnet.dev/v1/gadgets/g"))[0] != 404:
            await asyncio.sleep(0.05)
    terminating = await http.get(f"{CRD_PATH}/gadgets.test.runnet.dev")
    condition = next(c for c in terminating["status"]["conditions"] if c["type"] == "Terminating")
    assert (condition["status"], condition["reason"]) == ("True", "InstanceDeletionInProgress")
    status, body, _ = await http.call(
        "POST", "/apis/test.runnet.dev/v1/gadgets", {**gadget, "metadata": {"name": "late"}}
    )
    assert status == 403 and body["message"] == (
        'gadgets.test.runnet.dev "late" is forbidden: '
        "create not allowed while custom resource definition is terminating"
    )
    await http.merge("/apis/test.runnet.dev/v1/gadgets/held", {"metadata": {"finalizers": None}})
    async with asyncio.timeout(10):
        while (await http.call("GET", f"{CRD_PATH}/gadgets.test.runnet.dev"))[0] != 404:
            await asyncio.sleep(0.05)
    status, body, _ = await http.call("GET", "/apis/test.runnet.dev/v1/gadgets")
    assert status == 404 and body == "404 page not found\n"


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
    first = await http.get(f"{http.widgets}?limit=2")
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"] and first["metadata"][
        "remainingItemCount"
    ] == 1
    rest = await http.get(f"{http.widgets}?limit=2&continue={first['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"]
    assert rest["metadata"]["continue"] == "" and "remainingItemCount" not in rest["metadata"]
    whole = await http.get(http.widgets)  # custom resource lists always say continue, empty when complete
    assert whole["metadata"]["continue"] == "" and len(whole["items"]) == 3


async def test_strategic_merge_patch_is_refused_for_custom_resources(http: Http) -> None:
    await http.create(widget())
    status, body, _ = await http.call(
        "PATCH", f"{http.widgets}/w1", {"spec": {"size": 2}}, "application/strategic-merge-patch+json"
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


@pytest.mark.standin_only("kmock's DSL and object history are the stand-in's own machinery")
async def test_kmock_reactions_win_and_objects_keep_history(http: Http, emu: KubeEmulator) -> None:
    await http.create(widget())
    await http.merge(f"{http.widgets}/w1", {"spec": {"size": 5}})
    history = emu.objects["test.runnet.dev/v1/widgets", http.ns, "w1"].history
    assert [v["spec"]["size"] for v in history if v is not None] == [3, 5]
    emu["patch", kmock.resource("test.runnet.dev/v1/widgets")] << 503
    status, _, _ = await http.merge(f"{http.widgets}/w1", {"spec": {"size": 6}})
    assert status == 503
    assert len(list(emu[kmock.method.PATCH])) == 2  # kmock's request log still sees everything


async def test_unknown_paths_answer_like_the_api_server(http: Http) -> None:
    # No group serves these: the API server's fallback answers a plain-text 404 page.
    for path in (
        "/apis/nope.dev/v1/things",
        "/apis/nope.dev",
        "/apis/test.runnet.dev/v9",
        "/nope",
        f"/apis/test.runnet.dev/v1/namespaces/{http.ns}/nothings",
        "/apis/test.runnet.dev/v1/widgets/w/scale",
    ):
        status, body, headers = await http.call("GET", path)
        assert (status, body, headers["Content-Type"]) == (404, "404 page not found\n", "text/plain; charset=utf-8"), (
            path
        )
    # Built-in groups (and the core API) answer a NotFound Status.
    for path in ("/api/v1/nothings", "/apis/events.k8s.io/v1/nothings", "/api/v2"):
        status, body, _ = await http.call("GET", path)
        assert status == 404 and body["message"] == "the server could not find the requested resource", path
        assert body["details"] == {}


async def test_tightened_schemas_ratchet_unchanged_values(http: Http) -> None:
    # A private copy of the Widget CRD (the session's own must not change under other tests).
    [original] = load_test_crds()
    crd = copy.deepcopy(original)
    crd["metadata"] = {"name": "ratchets.test.runnet.dev"}
    crd["spec"]["names"] = {"plural": "ratchets", "kind": "Ratchet"}
    await http.create(crd, CRD_PATH)
    crd = await http.established("ratchets.test.runnet.dev")
    ratchets = f"/apis/test.runnet.dev/v1/namespaces/{http.ns}/ratchets"
    await http.create({**widget(), "kind": "Ratchet"}, ratchets)  # size: 3, the default
    size = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"]
    size["maximum"] = 2
    status, body, _ = await http.call("PUT", f"{CRD_PATH}/ratchets.test.runnet.dev", crd)
    assert status == 422 and "default: Invalid value: 3" in body["message"]  # a default must pass its schema
    size["default"] = 1
    status, body, _ = await http.call("PUT", f"{CRD_PATH}/ratchets.test.runnet.dev", crd)
    assert status == 200, body
    async with asyncio.timeout(10):  # the real server's handler takes up the new schema a moment later
        while (await http.call("PATCH", f"{ratchets}/w1?dryRun=All", {"spec": {"size": 4}}, MERGE))[0] != 422:
            await asyncio.sleep(0.05)
    status, body, _ = await http.merge(f"{ratchets}/w1", {"spec": {"color": "blue"}})
    assert status == 200, body  # size 3 is now too big, but unchanged: ratcheted
    status, body, _ = await http.merge(f"{ratchets}/w1", {"spec": {"size": 4}})
    assert status == 422 and "spec.size in body should be less than or equal to 2" in body["message"]


async def test_object_names_are_checked(http: Http) -> None:
    status, body, _ = await http.call("POST", http.widgets, widget("Bad_Name"))
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    assert "a lowercase RFC 1123 subdomain" in body["message"]
    status, body, _ = await http.call("POST", http.widgets, {**widget(), "metadata": {"generateName": "w-"}})
    assert status == 201 and body["metadata"]["name"].startswith("w-")


async def test_watch_initial_events_bookmark_and_single_objects(http: Http) -> None:
    await http.create(widget("a"))
    await http.create(widget("b"))
    events = await http.watch("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", 3)
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    listed = await http.get(http.widgets)
    await http.merge(f"{http.widgets}/a", {"spec": {"size": 2}})
    await http.merge(f"{http.widgets}/b", {"spec": {"size": 5}})
    since = listed["metadata"]["resourceVersion"]
    # One object is watched with a field selector on its name, or on the deprecated /watch/ path.
    [only_b] = await http.watch(f"resourceVersion={since}&fieldSelector=metadata.name%3Db", 1)
    assert only_b["object"]["metadata"]["name"] == "b" and only_b["object"]["spec"]["size"] == 5
    watch_path = http.widgets.replace("/namespaces/", "/watch/namespaces/") + "/b"
    [only_b] = await http.watch(f"resourceVersion={since}", 1, watch_path)
    assert only_b["object"]["metadata"]["name"] == "b" and only_b["object"]["spec"]["size"] == 5
    # ?watch=true on an object's own path is no watch: it reads the object.
    status, body, _ = await http.call("GET", f"{http.widgets}/b?watch=true&resourceVersion={since}")
    assert status == 200 and body["kind"] == "Widget" and body["spec"]["size"] == 5


async def test_delete_collection_by_label(http: Http) -> None:
    await http.create({**widget("a"), "metadata": {"name": "a", "labels": {"batch": "1"}}})
    await http.create(widget("b"))
    status, body, _ = await http.call("DELETE", f"{http.widgets}?labelSelector=batch%3D1")
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["a"]
    assert [i["metadata"]["name"] for i in (await http.get(http.widgets))["items"]] == ["b"]


async def test_built_in_tables_print_like_the_api_server(http: Http) -> None:
    async def table(path: str) -> tuple[list[tuple[str, str, int]], list[list[Any]]]:
        found = await http.get(path, Accept=TABLE)
        columns = [(c["name"], c["type"], c["priority"]) for c in found["columnDefinitions"]]
        assert all(c["description"] for c in found["columnDefinitions"])
        return columns, [row["cells"] for row in found["rows"]]

    columns, rows = await table(f"/api/v1/namespaces?fieldSelector=metadata.name%3D{http.ns}")
    assert columns == [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)]
    assert rows[0][:2] == [http.ns, "Active"] and rows[0][2].endswith("s")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    await http.create(config, f"/api/v1/namespaces/{http.ns}/configmaps")
    columns, rows = await table(f"/api/v1/namespaces/{http.ns}/configmaps")
    assert columns == [("Name", "string", 0), ("Data", "string", 0), ("Age", "string", 0)] and rows[0][:2] == ["c", 2]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}}
    await http.create(secret, f"/api/v1/namespaces/{http.ns}/secrets")
    columns, rows = await table(f"/api/v1/namespaces/{http.ns}/secrets")
    assert [c[0] for c in columns] == ["Name", "Type", "Data", "Age"] and rows[0][:3] == ["s", "Opaque", 1]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "w1.1"},
        "involvedObject": {"kind": "Widget", "name": "w1", "namespace": http.ns, "fieldPath": "spec.zone"},
        "reason": "Moved",
        "message": " zone changed \n",
        "type": "Warning",
        "source": {"component": "runnet", "host": "node-1"},
        "firstTimestamp": "2020-01-01T00:00:00Z",
        "count": 3,
    }
    await http.create(event, f"/api/v1/namespaces/{http.ns}/events")
    for path in (f"/api/v1/namespaces/{http.ns}/events", f"/apis/events.k8s.io/v1/namespaces/{http.ns}/events"):
        columns, rows = await table(path)
        assert columns == [
            ("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
            ("Subobject", "string", 1), ("Source", "string", 1), ("Message", "string", 0), ("First Seen", "string", 1),
            ("Count", "string", 1), ("Name", "string", 1),
        ]  # fmt: skip
        [(last, *cells, first, count, name)] = rows
        assert cells == ["Warning", "Moved", "widget/w1", "spec.zone", "runnet, node-1", "zone changed"]
        assert last == first and first.endswith(("y", "d")) and (count, name) == (3, "w1.1")
    columns, rows = await table(f"{CRD_PATH}?fieldSelector=metadata.name%3Dwidgets.test.runnet.dev")
    assert [c[0] for c in columns] == ["Name", "Scope", "Versions", "Created At", "Group", "Kind", "ShortNames",
                                       "Established"]  # fmt: skip
    [[name, scope, versions, created, group, kind, short, established]] = rows
    assert (name, scope, versions, group, kind, short, established) == (
        "widgets.test.runnet.dev", "Namespaced", "v1(storage)", "test.runnet.dev", "Widget", "wd", True
    )  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)


async def test_custom_resource_table_columns_describe_their_json_path(http: Http) -> None:
    await http.create(widget())
    found = await http.get(http.widgets, Accept=TABLE)
    described = {c["name"]: c["description"] for c in found["columnDefinitions"]}
    assert described["IPs"] == "Custom resource definition column (in JSONPath format): .status.natIPs"
    assert described["Name"].startswith("Name must be unique within a namespace.")


async def test_labels_are_checked_like_the_api_server(http: Http) -> None:
    labels = {"bad key!": "ok", "ok": "bad value!", "x/" + "y" * 64: "v", "long": "v" * 64}
    status, body, _ = await http.call("POST", http.widgets, {**widget(), "metadata": {"name": "l", "labels": labels}})
    assert status == 422
    key_msg = (
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )
    value_msg = (
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
        "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    )
    # Go visits a map in any order: compare the causes as a set.
    assert {c["message"] for c in body["details"]["causes"]} == {
        f'Invalid value: "bad key!": name part {key_msg}',
        f'Invalid value: "bad value!": {value_msg}',
        f'Invalid value: "x/{"y" * 64}": name part must be no more than 63 bytes',
        f'Invalid value: "{"v" * 64}": must be no more than 63 bytes',
    }
    assert {c["field"] for c in body["details"]["causes"]} == {"metadata.labels"}
    long_name = "n" * 64  # a namespace name is a DNS label, and also the value of a label the server adds
    status, body, _ = await http.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": long_name}}
    )
    assert status == 422 and body["message"] == (
        f'Namespace "{long_name}" is invalid: [metadata.name: Invalid value: "{long_name}": must be no more than 63 '
        f'characters, metadata.labels: Invalid value: "{long_name}": must be no more than 63 bytes]'
    )


async def test_discovery_documents_match(http: Http) -> None:
    legacy = await http.get("/apis/test.runnet.dev/v1")
    widgets = next(r for r in legacy["resources"] if r["name"] == "widgets")
    assert widgets == {
        "name": "widgets",
        "singularName": "widget",
        "namespaced": True,
        "kind": "Widget",
        "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        "shortNames": ["wd"],
        "categories": ["runnet"],
        "storageVersionHash": "2U7jiciGXnY=",  # 8 bytes of SHA-256 of test.runnet.dev/v1/Widget
    }
    core = await http.get("/api/v1")
    namespaces = next(r for r in core["resources"] if r["name"] == "namespaces")
    assert namespaces["verbs"] == ["create", "delete", "get", "list", "patch", "update", "watch"]
    assert namespaces["storageVersionHash"] == "Q3oi5N2YM8M="
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    aggregated = await http.get("/apis", Accept=accept)
    group = next(i for i in aggregated["items"] if i["metadata"]["name"] == "test.runnet.dev")
    assert group["metadata"] == {"name": "test.runnet.dev"}
    [entry] = [
        r for v in group["versions"] if v["version"] == "v1" for r in v["resources"] if r["resource"] == "widgets"
    ]
    assert entry["responseKind"] == {"group": "test.runnet.dev", "version": "v1", "kind": "Widget"}
    assert entry["subresources"] == [
        {"subresource": "status", "responseKind": entry["responseKind"], "verbs": ["get", "patch", "update"]}
    ]
    core_aggregated = await http.get("/api", Accept=accept)
    [legacy_group] = core_aggregated["items"]
    assert legacy_group["metadata"] == {}
    ns_entry = next(r for r in legacy_group["versions"][0]["resources"] if r["resource"] == "namespaces")
    assert ns_entry["responseKind"] == {"group": "", "version": "", "kind": "Namespace"}
    assert [s["subresource"] for s in ns_entry["subresources"]] == ["finalize", "status"]
    versions = await http.get("/api")
    assert versions["serverAddressByClientCIDRs"] == [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": http.base.split("://", 1)[1]}
    ]


async def test_version_is_the_release_the_probes_run_against(http: Http) -> None:
    found = await http.get("/version")
    major, minor, patch = control_plane.kubernetes_version()
    assert (found["major"], found["minor"], found["gitVersion"]) == (
        str(major),
        str(minor),
        f"v{major}.{minor}.{patch}",
    )
    assert (found["emulationMajor"], found["emulationMinor"]) == (str(major), str(minor))
    assert (found["minCompatibilityMajor"], found["minCompatibilityMinor"]) == (str(major), str(minor - 1))


async def test_server_side_apply_needs_a_field_manager_and_a_kind(http: Http) -> None:
    apply = "application/apply-patch+yaml"
    status, body, _ = await http.call("PATCH", f"{http.widgets}/w1", widget(), apply)
    assert status == 422 and body["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert body["details"] == {
        "group": "meta.k8s.io",
        "kind": "PatchOptions",
        "causes": [
            {
                "reason": "FieldValueRequired",
                "message": "Required value: is required for apply patch",
                "field": "fieldManager",
            }
        ],
    }
    status, body, _ = await http.call("PATCH", f"{http.widgets}/w1?fieldManager=probe", {"spec": {"zone": "z"}}, apply)
    assert status == 400 and body["message"] == "invalid object type: /, Kind="
    status, body, _ = await http.call("PATCH", f"{http.widgets}/w1?fieldManager=probe", widget(size=4), apply)
    assert status == 201 and body["spec"] == {"zone": "zone-a", "size": 4, "color": "red"}
    status, body, _ = await http.call("PATCH", f"{http.widgets}/w1?fieldManager=probe", widget(size=5), apply)
    assert status == 200 and body["spec"]["size"] == 5 and body["metadata"]["generation"] == 2
