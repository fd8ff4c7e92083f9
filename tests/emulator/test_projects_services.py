"""Cloud Resource Manager ``projects.get`` and Service Usage, through google-api-python-client.

A project id maps to one stable number, the number Cloud Run uses in default service accounts;
Service Usage reports the emulator's APIs as enabled, records others, and refuses what a source
deploy needs with the sentence ``gcloud run deploy --source`` prints.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from runnet.emulator.gcp import GCPEmulator, ids
from runnet.emulator.gcp.service_usage import NO_SOURCE_BUILD, NOOP
from runnet.gcp.clients import Clients
from tests.emulator.test_run import make
from tests.support.api_clients import resource_manager, service_usage

PROJECT = "demo-project"  # the project tests.emulator.test_run deploys into


def test_a_project_number_is_stable_and_is_the_default_service_accounts(gcp: GCPEmulator, clients: Clients) -> None:
    project = resource_manager(gcp).projects().get(projectId=PROJECT).execute()
    assert project == {
        "projectNumber": ids.project_number(PROJECT),
        "projectId": PROJECT,
        "lifecycleState": "ACTIVE",
        "name": PROJECT,
        "createTime": project["createTime"],
    }
    account = make(clients).template.service_account
    assert account == f"{project['projectNumber']}-compute@developer.gserviceaccount.com"
    by_number = resource_manager(gcp).projects().get(projectId=project["projectNumber"]).execute()
    assert by_number["projectId"] == PROJECT
    again = resource_manager(gcp).projects().get(projectId="consumer-project").execute()
    assert again["projectNumber"] == ids.project_number("consumer-project") != project["projectNumber"]


@pytest.mark.parametrize("name", ["X", "Bad_Project", "999999999999"])
def test_a_project_the_caller_cannot_see_is_403(gcp: GCPEmulator, name: str) -> None:
    with pytest.raises(HttpError) as denied:
        resource_manager(gcp).projects().get(projectId=name).execute()
    assert denied.value.resp.status == 403 and "does not have permission" in str(denied.value)


def services(gcp: GCPEmulator) -> Any:
    return service_usage(gcp).services()


def test_the_emulators_apis_are_enabled_and_enabling_them_is_a_done_no_op(gcp: GCPEmulator) -> None:
    run = services(gcp).get(name=f"projects/{PROJECT}/services/run.googleapis.com").execute()
    number = ids.project_number(PROJECT)
    assert run == {
        "name": f"projects/{number}/services/run.googleapis.com",
        "parent": f"projects/{number}",
        "config": {"name": "run.googleapis.com", "title": "Cloud Run Admin API"},
        "state": "ENABLED",
    }
    body = {"serviceIds": ["run.googleapis.com", "compute.googleapis.com"]}
    op = services(gcp).batchEnable(parent=f"projects/{PROJECT}", body=body).execute()
    assert (op["name"], op["done"]) == (NOOP, True)
    assert [s["state"] for s in op["response"]["services"]] == ["ENABLED", "ENABLED"]


def test_enabling_another_service_takes_an_operation(gcp: GCPEmulator) -> None:
    name = f"projects/{PROJECT}/services/pubsub.googleapis.com"
    assert services(gcp).get(name=name).execute()["state"] == "DISABLED"
    op = services(gcp).enable(name=name, body={}).execute()
    assert "done" not in op and op["name"].startswith(f"operations/acat.p2-{ids.project_number(PROJECT)}-")
    deadline = time.monotonic() + 5
    while not (op := service_usage(gcp).operations().get(name=op["name"]).execute()).get("done"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert op["response"]["service"]["state"] == "ENABLED"
    listed = services(gcp).list(parent=f"projects/{PROJECT}", filter="state:ENABLED").execute()
    assert "pubsub.googleapis.com" in [s["config"]["name"] for s in listed["services"]]
    assert "pubsub.googleapis.com" not in str(services(gcp).list(parent="projects/other-project").execute())


@pytest.mark.parametrize("service", ["cloudbuild.googleapis.com", "artifactregistry.googleapis.com"])
def test_what_a_source_deploy_needs_is_refused_with_one_sentence(gcp: GCPEmulator, service: str) -> None:
    body = {"serviceIds": [service, "run.googleapis.com"]}
    with pytest.raises(HttpError) as refused:
        services(gcp).batchEnable(parent=f"projects/{PROJECT}", body=body).execute()
    assert refused.value.resp.status == 400 and NO_SOURCE_BUILD in str(refused.value)
    assert "deploy an image instead" in NO_SOURCE_BUILD and "\n" not in NO_SOURCE_BUILD
    state = services(gcp).get(name=f"projects/{PROJECT}/services/{service}").execute()["state"]
    assert state == "DISABLED"
