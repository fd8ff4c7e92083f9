"""One probe per row of TESTING.md's Kubernetes table (and the extras the stand-in adds), over HTTP.

Each would fail against plain kmock 0.8, so a kmock upgrade that changes behaviour under the
subclass is caught here first.
"""

from __future__ import annotations

import re

import pytest

from runnet.emulator.kube import KubeEmulator
from tests.kube.conftest import Http, widget, widgets_path

TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json"


async def test_server_fills_metadata(http: Http) -> None:
    obj = await http.create(widget())
    meta = obj["metadata"]
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0 and meta["generation"] == 1 and meta["namespace"] == http.ns


async def test_generation_moves_on_spec_changes_only(http: Http) -> None:
    await http.create(widget())
    _, obj, _ = await http.merge(f"{http.widgets}/w1", {"spec": {"size": 4}})
    assert obj["metadata"]["generation"] == 2
    _, obj, _ = await http.merge(f"{http.widgets}/w1", {"metadata": {"labels": {"a": "b"}}})
    assert obj["metadata"]["generation"] == 2
    _, obj, _ = await http.merge(f"{http.widgets}/w1/status", {"status": {"observedGeneration": 2}})
    assert obj["metadata"]["generation"] == 2 and obj["status"]["observedGeneration"] == 2


async def test_status_subresource_splits_spec_and_status(http: Http) -> None:
    created = await http.create({**widget(), "status": {"natIPs": ["1.1.1.1"]}})
    assert "status" not in created  # dropped on create
    _, obj, _ = await http.merge(f"{http.widgets}/w1/status", {"spec": {"size": 9}, "status": {"natIPs": ["2.2.2.2"]}})
    assert obj["spec"]["size"] == 3 and obj["status"]["natIPs"] == ["2.2.2.2"]
    _, obj, _ = await http.merge(f"{http.widgets}/w1", {"spec": {"size": 5}, "status": {"natIPs": ["6.6.6.6"]}})
    assert obj["spec"]["size"] == 5 and obj["status"]["natIPs"] == ["2.2.2.2"]


async def test_resource_version_moves_and_stale_writes_conflict(http: Http) -> None:
    first = await http.create(widget())
    rv1 = first["metadata"]["resourceVersion"]
    _, second, _ = await http.merge(f"{http.widgets}/w1", {"spec": {"size": 4}})
    rv2 = second["metadata"]["resourceVersion"]
    assert int(rv2) > int(rv1)
    _, same, _ = await http.merge(f"{http.widgets}/w1", {"spec": {"size": 4}})
    assert same["metadata"]["resourceVersion"] == rv2  # a no-op write is not a write
    status, body, _ = await http.call("PUT", f"{http.widgets}/w1", first)
    assert status == 409 and body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    status, body, _ = await http.merge(
        f"{http.widgets}/w1", {"metadata": {"resourceVersion": rv1}, "spec": {"size": 6}}
    )
    assert status == 409 and body["kind"] == "Status"


async def test_failed_json_patch_test_is_422(http: Http) -> None:
    created = await http.create(widget())
    rv = created["metadata"]["resourceVersion"]
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x.dev/f"]},
    ]
    status, body, _ = await http.call("PATCH", f"{http.widgets}/w1", stale, "application/json-patch+json")
    assert status == 422 and body["reason"] == "Invalid"
    fresh = [{**stale[0], "value": rv}, stale[1]]
    status, body, _ = await http.call("PATCH", f"{http.widgets}/w1", fresh, "application/json-patch+json")
    assert status == 200 and body["metadata"]["finalizers"] == ["x.dev/f"]


async def test_put_replaces_the_object(http: Http) -> None:
    created = await http.create(widget(name="full", tags=["a"]))
    replacement = {**created, "spec": {"zone": "zone-a", "size": 2}}
    status, body, _ = await http.call("PUT", f"{http.widgets}/w1", replacement)
    assert status == 200 and "tags" not in body["spec"] and body["spec"]["size"] == 2
    del replacement["metadata"]["resourceVersion"]
    status, body, _ = await http.call("PUT", f"{http.widgets}/w1", replacement)
    assert status == 422 and "must be specified for an update" in body["message"]


