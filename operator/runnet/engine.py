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
from typing import Any, TypeVar

from runnet.gcp.calls import GCPCallError, deferring_waits

log = logging.getLogger(__name__)
T = TypeVar("T")


class Policy(Enum):
    MANAGE = "manage"
    """Create when absent; update only when owned; an unowned one is used as it is."""
    CONFIGURE = "configure"
    """Like MANAGE, but an unowned one is a conflict unless adopted (runnet must configure it)."""
    ATTACH = "attach"
    """Must exist and is never created; runnet's fields on it are always kept true (Cloud Run services)."""
    OBSERVE = "observe"
    """Must exist; only read."""
    DETACH = "detach"
    """Exists outside runnet; runnet's fields on it are removed (a Cloud Run service taken out of the list)."""


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
    owner: str = ""
    """Who the resource's owner marker names ("PSCEndpoint ns/name"), when it is not this object."""
    reason: str = ""
    """For a resource that is not ready: a CamelCase reason for the status (WaitingForService...)."""
    held_by: str = ""
    """A resource outside the plan uses this one: teardown keeps it (GCP would refuse the delete)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    body: Any = None


class Adapter(ABC):
    """Observe / create / update / delete one GCP resource. Synchronous: the engine threads them."""

    kind: str = ""
    exclusive: bool = False
    """One object's only: an existing one that another runnet object owns is a conflict (never shared)."""
    field: str = ""
    """The spec field that names this resource, for messages."""
    api: str = "compute"
    """Whose slots its calls take (``run``: Cloud Run Admin): each API has its own, so that calls waiting for one
    API's rate quota (Cloud Run's 60 writes a minute) never hold back another's."""

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
    code: int = 0
    """HTTP status of a failed GCP call (403: a permission is missing)."""
    reason: str = ""
    """GCP's reason of a failed call (rateLimitExceeded...)."""


@dataclass
class RunResult:
    results: dict[str, NodeResult]
    timeline: list[str] = field(default_factory=list)
    """Every action of the pass in the order it finished (teardown Events follow it)."""

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
        return list(self.timeline)

    def merge(self, other: RunResult, prefix: str = "") -> None:
        self.results.update({f"{prefix}{k}": v for k, v in other.results.items()})
        self.timeline.extend(other.timeline)


APIS = ("compute", "run")


