"""Scale benchmark (issue 11): many objects applied at once, through kopf, within GCP's rate quotas.

The GCP emulator runs in a process of its own (operation latency L, every rate quota at GCP's
default size, a request log), the Kubernetes stand-in in this process, and ``runnet run`` in a
third process, so that its RSS is the operator's alone. N EgressGateways and M PSCExport +
PSCEndpoint pairs across 10 namespaces and 5 projects (ProjectBindings grant each namespace its
producer and consumer project) are applied at once. Prints, and appends as one JSON line to --out:

- time until all are Ready, next to the bound max(critical path, calls needed per quota group /
  runnet's rate for it) and their ratio;
- rateLimitExceeded answers (all, and after the first minute);
- converged: GCP reads and writes per object per hour over one resync interval;
- drift: seconds until a NAT deleted by hand is back;
- the operator's peak RSS.

    .venv/bin/python benchmarks/scale.py --gateways 100 --pairs 30 [--latency 1.0] [--out FILE]
    .venv/bin/python benchmarks/scale.py --chart docs/benchmarks.json   # the PNG for docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import copy
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kubernetes
from tests.operator.conftest import deploy_service, example

from runnet.api import crds
from runnet.api.common import GROUP, VERSION
from runnet.emulator.kube import KubeEmulatorThread, write_kubeconfig
from runnet.gcp.clients import Clients, GCPSettings
from runnet.gcp.limiter import RateLimiter, default_rates

REGION = "asia-northeast1"
PROJECTS = [f"bench-{j}" for j in range(5)]
NAMESPACES = [f"team-{n}" for n in range(10)]
GATEWAY_PATH, PAIR_PATH = 4, 7
"""Critical paths in operations: network -> subnet/router -> NAT -> Cloud Run; export's LB chain + endpoint rule."""
RUNNET = str(Path(sys.executable).with_name("runnet"))
GATEWAY_READS = {
    "compute.networks.get",
    "compute.networks.list",
    "compute.subnetworks.get",
    "compute.subnetworks.list",
    "compute.routers.get",
    "compute.routers.list",
    "compute.routers.getRouterStatus",
    "compute.routers.getNatIpInfo",
    "compute.addresses.get",
    "compute.addresses.list",
    "compute.regions.get",
    "run.projects.locations.services.get",
    "run.projects.locations.services.list",
}
"""What an EgressGateway's pass reads (networks, subnets, addresses and Cloud Run services are read by PSC objects
too: counting them to gateways alone overstates a gateway's share)."""
SHARE = 0.8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def producer(n: int) -> str:
    return PROJECTS[(n // 2) % 5]


def consumer(n: int) -> str:
    return PROJECTS[(n // 2 + 1) % 5]


def gateway(i: int) -> dict[str, Any]:
    body = copy.deepcopy(example("egress-fixed-ip.yaml"))
    ns = NAMESPACES[i % 10]
    spec = body["spec"]
    body["metadata"] = {"name": f"gw-{i}", "namespace": ns}
    spec["project"] = producer(i % 10)
    spec["network"]["name"] = f"vpc-{i}"
    spec["subnet"] = {"name": f"subnet-{i}", "ipCidrRange": "10.8.0.0/24"}
    spec["router"]["name"] = f"router-{i}"
    spec["nat"]["name"] = f"nat-{i}"
    spec["nat"]["addresses"] = [f"ip-{i}"]
    spec["services"] = [{"name": f"svc-{i}"}]
    return body


def pair(k: int) -> list[dict[str, Any]]:
    ns = NAMESPACES[k % 10]
    export, endpoint = copy.deepcopy(example("psc-export.yaml")), copy.deepcopy(example("psc-endpoint.yaml"))
    export["metadata"] = {"name": f"export-{k}", "namespace": ns}
    spec = export["spec"]
    spec["project"], spec["service"] = producer(k % 10), f"hello-{k}"
    spec["network"]["name"] = f"producer-vpc-{k}"
    for role, sub in spec["subnets"].items():
        sub["name"] = f"{role.lower()}-{k}"
    spec["loadBalancer"].update(
        neg=f"neg-{k}", backendService=f"bes-{k}", urlMap=f"um-{k}", targetProxy=f"proxy-{k}", forwardingRule=f"fr-{k}"
    )
    spec["attachment"]["name"] = f"sa-{k}"
    spec["attachment"]["consumers"] = [{"project": consumer(k % 10), "connectionLimit": 10}]
    endpoint["metadata"] = {"name": f"endpoint-{k}", "namespace": ns}
    spec = endpoint["spec"]
    spec["project"] = consumer(k % 10)
    spec["network"]["name"] = f"consumer-vpc-{k}"
    spec["subnet"] = {"name": f"consumer-subnet-{k}", "ipCidrRange": f"10.{1 + k // 250}.{k % 250}.0/24"}
    spec["address"] = {"name": f"psc-ip-{k}", "ip": f"10.{1 + k // 250}.{k % 250}.5"}
    spec["forwardingRule"]["name"] = f"psc-{k}"
    spec["target"]["exportRef"] = {"name": f"export-{k}", "namespace": ns}
    return [export, endpoint]


def bindings() -> list[dict[str, Any]]:
    out = []
    for j, project in enumerate(PROJECTS):
        namespaces = [n for i, n in enumerate(NAMESPACES) if project in (producer(i), consumer(i))]
        out.append(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ProjectBinding",
                "metadata": {"name": project},
                "spec": {"project": project, "namespaces": namespaces},
            }
        )
        del j
    return out


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="runnet-scale-"))
        self.log_path = self.work / "requests.jsonl"
        self.procs: list[subprocess.Popen[bytes]] = []

    # -- processes --------------------------------------------------------------------------------

    def start(self) -> None:
        port = free_port()
        cmd = [RUNNET, "emulator", "gcp", "--port", str(port), "--latency", str(self.args.latency), "--seed", "1"]
        cmd += ["--gcp-quotas", "--request-log", str(self.log_path)]
        self.logs = [(self.work / "gcp.log").open("wb"), (self.work / "operator.log").open("wb")]
        self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.logs[0]))
        self.gcp_url = f"http://127.0.0.1:{port}"
        self.kube = KubeEmulatorThread()
        emu = self.kube.start()
        self.kubeconfig = self.work / "kubeconfig"
        write_kubeconfig(self.kubeconfig, str(emu.base_url))
        for info in crds.KINDS:
            self.kube.call(lambda info=info: emu.apply_crd(crds.crd(info)))  # type: ignore[misc]
        api_client = kubernetes.config.new_client_from_config(str(self.kubeconfig))
        self.api = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        limiter = RateLimiter(default_rates(SHARE))
        self.clients = Clients(GCPSettings(endpoint=self.gcp_url), limiter=limiter)

    def start_operator(self) -> None:
        cmd = [RUNNET, "run", "--kubeconfig", str(self.kubeconfig), "--gcp-endpoint", self.gcp_url]
        cmd += ["--gcp-rate-share", str(self.args.rate_share), "--metrics-port", "0"]
        self.operator = subprocess.Popen(cmd, stdout=self.logs[1], stderr=self.logs[1])
        self.procs.append(self.operator)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.kube.stop()

    def rss_mb(self) -> tuple[float, float]:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.operator.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    # -- objects ----------------------------------------------------------------------------------

    def apply(self, body: dict[str, Any]) -> None:
        plural = next(i.plural for i in crds.KINDS if i.kind == body["kind"])
        if body["kind"] == "ProjectBinding":
            self.api.create_cluster_custom_object(GROUP, VERSION, plural, body)
        else:
            ns = body["metadata"]["namespace"]
            self.api.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)

    def ready(self) -> tuple[int, collections.Counter[str]]:
        count, reasons = 0, collections.Counter[str]()
        for info in crds.KINDS:
            if not info.namespaced:
                continue
            for obj in self.api.list_cluster_custom_object(GROUP, VERSION, info.plural)["items"]:
                cond = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
                if cond.get("status") == "True":
                    count += 1
                else:
                    reasons[str(cond.get("reason", "none"))] += 1
        return count, reasons

    def requests(self, since: float, until: float = float("inf")) -> list[dict[str, Any]]:
        entries = []
        with self.log_path.open() as f:
            for line in f:
                entry = json.loads(line)
                if since <= entry["epoch"] < until:
                    entries.append(entry)
        return entries

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        n, m = self.args.gateways, self.args.pairs
        self.start()
        for ns in NAMESPACES:
            self.core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=ns)))
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            services = [(producer(i % 10), f"svc-{i}") for i in range(n)]
            services += [(producer(k % 10), f"hello-{k}") for k in range(m)]
            list(pool.map(lambda s: deploy_service(self.clients, s[0], REGION, s[1]), services))
        for body in bindings():
            self.apply(body)
        # Fresh quota windows for the operator: start at a minute boundary.
        time.sleep(60 - time.time() % 60 + 0.5)
        self.start_operator()
        time.sleep(3)  # kopf's watches up
        objects = [gateway(i) for i in range(n)] + [o for k in range(m) for o in pair(k)]
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(self.apply, objects))
        total = len(objects)
        last_print = 0.0
        while True:
            count, reasons = self.ready()
            if count == total:
                break
            if time.time() - last_print > 30:
                ready = f"{count}/{total} Ready; not yet: {dict(reasons.most_common(4))}"
                print(f"  {time.time() - t0:6.0f} s: {ready}", flush=True)
                last_print = time.time()
            if self.operator.poll() is not None:
                raise SystemExit(f"the operator exited ({self.operator.returncode}): see {self.work / 'operator.log'}")
            if time.time() - t0 > self.args.timeout:
                raise SystemExit(f"not all Ready after {self.args.timeout} s: {count}/{total}, {dict(reasons)}")
            time.sleep(1)
        t_ready = time.time() - t0
        created = self.requests(t0, t0 + t_ready)
        result = {"gateways": n, "pairs": m, "objects": total, "latency": self.args.latency, "ready_s": t_ready}
        result.update(self.bound(created, n, m))
        result["rate_limited"] = sum(1 for e in created if e["status"] in (403, 429) and e["quotaGroup"])
        late = self.requests(t0 + 60)
        result["rate_limited_after_first_minute"] = sum(
            1 for e in late if e["status"] in (403, 429) and e["quotaGroup"]
        )
        result.update(self.converged(total))
        if n:
            result["drift_repair_s"] = self.drift()
        result["rss_mb"], result["rss_peak_mb"] = self.rss_mb()
        late = self.requests(t0 + 60)
        result["rate_limited_after_first_minute"] = sum(
            1 for e in late if e["status"] in (403, 429) and e["quotaGroup"]
        )
        return result

    def bound(self, calls: list[dict[str, Any]], n: int, m: int) -> dict[str, Any]:
        """max(critical path x L, for each project/group/region: calls needed / runnet's rate for it)."""
        rates = default_rates(self.args.rate_share or 1.0)
        per_key = collections.Counter(
            (e["project"], e["quotaGroup"], e["region"] or "") for e in calls if e["quotaGroup"]
        )
        path = (PAIR_PATH if m else GATEWAY_PATH) * self.args.latency
        worst, worst_key = 0.0, ""
        for (project, group, region), used in per_key.items():
            # n calls at r a minute: the last one starts in minute ceil(n / r) - 1.
            seconds = (-(-used // rates[group]) - 1) * 60.0
            if seconds > worst:
                worst, worst_key = seconds, f"{project} {group} {region}: {used} calls at {rates[group]}/min"
        return {"bound_s": max(path, worst), "critical_path_s": path, "quota_s": worst, "quota_key": worst_key}

    def converged(self, total: int) -> dict[str, Any]:
        time.sleep(10)  # the last settling passes
        start = time.time()
        time.sleep(self.args.window)
        calls = self.requests(start, time.time())
        reads = [e for e in calls if e["httpMethod"] == "GET"]
        writes = [e for e in calls if e["httpMethod"] != "GET" and not e["method"].endswith(".wait")]
        per_hour = 3600 / self.args.window
        return {
            "reads_per_object_hour": len(reads) * per_hour / total,
            "converged_reads_by_method": dict(collections.Counter(e["method"] for e in reads).most_common()),
            "writes_converged": len(writes),
            "window_s": self.args.window,
        }

    def drift(self) -> float:
        from google.cloud import compute_v1

        project = producer(0)
        router = self.clients.routers.get(project=project, region=REGION, router="router-0")
        router.nats = []
        self.clients.routers.update_unary(project=project, region=REGION, router="router-0", router_resource=router)
        start = time.time()
        while time.time() - start < 300:
            time.sleep(1)
            got = self.clients.routers.get(project=project, region=REGION, router="router-0")
            if any(nat.name == "nat-0" for nat in got.nats):
                return time.time() - start
        del compute_v1
        return float("inf")


def report(r: dict[str, Any]) -> None:
    objects = f"{r['gateways']} EgressGateways + {r['pairs']} PSCExport/PSCEndpoint pairs ({r['objects']} objects)"
    print(f"{objects}, L = {r['latency']} s")
    ratio = r["ready_s"] / r["bound_s"]
    print(
        f"all Ready in {r['ready_s']:.1f} s; bound {r['bound_s']:.1f} s (critical path {r['critical_path_s']:.1f} s, "
        f"quota {r['quota_s']:.0f} s: {r['quota_key'] or '-'}); ratio {ratio:.2f} (target <= 1.25)"
    )
    print(
        f"rateLimitExceeded answers: {r['rate_limited']} while creating, "
        f"{r['rate_limited_after_first_minute']} after the first minute (target 0)"
    )
    print(
        f"converged: {r['reads_per_object_hour']:.1f} GCP reads per object per hour (target <= 3), "
        f"{r['writes_converged']} writes in {r['window_s']:.0f} s (target 0)"
    )
    if r["gateways"] and "converged_reads_by_method" in r:
        mine = sum(n for m, n in r["converged_reads_by_method"].items() if m in GATEWAY_READS)
        per_gateway = mine * 3600 / r["window_s"] / r["gateways"]
        print(
            f"  of which the kinds a gateway reads (shared ones counted to gateways alone): {per_gateway:.2f} per "
            "gateway per hour (target <= 3 at 1,000 gateways)"
        )
    by_method = ", ".join(f"{m} {n}" for m, n in list(r.get("converged_reads_by_method", {}).items())[:8])
    print(f"  converged reads in {r['window_s']:.0f} s by method: {by_method or 'none'}")
    if "drift_repair_s" in r:
        print(f"a NAT deleted by hand was back after {r['drift_repair_s']:.0f} s (target <= the 120 s resync interval)")
    print(f"operator RSS {r['rss_mb']:.0f} MB, peak {r['rss_peak_mb']:.0f} MB (target <= 250 MB at 1,000 objects)")


def chart(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: r["objects"])
    xs = [r["objects"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].plot(xs, [r["ready_s"] for r in rows], "o-", label="all Ready")
    axes[0].plot(xs, [r["bound_s"] for r in rows], "s--", label="bound")
    axes[0].set_title("seconds until all Ready")
    axes[1].plot(xs, [r["reads_per_object_hour"] for r in rows], "o-")
    axes[1].axhline(3, color="grey", linestyle=":")
    axes[1].set_title("converged GCP reads per object per hour")
    axes[2].plot(xs, [r["rss_peak_mb"] for r in rows], "o-")
    axes[2].axhline(250, color="grey", linestyle=":")
    axes[2].set_title("operator peak RSS (MB)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("objects")
    axes[0].legend()
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=2, help="PSCExport + PSCEndpoint pairs")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rate-share", type=float, default=SHARE, help="runnet run --gcp-rate-share (0: no limiter)")
    parser.add_argument("--window", type=float, default=120.0, help="seconds the converged calls are counted")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--out", type=Path, help="append the figures as one JSON line")
    parser.add_argument("--chart", type=Path, help="draw the PNG from a file of JSON lines, and run nothing")
    args = parser.parse_args()
    if args.chart:
        chart(args.chart)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the emulator and operator too
    bench = Bench(args)
    try:
        result = bench.run()
    finally:
        bench.stop()
    report(result)
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")
    print(f"work dir (logs): {bench.work}")


if __name__ == "__main__":
    main()
