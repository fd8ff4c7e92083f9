"""What a PromQL expression reads, parsed by promql-parser (Prometheus' grammar, in Rust).

:func:`check` walks the syntax tree and returns the problems in words: a metric that is not among
``series``, a label matched, grouped on or kept that the metric does not have. It also works out the
labels of the result, so that alert annotations and legends can be checked against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import promql_parser as promql

# Grafana's interval variables, which are not PromQL: a duration stands in for each.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


@dataclass
class Analysis:
    metrics: set[str] = field(default_factory=set)
    labels: frozenset[str] | None = None  # the result's labels; None for a scalar
    problems: list[str] = field(default_factory=list)


def check(expr: str, series: Mapping[str, frozenset[str]]) -> Analysis:
    """The metrics ``expr`` reads, its result's labels and its problems against ``series`` (name -> labels)."""
    for variable, duration in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, duration)
    analysis = Analysis()
    try:
        tree = promql.parse(expr)
    except ValueError as error:
        analysis.problems.append(f"does not parse: {error}")
        return analysis
    analysis.labels = _labels(tree, series, analysis)
    return analysis


def _labels(node: object, series: Mapping[str, frozenset[str]], out: Analysis) -> frozenset[str] | None:
    if isinstance(node, (promql.NumberLiteral, promql.StringLiteral)):
        return None
    if isinstance(node, promql.MatrixSelector):
        return _labels(node.vector_selector, series, out)
    if isinstance(node, promql.VectorSelector):
        name = node.name
        if name not in series:
            out.problems.append(f"{name!r} is not a runnet metric")
            return frozenset()
        out.metrics.add(name)
        have = series[name]
        for matcher in node.matchers.matchers:
            if matcher.name != "__name__" and matcher.name not in have:
                out.problems.append(f"{name} has no label {matcher.name!r} (it has {sorted(have)})")
        return have
    if isinstance(node, (promql.ParenExpr, promql.UnaryExpr, promql.SubqueryExpr)):
        return _labels(node.expr, series, out)
    if isinstance(node, promql.Call):
        args = [_labels(arg, series, out) for arg in node.args]
        vectors = [a for a in args if a is not None]
        if node.func.name == "histogram_quantile":
            if vectors and "le" not in vectors[0]:
                out.problems.append(f"histogram_quantile over series without 'le' (labels {sorted(vectors[0])})")
            return vectors[0] - {"le"} if vectors else frozenset()
        if node.func.name in ("scalar", "time"):
            return None
        return vectors[0] if vectors else frozenset()
    if isinstance(node, promql.AggregateExpr):
        inner = _labels(node.expr, series, out) or frozenset()
        if node.param is not None:
            _labels(node.param, series, out)
        modifier = node.modifier
        if modifier is None:
            return inner if str(node.op) in ("topk", "bottomk") else frozenset()
        named = frozenset(modifier.labels)
        by = modifier.type == promql.AggModifierType.By
        missing = named - inner
        if missing:
            grouping = "by" if by else "without"
            out.problems.append(f"{node.op} {grouping} {sorted(missing)}: no such label among {sorted(inner)}")
        return named if by else inner - named
    if isinstance(node, promql.BinaryExpr):
        left, right = _labels(node.lhs, series, out), _labels(node.rhs, series, out)
        if left is None or right is None:
            return right if left is None else left
        modifier = node.modifier
        if modifier is not None and modifier.matching is not None:
            named = frozenset(modifier.matching.labels)
            if modifier.matching.type == promql.LabelModifierType.Include:
                for side, labels in (("left", left), ("right", right)):
                    if named - labels:
                        out.problems.append(
                            f"on {sorted(named - labels)}: not labels of the {side} side {sorted(labels)}"
                        )
            extra = frozenset(modifier.group_labels or ())
            if extra - right:
                out.problems.append(f"group_left {sorted(extra - right)}: not labels of the right side {sorted(right)}")
            return left | extra
        return left | right if str(node.op) == "or" else left
    out.problems.append(f"unexpected PromQL node {type(node).__name__}")
    return frozenset()
