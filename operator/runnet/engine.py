"""The generic reconcile loop: observe every node, then create/update in dependency order.

A plan is a graph of nodes, each a desired GCP resource with a management policy; an adapter per
kind knows how to observe, create, update and delete it (the only code that calls GCP). The
engine decides what to do from the observation, runs independent nodes concurrently (bounded),
and reports per node what it saw and did, from which the status is computed. Every verb is
idempotent, so a pass interrupted anywhere is finished by the next one.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from runnet.gcp.calls import GCPCallError

log = logging.getLogger(__name__)


class Policy(Enum):
    MANAGE = "manage"
    """Create when absent; update only when owned; an unowned one is used as it is."""
    CONFIGURE = "configure"
    """Like MANAGE, but an unowned one is a conflict unless adopted (runnet must configure it)."""
    ATTACH = "attach"
    """Must exist and is never created; runnet's fields on it are always kept true (Cloud Run services)."""
    OBSERVE = "observe"
    """Must exist; only read."""


@dataclass
class Observation:
    exists: bool
    owned: bool = False
    up_to_date: bool = True
    ready: bool = True
    """Whether the resource is usable (a Cloud Run service with a ready revision, an ACCEPTED connection)."""
    message: str = ""
    """Why it is not ready, or what is notable about it, for the status."""
    invalid: str = ""
    """A user error found while observing (wrong address type...): nothing is written for the object."""
    conflict: str = ""
    """The resource exists but cannot be used as the spec says (another owner, another network...)."""
    self_link: str = ""
    held_by: str = ""
    """A resource outside the plan uses this one: teardown keeps it (GCP would refuse the delete)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    body: Any = None


class Adapter(ABC):
    """Observe / create / update / delete one GCP resource. Synchronous: the engine threads them."""

    kind: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def observe(self) -> Observation: ...

    @abstractmethod
    def create(self) -> None: ...

    def update(self, observed: Observation) -> None:
        raise NotImplementedError(f"{self.kind} {self.name} cannot be updated in place")

    @abstractmethod
    def delete(self, observed: Observation) -> None: ...

    def adopt(self, observed: Observation) -> None:
        """Record runnet's ownership on an existing resource (CONFIGURE with adopt)."""
        self.update(observed)


@dataclass
class Node:
    key: str
    adapter: Adapter
    policy: Policy = Policy.MANAGE
    depends_on: list[str] = field(default_factory=list)
    adopt: bool = False
    retain: bool = False
    """Never deleted by teardown even when owned (reserved IPs under addressDeletionPolicy Retain)."""


class Outcome(Enum):
    READY = "Ready"
    WAITING = "Waiting"
    CONFLICT = "Conflict"
    INVALID = "InvalidSpec"
    FAILED = "GCPError"
    BLOCKED = "Blocked"


@dataclass
class NodeResult:
    node: Node
    observation: Observation | None = None
    outcome: Outcome = Outcome.BLOCKED
    message: str = ""
    actions: list[str] = field(default_factory=list)
    retryable: bool = True


@dataclass
class RunResult:
    results: dict[str, NodeResult]

    @property
    def ready(self) -> bool:
        return all(r.outcome is Outcome.READY for r in self.results.values())

    def first_problem(self) -> NodeResult | None:
        order = [Outcome.INVALID, Outcome.CONFLICT, Outcome.FAILED, Outcome.WAITING, Outcome.BLOCKED]
        for outcome in order:
            for result in self.results.values():
                if result.outcome is outcome:
                    return result
        return None

    def actions(self) -> list[str]:
        return [a for r in self.results.values() for a in r.actions]


