"""Running the stand-in: in its own thread (for blocking clients), from the CLI, and a kubeconfig."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from runnet.emulator.kube.server import KubeEmulator

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


class KubeEmulatorThread:
    """A KubeEmulator on its own event loop in a daemon thread.

    kubectl subprocesses and the (blocking) kubernetes client can then call it while the test's
    own event loop runs kopf, without deadlocking either.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **options: Any) -> None:
        self.host, self.port, self.options = host, port, options
        self.loop = asyncio.new_event_loop()
        self.emulator: KubeEmulator | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="kube-emulator", daemon=True)

    def start(self) -> KubeEmulator:
        self._thread.start()

        async def boot() -> KubeEmulator:
            emu = KubeEmulator(**self.options)
            await emu.start(self.host, self.port)
            return emu

        self.emulator = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout=30)
        return self.emulator

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (to read or change state without racing a request)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stop(self) -> None:
        if self.emulator is not None:
            asyncio.run_coroutine_threadsafe(self.emulator.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    @contextlib.contextmanager
    def running(self) -> Iterator[KubeEmulator]:
        emu = self.start()
        try:
            yield emu
        finally:
            self.stop()


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
