"""runnet's clients acting as a ProjectBinding's service account: the token is fetched once and reused by every
client of that identity, and fetched again before it expires (google-auth refreshes a token that has less than
its refresh threshold left), never after a call was refused for it."""

from __future__ import annotations

import time

import pytest
from google.cloud import compute_v1

from runnet.emulator.gcp import EmulatorConfig, EmulatorThread, GCPEmulator
from runnet.emulator.gcp.clock import ManualClock
from runnet.emulator.gcp.iam import DEFAULT_PRINCIPAL, IamPolicy
from runnet.gcp.clients import Clients, GCPSettings

PROJECT = "team-a-prod"
ACCOUNT = f"runnet-team-a@{PROJECT}.iam.gserviceaccount.com"


def policy() -> IamPolicy:
    return IamPolicy.from_mapping(
        {
            DEFAULT_PRINCIPAL: {f"projects/-/serviceAccounts/{ACCOUNT}": ["roles/iam.serviceAccountTokenCreator"]},
            f"serviceAccount:{ACCOUNT}": {PROJECT: ["compute.networks.list", "compute.subnetworks.list"]},
        }
    )


def token_requests(gcp: GCPEmulator) -> int:
    return sum(1 for e in gcp.log.snapshot() if e.method_id.startswith("iamcredentials"))


def list_twice(clients: Clients) -> None:
    list(clients.networks.list(project=PROJECT))
    list(clients.subnetworks.list(compute_v1.ListSubnetworksRequest(project=PROJECT, region="us-central1")))


def test_one_token_serves_every_client_of_the_identity() -> None:
    with EmulatorThread(EmulatorConfig(iam_policy=policy())).running() as gcp:
        clients = Clients(GCPSettings(endpoint=gcp.base_url, impersonate=ACCOUNT))
        for _ in range(3):
            list_twice(clients)
        assert token_requests(gcp) == 1
        made = [e for e in gcp.log.snapshot() if e.project == PROJECT and not e.method_id.startswith("iamcred")]
        assert len(made) == 6 and {e.principal for e in made} == {f"serviceAccount:{ACCOUNT}"}


@pytest.mark.parametrize("left", [100.0, 3000.0])
def test_a_token_close_to_expiry_is_replaced_before_it_is_used(left: float) -> None:
    """The emulator's clock runs behind, so the token it issues for an hour has `left` seconds of real time left:
    with 100 s (under google-auth's refresh threshold of 3 min 45 s) each call gets a fresh token first; with
    3000 s the token is reused. No call is ever refused."""
    clock = ManualClock(start=time.time() - (3600 - left))
    with EmulatorThread(EmulatorConfig(iam_policy=policy(), clock=clock)).running() as gcp:
        clients = Clients(GCPSettings(endpoint=gcp.base_url, impersonate=ACCOUNT))
        list_twice(clients)
        list_twice(clients)
        assert token_requests(gcp) == (4 if left < 225 else 1)
        assert all(e.status < 400 for e in gcp.log.snapshot())
