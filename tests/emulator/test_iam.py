"""IAM in the emulator (issue 9): IAM Credentials generateAccessToken, principals, grants per project.

google-auth's ``impersonated_credentials`` gets its tokens from the emulator over HTTP
(``tests/support/iam.py``); the official clients then call with them, and the emulator's log
says who made each call.
"""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httplib2
import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.cloud import compute_v1 as c
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.http import BatchHttpRequest

from runnet.emulator.gcp import EmulatorConfig, EmulatorThread, GCPEmulator
from runnet.emulator.gcp.clock import ManualClock
from runnet.emulator.gcp.iam import DEFAULT_PRINCIPAL, IamPolicy
from tests.emulator.test_batch import compute as discovery_compute
from tests.support import iam

REPO = Path(__file__).resolve().parents[2]
ROLE_FILE = REPO / "deploy" / "gcp" / "runnet-operator-role.yaml"
TEAM_A, TEAM_B = "team-a-prod", "team-b-prod"
SA_A = f"runnet-team-a@{TEAM_A}.iam.gserviceaccount.com"
SA_B = f"runnet-team-b@{TEAM_B}.iam.gserviceaccount.com"
OPERATOR_ROLE = f"projects/{TEAM_A}/roles/runnetOperator"
VPC = c.Network(name="vpc", auto_create_subnetworks=False)
DENIED_TOKEN = "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."

