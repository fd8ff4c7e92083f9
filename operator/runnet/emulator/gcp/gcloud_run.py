"""``gcloud run deploy NAME --image=IMAGE``, as the REST calls gcloud makes: the demo without gcloud.

gcloud 528 (``--log-http``) does this for a new service: GET the service (404), POST a Knative
Service to ``/apis/serving.knative.dev/v1/namespaces/{project}/services`` on the regional endpoint
``{region}-run.googleapis.com``, with its client annotations and a nonce label, then GET it
until the Ready condition is True or False. An existing service is replaced with a PUT of the
fetched object (its ``resourceVersion`` guards against concurrent writes). The calls go through
the emulator as an HTTP proxy, as gcloud's do with ``gcloud_config``'s settings; a test checks
that this deploys the same service as gcloud itself.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from typing import Any

import requests

INGRESS = ("all", "internal", "internal-and-cloud-load-balancing")
GCLOUD_VERSION = "528.0.0"


def command(name: str, image: str, *, project: str, region: str, ingress: str = "") -> str:
    """The gcloud command these calls stand for (a private service: no IAM call, as gcloud makes none)."""
    flags = f" --ingress={ingress}" if ingress else ""
    return (
        f"gcloud run deploy {name} --image={image} --region={region} --project={project} "
        f"--no-allow-unauthenticated{flags}"
    )


def knative(name: str, image: str, *, project: str, ingress: str = "") -> dict[str, Any]:
    """The body gcloud POSTs for a new service (its client annotations, the CPU boost it sets)."""
    client = {"run.googleapis.com/client-name": "gcloud", "run.googleapis.com/client-version": GCLOUD_VERSION}
    annotations = {**client, **({"run.googleapis.com/ingress": ingress} if ingress else {})}
    nonce = "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"annotations": annotations, "labels": {}, "name": name, "namespace": project},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {**client, "run.googleapis.com/startup-cpu-boost": "True"},
                    "labels": {"client.knative.dev/nonce": nonce},
                },
                "spec": {"containers": [{"image": image, "name": ""}], "nodeSelector": {}},
            }
        },
        "status": {"address": {}},  # gcloud sends its empty message fields too
    }


def deploy(
    base_url: str, name: str, image: str, *, project: str, region: str, ingress: str = "", timeout: float = 60
) -> dict[str, Any]:
    """Deploy and wait until Ready; returns the v1 Service (RuntimeError with Cloud Run's reason if it fails)."""
    if ingress not in ("", *INGRESS):
        raise ValueError(f"ingress must be one of {', '.join(INGRESS)}")
    http = session(base_url)
    services = services_url(project, region)
    found = http.get(f"{services}/{name}", params={"alt": "json"}, timeout=30)
    body = knative(name, image, project=project, ingress=ingress)
    if found.status_code == 404:
        written = http.post(services, params={"alt": "json"}, json=body, timeout=30)
    else:
        found.raise_for_status()
        current = found.json()
        current["spec"]["template"] = body["spec"]["template"]
        current["metadata"]["annotations"].update(body["metadata"]["annotations"])
        written = http.put(f"{services}/{name}", params={"alt": "json"}, json=current, timeout=30)
    written.raise_for_status()
    return wait_ready(http, f"{services}/{name}", written.json()["metadata"]["generation"], timeout)


def describe(base_url: str, name: str, *, project: str, region: str) -> dict[str, Any]:
    """``gcloud run services describe NAME``: the v1 Service, from the regional endpoint."""
    http = session(base_url)
    found = http.get(f"{services_url(project, region)}/{name}", params={"alt": "json"}, timeout=30)
    found.raise_for_status()
    return found.json()  # type: ignore[no-any-return]


def url(service: dict[str, Any]) -> str:
    """The URL gcloud prints after a deploy: the first of ``run.googleapis.com/urls``, else status.url."""
    urls = json.loads(service["metadata"].get("annotations", {}).get("run.googleapis.com/urls", "[]"))
    return str(urls[0] if urls else service["status"]["url"])


def session(base_url: str) -> requests.Session:
    """HTTP through the emulator as a proxy, as gcloud's calls go (nothing else is used)."""
    http = requests.Session()
    http.trust_env = False
    http.proxies = {"http": base_url}
    return http


def services_url(project: str, region: str) -> str:
    """The v1 services collection on the region's endpoint."""
    return f"http://{region}-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/{project}/services"


def wait_ready(http: requests.Session, url: str, generation: int, timeout: float) -> dict[str, Any]:
    """What gcloud's condition poller does: wait for a fresh, terminal Ready condition."""
    deadline = time.monotonic() + timeout
    while True:
        service: dict[str, Any] = http.get(url, params={"alt": "json"}, timeout=30).json()
        status = service.get("status", {})
        ready: dict[str, Any] = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        fresh = status.get("observedGeneration", generation) == generation
        if fresh and ready.get("status") == "True":
            return service
        if fresh and ready.get("status") == "False":
            raise RuntimeError(f"Deployment failed: {ready.get('message', '')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not Ready after {timeout:.0f} s: {ready}")
        time.sleep(0.1)
