"""Compute list responses: paging and the subset of the ``filter`` syntax that clients send."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from runnet.emulator.gcp import ids
from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.store import Resource

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import Call


def compute_list(call: Call, kind: str, items: list[Resource], collection: str) -> dict[str, Any]:
    """A Compute list response, with ``maxResults``/``pageToken`` paging; ``items`` absent when empty."""
    items = filter_items(items, call.query.get("filter", ""))
    start = int(call.query.get("pageToken") or 0)
    size = int(call.query.get("maxResults") or 500)
    page = items[start : start + size]
    body: dict[str, Any] = {
        "kind": kind,
        "id": collection,
        "selfLink": ids.self_link(collection),
    }
    if page:
        body["items"] = page
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body


def filter_items(items: list[Resource], expression: str) -> list[Resource]:
    """The one-term subset of Compute's list filter that clients send.

    ``field = value`` is equality; ``field eq regex`` / ``field ne regex`` (what gcloud sends for
    ``--filter=field=word``) match a regular expression against the whole value. Other shapes are
    ignored (the full list comes back), which is what a lenient server does.
    """
    expression = expression.strip()
    if not expression or " AND " in expression.upper():
        return items
    for op in (" = ", " eq ", " ne ", "="):
        if op in expression:
            field_name, _, value = expression.partition(op)
            field_name = field_name.strip().strip("(")
            value = value.strip().rstrip(")").strip().strip('"').strip("'")
            if op.strip() not in ("eq", "ne"):
                return [i for i in items if str(i.get(field_name, "")) == value]
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise GCPError(400, "invalid", f"Invalid value for field 'filter': '{expression}'. {exc}.") from exc
            keep = op.strip() == "eq"
            return [i for i in items if bool(pattern.fullmatch(str(i.get(field_name, "")))) == keep]
    return items
