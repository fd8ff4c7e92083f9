"""The ``runnet`` command: the operator, its emulators, CRD generation and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from runnet import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runnet")
def main() -> None:
    """runnet: Cloud Run networking (fixed egress IPs, Private Service Connect) as Kubernetes resources."""


@main.group()
def emulator() -> None:
    """Run the in-memory stand-ins for Google Cloud and Kubernetes."""


@emulator.command("gcp")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8085, show_default=True, type=int, help="Port to listen on (0: any free port).")
@click.option("--latency", default=0.0, show_default=True, type=float, help="Seconds each operation stays RUNNING.")
@click.option(
    "--jitter",
    default=0.0,
    show_default=True,
    type=float,
    help="Up to this many extra seconds per operation.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="METHOD_GLOB:RATE:KIND",
    help="Inject errors, e.g. 'compute.routers.*:0.2:503'; KIND is 429, 500, 503 or operation. Repeatable.",
)
@click.option(
    "--allow-permissions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File listing the IAM permissions callers hold (one a line); others get 403.",
)
@click.option(
    "--iam-policy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file: principal -> project -> permissions or roles (and custom roles under 'roles:').",
)
@click.option(
    "--principal",
    default=None,
    metavar="MEMBER",
    help="Who calls without a token the emulator issued [default: serviceAccount:runnet-operator@runnet-system...].",
)
@click.option(
    "--quota",
    "quotas",
    multiple=True,
    metavar="GROUP=N",
    help="Enforce a rate quota of N calls a minute per project (and region) on GROUP, e.g. 'read=3'. Repeatable.",
)
@click.option(
    "--quota-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file of GROUP: N rate quotas ('defaults: gcp' starts from GCP's default sizes).",
)
@click.option("--gcp-quotas", is_flag=True, help="Enforce every rate quota group at GCP's default size.")
@click.option(
    "--request-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request to this file (time, principal, method, project, status...).",
)
@click.option("--seed", type=int, default=None, help="Seed for fault injection and jitter.")
def emulator_gcp(
    host: str,
    port: int,
    latency: float,
    jitter: float,
    faults: tuple[str, ...],
    allow_permissions: Path | None,
    iam_policy: Path | None,
    principal: str | None,
    quotas: tuple[str, ...],
    quota_file: Path | None,
    gcp_quotas: bool,
    request_log: Path | None,
    seed: int | None,
) -> None:
    """Serve Compute Engine v1, Cloud Run Admin v1 and v2, projects, services and IAM Credentials from memory."""
    from runnet.emulator.gcp import EmulatorConfig, Fault, GCPEmulator, quota
    from runnet.emulator.gcp.iam import DEFAULT_PRINCIPAL, IamPolicy

    try:
        parsed = [Fault.parse(f) for f in faults]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc
    allowed = None
    if allow_permissions is not None:
        allowed = {line.strip() for line in allow_permissions.read_text().splitlines() if line.strip()}
    policy = None
    if iam_policy is not None:
        try:
            policy = IamPolicy.load(iam_policy)
        except (ValueError, OSError) as exc:
            raise click.BadParameter(str(exc), param_hint="--iam-policy") from exc
    limits: dict[str, int] | None = quota.gcp_defaults() if gcp_quotas else None
    try:
        if quota_file is not None:
            limits = {**(limits or {}), **quota.load_file(quota_file)}
        if quotas:
            limits = {**(limits or {}), **quota.normalise(dict(quota.parse_assignment(q) for q in quotas))}
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--quota") from exc
    config = EmulatorConfig(
        operation_latency=latency,
        latency_jitter=jitter,
        faults=parsed,
        allowed_permissions=allowed,
        iam_policy=policy,
        default_principal=principal or DEFAULT_PRINCIPAL,
        quotas=limits,
        request_log_path=request_log,
        seed=seed,
    )

    async def serve() -> None:
        emu = GCPEmulator(config)
        url = await emu.start(host, port)
        click.echo(url, nl=True)
        try:
            await asyncio.Event().wait()
        finally:
            await emu.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


@emulator.command("kube")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8086, show_default=True, type=int, help="Port to listen on (0: any free port).")
@click.option(
    "--crds",
    "crds_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory of CustomResourceDefinition YAML files to install at start.",
)
@click.option(
    "--kubeconfig",
    "kubeconfig_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a kubeconfig pointing at the server (plain HTTP, no credentials) to this file.",
)
def emulator_kube(host: str, port: int, crds_dir: Path | None, kubeconfig_path: Path | None) -> None:
    """Serve an in-memory Kubernetes API server (strict enough for kopf and kubectl) until interrupted."""
    from runnet.emulator.kube import serve_cli

    serve_cli(host, port, crds_dir, kubeconfig_path, ready=lambda url: click.echo(url, nl=True))


@main.command()
@click.option(
    "--dir",
    "directory",
    default="crds",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the CRD files live.",
)
@click.option("--check", is_flag=True, help="Exit 1 if the committed CRDs differ from the models instead of writing.")
def crds(directory: Path, check: bool) -> None:
    """Generate the CustomResourceDefinitions from the API models."""
    from runnet.api import crds as generator

    if check:
        if not directory.is_dir():
            raise click.ClickException(
                f"{directory}/ not found: run `runnet crds --check` in a runnet checkout, or pass --dir"
            )
        drift = generator.stale(directory)
        if drift:
            raise click.ClickException(f"{', '.join(drift)} out of date with the models: run `runnet crds`")
        click.echo(f"{directory}: up to date")
        return
    for path in generator.write_all(directory):
        click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Kubeconfig to use (default: in-cluster, then ~/.kube/config).",
)
@click.option("--namespace", "namespaces", multiple=True, help="Watch only this namespace (repeatable).")
@click.option("--all-namespaces", "all_namespaces", is_flag=True, help="Watch every namespace (the default).")
@click.option(
    "--gcp-endpoint",
    envvar="RUNNET_GCP_ENDPOINT",
    help="Base URL of a GCP emulator; without it, Google Cloud with Application Default Credentials.",
)
@click.option("--resync-interval", default=120.0, show_default=True, type=float, help="Seconds between drift checks.")
@click.option("--concurrency", default=64, show_default=True, type=int, help="GCP calls in flight at most.")
@click.option(
    "--liveness", default=None, help="Serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz."
)
@click.option(
    "--tenancy",
    type=click.Choice(["bound", "open"]),
    default="bound",
    show_default=True,
    help="bound: a ProjectBinding must grant an object's GCP project to its namespace; open: no check (one team).",
)
@click.option(
    "--gcp-rate",
    "gcp_rates",
    multiple=True,
    metavar="GROUP=N",
    help="At most N calls a minute per project (and region) in this GCP rate quota group, e.g. read=600 "
    "(repeatable; groups as the emulator's --quota).",
)
@click.option(
    "--gcp-rate-share",
    default=0.8,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of GCP's default rate quotas runnet uses for groups without --gcp-rate; 0 turns the limit off.",
)
@click.option(
    "--leader-elect/--no-leader-elect",
    default=False,
    show_default=True,
    help="Act only while holding a coordination.k8s.io Lease, so that several replicas can run (deploy/ turns it on).",
)
@click.option(
    "--leader-election-namespace",
    default=None,
    help="Namespace of the Lease [default: the pod's own (its ServiceAccount's), else runnet-system].",
)
@click.option("--leader-election-id", default="runnet-leader", show_default=True, help="Name of the Lease.")
@click.option(
    "--leader-elect-lease-duration",
    default=15.0,
    show_default=True,
    type=float,
    help="Seconds a standby waits, after the Lease last changed, before taking over (rounded to whole seconds).",
)
@click.option(
    "--leader-elect-renew-deadline",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds the leader keeps acting without renewing the Lease before it exits.",
)
@click.option(
    "--leader-elect-retry-period",
    default=2.0,
    show_default=True,
    type=float,
    help="Seconds between the leader's renewals and between a standby's attempts.",
)
@click.option(
    "--metrics-port",
    default=9090,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on this port at /metrics (0: no metrics).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object a line (time, level, logger, message, namespace, name) for log pipelines.",
)
def run(
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    gcp_endpoint: str | None,
    resync_interval: float,
    concurrency: int,
    liveness: str | None,
    tenancy: str,
    leader_elect: bool,
    leader_election_namespace: str | None,
    leader_election_id: str,
    leader_elect_lease_duration: float,
    leader_elect_renew_deadline: float,
    leader_elect_retry_period: float,
    metrics_port: int,
    log_format: str,
    gcp_rates: tuple[str, ...],
    gcp_rate_share: float,
) -> None:
    """Run the operator."""
    from runnet.gcp import quota_groups
    from runnet.leader import LeaseConfig, pod_namespace

    try:
        rates = quota_groups.normalise(dict(quota_groups.parse_assignment(r) for r in gcp_rates))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gcp-rate") from exc

    if namespaces and all_namespaces:
        raise click.UsageError("--namespace and --all-namespaces exclude each other")
    lease = None
    if leader_elect:
        lease = LeaseConfig(
            namespace=leader_election_namespace or pod_namespace(),
            name=leader_election_id,
            lease_duration=leader_elect_lease_duration,
            renew_deadline=leader_elect_renew_deadline,
            retry_period=leader_elect_retry_period,
        )
        if lease.problem():
            raise click.UsageError(lease.problem())
    from runnet import logs
    from runnet.runtime import MetricsPortError, OperatorSettings, kube_credentials_problem, run_operator

    problem = kube_credentials_problem(kubeconfig)
    if problem:
        raise click.ClickException(problem)
    logs.configure(log_format)
    settings = OperatorSettings(
        kubeconfig=kubeconfig,
        namespaces=list(namespaces),
        gcp_endpoint=gcp_endpoint,
        resync_interval=resync_interval,
        concurrency=concurrency,
        liveness=liveness,
        tenancy=tenancy,
        leader_election=lease,
        metrics_port=metrics_port,
        gcp_rates=rates,
        gcp_rate_share=gcp_rate_share,
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_operator(settings))
    except MetricsPortError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--serve", is_flag=True, help="Keep the emulators and the operator running, and print how to explore them."
)
@click.option("--latency", default=0.2, show_default=True, type=float, help="Seconds each GCP operation takes.")
@click.option(
    "--metrics-port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Serve the operator's Prometheus metrics on 127.0.0.1:PORT/metrics (0: no metrics).",
)
def demo(serve: bool, latency: float, metrics_port: int) -> None:
    """Run the operator against the embedded GCP and Kubernetes emulators and show what it builds."""
    import logging

    from runnet.demo import run_demo
    from runnet.runtime import MetricsPortError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.ERROR)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_demo(click.echo, serve=serve, latency=latency, metrics_port=metrics_port))
    except MetricsPortError as exc:
        raise click.ClickException(str(exc)) from exc
    # Everything is stopped and cleaned up: a late second Ctrl-C or SIGTERM must not turn the exit into a kill.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
