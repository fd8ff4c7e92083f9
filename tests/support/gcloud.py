"""The real gcloud CLI aimed at the GCP emulator, with a throwaway configuration directory.

Set up with the settings the README lists (``runnet.emulator.gcp.gcloud_config``: credentials
off, the emulator as gcloud's HTTP proxy, endpoint overrides for compute, run, projects and
services), so the tests exercise exactly what gcloud sends: ``?alt=json``, ``POST .../operations/
{op}/wait``, full-router PATCHes, batches, regional Cloud Run v1 endpoints. They are passed as
``CLOUDSDK_*`` variables (a ``gcloud config set`` costs seconds); one test runs the README's
``gcloud config set`` lines themselves.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runnet.emulator.gcp import gcloud_config

GCLOUD = shutil.which("gcloud")
_FONT = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    """gcloud's output without the bold/colour codes ``gcloud run`` prints even into a pipe."""
    return _FONT.sub("", text)


@dataclass
class Result:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def describe(self) -> str:
        return f"$ gcloud {self.command}\n(exit {self.returncode})\n{self.stdout}{self.stderr}"


class Gcloud:
    """Runs ``gcloud`` commands (written as one shell-like string each) against ``base_url``."""

    def __init__(self, base_url: str, config_dir: Path, project: str, *, configure: bool = True) -> None:
        assert GCLOUD is not None, "gcloud is not installed"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLOUDSDK_")},
            "CLOUDSDK_CONFIG": str(config_dir),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            # No network probes for updates, metadata server or surveys: the tests are offline.
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
            "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
            "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_PROJECT": project,
        }
        if configure:
            self.env.update(gcloud_config.environment(base_url))

    def __call__(self, command: str, *, ok: bool | None = True, timeout: float = 60) -> Result:
        """Run one command; ``ok=False`` expects it to fail, ``ok=None`` accepts either outcome."""
        assert GCLOUD is not None
        proc = subprocess.run(
            [GCLOUD, *shlex.split(command)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = Result(command, proc.returncode, _plain(proc.stdout), _plain(proc.stderr))
        if ok is True and result.returncode != 0:
            raise AssertionError("gcloud failed:\n" + result.describe())
        if ok is False and result.returncode == 0:
            raise AssertionError("gcloud was expected to fail:\n" + result.describe())
        return result

    def json(self, command: str) -> Any:
        return self(f"{command} --format=json").json()

    def value(self, command: str, fields: str) -> str:
        return self(f"{command} --format=value({fields})").stdout.strip()

    def parallel(self, commands: Sequence[str], *, ok: bool = True) -> list[Result]:
        """Independent commands, three at a time (each gcloud sleeps ~1 s before polling an operation)."""
        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(lambda c: self(c, ok=ok), commands))

    def script(self, lines: str, **subst: str) -> list[Result]:
        """Run a block of ``gcloud ...`` lines in order, after substituting ``{P}``-style names."""
        results = []
        for line in lines.strip().splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                results.append(self(line.removeprefix("gcloud ").format(**subst)))
        return results