class Engine:
    """Runs plans. One per process; ``concurrency`` bounds GCP calls in flight across all objects."""

    def __init__(self, concurrency: int = 64) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        # Its own pool: the loop's default executor has only min(32, cpus + 4) threads, and every
        # GCP call blocks a thread for as long as its operation runs.
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="gcp")

    async def _run(self, fn: Callable[[], Any]) -> Any:
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def observe_all(self, nodes: list[Node]) -> dict[str, Observation | GCPCallError]:
        async def one(node: Node) -> Observation | GCPCallError:
            try:
                return await self._run(node.adapter.observe)  # type: ignore[no-any-return]
            except GCPCallError as exc:
                return exc

        observed = await asyncio.gather(*(one(n) for n in nodes))
        return {n.key: o for n, o in zip(nodes, observed, strict=True)}

    async def reconcile(self, nodes: list[Node], *, dry_run: bool = False) -> RunResult:
        """Observe all, then act. ``dry_run`` observes only (used to validate before any write)."""
        observed = await self.observe_all(nodes)
        results = {n.key: NodeResult(n) for n in nodes}
        invalid = [(n.key, o) for n in nodes if isinstance(o := observed[n.key], Observation) and o.invalid]
        for key, obs in invalid:
            results[key].outcome, results[key].message = Outcome.INVALID, obs.invalid
            results[key].retryable = False
        if invalid or dry_run:
            for n in nodes:
                seen = observed[n.key]
                if isinstance(seen, Observation):
                    results[n.key].observation = seen
            return RunResult(results)
        done = {n.key: asyncio.Event() for n in nodes}

        async def drive(node: Node) -> None:
            try:
                for dep in node.depends_on:
                    await done[dep].wait()
                if any(results[d].outcome is not Outcome.READY for d in node.depends_on):
                    blocker = next(d for d in node.depends_on if results[d].outcome is not Outcome.READY)
                    results[node.key].message = f"waiting for {results[blocker].node.adapter.kind} {blocker}"
                    return
                await self._converge(node, observed[node.key], results[node.key])
            finally:
                done[node.key].set()

        await asyncio.gather(*(drive(n) for n in nodes))
        return RunResult(results)

    async def _converge(self, node: Node, first: Observation | GCPCallError, result: NodeResult) -> None:
        adapter = node.adapter
        try:
            obs: Observation
            if isinstance(first, GCPCallError):
                obs = await self._run(adapter.observe)
            else:
                obs = first
            action = _decide(node, obs)
            if isinstance(action, tuple):
                result.outcome, result.message = action
                result.observation = obs
                result.retryable = action[0] is not Outcome.CONFLICT
                return
            if action is not None:
                chosen = action
                await self._run(lambda: chosen(adapter, obs))
                result.actions.append(f"{_VERB[chosen]} {adapter.kind} {adapter.name}")
                obs = await self._run(adapter.observe)
            result.observation = obs
            if obs.ready:
                result.outcome = Outcome.READY
            else:
                result.outcome, result.message = Outcome.WAITING, obs.message
        except GCPCallError as exc:
            result.outcome, result.message, result.retryable = Outcome.FAILED, exc.message, exc.retryable
            log.warning("%s %s: %s", adapter.kind, adapter.name, exc.message)

    async def teardown(self, nodes: list[Node]) -> RunResult:
        """Delete what runnet owns in reverse dependency order; attached resources are restored."""
        results = {n.key: NodeResult(n) for n in nodes}
        dependents: dict[str, list[str]] = {n.key: [] for n in nodes}
        for n in nodes:
            for dep in n.depends_on:
                dependents[dep].append(n.key)
        done = {n.key: asyncio.Event() for n in nodes}

        async def drive(node: Node) -> None:
            try:
                for user in dependents[node.key]:
                    await done[user].wait()
                blocked = [u for u in dependents[node.key] if results[u].outcome is not Outcome.READY]
                if blocked:
                    results[node.key].message = f"waiting for {blocked[0]} to be deleted"
                    return
                await self._remove(node, results[node.key])
            finally:
                done[node.key].set()

        await asyncio.gather(*(drive(n) for n in nodes))
        return RunResult(results)

    async def _remove(self, node: Node, result: NodeResult) -> None:
        adapter = node.adapter
        try:
            obs: Observation = await self._run(adapter.observe)
            result.observation = obs
            deletable = obs.exists and (obs.owned or node.policy is Policy.ATTACH) and not node.retain
            if deletable and obs.held_by:
                result.actions.append(f"kept {adapter.kind} {adapter.name}, which {obs.held_by} uses")
            elif deletable and node.policy is not Policy.OBSERVE:
                await self._run(lambda: adapter.delete(obs))
                verb = "restored" if node.policy is Policy.ATTACH else "deleted"
                result.actions.append(f"{verb} {adapter.kind} {adapter.name}")
            elif obs.exists and node.retain and obs.owned:
                result.actions.append(f"kept {adapter.kind} {adapter.name}")
            result.outcome = Outcome.READY
        except GCPCallError as exc:
            result.outcome, result.message, result.retryable = Outcome.FAILED, exc.message, exc.retryable


def _create(adapter: Adapter, obs: Observation) -> None:
    adapter.create()


def _update(adapter: Adapter, obs: Observation) -> None:
    adapter.update(obs)


def _adopt(adapter: Adapter, obs: Observation) -> None:
    adapter.adopt(obs)


_VERB: dict[Callable[[Adapter, Observation], None], str] = {
    _create: "created",
    _update: "updated",
    _adopt: "adopted",
}

Decision = Callable[[Adapter, Observation], None] | tuple[Outcome, str] | None


def _decide(node: Node, obs: Observation) -> Decision:
    """What to do with a node given what GCP has: an action, a blocking outcome, or nothing."""
    kind, name = node.adapter.kind, node.adapter.name
    if obs.conflict:
        return (Outcome.CONFLICT, obs.conflict)
    if not obs.exists:
        if node.policy in (Policy.ATTACH, Policy.OBSERVE):
            return (Outcome.INVALID, obs.message or f"{kind} {name} does not exist: create it first")
        return _create
    if obs.owned or node.policy is Policy.ATTACH:
        return None if obs.up_to_date else _update
    if node.policy is Policy.CONFIGURE:
        if node.adopt:
            return _adopt
        return (
            Outcome.CONFLICT,
            f"{kind} {name} exists and was not created by runnet: set adopt: true to let runnet manage it",
        )
    return None
