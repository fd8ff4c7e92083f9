"""Watch streams: initial state (unless resuming), then changes, filtered like the API server does.

A watch from ``resourceVersion=N`` replays only events after N; one older than the retained
history gets an ``ERROR`` event with a 410 ``Expired`` Status (what kopf and client-go expect).
Objects entering or leaving a selector on update arrive as ADDED / DELETED.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from runnet.emulator.kube import tables
from runnet.emulator.kube.errors import expired
from runnet.emulator.kube.objects import Objects, served
from runnet.emulator.kube.registry import ResourceType
from runnet.emulator.kube.selectors import Matcher
from runnet.emulator.kube.store import Event, Store


@dataclass
class WatchRequest:
    rt: ResourceType
    namespace: str | None
    name: str | None
    params: dict[str, str]
    view: tuple[str, str] | None  # ("Table", "v1") etc.


def _transition(event: Event, match: Matcher) -> str | None:
    """The event type this watcher sees, given its selectors (None: not seen at all)."""
    now_in = match(event.obj)
    was_in = event.old is not None and match(event.old)
    if event.type == "DELETED":
        return "DELETED" if (was_in or now_in) else None
    if event.type == "ADDED":
        return "ADDED" if now_in else None
    if now_in:
        return "MODIFIED" if was_in else "ADDED"
    return "DELETED" if was_in else None


class Watcher:
    def __init__(self, store: Store, objects: Objects, stopping: asyncio.Event) -> None:
        self.store = store
        self.objects = objects
        self.stopping = stopping

    def _render(self, w: WatchRequest, obj: dict[str, Any]) -> dict[str, Any]:
        obj = served(w.rt, obj)
        if w.view and w.view[0] == "Table":
            include = w.params.get("includeObject", "Metadata")
            return tables.table(
                w.rt, [obj], obj["metadata"].get("resourceVersion", ""), include=include, version=w.view[1]
            )
        if w.view:
            return tables.partial(obj, w.view[1])
        return obj

    async def stream(self, raw: web.BaseRequest, w: WatchRequest) -> web.StreamResponse:
        match = self.objects.matcher(w.rt, w.params, w.namespace, w.name)  # 400s before streaming
        since, initial = self._start(w.params)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        send = _sender(response)
        if initial:
            since = self.store.rv
            for obj in self.objects.select(w.rt, w.namespace, match):
                await send({"type": "ADDED", "object": self._render(w, obj)})
            if w.params.get("sendInitialEvents") == "true":
                await send({"type": "BOOKMARK", "object": self._bookmark(w.rt, since, initial_end=True)})
        timeout = float(w.params["timeoutSeconds"]) if w.params.get("timeoutSeconds") else None
        with contextlib.suppress(ConnectionError):  # the client went away
            await self._follow(w, match, since, send, timeout)
            await response.write_eof()
        return response

    def _start(self, params: dict[str, str]) -> tuple[int, bool]:
        rv = params.get("resourceVersion", "")
        if rv in ("", "0") or params.get("sendInitialEvents") == "true":
            return self.store.rv, True
        try:
            return int(rv), False
        except ValueError:
            return 0, False

    async def _follow(self, w: WatchRequest, match: Matcher, since: int, send: Any, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        while not self.stopping.is_set():
            changed = self.store.changed
            events = self.store.events_after(since, w.rt.key)
            if events is None:
                gone = expired(f"too old resource version: {since} ({self.store.compacted})").status_body()
                await send({"type": "ERROR", "object": gone})
                return
            for event in events:
                since = event.rv
                kind = _transition(event, match)
                if kind is not None:
                    await send({"type": kind, "object": self._render(w, event.obj)})
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            await self._wait(changed, left)

    async def _wait(self, changed: asyncio.Event, timeout: float | None) -> None:
        waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(self.stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


def _sender(response: web.StreamResponse) -> Callable[[dict[str, Any]], Any]:
    async def send(event: dict[str, Any]) -> None:
        await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    return send
