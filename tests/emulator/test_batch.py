"""The Compute batch endpoint (``POST /batch/compute/v1``): google-api-python-client's batch over HTTP.

Each part is served like a direct call: it is logged (and checked against the discovery schema
by the ``gcp`` fixture), IAM and faults apply to it alone, and its response comes back in the
part whose Content-ID echoes the request's, as Google's batch endpoints answer.
"""

from __future__ import annotations

from typing import Any

import httplib2
import pytest
import requests
from googleapiclient import discovery as api_discovery
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from runnet.emulator.gcp import EmulatorConfig, Fault, GCPEmulator
from runnet.emulator.gcp.batch import MAX_PARTS

P, R = "batch-proj", "europe-west1"
Results = dict[str, tuple[Any, HttpError | None]]


def compute(gcp: GCPEmulator) -> Any:
    return api_discovery.build(
        "compute",
        "v1",
        http=httplib2.Http(),
        client_options={"api_endpoint": f"{gcp.base_url}/compute/v1/"},
        static_discovery=True,
    )


def run_batch(gcp: GCPEmulator, requests_by_id: dict[str, Any]) -> Results:
    """Execute one batch; the client builds its URI from the document's rootUrl, so it is given here."""
    results: Results = {}

    def collect(request_id: str, response: Any, error: HttpError | None) -> None:
        results[request_id] = (response, error)

    batch = BatchHttpRequest(callback=collect, batch_uri=f"{gcp.base_url}/batch/compute/v1")
    for request_id, request in requests_by_id.items():
        batch.add(request, request_id=request_id)
    batch.execute(http=httplib2.Http())
    return results


def test_a_batch_creates_and_deletes_several_addresses(gcp: GCPEmulator) -> None:
    api = compute(gcp)
    inserts = {name: api.addresses().insert(project=P, region=R, body={"name": name}) for name in ("ip-a", "ip-b")}
    created = run_batch(gcp, inserts)
    assert {name: (op["operationType"], op["status"], error) for name, (op, error) in created.items()} == {
        "ip-a": ("insert", "DONE", None),
        "ip-b": ("insert", "DONE", None),
    }
    listed = api.addresses().list(project=P, region=R).execute(http=httplib2.Http())
    assert [a["name"] for a in listed["items"]] == ["ip-a", "ip-b"]
    deletes = {name: api.addresses().delete(project=P, region=R, address=name) for name in ("ip-a", "ip-b")}
    assert all(error is None for _, error in run_batch(gcp, deletes).values())
    assert "items" not in api.addresses().list(project=P, region=R).execute(http=httplib2.Http())
    parts = [e for e in gcp.log.snapshot() if e.batched]
    assert [e.method_id for e in parts] == ["compute.addresses.insert"] * 2 + ["compute.addresses.delete"] * 2


def test_each_part_fails_on_its_own(gcp: GCPEmulator) -> None:
    api = compute(gcp)
    results = run_batch(
        gcp,
        {
            "good": api.addresses().insert(project=P, region=R, body={"name": "ip-a"}),
            "bad-name": api.addresses().insert(project=P, region=R, body={"name": "Not_A_Name"}),
            "missing": api.addresses().get(project=P, region=R, address="nope"),
        },
    )
    assert results["good"][1] is None
    bad, missing = results["bad-name"][1], results["missing"][1]
    assert bad is not None and bad.resp.status == 400 and "resource.name" in str(bad)
    assert missing is not None and missing.resp.status == 404
    assert f"projects/{P}/regions/{R}/addresses/nope' was not found" in str(missing)


@pytest.mark.parametrize(
    "gcp_config",
    [EmulatorConfig(seed=1, faults=[Fault("compute.addresses.create", 1.0, "503", times=1)])],
)
def test_faults_and_permissions_apply_to_each_part(gcp: GCPEmulator) -> None:
    api = compute(gcp)
    results = run_batch(gcp, {n: api.addresses().insert(project=P, region=R, body={"name": n}) for n in ("a1", "a2")})
    first, second = results["a1"][1], results["a2"][1]
    assert first is not None and first.resp.status == 503  # the one injected fault hits one part only
    assert second is None
    gcp.config.allowed_permissions = {"compute.addresses.get"}
    denied = run_batch(gcp, {"x": api.addresses().delete(project=P, region=R, address="a2")})["x"][1]
    assert denied is not None and denied.resp.status == 403 and "compute.addresses.delete" in str(denied)


def multipart(*parts: str, boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
    return body.encode(), {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}


def part(request_line: str, body: str = "", content_id: str = "<abc+1>") -> str:
    headers = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        headers += f"Content-ID: {content_id}\r\n"
    inner = f"{request_line} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{body}"
    return f"{headers}\r\n{inner}"


def test_the_response_echoes_content_ids_with_a_response_prefix(gcp: GCPEmulator) -> None:
    body, headers = multipart(
        part(f"GET /compute/v1/projects/{P}/global/networks?alt=json", content_id="<uuid-1+0>"),
        part(f"GET /compute/v1/projects/{P}/global/networks/nope", content_id="<uuid-1+1>"),
    )
    response = requests.post(f"{gcp.base_url}/batch/compute/v1", data=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batch_")
    text = response.text
    assert text.index("Content-ID: <response-uuid-1+0>") < text.index("HTTP/1.1 200 OK")
    assert text.index("Content-ID: <response-uuid-1+1>") < text.index("HTTP/1.1 404 Not Found")
    assert '"kind":"compute#networkList"' in text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{}", "Content-Type must be multipart/mixed"),
        (multipart(part("GET /compute/v1/x").replace("application/http", "text/plain")), "application/http"),
        (multipart(part("BROKEN")), "invalid request line"),
        (multipart(*[part(f"GET /compute/v1/projects/{P}/global/networks")] * (MAX_PARTS + 1)), "at most 1000"),
    ],
)
def test_a_malformed_batch_is_one_400(gcp: GCPEmulator, payload: Any, message: str) -> None:
    body, headers = payload if isinstance(payload, tuple) else (payload, {"Content-Type": "application/json"})
    response = requests.post(f"{gcp.base_url}/batch/compute/v1", data=body, headers=headers, timeout=30)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert gcp.log.snapshot() == []  # nothing inside was served
