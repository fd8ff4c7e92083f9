"""``runnet emulator kube``: prints its URL when ready, loads CRDs, writes a kubeconfig, stops on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.kube.conftest import CRDS


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    runnet = Path(sys.executable).with_name("runnet")
    kubeconfig = tmp_path / "kubeconfig"
    command = [str(runnet), "emulator", "kube", "--port", "0", "--crds", str(CRDS), "--kubeconfig", str(kubeconfig)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/apis/test.runnet.dev/v1", timeout=5) as rsp:
            names = [r["name"] for r in json.load(rsp)["resources"]]
        assert names == ["widgets", "widgets/status"]
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
