"""``runnet demo`` deploys its Cloud Run services as ``gcloud run deploy --image`` does, gcloud or not."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from runnet import demo
from runnet.emulator.gcp import GCPEmulator, gcloud_config, gcloud_run
from tests.support.gcloud import GCLOUD, Gcloud

P, R = "demo-proj", "asia-northeast1"
IMAGE = demo.IMAGE


def created_body(gcp: GCPEmulator, name: str) -> dict[str, Any]:
    [entry] = [
        e
        for e in gcp.log.snapshot()
        if e.method_id == "run.namespaces.services.create" and e.request_body["metadata"]["name"] == name
    ]
    body = copy.deepcopy(entry.request_body)
    body["metadata"]["name"] = "NAME"
    body["spec"]["template"]["metadata"]["labels"]["client.knative.dev/nonce"] = "NONCE"
    return body  # type: ignore[no-any-return]


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed (needs the Cloud SDK)")
@pytest.mark.timeout(300)
def test_the_demo_sends_what_gcloud_sends(gcp: GCPEmulator, tmp_path: Path) -> None:
    gcloud = Gcloud(gcp.base_url, tmp_path / "gcloud", project=P)
    gcloud(gcloud_run.command("by-gcloud", IMAGE, project=P, region=R, ingress="internal").removeprefix("gcloud "))
    gcloud_run.deploy(gcp.base_url, "by-python", IMAGE, project=P, region=R, ingress="internal")
    assert created_body(gcp, "by-python") == created_body(gcp, "by-gcloud")
    by_gcloud, by_python = (
        gcp.store.get(f"projects/{P}/locations/{R}/services/{name}") for name in ("by-gcloud", "by-python")
    )
    assert by_gcloud is not None and by_python is not None
    assert by_python["ingress"] == by_gcloud["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert by_python["template"]["containers"] == by_gcloud["template"]["containers"]
    shown = gcloud.value(f"run services describe by-python --region={R}", "status.url")
    assert shown == gcloud_run.describe(gcp.base_url, "by-python", project=P, region=R)["status"]["url"]


def test_a_redeploy_replaces_the_service_and_a_failed_one_says_why(gcp: GCPEmulator) -> None:
    first = gcloud_run.deploy(gcp.base_url, "hello", IMAGE, project=P, region=R)
    again = gcloud_run.deploy(gcp.base_url, "hello", "gcr.io/cloudrun/placeholder", project=P, region=R)
    assert (first["metadata"]["generation"], again["metadata"]["generation"]) == (1, 2)
    assert again["status"]["latestReadyRevisionName"].startswith("hello-00002-")
    assert gcloud_run.url(again) == f"https://hello-{again['metadata']['namespace']}.{R}.run.app"
    body = gcloud_run.knative("broken", IMAGE, project=P)
    body["spec"]["template"]["metadata"]["annotations"]["run.googleapis.com/network-interfaces"] = (
        '[{"network": "no-such-vpc"}]'
    )
    services = gcloud_run.services_url(P, R)
    session = gcloud_run.session(gcp.base_url)
    assert session.post(services, json=body, timeout=10).status_code == 200
    with pytest.raises(RuntimeError, match=r"Deployment failed: .*VPC network .* does not exist"):
        gcloud_run.wait_ready(session, f"{services}/broken", 1, timeout=10)


@pytest.mark.timeout(300)
async def test_runnet_demo_deploys_with_gcloud_calls_and_shows_runnets_changes() -> None:
    said: list[str] = []
    await demo.run_demo(said.append, latency=0.0)
    text = "\n".join(said)
    for project, name in ((demo.EGRESS_PROJECT, "direct-vpc-egress"), (demo.PRODUCER, "hello-service")):
        assert f"$ {gcloud_run.command(name, IMAGE, project=project, region=R)}" in said
        assert f"Service [{name}] revision [{name}-00001-" in text
    assert '[{"network": "vpc-cloud-run", "subnetwork": "subnet-cloud-run"}]' in said  # the EgressGateway's doing
    assert said[-1] == "internal"  # the PSCExport narrowed hello-service's ingress


def test_the_readme_gives_the_settings_the_tests_use() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for line in gcloud_config.commands("http://127.0.0.1:8085"):
        assert f"\n{line}\n" in readme, line
