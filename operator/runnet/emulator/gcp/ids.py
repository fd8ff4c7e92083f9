"""Server-generated values in the formats real GCP uses (ids, timestamps, fingerprints, names)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import secrets
import string
import time
import uuid
from typing import Any

COMPUTE_BASE = "https://www.googleapis.com/compute/v1/"
_PACIFIC = dt.timezone(dt.timedelta(hours=-8))


def numeric_id() -> str:
    """A decimal uint64 as Compute returns ids (always a string)."""
    return str(random.randint(10**18, 2**63 - 1))


def compute_timestamp(at: float | None = None) -> str:
    """RFC3339 with milliseconds and a Pacific offset, as Compute writes creationTimestamp."""
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, tz=_PACIFIC)
    return moment.isoformat(timespec="milliseconds")


def run_timestamp(at: float | None = None) -> str:
    """RFC3339 in UTC with microseconds and a Z, as Cloud Run writes times."""
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fingerprint(body: Any) -> str:
    """Base64 of 8 bytes derived from the content, like Compute's fingerprints."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


EMPTY_LABEL_FINGERPRINT = "42WmSpB8rSM="


def label_fingerprint(labels: dict[str, str] | None) -> str:
    return fingerprint(labels) if labels else EMPTY_LABEL_FINGERPRINT


def compute_operation_name() -> str:
    """operation-<ms>-<hex>-<hex>-<hex>, the shape real Compute operation names have."""
    ms = int(time.time() * 1000)
    return f"operation-{ms}-{secrets.token_hex(6)[:13]}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def run_etag() -> str:
    """Cloud Run etags are quoted strings including the literal quotes."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode().rstrip("=")
    return f'"{raw}"'


def uuid4() -> str:
    return str(uuid.uuid4())


def revision_suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=3))


def project_number(project: str) -> str:
    """A stable 12-digit project number per project id (real projects have one; ids map to it)."""
    digest = hashlib.sha256(project.encode()).digest()
    return str(100000000000 + int.from_bytes(digest[:5], "big") % 900000000000)


def self_link(path: str) -> str:
    return COMPUTE_BASE + path
