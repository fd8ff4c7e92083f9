"""The metrics runnet serves (issue 10), in one place for the monitoring and chart tests: name -> (type, labels).

The metrics code keeps its own list, ``runnet.metrics.NAMES``; test_rules.py checks that the two name
the same metrics wherever that module exists, so this table cannot drift from what runnet serves.
"""

from __future__ import annotations

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "runnet_reconcile_total": (COUNTER, frozenset({"kind", "result"})),
    "runnet_reconcile_duration_seconds": (HISTOGRAM, frozenset({"kind"})),
    "runnet_gcp_requests_total": (COUNTER, frozenset({"service", "method", "code"})),
    "runnet_gcp_request_duration_seconds": (HISTOGRAM, frozenset({"service", "method"})),
    "runnet_objects": (GAUGE, frozenset({"kind", "ready"})),
    "runnet_nat_ip_info": (GAUGE, frozenset({"namespace", "name", "ip", "state"})),
    "runnet_psc_connections": (GAUGE, frozenset({"namespace", "name", "status"})),
    "runnet_nat_port_headroom_ratio": (GAUGE, frozenset({"namespace", "name"})),
    "runnet_subnet_ip_headroom_ratio": (GAUGE, frozenset({"namespace", "name"})),
}


def series() -> dict[str, frozenset[str]]:
    """Every series name on /metrics and its labels: a histogram as _bucket (with le), _sum and _count."""
    out: dict[str, frozenset[str]] = {}
    for name, (kind, labels) in METRICS.items():
        if kind == HISTOGRAM:
            out[f"{name}_bucket"] = labels | {"le"}
            out[f"{name}_sum"] = labels
            out[f"{name}_count"] = labels
        else:
            out[name] = labels
    return out
