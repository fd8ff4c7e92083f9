"""`runnet demo`: the operator building the reference topologies against the two stand-ins.

Starts the GCP emulator (with the Cloud Run services the examples use) and the Kubernetes
stand-in, runs the operator in process, applies the examples, waits for Ready and prints what
`kubectl get` and gcloud show. With ``serve`` it keeps everything running for exploring by hand.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from runnet.emulator.gcp import EmulatorConfig, gcloud_config, gcloud_run
from runnet.emulator.stack import Stack
from runnet.runtime import OperatorSettings, run_operator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EGRESS_PROJECT, PRODUCER, REGION = "my-project", "producer-project", "asia-northeast1"
IMAGE = "us-docker.pkg.dev/cloudrun/container/hello"
RUN_ANNOTATIONS = {
    "spec.template.metadata": "run.googleapis.com/network-interfaces",
    "metadata": "run.googleapis.com/ingress",
}
"""What runnet changes on a service (through v2), as v1 annotations: Direct VPC egress, ingress."""

Say = Callable[[str], None]


def documents(name: str) -> list[dict[str, Any]]:
    path = EXAMPLES / name
    if not path.exists():
        raise SystemExit(f"{path} not found: run the demo from a runnet source checkout (make demo)")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def deploy(stack: Stack, project: str, name: str, say: Say) -> None:
    """A Cloud Run service as a user deploys it before using runnet: ``gcloud run deploy --image``.

    The calls are gcloud's own (Cloud Run Admin v1 on the regional endpoint), made from Python so
    that the demo needs no gcloud; runnet then reads and changes the service through v2.
    """
    say(f"$ {gcloud_run.command(name, IMAGE, project=project, region=REGION)}")
    service = gcloud_run.deploy(stack.gcp.base_url, name, IMAGE, project=project, region=REGION)
    revision = service["status"]["latestReadyRevisionName"]
    say(f"Service [{name}] revision [{revision}] has been deployed and is serving 100 percent of traffic.")
    say(f"Service URL: {gcloud_run.url(service)}")


def describe(stack: Stack, project: str, name: str, where: str, say: Say) -> None:
    """One annotation of the service as ``gcloud run services describe`` shows it (runnet changed it)."""
    shown = f"--format=\"value({where}.annotations['{RUN_ANNOTATIONS[where]}'])\""
    say(f"$ gcloud run services describe {name} --region={REGION} --project={project} {shown}")
    service = gcloud_run.describe(stack.gcp.base_url, name, project=project, region=REGION)
    metadata = service["spec"]["template"]["metadata"] if where.startswith("spec.") else service["metadata"]
    say(metadata.get("annotations", {}).get(RUN_ANNOTATIONS[where], ""))


async def run_demo(say: Say = print, *, serve: bool = False, latency: float = 0.2, metrics_port: int = 0) -> None:
    stack = Stack(EmulatorConfig(operation_latency=latency))
    await asyncio.to_thread(stack.start)
    say(f"GCP emulator:        {stack.gcp.base_url}  (operations take {latency:.1f} s)")
    say(f"Kubernetes stand-in: {stack.kube_url}  (KUBECONFIG={stack.kubeconfig})")
    say("\n== The Cloud Run services the examples use ==")
    await asyncio.to_thread(deploy, stack, EGRESS_PROJECT, "direct-vpc-egress", say)
    with_psc = (EXAMPLES / "psc-export.yaml").exists()
    if with_psc:
        await asyncio.to_thread(deploy, stack, PRODUCER, "hello-service", say)
    stop = asyncio.Event()
    settings = OperatorSettings(
        kubeconfig=str(stack.kubeconfig),
        gcp_endpoint=stack.gcp.base_url,
        resync_interval=30,
        metrics_port=metrics_port,
        metrics_host="127.0.0.1",
    )
    operator = asyncio.create_task(run_operator(settings, stop_flag=stop))
    try:
        await _bindings(stack, say)
        await _egress(stack, say)
        if with_psc:
            await _psc(stack, say)
        if serve:
            _explain(stack, say)
            if metrics_port:
                say(f"  curl -s http://127.0.0.1:{metrics_port}/metrics | grep ^runnet_")
            # The operator stops on SIGINT/SIGTERM; then everything else stops with it.
            await asyncio.wait([operator])
            _ignore_signals()
            say("stopping: operator, Kubernetes stand-in, GCP emulator")
    finally:
        stop.set()
        await asyncio.wait_for(operator, 30)
        await asyncio.to_thread(stack.stop)


def _ignore_signals() -> None:
    """While the stand-ins stop and the temporary directory goes, a second Ctrl-C (or SIGTERM) must not cut it short."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: None)