class Engine:
    """Runs plans. One per process; ``concurrency`` bounds GCP calls in flight across all objects, per API."""

    def __init__(self, concurrency: int = 64) -> None:
        self._slots = {api: asyncio.Semaphore(concurrency) for api in APIS}
        # Its own pool (threads start as needed): the loop's default executor has only min(32, cpus + 4) threads,
        # and a call waiting for its turn under a rate quota holds its thread.
        self._pool = ThreadPoolExecutor(max_workers=concurrency * len(APIS), thread_name_prefix="gcp")

    async def _run(self, fn: Callable[[], Any], api: str = "compute") -> Any:
        async with self._slots[api]:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def write(self, fn: Callable[[], None], api: str = "compute") -> None:
        """Run one write in a thread; the operation it started is waited on here, on the event loop, so that no
        thread is held while GCP works (a thread is borrowed for each operation read only)."""
        pending = await self._run(lambda: deferring_waits(fn), api)
        for operation in pending:
            await operation.settle(lambda read: self._run(read, api))

    async def call(self, fn: Callable[[], T], api: str = "compute") -> T:
        """Run one blocking GCP read (discovery before planning) within the engine's bound."""
        return await self._run(fn, api)  # type: ignore[no-any-return]

    async def observe_all(self, nodes: list[Node]) -> dict[str, Observation | GCPCallError]:
        async def one(node: Node) -> Observation | GCPCallError:
            try:
                return await self._run(node.adapter.observe, node.adapter.api)  # type: ignore[no-any-return]
            except GCPCallError as exc:
                return exc

        observed = await asyncio.gather(*(one(n) for n in nodes))
        return {n.key: o for n, o in zip(nodes, observed, strict=True)}

    async def reconcile(self, nodes: list[Node], *, dry_run: bool = False) -> RunResult:
        """Observe all, then act in dependency order.

        Everything the observations alone can decide is decided before the first write: an invalid
        node or a conflict (another owner, a resource that cannot be used as the spec says) means
        nothing is written for the object this pass. ``dry_run`` observes only.
        """
        observed = await self.observe_all(nodes)
        results = {n.key: NodeResult(n) for n in nodes}
        run = RunResult(results)
        stop = False
        for n in nodes:
            seen = observed[n.key]
            if not isinstance(seen, Observation):
                continue
            results[n.key].observation = seen
            verdict = _verdict(n, seen)
            if isinstance(verdict, tuple) and verdict[0] in (Outcome.INVALID, Outcome.CONFLICT):
                results[n.key].outcome, results[n.key].message = verdict
                results[n.key].retryable = False
                stop = True
        if stop or dry_run:
            return run
        done = {n.key: asyncio.Event() for n in nodes}

        async def drive(node: Node) -> None:
            try:
                for dep in node.depends_on:
                    await done[dep].wait()
                if any(results[d].outcome is not Outcome.READY for d in node.depends_on):
                    blocker = next(d for d in node.depends_on if results[d].outcome is not Outcome.READY)
                    results[node.key].message = f"waiting for {results[blocker].node.adapter.kind} {blocker}"
                    return
                first = observed[node.key]
                if any(results[d].actions for d in node.depends_on):
                    first = GCPCallError("a dependency changed", retryable=True)  # observe again, after it
                await self._converge(node, first, results[node.key], run.timeline)
            finally:
                done[node.key].set()

        await asyncio.gather(*(drive(n) for n in nodes))
        return run

    async def _converge(
        self, node: Node, first: Observation | GCPCallError, result: NodeResult, timeline: list[str]
    ) -> None:
        adapter = node.adapter
        try:
            obs: Observation
            if isinstance(first, GCPCallError):
                obs = await self._run(adapter.observe, adapter.api)
            else:
                obs = first
            action = _verdict(node, obs)
            if isinstance(action, tuple):
                result.outcome, result.message = action
                result.observation = obs
                result.retryable = action[0] not in (Outcome.CONFLICT, Outcome.INVALID)
                return
            if action is not None:
                chosen = action
                await self.write(lambda: chosen(adapter, obs), adapter.api)
                done = f"{_VERB[chosen]} {adapter.kind} {adapter.name}"
                result.actions.append(done)
                timeline.append(done)
                obs = await self._run(adapter.observe, adapter.api)
            result.observation = obs
            if obs.ready:
                result.outcome = Outcome.READY
            else:
                result.outcome, result.message = Outcome.WAITING, obs.message
        except GCPCallError as exc:
            _failed(result, exc)
            log.warning("%s %s: %s", adapter.kind, adapter.name, exc.message)

    async def teardown(self, nodes: list[Node]) -> RunResult:
        """Delete what runnet owns in reverse dependency order; attached resources are restored."""
        results = {n.key: NodeResult(n) for n in nodes}
        run = RunResult(results)
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
                await self._remove(node, results[node.key], run.timeline)
            finally:
                done[node.key].set()

        await asyncio.gather(*(drive(n) for n in nodes))
        return run

    async def _remove(self, node: Node, result: NodeResult, timeline: list[str]) -> None:
        adapter = node.adapter
        try:
            obs: Observation = await self._run(adapter.observe, adapter.api)
            result.observation = obs
            attached = node.policy in (Policy.ATTACH, Policy.DETACH)
            deletable = obs.exists and (obs.owned or attached) and not node.retain
            done = ""
            if deletable and obs.held_by:
                done = f"kept {adapter.kind} {adapter.name}, which {obs.held_by} uses"
            elif deletable and node.policy is not Policy.OBSERVE:
                await self.write(lambda: adapter.delete(obs), adapter.api)
                verb = "detached" if attached else "deleted"
                done = f"{verb} {adapter.kind} {adapter.name}"
            elif obs.exists and node.retain and obs.owned:
                done = f"kept {adapter.kind} {adapter.name}"
            if done:
                result.actions.append(done)
                timeline.append(done)
            result.outcome = Outcome.READY
        except GCPCallError as exc:
            _failed(result, exc)


def _failed(result: NodeResult, exc: GCPCallError) -> None:
    result.outcome, result.message, result.retryable = Outcome.FAILED, exc.message, exc.retryable
    result.code, result.reason = exc.code, exc.reason


def _create(adapter: Adapter, obs: Observation) -> None:
    adapter.create()


def _update(adapter: Adapter, obs: Observation) -> None:
    adapter.update(obs)


def _adopt(adapter: Adapter, obs: Observation) -> None:
    adapter.adopt(obs)


def _detach(adapter: Adapter, obs: Observation) -> None:
    adapter.delete(obs)


_VERB: dict[Callable[[Adapter, Observation], None], str] = {
    _create: "created",
    _update: "updated",
    _adopt: "adopted",
    _detach: "detached",
}

Decision = Callable[[Adapter, Observation], None] | tuple[Outcome, str] | None


def _verdict(node: Node, obs: Observation) -> Decision:
    """Another runnet object's resource first (the most useful thing to say), then invalid input, then the rest."""
    adapter = node.adapter
    if adapter.exclusive and obs.exists and not obs.owned and obs.owner:
        where = f"set {adapter.field} to another name" if adapter.field else "use another name"
        return (Outcome.CONFLICT, f"{adapter.kind} {adapter.name} is managed by {obs.owner}: {where}")
    if obs.invalid:
        return (Outcome.INVALID, obs.invalid)
    return _decide(node, obs)


def _decide(node: Node, obs: Observation) -> Decision:
    """What to do with a node given what GCP has: an action, a blocking outcome, or nothing."""
    kind, name = node.adapter.kind, node.adapter.name
    if node.policy is Policy.DETACH:
        return _detach if obs.exists and not obs.up_to_date else None
    if obs.conflict:
        return (Outcome.CONFLICT, obs.conflict)
    if not obs.exists:
        if node.policy in (Policy.ATTACH, Policy.OBSERVE):
            return (Outcome.WAITING, obs.message or f"{kind} {name} does not exist yet")
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
