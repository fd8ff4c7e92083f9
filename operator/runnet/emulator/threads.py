"""Running an in-process server on its own event loop in a daemon thread.

Blocking clients (the official GCP clients, gcloud, kubectl, the kubernetes client) can then call
it from any thread, including a test's event loop thread, without deadlocking either side.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

S = TypeVar("S")


class ServerThread(ABC, Generic[S]):
    name = "emulator"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.emulator: S | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name=self.name, daemon=True)

    @abstractmethod
    async def _boot(self) -> S:
        """Build and start the server (runs on the thread's loop)."""

    @abstractmethod
    async def _shutdown(self, server: S) -> None: ...

    def start(self) -> S:
        self._thread.start()
        self.emulator = asyncio.run_coroutine_threadsafe(self._boot(), self.loop).result(timeout=30)
        return self.emulator

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (to read or change state without racing a request)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stop(self) -> None:
        if self.emulator is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(self.emulator), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    @contextlib.contextmanager
    def running(self) -> Iterator[S]:
        server = self.start()
        try:
            yield server
        finally:
            self.stop()
