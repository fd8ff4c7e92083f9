"""`runnet run --log-format json --metrics-port N` as a subprocess: every line it prints is a JSON object, and the
port serves /metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from runnet.emulator.stack import Stack
from tests.e2e.test_metrics import free_port
from tests.operator.conftest import EXAMPLES, deploy_service

RUNNET = shutil.which("runnet", path=str(Path(sys.executable).parent)) or "runnet"


def metrics_text(port: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return str(response.read().decode())
        except urllib.error.URLError:
            assert time.monotonic() < deadline, "runnet run did not serve /metrics"
            time.sleep(0.1)


@pytest.mark.parametrize("stack", ["stand-in"], indirect=True)
def test_json_logs_and_metrics_port(stack: Stack, tmp_path: Path) -> None:
    deploy_service(stack.clients, "my-project", "asia-northeast1", "direct-vpc-egress")
    port = free_port()
    args = [RUNNET, "run", "--kubeconfig", str(stack.kubeconfig), "--gcp-endpoint", stack.gcp.base_url]
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    proc = subprocess.Popen(
        [*args, "--log-format", "json", "--metrics-port", str(port)],
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        stack.apply(yaml.safe_load((EXAMPLES / "egress-fixed-ip.yaml").read_text()))
        stack.wait_ready("EgressGateway", "fixed-ip")
        text = metrics_text(port)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        gateways = {"kind": "EgressGateway", "ready": "true"}
        assert [s.value for s in families["runnet_objects"].samples if s.labels == gateways] == [1.0]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    lines = out.read_text().splitlines() + err.read_text().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not a JSON line: {line!r}") from exc
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("serving Prometheus metrics") for r in records)
    handled = [r for r in records if r.get("namespace") == "default" and r.get("name") == "fixed-ip"]
    assert handled and {r["logger"] for r in handled} == {"kopf.objects"}, records
    assert handled[0]["object"]["kind"] == "EgressGateway"
