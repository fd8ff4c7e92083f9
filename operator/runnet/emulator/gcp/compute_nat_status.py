"""What a Cloud NAT is doing right now: getRouterStatus's ``natStatus`` and getNatIpInfo.

The emulator runs no VM, so two test knobs stand in for the traffic:

- ``emu.extra["nat_vm_endpoints"][(router_path, nat_name)] = N``: N VM endpoints use the NAT
  (default 0). It drives ``numVmEndpointsWithNatMappings``, ``minExtraNatIpsNeeded`` =
  max(0, ceil(N * minPorts / 64512) - len(natIps)) for MANUAL_ONLY, the auto-allocated IPs of
  AUTO_ONLY NATs, and which active NAT IPs getNatIpInfo reports IN_USE (the first ceil(...) ones).
- ``emu.extra["nat_ip_endpoints"][ip] = N``: N endpoints still hold port mappings on the NAT IP
  ``ip`` (the literal address, as getNatIpInfo shows it; default 0). A draining IP takes no new
  endpoint, so this knob alone decides whether it is IN_USE: a test shows the two ways out of
  draining by setting it to 0 (the IP becomes UNUSED) or leaving it above 0 (it stays IN_USE however
  long the test waits). On an active IP it only adds to what ``nat_vm_endpoints`` gives.

Draining IPs (``drainNatIps``) appear in ``drainUserAllocatedNatIps`` and in getNatIpInfo with
mode MANUAL: that enum is AUTO | MANUAL in compute v1, so draining shows only in getRouterStatus.
``emu.extra["router_status_lag"] = {router_path}`` makes getRouterStatus trail the configuration: the
answer of the first read after the path is put there is repeated until it is taken out.
getNatMappingInfo lists no endpoint even with the knobs: there are no VM instances to name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids, ipam
from runnet.emulator.gcp.store import relative

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import GCPEmulator

PORTS_PER_IP = 64512
"""Ports a NAT IP offers to VMs (65536 minus the 1024 well-known ports)."""


def min_ports(nat: dict[str, Any]) -> int:
    """Ports each VM gets at least: 64 by default (32 with dynamic allocation), static rounds up to 2^n."""
    sent = nat.get("minPortsPerVm")
    if nat.get("enableDynamicPortAllocation"):
        return int(sent or 32)
    return 1 << (int(sent) - 1).bit_length() if sent else 64


@dataclass
class NatRuntime:
    """What a NAT is doing right now, as the knob ``nat_vm_endpoints`` makes it."""

    endpoints: int
    needed: int
    """IPs the endpoints need: ceil(endpoints * minPorts / 64512)."""
    user_ips: list[str]
    user_urls: list[str]
    drain_ips: list[str]
    auto_ips: list[str]


def _auto_ips(emu: GCPEmulator, key: tuple[str, str], needed: int) -> list[str]:
    """IPs GCP allocated for an AUTO_ONLY NAT; kept across reads so they stay stable."""
    held: dict[tuple[str, str], list[str]] = emu.extra.setdefault("nat_auto_ips", {})
    ips = held.setdefault(key, [])
    while len(ips) < needed:
        ips.append(ipam.allocate_external(emu))
    return list(ips)


def nat_runtime(emu: GCPEmulator, router_path: str, nat: dict[str, Any]) -> NatRuntime:
    key = (router_path, nat["name"])
    endpoints = int(emu.extra.get("nat_vm_endpoints", {}).get(key, 0))
    needed = math.ceil(endpoints * min_ports(nat) / PORTS_PER_IP)

    def ips(refs: list[str]) -> tuple[list[str], list[str]]:
        paths = [relative(r) for r in refs]
        found = [(p, emu.store.get(p)) for p in paths]
        return [str(a["address"]) for _, a in found if a], [ids.self_link(p) for p, a in found if a]

    user_ips, user_urls = ips(nat.get("natIps", []))
    drain_ips, _ = ips(nat.get("drainNatIps", []))
    auto = nat.get("natIpAllocateOption") == "AUTO_ONLY"
    auto_ips = _auto_ips(emu, key, needed) if auto else []
    return NatRuntime(endpoints, needed, user_ips, user_urls, drain_ips, auto_ips)


def nat_status(emu: GCPEmulator, router_path: str, nat: dict[str, Any]) -> dict[str, Any]:
    """One ``natStatus`` entry of getRouterStatus (empty lists omitted, as GCP does).

    ``drainAutoAllocatedNatIps`` stays empty: the emulator never drains an auto-allocated IP.
    """
    now = nat_runtime(emu, router_path, nat)
    auto = nat.get("natIpAllocateOption") == "AUTO_ONLY"
    status: dict[str, Any] = {
        "name": nat["name"],
        "userAllocatedNatIps": now.user_ips,
        "userAllocatedNatIpResources": now.user_urls,
        "autoAllocatedNatIps": now.auto_ips,
        "drainUserAllocatedNatIps": now.drain_ips,
        "drainAutoAllocatedNatIps": [],
        "minExtraNatIpsNeeded": 0 if auto else max(0, now.needed - len(now.user_ips)),
        "numVmEndpointsWithNatMappings": now.endpoints,
    }
    return {k: v for k, v in status.items() if v != []}


def nat_ip_info(emu: GCPEmulator, router_path: str, nat: dict[str, Any]) -> dict[str, Any]:
    """One ``result`` entry of getNatIpInfo: each NAT IP, active then draining, with mode and usage.

    An IP is IN_USE when it serves at least one endpoint: one of the first ``needed`` active IPs
    (the count getRouterStatus reports), or one the ``nat_ip_endpoints`` knob holds.
    """
    now = nat_runtime(emu, router_path, nat)
    held: dict[str, int] = emu.extra.get("nat_ip_endpoints", {})

    def usage(ip: str, serving: bool) -> str:
        return "IN_USE" if serving or int(held.get(ip, 0)) > 0 else "UNUSED"

    active = [(ip, "AUTO") for ip in now.auto_ips] + [(ip, "MANUAL") for ip in now.user_ips]
    mappings = [{"natIp": ip, "usage": usage(ip, i < now.needed), "mode": mode} for i, (ip, mode) in enumerate(active)]
    mappings += [{"natIp": ip, "usage": usage(ip, False), "mode": "MANUAL"} for ip in now.drain_ips]
    info: dict[str, Any] = {"natName": nat["name"]}
    if mappings:
        info["natIpInfoMappings"] = mappings
    return info
