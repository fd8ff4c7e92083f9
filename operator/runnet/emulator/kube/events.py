"""Events: one storage for ``v1`` and ``events.k8s.io/v1``, converted between the two, and validated.

As in the API server, both APIs read and write the same objects (stored as core ``v1`` Events):
``regarding`` is ``involvedObject``, ``note`` is ``message``, ``reportingController`` is
``reportingComponent`` and the ``deprecated*`` fields are the old ones. Validation is
k8s.io/kubernetes pkg/apis/core/validation/events.go, on the core form (so errors name core fields
whichever API was used); ``events.k8s.io`` writes get its stricter rules on top.
"""

from __future__ import annotations

from typing import Any

from runnet.emulator.kube.errors import Cause, invalid_value, required
from runnet.emulator.kube.meta import qualified_name_errors

CORE = "v1"
NEW = "events.k8s.io/v1"

# events.k8s.io/v1 field -> core v1 field (the rest keep their names)
_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_BACK = {core: new for new, core in _RENAMED.items()}


def convert(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    """An Event in the other API's form (``api_version`` is the target); the same object if already in it."""
    source = obj.get("apiVersion", CORE)
    if source == api_version or {source, api_version} != {CORE, NEW}:
        return obj
    names = _RENAMED if api_version == CORE else _BACK
    return {names.get(k, k): v for k, v in obj.items() if k != "apiVersion"} | {"apiVersion": api_version}


# -- validation (on the core form) ---------------------------------------------------------------

LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128, "message": 1024}


def validate(event: dict[str, Any], api_version: str, old: dict[str, Any] | None) -> list[Cause]:
    """ValidateEventCreate / ValidateEventUpdate of an Event in core form, written through ``api_version``."""
    causes = _legacy(event, api_version)
    if api_version == CORE:
        return causes
    if old is not None:
        return causes + _immutable(event, old)
    causes += _series(event)
    if not event.get("eventTime"):
        causes.append(required("eventTime"))
    if event.get("type") not in ("Normal", "Warning"):
        causes.append(invalid_value("type", "", f"has invalid value: {event.get('type') or ''}"))
    for key in ("firstTimestamp", "lastTimestamp", "count"):
        if event.get(key):
            causes.append(invalid_value(key, "", "needs to be unset"))
    source = event.get("source") or {}
    if source.get("component") or source.get("host"):
        causes.append(invalid_value("source", "", "needs to be unset"))
    return causes


def _legacy(event: dict[str, Any], api_version: str) -> list[Cause]:
    causes: list[Cause] = []
    namespace = (event.get("metadata") or {}).get("namespace") or ""
    involved = (event.get("involvedObject") or {}).get("namespace") or ""
    if not event.get("eventTime"):
        if (not involved and namespace not in ("", "default")) or (involved and namespace != involved):
            causes.append(invalid_value("involvedObject.namespace", involved, "does not match event.namespace"))
        return causes
    if not involved and namespace not in ("default", "kube-system"):
        causes.append(invalid_value("involvedObject.namespace", involved, "does not match event.namespace"))
    controller_field = "reportingComponent" if api_version == CORE else "reportingController"
    controller = event.get("reportingComponent") or ""
    if not controller:
        causes.append(required(controller_field))
    causes += [invalid_value(controller_field, controller, msg) for msg in qualified_name_errors(controller)]
    for key in ("reportingInstance", "action", "reason"):
        if not event.get(key):
            causes.append(required(key))
        if len(event.get(key) or "") > LIMITS[key]:
            causes.append(invalid_value(key, "", f"can have at most {LIMITS[key]} characters"))
    if len(event.get("message") or "") > LIMITS["message"]:
        causes.append(invalid_value("message", "", f"can have at most {LIMITS['message']} characters"))
    return causes


def _series(event: dict[str, Any]) -> list[Cause]:
    series = event.get("series")
    if not series:
        return []
    causes = []
    if int(series.get("count") or 0) < 2:
        causes.append(invalid_value("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        causes.append(required("series.lastObservedTime"))
    return causes


_IMMUTABLE = (
    "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type",
    "eventTime", "action", "related", "reportingComponent", "reportingInstance",
)  # fmt: skip


def _immutable(event: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes = _series(event) if event.get("series") != old.get("series") else []
    for key in _IMMUTABLE:
        if event.get(key) != old.get(key):
            path = "reportingController" if key == "reportingComponent" else key
            causes.append(invalid_value(path, event.get(key), "field is immutable"))
    return causes
