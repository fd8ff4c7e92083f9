"""benchmarks/dashboard.py's small PromQL evaluator, which draws docs/dashboard.png, gives Prometheus' answers."""

from __future__ import annotations

import promql_parser as promql
import pytest
from benchmarks.dashboard import Evaluator, Labels, Series, quantile

KIND: Labels = (("kind", "EgressGateway"),)


def series() -> Series:
    data: Series = {}
    # A counter growing by 2 a second, reset between t=27 and t=30 (a restarted operator: 6 counted since).
    data[("runnet_reconcile_total", (*KIND, ("result", "ready")))] = [
        (t, 2.0 * t if t < 30 else 2.0 * (t - 27)) for t in range(0, 61, 3)
    ]
    # A histogram: 10 observations, 5 under 0.1 s, 9 under 1 s, all under 10 s; growing 10 a minute.
    for le, share in (("0.1", 0.5), ("1.0", 0.9), ("10.0", 1.0), ("+Inf", 1.0)):
        data[("runnet_reconcile_duration_seconds_bucket", (*KIND, ("le", le)))] = [
            (t, share * 10 * t / 60) for t in range(0, 61, 3)
        ]
    data[("runnet_objects", (*KIND, ("ready", "false")))] = [(0.0, 1.0), (30.0, 0.0)]
    return data


def evaluate(expr: str, t: float = 60.0) -> dict[Labels, float] | float:
    return Evaluator(series()).eval(promql.parse(expr), t)


def test_rate_survives_a_counter_reset() -> None:
    got = evaluate("sum by (kind) (rate(runnet_reconcile_total[1m]))")
    assert got == {KIND: pytest.approx(2.0, rel=0.05)}


def test_histogram_quantile() -> None:
    got = evaluate("histogram_quantile(0.5, sum by (kind, le) (rate(runnet_reconcile_duration_seconds_bucket[1m])))")
    assert got == {KIND: pytest.approx(0.1)}
    # Rank 0.95 of 1: between 1 s (0.9) and 10 s (1.0), linearly.
    assert quantile(0.95, [(0.1, 0.5), (1.0, 0.9), (10.0, 1.0), (float("inf"), 1.0)]) == pytest.approx(5.5)


def test_selectors_and_comparisons() -> None:
    assert evaluate('runnet_objects{ready="false"} > 0', t=20.0) == {(*KIND, ("ready", "false")): 1.0}
    assert evaluate('runnet_objects{ready="false"} > 0', t=40.0) == {}
    assert evaluate('runnet_objects{ready!~"f.*"}') == {}