async def test_list_has_kind_and_resource_version(http: Http) -> None:
    created = await http.create(widget())
    listed = await http.get(http.widgets)
    assert listed["kind"] == "WidgetList" and listed["apiVersion"] == "test.runnet.dev/v1"
    assert int(listed["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]


async def test_watch_resumes_from_a_resource_version_and_410s_when_too_old(http: Http) -> None:
    await http.create(widget())
    listed = await http.get(http.widgets)
    await http.merge(f"{http.widgets}/w1", {"spec": {"size": 7}})
    events = await http.watch(f"resourceVersion={listed['metadata']['resourceVersion']}", 1)
    assert [(e["type"], e["object"]["spec"]["size"]) for e in events] == [("MODIFIED", 7)]
    # Revision 1 is older than what either server keeps (the real one's watch cache starts at its first list).
    [gone] = await http.watch("resourceVersion=1", 1)
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410 and gone["object"]["reason"] == "Expired"
    assert re.fullmatch(r"too old resource version: 1 \(\d+\)", gone["object"]["message"])


@pytest.mark.standin_only("compacting on demand: the real server compacts etcd every 5 minutes, and its watch cache "
                          "would still answer from memory")  # fmt: skip
async def test_watch_410s_after_a_compaction(http: Http, emu: KubeEmulator) -> None:
    await http.create(widget())
    listed = await http.get(http.widgets)
    await http.merge(f"{http.widgets}/w1", {"spec": {"size": 7}})
    emu.compact()
    [gone] = await http.watch(f"resourceVersion={listed['metadata']['resourceVersion']}", 1)
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410 and gone["object"]["reason"] == "Expired"


async def test_watch_with_selector_sees_objects_enter_and_leave(http: Http) -> None:
    listed = await http.get(http.widgets)
    rv = listed["metadata"]["resourceVersion"]
    await http.create(widget())
    await http.merge(f"{http.widgets}/w1", {"metadata": {"labels": {"tier": "web"}}})
    await http.merge(f"{http.widgets}/w1", {"metadata": {"labels": {"tier": "db"}}})
    events = await http.watch(f"resourceVersion={rv}&labelSelector=tier%3Dweb", 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_label_and_field_selectors(http: Http) -> None:
    await http.create({**widget("a", color="green"), "metadata": {"name": "a", "labels": {"app": "x", "tier": "web"}}})
    await http.create({**widget("b"), "metadata": {"name": "b", "labels": {"app": "x"}}})
    other = await http.namespace(f"{http.ns}-other")
    await http.create(widget("c"), widgets_path(other))

    async def names(query: str, path: str = http.widgets) -> list[str]:
        return [i["metadata"]["name"] for i in (await http.get(f"{path}?{query}"))["items"]]

    assert await names("labelSelector=app%3Dx,tier%21%3Dweb") == ["b"]
    assert await names("labelSelector=tier%20in%20(web,db)") == ["a"]
    assert await names("fieldSelector=metadata.name%3Db") == ["b"]
    assert await names("fieldSelector=spec.color%3Dgreen") == ["a"]  # a CRD selectableField
    assert await names(f"fieldSelector=metadata.namespace%3D{other}", "/apis/test.runnet.dev/v1/widgets") == ["c"]
    status, body, _ = await http.call("GET", f"{http.widgets}?fieldSelector=spec.size%3D3")
    assert status == 400 and body["message"] == "field label not supported: spec.size"


async def test_namespaces_list_and_must_exist(http: Http) -> None:
    team = f"{http.ns}-team-a"
    status, body, _ = await http.call("POST", widgets_path(team), widget())
    assert status == 404 and body["message"] == f'namespaces "{team}" not found'
    assert body["details"] == {"name": team, "kind": "namespaces"}
    await http.namespace(team)
    await http.create(widget(), widgets_path(team))
    listed = await http.get("/api/v1/namespaces")
    assert listed["kind"] == "NamespaceList" and "kind" not in listed["items"][0]  # typed lists: items untyped
    names = [i["metadata"]["name"] for i in listed["items"]]
    assert {"default", "kube-system", "kube-public", "kube-node-lease", team} <= set(names)
    created = await http.get(f"/api/v1/namespaces/{team}")
    assert created["status"]["phase"] == "Active" and created["spec"]["finalizers"] == ["kubernetes"]
    assert created["metadata"]["labels"] == {"kubernetes.io/metadata.name": team}


async def test_table_output_from_printer_columns(http: Http) -> None:
    await http.create(widget())
    status = {
        "natIPs": ["1.2.3.4", "5.6.7.8"],
        "conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}],
    }
    await http.merge(f"{http.widgets}/w1/status", {"status": status})
    table = await http.get(http.widgets, Accept=TABLE)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "IPs", "Size", "Zone", "Age"]
    [row] = table["rows"]
    assert row["cells"][:5] == ["w1", "True", '["1.2.3.4","5.6.7.8"]', 3, "zone-a"]  # lists print as JSON
    assert row["cells"][5].endswith("s") and row["object"]["kind"] == "PartialObjectMetadata"
    ns_table = await http.get("/api/v1/namespaces", Accept=TABLE)
    assert [c["name"] for c in ns_table["columnDefinitions"]] == ["Name", "Status", "Age"]


async def test_dry_run_is_not_stored(http: Http) -> None:
    status, body, _ = await http.call("POST", f"{http.widgets}?dryRun=All", widget())
    assert status == 201 and body["spec"]["size"] == 3
    status, _, _ = await http.call("GET", f"{http.widgets}/w1")
    assert status == 404
    await http.create(widget())
    status, body, _ = await http.call(
        "PATCH", f"{http.widgets}/w1?dryRun=All", {"spec": {"size": 8}}, "application/merge-patch+json"
    )
    assert status == 200 and body["spec"]["size"] == 8
    assert (await http.get(f"{http.widgets}/w1"))["spec"]["size"] == 3


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
    status, body, _ = await http.call("POST", http.widgets, bad)
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
    status, body, headers = await http.call("POST", http.widgets, widget(bogus=1, extra={"free": {"form": True}}))
    assert status == 201 and "bogus" not in body["spec"] and body["spec"]["extra"] == {"free": {"form": True}}
    assert body["spec"]["color"] == "red" and body["spec"]["size"] == 3  # defaults
    assert headers.getall("Warning") == ['299 - "unknown field \\"spec.bogus\\""']
    status, body, _ = await http.call("POST", f"{http.widgets}?fieldValidation=Strict", widget("w2", bogus=1))
    assert status == 400 and body["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.bogus"'
    )
    _, obj, _ = await http.merge(f"{http.widgets}/w1/status", {"status": {"undeclared": 1, "natIPs": ["1.1.1.1"]}})
    assert obj["status"] == {"natIPs": ["1.1.1.1"]}  # status writes are pruned too