async def _apply_and_wait(stack: Stack, example: str, say: Say) -> None:
    for body in documents(example):
        say(f"$ kubectl apply -f examples/{example}   # {body['kind']} {body['metadata']['name']}")
        await asyncio.to_thread(stack.apply, body)
    for body in documents(example):
        await asyncio.to_thread(stack.wait_ready, body["kind"], body["metadata"]["name"], 120)


async def _bindings(stack: Stack, say: Say) -> None:
    say("\n== Which namespaces may manage which GCP projects (ProjectBinding) ==")
    for body in documents("project-bindings.yaml"):
        say(f"$ kubectl apply -f examples/project-bindings.yaml   # ProjectBinding {body['metadata']['name']}")
        await asyncio.to_thread(stack.apply, body)
    await asyncio.to_thread(stack.wait_ready, "ProjectBinding", EGRESS_PROJECT, 30)
    say("$ kubectl get projectbindings")
    say(stack.table("ProjectBinding"))


async def _egress(stack: Stack, say: Say) -> None:
    say("\n== Fixed egress IP for Cloud Run (EgressGateway) ==")
    await _apply_and_wait(stack, "egress-fixed-ip.yaml", say)
    say("$ kubectl get egressgateways")
    say(stack.table("EgressGateway"))
    say("$ gcloud compute addresses describe static-ip --region=asia-northeast1 --format='get(address)'")
    say(_gcloud(stack, ["compute", "addresses", "describe", "static-ip", f"--region={REGION}",
                        f"--project={EGRESS_PROJECT}", "--format=get(address)"])
        or stack.clients.addresses.get(project=EGRESS_PROJECT, region=REGION, address="static-ip").address)  # fmt: skip
    describe(stack, EGRESS_PROJECT, "direct-vpc-egress", "spec.template.metadata", say)


async def _psc(stack: Stack, say: Say) -> None:
    say("\n== Cloud Run published over Private Service Connect (PSCExport + PSCEndpoint) ==")
    await _apply_and_wait(stack, "psc-export.yaml", say)
    await _apply_and_wait(stack, "psc-endpoint.yaml", say)
    await asyncio.to_thread(_wait_accepted, stack)
    say("$ kubectl get pscexports")
    say(stack.table("PSCExport"))
    say("$ kubectl get pscendpoints")
    say(stack.table("PSCEndpoint"))
    export = stack.get("PSCExport", "hello") or {}
    say(f"attachment URI: {export.get('status', {}).get('serviceAttachment', '')}")
    describe(stack, PRODUCER, "hello-service", "metadata", say)


def _wait_accepted(stack: Stack, timeout: float = 15) -> None:
    """The endpoint's connection shows on the export's side too (the operator pokes the export)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (stack.get("PSCExport", "hello") or {}).get("status", {}).get("accepted", 0) >= 1:
            return
        time.sleep(0.1)
    raise TimeoutError("the PSCExport does not show the endpoint's ACCEPTED connection")


def _gcloud(stack: Stack, args: list[str]) -> str:
    """gcloud's own output when it is installed (empty otherwise)."""
    if not shutil.which("gcloud"):
        return ""
    done = subprocess.run(["gcloud", *args], env=stack.gcloud_env(), capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _explain(stack: Stack, say: Say) -> None:
    say("\nEverything keeps running; explore it by hand, Ctrl-C to stop:")
    say(f"  export KUBECONFIG={stack.kubeconfig}")
    say("  kubectl get egressgateways,pscexports,pscendpoints")
    say(f"  export CLOUDSDK_CONFIG={stack.workdir / 'gcloud'}")
    for line in gcloud_config.commands(stack.gcp.base_url):
        say(f"  {line}")
    say(f"  gcloud compute routers get-status router-cloud-run --region={REGION} --project={EGRESS_PROJECT}")
    say(f"  gcloud run services describe hello-service --region={REGION} --project={PRODUCER}")
