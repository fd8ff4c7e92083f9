"""The conformance layer for the APIs gcloud's recipes added (issue 13): Cloud Run v1 and the others."""

from __future__ import annotations

from typing import Any

import pytest

from runnet.emulator.gcp import GCPEmulator
from runnet.emulator.gcp.request_log import LogEntry
from tests.emulator.test_discovery_schema import SERVICE, mutated
from tests.support import conformance


@pytest.mark.parametrize(
    ("api", "method_id"),
    [
        # What gcloud calls for `gcloud run deploy|services ...` (Cloud Run Admin v1), `gcloud projects
        # describe` and `gcloud services enable`, and the firewall and subnet recipes (issue 13).
        *(("run.v1", f"run.namespaces.services.{m}") for m in ("create", "get", "list", "replaceService", "delete")),
        *(
            ("run.v1", f"run.projects.locations.services.{m}")
            for m in ("getIamPolicy", "setIamPolicy", "testIamPermissions")
        ),
        ("cloudresourcemanager", "cloudresourcemanager.projects.get"),
        *(("serviceusage", f"serviceusage.services.{m}") for m in ("get", "list", "enable", "batchEnable")),
        ("serviceusage", "serviceusage.operations.get"),
        *(("compute", f"compute.firewalls.{m}") for m in ("insert", "get", "list", "patch", "delete")),
        ("compute", "compute.subnetworks.patch"),
        # What google-auth's impersonated credentials call (issue 9).
        ("iamcredentials", "iamcredentials.projects.serviceAccounts.generateAccessToken"),
    ],
)
def test_methods_gcloud_recipes_call_are_served(api: str, method_id: str) -> None:
    assert (api, method_id) in {(route.api, route.method_id) for route in GCPEmulator().routes}


KNATIVE: dict[str, Any] = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Service",
    "metadata": {
        "name": "hello",
        "namespace": "123456789012",
        "selfLink": "/apis/serving.knative.dev/v1/namespaces/123456789012/services/hello",
        "uid": "6a0f7f0c-2f55-4d4e-8d5f-0c7b8e0b7d8e",
        "resourceVersion": "AAYE",
        "generation": 1,
        "creationTimestamp": "2024-04-01T12:34:56.123456Z",
        "labels": {"cloud.googleapis.com/location": "asia-northeast1"},
        "annotations": {"run.googleapis.com/ingress": "internal"},
    },
    "spec": {
        "template": {
            "metadata": {"annotations": {"run.googleapis.com/network-interfaces": '[{"network": "vpc"}]'}},
            "spec": {"containers": [{"image": "us-docker.pkg.dev/cloudrun/container/hello"}]},
        }
    },
    "status": {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True"}],
        "url": "https://hello-abc-an.a.run.app",
        "latestReadyRevisionName": "hello-00001-abc",
    },
}


def v1_entry(method_id: str, body: Any) -> LogEntry:
    return LogEntry("GET", "/x", {}, 200, method_id, "", False, "run.v1", None, body)


def v1_problems(body: dict[str, Any]) -> list[str]:
    return conformance.entry_problems(v1_entry("run.namespaces.services.get", body))


def test_a_valid_knative_service_passes() -> None:
    assert v1_problems(KNATIVE) == []


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("metadata.generation", "1", "$.metadata.generation: expected an integer"),  # int32 in v1
        ("metadata.annotations", {"run.googleapis.com/ingress": 1}, "expected a string"),
        ("metadata.namespace", "my-project", "answers with the project number"),
        ("metadata.labels", {}, "no 'cloud.googleapis.com/location'"),
        ("metadata.uid", ..., "missing 'uid'"),
        ("status.conditions", [{"type": "Ready", "status": "Yes"}], "no Ready condition"),
        ("status.url", ..., "Ready without 'url'"),
        ("status.observedGeneration", 0, "differs from metadata.generation"),
        ("status.latestReadyRevision", "x", "unknown field"),  # the v2 name, not v1's
        ("spec.template.metadata.annotations", {"run.googleapis.com/network-interfaces": "vpc"}, "is not JSON"),
        ("kind", "Revision", "apiVersion/kind"),
    ],
)
def test_a_bad_knative_service_fails(dotted: str, value: Any, expected: str) -> None:
    problems = v1_problems(mutated(KNATIVE, dotted, value))
    assert any(expected in p for p in problems), problems


def test_method_ids_shared_by_run_v1_and_v2_are_checked_against_their_own_document() -> None:
    policy = v1_entry("run.projects.locations.services.getIamPolicy", {"etag": "ACAB"})
    assert conformance.entry_problems(policy) == []
    v2_service_as_v1 = v1_entry("run.projects.locations.services.get", SERVICE)
    assert any("unknown field" in p for p in conformance.entry_problems(v2_service_as_v1))


def entry(api: str, method_id: str, body: Any) -> LogEntry:
    return LogEntry("GET", "/x", {}, 200, method_id, "", False, api, None, body)  # type: ignore[arg-type]


def test_projects_and_service_usage_answers_are_checked() -> None:
    project = {"projectId": "p-123", "projectNumber": "1", "lifecycleState": "ACTIVE", "name": "p-123"}
    problems = conformance.entry_problems(entry("cloudresourcemanager", "cloudresourcemanager.projects.get", project))
    assert problems == ["$: missing output field 'createTime' (Project)"]
    done = {"name": "operations/x", "done": True}
    problems = conformance.entry_problems(entry("serviceusage", "serviceusage.operations.get", done))
    assert problems == ["$: a done operation has exactly one of error/response, this one has []"]
    bad_state = {"name": "projects/1/services/run.googleapis.com", "parent": "projects/1", "config": {}, "state": "ON"}
    problems = conformance.entry_problems(entry("serviceusage", "serviceusage.services.get", bad_state))
    assert any("'ON' is not one of the enum values" in p for p in problems), problems


def test_iam_credentials_answers_are_checked() -> None:
    method_id = "iamcredentials.projects.serviceAccounts.generateAccessToken"
    good = {"accessToken": "ya29.x", "expireTime": "2026-01-01T01:00:00Z"}
    assert conformance.entry_problems(entry("iamcredentials", method_id, good)) == []
    problems = conformance.entry_problems(entry("iamcredentials", method_id, {"accessToken": "ya29.x", "token": "t"}))
    assert any("missing output field 'expireTime'" in p for p in problems), problems
    assert any("unknown field" in p for p in problems), problems