POLICY = f"""
roles:
  {OPERATOR_ROLE}: {ROLE_FILE}
{DEFAULT_PRINCIPAL}:
  projects/-/serviceAccounts/{SA_A}: [roles/iam.serviceAccountTokenCreator]
serviceAccount:{SA_A}:
  {TEAM_A}: [{OPERATOR_ROLE}]
serviceAccount:{SA_B}:
  {TEAM_B}: [compute.networks.get, compute.networks.create]
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "iam-policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def gcp_config(policy_file: Path) -> EmulatorConfig:
    return EmulatorConfig(seed=1, iam_policy=IamPolicy.load(policy_file))


def networks(gcp: GCPEmulator, credentials: Any) -> c.NetworksClient:
    return iam.client(c.NetworksClient, gcp, credentials)


def generate(gcp: GCPEmulator, email: str, token: str = "operator", **body: Any) -> requests.Response:
    return requests.post(
        iam.endpoint(gcp, email),
        json={"scope": [iam.CLOUD_PLATFORM], **body},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_impersonated_credentials_get_a_token_and_calls_are_made_as_the_service_account(gcp: GCPEmulator) -> None:
    creds = iam.impersonated(gcp, SA_A, lifetime=1200)
    creds.refresh(Request())
    assert creds.token.startswith("ya29.") and creds.valid
    token_call = gcp.log.snapshot()[-1]
    assert token_call.method_id == "iamcredentials.projects.serviceAccounts.generateAccessToken"
    assert (token_call.status, token_call.principal, token_call.project) == (200, DEFAULT_PRINCIPAL, TEAM_A)
    assert token_call.request_body == {"delegates": None, "scope": [iam.CLOUD_PLATFORM], "lifetime": "1200s"}
    assert 1199 <= calendar.timegm(creds.expiry.timetuple()) - token_call.at <= 1200  # google-auth: naive UTC
    client = networks(gcp, creds)
    client.insert(project=TEAM_A, network_resource=VPC).result(timeout=10)
    assert client.get(project=TEAM_A, network="vpc").name == "vpc"
    calls = [e for e in gcp.log.snapshot() if e.api == "compute"]
    assert [(e.method_id, e.principal, e.status) for e in calls] == [
        ("compute.networks.insert", f"serviceAccount:{SA_A}", 200),
        ("compute.networks.get", f"serviceAccount:{SA_A}", 200),
    ]
    # The role in the policy file is the operator's: compute.firewalls.list is not in it.
    firewalls = iam.client(c.FirewallsClient, gcp, creds)
    with pytest.raises(gexc.Forbidden, match=r"Required 'compute\.firewalls\.list' permission"):
        list(firewalls.list(project=TEAM_A))
    # Nor does it hold anything in another team's project.
    with pytest.raises(gexc.Forbidden, match=r"Required 'compute\.networks\.get' permission"):
        client.get(project=TEAM_B, network="vpc")


def test_token_lifetime_and_expiry(gcp: GCPEmulator) -> None:
    answer = generate(gcp, SA_A, lifetime="600s")
    assert answer.status_code == 200, answer.text
    token, expire_time = answer.json()["accessToken"], answer.json()["expireTime"]
    assert expire_time.endswith("Z") and "." not in expire_time  # whole seconds: google-auth's format
    default = generate(gcp, SA_A).json()["expireTime"]
    assert default > expire_time  # 3600 s unless asked
    too_long = generate(gcp, SA_A, lifetime="3601s")
    assert too_long.status_code == 400 and too_long.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert generate(gcp, SA_A, scope=[]).status_code == 400
    wrong_form = requests.post(
        f"{gcp.base_url}/v1/projects/{TEAM_A}/serviceAccounts/{SA_A}:generateAccessToken",
        json={"scope": [iam.CLOUD_PLATFORM]},
        timeout=10,
    )
    assert wrong_form.status_code == 400  # the '-' wildcard is required
    # The token stands for the service account on plain HTTP calls too.
    url = f"{gcp.base_url}/compute/v1/projects/{TEAM_A}/global/networks/vpc"
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 404
    assert gcp.log.snapshot()[-1].principal == f"serviceAccount:{SA_A}"


def test_an_expired_token_gets_401() -> None:
    clock = ManualClock()
    with EmulatorThread(EmulatorConfig(clock=clock)).running() as gcp:
        token = generate(gcp, SA_A, lifetime="60s").json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{gcp.base_url}/compute/v1/projects/{TEAM_A}/global/networks/vpc"
        clock.advance(59)
        assert requests.get(url, headers=headers, timeout=10).status_code == 404
        clock.advance(1)
        expired = requests.get(url, headers=headers, timeout=10)
        assert expired.status_code == 401
        error = expired.json()["error"]
        assert error["status"] == "UNAUTHENTICATED" and error["errors"][0]["reason"] == "authError"
        assert error["message"].startswith("Request had invalid authentication credentials.")
        services = f"{gcp.base_url}/v2/projects/{TEAM_A}/locations/us-central1/services"
        run = requests.get(services, headers=headers, timeout=10)
        assert run.status_code == 401 and run.json()["error"]["status"] == "UNAUTHENTICATED"
        assert gcp.log.snapshot()[-1].principal == ""  # refused before anyone is known


def test_impersonating_without_token_creator_is_refused_as_iam_does(gcp: GCPEmulator) -> None:
    creds = iam.impersonated(gcp, SA_B)  # the operator may impersonate SA_A only
    with pytest.raises(auth_exceptions.RefreshError) as err:
        creds.refresh(Request())
    message, body = err.value.args
    assert message == "Unable to acquire impersonated credentials"
    error = json.loads(body)["error"]
    assert (error["code"], error["status"], error["message"]) == (403, "PERMISSION_DENIED", DENIED_TOKEN)
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "iam.googleapis.com",
            "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
        }
    ]
    # Through an official client, the refresh error is what the caller sees: nothing reaches Compute.
    with pytest.raises(auth_exceptions.RefreshError, match="getAccessToken"):
        networks(gcp, iam.impersonated(gcp, SA_B)).get(project=TEAM_B, network="vpc")
    assert [e.api for e in gcp.log.snapshot()] == ["iamcredentials", "iamcredentials"]
    # A service account impersonating another needs the grant too (SA_A has none on SA_B).
    source = iam.impersonated(gcp, SA_A)
    with pytest.raises(auth_exceptions.RefreshError, match=r"denied on resource"):
        iam.impersonated(gcp, SA_B, source=source).refresh(Request())
    assert gcp.log.snapshot()[-1].principal == f"serviceAccount:{SA_A}"


def test_delegation_chain_needs_a_grant_on_each_link(tmp_path: Path) -> None:
    policy = IamPolicy.from_mapping(
        {
            DEFAULT_PRINCIPAL: {f"projects/-/serviceAccounts/{SA_A}": ["roles/iam.serviceAccountTokenCreator"]},
            f"serviceAccount:{SA_A}": {TEAM_B: ["iam.serviceAccounts.getAccessToken"]},
        }
    )
    with EmulatorThread(EmulatorConfig(iam_policy=policy)).running() as gcp:
        creds = iam.impersonated(gcp, SA_B, delegates=[f"projects/-/serviceAccounts/{SA_A}"])
        creds.refresh(Request())  # operator -> SA_A (implicitDelegation) -> SA_B (getAccessToken, via its project)
        url = f"{gcp.base_url}/compute/v1/projects/{TEAM_B}/global/networks"
        requests.get(url, headers={"Authorization": f"Bearer {creds.token}"}, timeout=10)
        assert gcp.log.snapshot()[-1].principal == f"serviceAccount:{SA_B}"
        policy.grants[f"serviceAccount:{SA_A}"].clear()
        refused = generate(gcp, SA_B, delegates=[f"projects/-/serviceAccounts/{SA_A}"])
        assert refused.status_code == 403 and refused.json()["error"]["message"] == DENIED_TOKEN


def test_calls_outside_the_grants_get_403_naming_the_permission(gcp: GCPEmulator) -> None:
    operator = networks(gcp, iam.operator_credentials())  # the default principal holds no Compute grant
    with pytest.raises(gexc.Forbidden, match=r"Required 'compute\.networks\.create' permission") as err:
        operator.insert(project=TEAM_A, network_resource=VPC)
    assert err.value.errors[0]["reason"] == "forbidden"
    team_b = networks(gcp, iam.impersonated(gcp_with_grant(gcp, SA_B), SA_B))
    team_b.insert(project=TEAM_B, network_resource=VPC).result(timeout=10)  # compute.networks.create in TEAM_B
    assert team_b.get(project=TEAM_B, network="vpc").name == "vpc"
    with pytest.raises(gexc.Forbidden, match=r"compute\.networks\.create"):
        team_b.insert(project=TEAM_A, network_resource=VPC)
    assert gcp.store.get(f"projects/{TEAM_A}/global/networks/vpc") is None


def gcp_with_grant(gcp: GCPEmulator, email: str) -> GCPEmulator:
    """Let the default principal impersonate ``email`` (a grant added to the running emulator's policy)."""
    assert gcp.config.iam_policy is not None
    gcp.config.iam_policy.grant(DEFAULT_PRINCIPAL, f"projects/-/serviceAccounts/{email}", ["roles/owner"])
    return gcp


def test_allow_permissions_is_what_the_default_principal_holds() -> None:
    config = EmulatorConfig(allowed_permissions={"compute.networks.get", "iam.serviceAccounts.getAccessToken"})
    with EmulatorThread(config).running() as gcp:
        url = f"{gcp.base_url}/compute/v1/projects/{TEAM_A}/global/networks/vpc"
        assert requests.get(url, timeout=10).status_code == 404
        assert requests.delete(url, timeout=10).status_code == 403
        token = generate(gcp, SA_A).json()["accessToken"]  # the default principal may impersonate anyone
        as_sa = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert as_sa.status_code == 403  # ... but the service account holds nothing
        assert "Required 'compute.networks.get' permission" in as_sa.json()["error"]["message"]


def test_test_iam_permissions_answers_for_the_caller(gcp: GCPEmulator) -> None:
    url = f"{gcp.base_url}/v2/projects/{TEAM_A}/locations/us-central1/services/hello:testIamPermissions"
    asked = {"permissions": ["run.services.get", "compute.networks.create", "compute.firewalls.list"]}
    creds = iam.impersonated(gcp, SA_A)
    creds.refresh(Request())
    held = requests.post(url, json=asked, headers={"Authorization": f"Bearer {creds.token}"}, timeout=10).json()
    assert held == {"permissions": ["run.services.get", "compute.networks.create"]}
    assert requests.post(url, json=asked, timeout=10).json() == {}


def test_batch_parts_are_made_as_the_batch_request_caller(gcp: GCPEmulator) -> None:
    creds = iam.impersonated(gcp, SA_A)
    creds.refresh(Request())
    api = discovery_compute(gcp)
    answers: dict[str, int] = {}

    def collect(request_id: str, response: Any, error: Any) -> None:
        answers[request_id] = error.resp.status if error is not None else 200

    batch = BatchHttpRequest(callback=collect, batch_uri=f"{gcp.base_url}/batch/compute/v1")
    batch.add(api.networks().get(project=TEAM_A, network="vpc"), request_id="a")
    batch.add(api.firewalls().list(project=TEAM_A), request_id="b")
    batch.execute(http=AuthorizedHttp(creds, http=httplib2.Http()))  # the token is on the batch request only
    assert answers == {"a": 404, "b": 403}  # compute.firewalls.list is not in the operator role
    parts = [e for e in gcp.log.snapshot() if e.batched]
    assert [e.principal for e in parts] == [f"serviceAccount:{SA_A}"] * 2


def test_policy_files(tmp_path: Path) -> None:
    role = tmp_path / "role.yaml"
    role.write_text("title: t\nincludedPermissions:\n- compute.routers.get\n- compute.routers.update\n")
    path = tmp_path / "policy.yaml"
    path.write_text(
        "roles:\n  projects/p/roles/r: role.yaml\n  projects/p/roles/l: [run.services.get]\n"
        "user:alice@example.com:\n  '*': [projects/p/roles/l]\n  p-project: [projects/p/roles/r, roles/run.invoker]\n"
    )
    policy = IamPolicy.load(path)  # role files are found beside the policy file
    assert policy.grants["user:alice@example.com"]["p-project"] == {
        "compute.routers.get",
        "compute.routers.update",
        "run.routes.invoke",
    }
    assert policy.holds("user:alice@example.com", "run.services.get", ["*", "any-project"])
    assert not policy.holds("user:alice@example.com", "compute.routers.get", ["*", "q-project"])
    assert IamPolicy.from_mapping({"user:a@b.c": {"p": ["roles/owner"]}}).holds("user:a@b.c", "x.y.z", ["p"])
    with pytest.raises(ValueError, match="unknown role 'roles/nope'"):
        IamPolicy.from_mapping({"user:a@b.c": {"p": ["roles/nope"]}})
    with pytest.raises(ValueError, match="must be TYPE:ID"):
        IamPolicy.from_mapping({"alice": {"p": ["x.y.z"]}})


def test_cli_iam_policy_quota_and_request_log(policy_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    runnet = Path(sys.executable).parent / "runnet"
    args = ["--iam-policy", str(policy_file), "--quota", "read=1", "--request-log", str(log)]
    proc = subprocess.Popen([str(runnet), "emulator", "gcp", "--port", "0", *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        token = requests.post(
            f"{base}/v1/projects/-/serviceAccounts/{SA_A}:generateAccessToken",
            json={"scope": [iam.CLOUD_PLATFORM]},
            timeout=10,
        ).json()["accessToken"]
        url = f"{base}/compute/v1/projects/{TEAM_A}/global/networks/vpc"
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(url, headers=headers, timeout=10).status_code == 404
        assert requests.get(url, headers=headers, timeout=10).status_code == 403  # read=1
        other = f"{base}/compute/v1/projects/{TEAM_B}/global/networks/vpc"
        assert requests.get(other, timeout=10).status_code == 403  # the default principal: no grant
        records = [json.loads(line) for line in log.read_text().splitlines()]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert [(r["principal"], r["method"], r["project"], r["status"]) for r in records] == [
        (DEFAULT_PRINCIPAL, "iamcredentials.projects.serviceAccounts.generateAccessToken", TEAM_A, 200),
        (f"serviceAccount:{SA_A}", "compute.networks.get", TEAM_A, 404),
        (f"serviceAccount:{SA_A}", "compute.networks.get", TEAM_A, 403),
        (DEFAULT_PRINCIPAL, "compute.networks.get", TEAM_B, 403),
    ]
