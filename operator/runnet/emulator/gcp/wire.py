"""What the emulator reads off the wire before a handler runs: the request, its route, its host.

Requests arrive three ways: directly (``Host: 127.0.0.1:PORT``), through the emulator acting as
gcloud's HTTP proxy (absolute-form ``GET http://asia-northeast1-run.googleapis.com/apis/...``),
and as parts of a Compute batch. All three become an ``Incoming`` matched against the same
route table, so the request log, IAM checks and faults see every call alike.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from runnet.emulator.gcp import ids

# "asia-northeast1-run.googleapis.com", "us-central1-127.0.0.1:8085": gcloud prefixes the region.
_REGIONAL_HOST = re.compile(r"^(?P<region>[a-z]+-[a-z]+[0-9]+)-(?P<rest>.+)$")
_PARAM = re.compile(r"\{(?P<name>\w+)(?::(?P<regex>(?:[^{}]|\{[^{}]*\})*))?\}")


@dataclass
class Incoming:
    """One HTTP request, however it arrived."""

    method: str
    path: str
    """The decoded path, without query (``/compute/v1/projects/p/global/networks``)."""
    query: dict[str, str]
    host: str
    """The authority the client addressed (``127.0.0.1:8085`` or ``asia-northeast1-run.googleapis.com``)."""
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    batched: bool = False
    """A part of a batch request (``batch``), not a request of its own."""

    @property
    def region_of_host(self) -> str:
        """The region of a regional endpoint (``{region}-run.googleapis.com``); ``-`` for a global one."""
        match = _REGIONAL_HOST.match(self.host)
        return match.group("region") if match else "-"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """An aiohttp-style path pattern (``/x/{name}``, ``/x/{name:[^/:]+}``) as an anchored regex."""
    parts, pos = [], 0
    for match in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[pos : match.start()]))
        parts.append(f"(?P<{match.group('name')}>{match.group('regex') or '[^{}/]+'})")
        pos = match.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("".join(parts) + r"\Z")


def split_target(target: str) -> tuple[str, dict[str, str], str]:
    """A request target (origin- or absolute-form) as (decoded path, query, host or "")."""
    parsed = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    return urllib.parse.unquote(parsed.path), query, parsed.netloc


def google_urls(value: Any, own_bases: tuple[str, ...]) -> Any:
    """References to the emulator's own URL, as GCP would have received them.

    gcloud resolves names against its endpoint override, so it sends ``http://127.0.0.1:PORT/
    compute/v1/projects/...``; echoed as sent, that would leak into stored fields (natIps,
    subnetwork) where GCP shows ``https://www.googleapis.com/compute/v1/...``.
    """
    if isinstance(value, str):
        for base in own_bases:
            if value.startswith(base):
                return ids.COMPUTE_BASE + value[len(base) :]
        return value
    if isinstance(value, list):
        return [google_urls(item, own_bases) for item in value]
    if isinstance(value, dict):
        return {key: google_urls(item, own_bases) for key, item in value.items()}
    return value


def refuse_tunnel(target: str) -> web.Response:
    """An HTTPS tunnel request: gcloud, using the emulator as its proxy, wants an API not pointed at it.

    The emulator cannot answer inside TLS, and must not forward anything to Google.
    """
    reason = f"The runnet GCP emulator does not tunnel to {target}: it serves only plain-HTTP endpoint overrides"
    return web.Response(status=403, reason=reason, text=reason + "\n")
