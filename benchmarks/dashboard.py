"""The Grafana dashboard (deploy/monitoring/grafana-dashboard.json) drawn from runnet's own /metrics.

There is no Grafana here, so this does what it would: ``record`` runs the stand-ins (GCP emulator,
Kubernetes stand-in) and ``runnet run --metrics-port`` against them, applies the examples (and an
object whose project is not bound, later bound; 5% of router calls failing with 503; a permission
taken away for a while), and scrapes /metrics every few seconds into a
series file; ``render`` evaluates each panel's PromQL over those samples (a small evaluator for
what the panels use: selectors, rate/increase, sum/min/max by, histogram_quantile) and draws every
panel where the dashboard puts it, into a PNG.

    .venv/bin/pip install -e '.[dashboard]'
    .venv/bin/python benchmarks/dashboard.py record --seconds 240 --out /tmp/runnet-series.json
    .venv/bin/python benchmarks/dashboard.py render --series /tmp/runnet-series.json --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import promql_parser as promql
import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"
LOOKBACK = 300.0  # Prometheus' staleness window, seconds
STEP = 5.0  # seconds between evaluated points
RATE_WINDOW = "1m"  # what $__rate_interval is at this scrape interval

Labels = tuple[tuple[str, str], ...]
Series = dict[tuple[str, Labels], list[tuple[float, float]]]  # (name, labels) -> [(t, value)]
Vector = dict[Labels, float]


# -- record -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("runnet_")
    ]


def record(seconds: float, interval: float, out: Path, latency: float) -> None:
    """Run the stand-ins and the operator, act out a small day, scrape /metrics; write the samples to ``out``."""
    from runnet.demo import EGRESS_PROJECT, PRODUCER, deploy, documents
    from runnet.emulator.gcp import EmulatorConfig, Fault
    from runnet.emulator.stack import Stack

    # Some weather: 5% of router calls answer 503 (runnet retries them).
    config = EmulatorConfig(operation_latency=latency, seed=1, faults=[Fault("compute.routers.*", 0.05, "503")])
    stack = Stack(config).start()
    role = yaml.safe_load((REPO / "deploy" / "gcp" / "runnet-operator-role.yaml").read_text())
    lost = set(role["includedPermissions"]) - {"compute.routers.get"}
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    runnet = str(Path(sys.executable).parent / "runnet")
    args = ["run", "--kubeconfig", str(stack.kubeconfig), "--gcp-endpoint", stack.gcp.base_url]
    operator = subprocess.Popen([runnet, *args, "--resync-interval", "15", "--metrics-port", str(port)])
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    deploy(stack, EGRESS_PROJECT, "direct-vpc-egress", quiet)
    deploy(stack, PRODUCER, "hello-service", quiet)
    begin = time.monotonic()
    # (seconds from the start, what happens): objects come, one stays unready for a while, then is fixed.
    unbound = {
        "apiVersion": "runnet.dev/v1alpha1",
        "kind": "EgressGateway",
        "metadata": {"name": "unbound", "namespace": "default"},
        "spec": {**documents("egress-fixed-ip.yaml")[0]["spec"], "project": "not-bound-project"},
    }
    script: list[tuple[float, Callable[[], object]]] = [
        (5, lambda: [stack.apply(b) for b in documents("project-bindings.yaml")]),
        (10, lambda: [stack.apply(b) for b in documents("egress-fixed-ip.yaml")]),
        (30, lambda: stack.apply(unbound)),
        (45, lambda: [stack.apply(b) for b in documents("psc-export.yaml")]),
        (60, lambda: [stack.apply(b) for b in documents("psc-endpoint.yaml")]),
        (seconds * 0.4, lambda: stack.bind("not-bound-project", name="late-binding")),
        # Someone edits the operator's role and drops compute.routers.get; a while later it is back.
        (seconds * 0.55, lambda: setattr(stack.gcp.config, "allowed_permissions", lost)),
        (seconds * 0.75, lambda: setattr(stack.gcp.config, "allowed_permissions", None)),
    ]
    samples: list[dict[str, Any]] = []
    try:
        while (now := time.monotonic() - begin) < seconds:
            while script and script[0][0] <= now:
                script.pop(0)[1]()
            try:
                samples.append({"t": round(now, 3), "samples": scrape(url)})
            except OSError as error:
                print(f"scrape at {now:.0f} s: {error}", file=sys.stderr)
            time.sleep(max(0.0, interval - (time.monotonic() - begin - now)))
    finally:
        operator.terminate()
        operator.wait(30)
        stack.stop()
    out.write_text(json.dumps({"interval": interval, "scrapes": samples}))
    print(f"{len(samples)} scrapes of {url} in {seconds:.0f} s -> {out}")


# -- evaluate ---------------------------------------------------------------------------------------


def load(path: Path) -> tuple[Series, float]:
    data = json.loads(path.read_text())
    series: Series = defaultdict(list)
    end = 0.0
    for scrape_ in data["scrapes"]:
        end = scrape_["t"]
        for name, labels, value in scrape_["samples"]:
            series[(name, tuple(sorted(labels.items())))].append((scrape_["t"], value))
    return series, end


class Evaluator:
    """Instant PromQL evaluation at time ``t`` over recorded samples (the subset the dashboard uses)."""

    def __init__(self, series: Series) -> None:
        self.series = series

    def matching(self, node: Any) -> dict[Labels, list[tuple[float, float]]]:
        out = {}
        for (name, labels), points in self.series.items():
            if name != node.name:
                continue
            have = dict(labels)
            if all(self._match(m, have.get(m.name, "")) for m in node.matchers.matchers):
                out[labels] = points
        return out

    @staticmethod
    def _match(matcher: Any, value: str) -> bool:
        import re

        op = str(matcher.op)
        if op.endswith("NotEqual"):
            return value != matcher.value
        if op.endswith("Equal"):
            return value == matcher.value
        hit = re.fullmatch(matcher.value, value) is not None
        return not hit if op.endswith("NotRe") else hit

    def eval(self, node: Any, t: float) -> Vector | float:
        if isinstance(node, promql.NumberLiteral):
            return float(node.val)
        if isinstance(node, promql.ParenExpr):
            return self.eval(node.expr, t)
        if isinstance(node, promql.VectorSelector):
            vector = {}
            for labels, points in self.matching(node).items():
                seen = [v for (ts, v) in points if t - LOOKBACK < ts <= t]
                if seen:
                    vector[labels] = seen[-1]
            return vector
        if isinstance(node, promql.Call):
            return self.call(node, t)
        if isinstance(node, promql.AggregateExpr):
            return self.aggregate(node, t)
        if isinstance(node, promql.BinaryExpr):
            return self.binary(node, t)
        raise ValueError(f"unsupported PromQL node {type(node).__name__}")

    def call(self, node: Any, t: float) -> Vector | float:
        name = node.func.name
        if name in ("rate", "increase"):
            matrix = node.args[0]
            window = matrix.range.total_seconds()
            vector = {}
            for labels, points in self.matching(matrix.vector_selector).items():
                inside = [(ts, v) for (ts, v) in points if t - window < ts <= t]
                if len(inside) < 2:
                    continue
                growth = sum(max(b - a, 0.0) if b >= a else b for (_, a), (_, b) in itertools.pairwise(inside))
                span = inside[-1][0] - inside[0][0]
                value = growth / span if name == "rate" else growth * window / span
                vector[tuple(p for p in labels if p[0] != "__name__")] = value
            return vector
        if name == "histogram_quantile":
            q = float(self.eval(node.args[0], t))  # type: ignore[arg-type]
            buckets = self.eval(node.args[1], t)
            assert isinstance(buckets, dict)
            groups: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
            for labels, value in buckets.items():
                rest = tuple(p for p in labels if p[0] != "le")
                groups[rest].append((float(dict(labels)["le"]), value))
            return {k: quantile(q, sorted(v)) for k, v in groups.items() if sorted(v)[-1][1] > 0}
        raise ValueError(f"unsupported function {name}")

    def aggregate(self, node: Any, t: float) -> Vector:
        inner = self.eval(node.expr, t)
        assert isinstance(inner, dict)
        modifier = node.modifier
        groups: dict[Labels, list[float]] = defaultdict(list)
        for labels, value in inner.items():
            if modifier is None:
                key: Labels = ()
            elif modifier.type == promql.AggModifierType.By:
                key = tuple(p for p in labels if p[0] in modifier.labels)
            else:
                key = tuple(p for p in labels if p[0] not in modifier.labels)
            groups[key].append(value)
        how: dict[str, Callable[[list[float]], float]] = {
            "sum": sum, "min": min, "max": max, "avg": lambda v: sum(v) / len(v), "count": len
        }  # fmt: skip
        return {k: how[str(node.op)](v) for k, v in groups.items()}

    def binary(self, node: Any, t: float) -> Vector | float:
        left, right = self.eval(node.lhs, t), self.eval(node.rhs, t)
        op = str(node.op)
        ops: dict[str, Callable[[float, float], float | bool]] = {
            "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
            "/": lambda a, b: a / b if b else math.nan,
            ">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
        }  # fmt: skip
        fn = ops[op]
        compare = op in (">", "<", ">=", "<=")
        if isinstance(left, float) and isinstance(right, float):
            return float(fn(left, right))
        if isinstance(left, dict) and isinstance(right, float):
            pairs = {k: (v, fn(v, right)) for k, v in left.items()}
        elif isinstance(left, float) and isinstance(right, dict):
            pairs = {k: (v, fn(left, v)) for k, v in right.items()}
        else:
            raise ValueError("vector-vector operations are not needed by the dashboard")
        if compare:
            return {k: v for k, (v, keep) in pairs.items() if keep}
        return {k: float(r) for k, (_, r) in pairs.items()}


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank."""
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = bound, count
    return lower_bound


