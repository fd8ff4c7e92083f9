"""Running the stand-in: in its own thread (for blocking clients), from the CLI, and a kubeconfig."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from runnet.emulator.kube.server import KubeEmulator
from runnet.emulator.threads import ServerThread

CONTEXT = "runnet-emulator"


def kubeconfig(base_url: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for the stand-in: plain HTTP, no credentials."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": base_url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: str | Path, base_url: str, namespace: str = "default") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(base_url, namespace), sort_keys=False))
    return path


class KubeEmulatorThread(ServerThread[KubeEmulator]):
    """A KubeEmulator on its own event loop in a daemon thread (see runnet.emulator.threads).

    kubectl subprocesses and the (blocking) kubernetes client can then call it while the test's
    own event loop runs kopf, without deadlocking either.
    """

    name = "kube-emulator"

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **options: Any) -> None:
        self.host, self.port, self.options = host, port, options
        super().__init__()

    async def _boot(self) -> KubeEmulator:
        emu = KubeEmulator(**self.options)
        await emu.start(self.host, self.port)
        return emu

    async def _shutdown(self, server: KubeEmulator) -> None:
        await server.stop()


def serve_cli(
    host: str,
    port: int,
    crds_dir: str | Path | None,
    kubeconfig_path: str | Path | None,
    ready: Callable[[str], None] = print,
) -> None:
    """Serve until interrupted; ``ready`` gets the base URL once the server listens."""

    async def serve() -> None:
        emu = KubeEmulator(crds_dir=crds_dir)
        url = await emu.start(host, port)
        if kubeconfig_path is not None:
            write_kubeconfig(kubeconfig_path, url)
        ready(url)
        try:
            await asyncio.Event().wait()
        finally:
            await emu.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
