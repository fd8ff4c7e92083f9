"""NAT IPs of Private Service Connect connections, taken from the service attachment's NAT subnets.

GCP ("About published services", NAT subnet sizing): each endpoint or backend connected to a
service attachment takes one IP of its NAT subnets, and one more for each VPC spoke its
connection is propagated to; "there are four unusable IP addresses in a NAT subnet" (a /29 has 4
usable, a /24 252). A connection the policy accepts but no IP is left for is NEEDS_ATTENTION
("accepted by the producer, but the producer needs to take further action"); NAT subnets can be
added to the attachment at any time, and then it gets its IP and becomes ACCEPTED.
``natIpsPerEndpoint`` (1 by default, or 2) multiplies what each connection takes.

Test knob: ``emu.extra["psc_propagated_spokes"][rule_path] = N`` propagates the consumer endpoint at
``rule_path`` (relative path of its forwarding rule) to N VPC spokes through Network Connectivity
Center (default 0). Each propagated connection takes ``natIpsPerEndpoint`` IPs too, within the
attachment's ``propagatedConnectionLimit`` per consumer (the project with ACCEPT_AUTOMATIC, the
accept-list entry with ACCEPT_MANUAL); those made are the endpoint's ``propagatedConnectionCount``.
One that finds no IP is simply not made (NCC reports PRODUCER_NAT_IP_SPACE_EXHAUSTED, which no
Compute API shows), and the endpoint stays ACCEPTED. The knob is read whenever the attachment's
connections are settled: an endpoint connects or goes, or the attachment is patched (raising
``propagatedConnectionLimit`` is how GCP retries pending propagated connections).

Allocation is sticky: a connection keeps its IPs until it ends or is no longer accepted; free IPs
go to the waiting connections in creation order, endpoints before propagated connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runnet.emulator.gcp import ipam
from runnet.emulator.gcp.server import GCPEmulator
from runnet.emulator.gcp.store import Resource, relative

UNUSABLE_PER_SUBNET = 4
"""Addresses of a NAT subnet no connection gets: network, gateway, second-to-last and broadcast."""
DEFAULT_PROPAGATED_LIMIT = 250
CONNECTED = ("ACCEPTED", "NEEDS_ATTENTION")
"""States of a connection the producer accepted: the ones that hold (or wait for) NAT IPs."""


@dataclass
class Connection:
    """One consumer endpoint of an attachment, as the allocation sees it."""

    path: str
    rule: Resource
    binding: dict[str, Any]
    """``natIps`` (the endpoint's own) and ``propagated`` (a list of IPs per propagated connection)."""
    consumer: str
    """What ``propagatedConnectionLimit`` counts per."""


def per_endpoint(attachment: Resource) -> int:
    return int(attachment.get("natIpsPerEndpoint") or 1)


def _subnet_ranges(emu: GCPEmulator, attachment: Resource) -> list[ipam.Net]:
    subnets = (emu.store.get(relative(str(ref))) for ref in attachment.get("natSubnets") or [])
    return [ipam.subnet_range(s) for s in subnets if s is not None]


def capacity(emu: GCPEmulator, attachment: Resource) -> int:
    """Usable NAT IPs of all the attachment's NAT subnets."""
    return sum(max(0, net.num_addresses - UNUSABLE_PER_SUBNET) for net in _subnet_ranges(emu, attachment))


def held(binding: dict[str, Any]) -> list[str]:
    """Every NAT IP one endpoint holds: its own, then its propagated connections'."""
    return [*binding.get("natIps", []), *(ip for ips in binding.get("propagated", []) for ip in ips)]


class _Pool:
    """The attachment's free NAT IPs, in the order of its natSubnets, handed out n at a time."""

    def __init__(self, emu: GCPEmulator, attachment: Resource, taken: set[str]) -> None:
        self._hosts: Iterator[str] = (
            ip for net in _subnet_ranges(emu, attachment) for ip in ipam.usable_hosts(net) if ip not in taken
        )
        self._ahead: list[str] = []

    def take(self, count: int) -> list[str] | None:
        """``count`` IPs, or None (taking nothing) when fewer are left."""
        while len(self._ahead) < count:
            ip = next(self._hosts, None)
            if ip is None:
                return None
            self._ahead.append(ip)
        taken, self._ahead = self._ahead[:count], self._ahead[count:]
        return taken


def allocate(emu: GCPEmulator, attachment: Resource, connections: list[Connection]) -> None:
    """Give each accepted connection its NAT IPs; ACCEPTED when it has them, NEEDS_ATTENTION when none are left.

    ``connections`` come in creation order, with the state the policy decided.
    """
    per = per_endpoint(attachment)
    spokes: dict[str, int] = emu.extra.get("psc_propagated_spokes", {})
    for c in connections:
        if c.rule.get("pscConnectionStatus") not in CONNECTED:
            c.binding["natIps"], c.binding["propagated"] = [], []
        else:  # a consumer that propagates to fewer spokes gives those IPs back
            c.binding["propagated"] = c.binding.get("propagated", [])[: int(spokes.get(c.path, 0))]
    pool = _Pool(emu, attachment, {ip for c in connections for ip in held(c.binding)})
    for c in connections:
        if c.rule.get("pscConnectionStatus") in CONNECTED:
            own = c.binding.setdefault("natIps", [])
            more = pool.take(per - len(own)) if len(own) < per else []
            own += more or []
            c.rule["pscConnectionStatus"] = "ACCEPTED" if len(own) >= per else "NEEDS_ATTENTION"
    _propagate(attachment, [c for c in connections if c.rule["pscConnectionStatus"] == "ACCEPTED"], pool, spokes)


def _propagate(attachment: Resource, accepted: list[Connection], pool: _Pool, spokes: dict[str, int]) -> None:
    """Propagated connections for accepted endpoints, within the limit per consumer, while IPs last."""
    per = per_endpoint(attachment)
    limit = int(attachment.get("propagatedConnectionLimit", DEFAULT_PROPAGATED_LIMIT))
    made: dict[str, int] = {}
    for c in accepted:  # kept ones count first: lowering the limit ends no connection
        made[c.consumer] = made.get(c.consumer, 0) + len(c.binding.get("propagated", []))
    for c in accepted:
        propagated: list[list[str]] = c.binding.setdefault("propagated", [])
        for ips in propagated:
            if len(ips) < per:  # natIpsPerEndpoint went from 1 to 2
                ips += pool.take(per - len(ips)) or []
        while len(propagated) < int(spokes.get(c.path, 0)) and made[c.consumer] < limit:
            more = pool.take(per)
            if more is None:
                return
            propagated.append(more)
            made[c.consumer] += 1