# -- render -----------------------------------------------------------------------------------------


def legend(template: str, labels: Labels) -> str:
    text = template or ", ".join(f"{k}={v}" for k, v in labels)
    for key, value in labels:
        text = text.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
    return text


def render(series_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashboard = json.loads(DASHBOARD.read_text())
    series, end = load(series_path)
    evaluator = Evaluator(series)
    times = [i * STEP for i in range(int(end // STEP) + 1)]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    unit_w, unit_h = 0.62, 0.36  # inches per grid column / row
    fig = plt.figure(figsize=(24 * unit_w, rows * unit_h + 0.6), facecolor="#111217")
    title = (
        f"{dashboard['title']}  ·  rendered from runnet's own /metrics ({len(times)} points over "
        f"{end / 60:.0f} min) by benchmarks/dashboard.py, laid out as the Grafana dashboard"
    )
    fig.text(0.01, 1 - 0.25 / (rows * unit_h + 0.6), title, color="#ccccdc", fontsize=11, va="center")
    height = rows * unit_h + 0.6
    top = 1 - 0.6 / height
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        x0, w = g["x"] / 24, g["w"] / 24
        y0, h = top - (g["y"] + g["h"]) * unit_h / height, g["h"] * unit_h / height
        fig.patches.append(plt.Rectangle((x0 + 0.003, y0 + 0.003), w - 0.006, h - 0.006, transform=fig.transFigure,
                                         facecolor="#181b1f", edgecolor="#2c3235", zorder=-1))  # fmt: skip
        fig.text(x0 + 0.01, y0 + h - 0.012, panel["title"], color="#ccccdc", fontsize=10, va="top")
        # Inside the panel: room for the title above, tick labels left and below.
        box = [x0 + 0.045, y0 + 0.035, w - 0.06, h - 0.075]
        ax = fig.add_axes(box, facecolor="#181b1f")
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        if panel["type"] == "table":
            draw_table(ax, panel, evaluator, end)
            continue
        for target in panel["targets"]:
            tree = promql.parse(target["expr"].replace("$__rate_interval", RATE_WINDOW))
            lines: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
            for t in times:
                value = evaluator.eval(tree, t)
                for labels, v in value.items() if isinstance(value, dict) else [((), value)]:
                    lines[labels].append((t / 60, v * 100 if unit == "percentunit" else v))
            for labels, points in sorted(lines.items()):
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, linewidth=1.4, label=legend(target.get("legendFormat", ""), labels))
        ax.set_xlim(0, end / 60)
        ax.set_xlabel("minutes", color="#8e8e8e", fontsize=7)
        if unit == "percentunit":
            ax.set_ylim(0, 100)
            ax.axhline(20, color="#f2495c", linewidth=0.8, linestyle="--")
            ax.set_ylabel("%", color="#8e8e8e", fontsize=7)
        elif unit in ("s", "ops", "reqps"):
            ax.set_ylabel(
                {"s": "seconds", "ops": "per second", "reqps": "per second"}[unit], color="#8e8e8e", fontsize=7
            )
        ax.grid(color="#2c3235", linewidth=0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", edgecolor="#2c3235", labelcolor="#ccccdc",
                      ncol=2)  # fmt: skip
        else:
            ax.text(0.5, 0.5, "No data", color="#8e8e8e", ha="center", va="center", transform=ax.transAxes)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor=fig.get_facecolor())
    print(f"wrote {out}")


def draw_table(ax: Any, panel: dict[str, Any], evaluator: Evaluator, end: float) -> None:
    ax.axis("off")
    value = evaluator.eval(promql.parse(panel["targets"][0]["expr"]), end)
    assert isinstance(value, dict)
    columns = sorted({k for labels in value for k, _ in labels})
    rows = [[dict(labels).get(c, "") for c in columns] for labels in sorted(value)]
    if not rows:
        ax.text(0.5, 0.5, "No data", color="#8e8e8e", ha="center", va="center", transform=ax.transAxes)
        return
    table = ax.table(cellText=rows, colLabels=columns, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for cell in table.get_celld().values():
        cell.set_facecolor("#181b1f")
        cell.set_edgecolor("#2c3235")
        cell.get_text().set_color("#ccccdc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the stand-ins and the operator, scrape /metrics into a series file")
    rec.add_argument("--seconds", type=float, default=240)
    rec.add_argument("--interval", type=float, default=2.0)
    rec.add_argument("--latency", type=float, default=0.5, help="seconds each GCP operation takes")
    rec.add_argument("--out", type=Path, default=Path("/tmp/runnet-series.json"))
    ren = sub.add_parser("render", help="draw the dashboard's panels from a series file")
    ren.add_argument("--series", type=Path, default=Path("/tmp/runnet-series.json"))
    ren.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    args = parser.parse_args()
    if args.command == "record":
        record(args.seconds, args.interval, args.out, args.latency)
    else:
        render(args.series, args.out)


if __name__ == "__main__":
    main()
