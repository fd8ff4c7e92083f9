"""Cloud Run v2 enum fields and their proto numbers, for ``$alt=json;enum-encoding=int``.

google-cloud-run sends and asks for integer enums; real Cloud Run then answers integers
(``"launchStage": 4``). The numbers are the proto ones, which are not always the index in the
discovery document's ``enum`` list (LaunchStage puts UNIMPLEMENTED and PRELAUNCH second). A test
checks this table against the discovery document and the client's proto enums.
"""

from __future__ import annotations

import copy
from typing import Any

LAUNCH_STAGE = {
    "LAUNCH_STAGE_UNSPECIFIED": 0,
    "EARLY_ACCESS": 1,
    "ALPHA": 2,
    "BETA": 3,
    "GA": 4,
    "DEPRECATED": 5,
    "UNIMPLEMENTED": 6,
    "PRELAUNCH": 7,
}
INGRESS = {
    "INGRESS_TRAFFIC_UNSPECIFIED": 0,
    "INGRESS_TRAFFIC_ALL": 1,
    "INGRESS_TRAFFIC_INTERNAL_ONLY": 2,
    "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER": 3,
    "INGRESS_TRAFFIC_NONE": 4,
}
EXECUTION_ENVIRONMENT = {
    "EXECUTION_ENVIRONMENT_UNSPECIFIED": 0,
    "EXECUTION_ENVIRONMENT_GEN1": 1,
    "EXECUTION_ENVIRONMENT_GEN2": 2,
}
VPC_EGRESS = {"VPC_EGRESS_UNSPECIFIED": 0, "ALL_TRAFFIC": 1, "PRIVATE_RANGES_ONLY": 2}
TRAFFIC_TYPE = {
    "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED": 0,
    "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST": 1,
    "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION": 2,
}
KEY_REVOCATION = {"ENCRYPTION_KEY_REVOCATION_ACTION_UNSPECIFIED": 0, "PREVENT_NEW": 1, "SHUTDOWN": 2}
SCALING_MODE = {"SCALING_MODE_UNSPECIFIED": 0, "AUTOMATIC": 1, "MANUAL": 2}
CONDITION_STATE = {
    "STATE_UNSPECIFIED": 0,
    "CONDITION_PENDING": 1,
    "CONDITION_RECONCILING": 2,
    "CONDITION_FAILED": 3,
    "CONDITION_SUCCEEDED": 4,
}
SEVERITY = {"SEVERITY_UNSPECIFIED": 0, "ERROR": 1, "WARNING": 2, "INFO": 3}
COMMON_REASON = {
    "COMMON_REASON_UNDEFINED": 0,
    "UNKNOWN": 1,
    "REVISION_FAILED": 3,
    "PROGRESS_DEADLINE_EXCEEDED": 4,
    "CONTAINER_MISSING": 6,
    "WAITING_FOR_OPERATION": 13,
    "INTERNAL": 16,
    "VPC_NETWORK_NOT_FOUND": 17,
}
REVISION_REASON = {"REVISION_REASON_UNDEFINED": 0, "PENDING": 1, "RESERVE": 2, "RETIRED": 3}

_CONDITION = {"state": CONDITION_STATE, "severity": SEVERITY, "reason": COMMON_REASON}
_CONDITION.update({"revisionReason": REVISION_REASON})

# (path of the enum field inside a Service, "[]" for "every item of this list") -> its values.
SERVICE_ENUMS: dict[tuple[str, ...], dict[str, int]] = {
    ("ingress",): INGRESS,
    ("launchStage",): LAUNCH_STAGE,
    ("template", "executionEnvironment"): EXECUTION_ENVIRONMENT,
    ("template", "encryptionKeyRevocationAction"): KEY_REVOCATION,
    ("template", "vpcAccess", "egress"): VPC_EGRESS,
    ("traffic", "[]", "type"): TRAFFIC_TYPE,
    ("trafficStatuses", "[]", "type"): TRAFFIC_TYPE,
    ("scaling", "scalingMode"): SCALING_MODE,
    **{("terminalCondition", name): values for name, values in _CONDITION.items()},
    **{("conditions", "[]", name): values for name, values in _CONDITION.items()},
}


def to_ints(service: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``service`` with its enum fields as proto numbers."""
    out = copy.deepcopy(service)
    for path, values in SERVICE_ENUMS.items():
        _convert(out, path, values)
    return out


def to_names(service: dict[str, Any]) -> dict[str, Any]:
    """``service`` (a request body) with integer enums turned back into their names, in place."""
    for path, values in SERVICE_ENUMS.items():
        names = {number: name for name, number in values.items()}
        _convert(service, path, names)
    return service


def _convert(node: Any, path: tuple[str, ...], table: dict[Any, Any]) -> None:
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == "[]":
        for item in node if isinstance(node, list) else []:
            _convert(item, rest, table)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _convert(node[head], rest, table)
    elif isinstance(node[head], (str, int)) and not isinstance(node[head], bool):
        node[head] = table.get(node[head], node[head])
