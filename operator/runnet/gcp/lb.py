"""Adapters for the regional internal Application Load Balancer in front of a Cloud Run service.

    serverless NEG → backend service (INTERNAL_MANAGED) → URL map → target HTTP proxy → forwarding rule

plus the proxy-only subnet such a load balancer needs. An existing resource with the spec's name
that runnet did not create is used only when it already is what the spec says; otherwise it is a
conflict, never modified. An owned one is repaired in place where GCP allows it.
"""

from __future__ import annotations

from typing import Any

from google.cloud import compute_v1

from runnet.engine import Adapter, Observation
from runnet.gcp.calls import GCPCallError, compute_write, find
from runnet.gcp.context import Context
from runnet.gcp.network import COMPUTE, SubnetAdapter, tail
from runnet.gcp.ownership import owner_of

PROXY_PURPOSES = ("REGIONAL_MANAGED_PROXY", "INTERNAL_HTTPS_LOAD_BALANCER")
# GCP accepts a /26 proxy-only subnet but recommends a /23 (each proxy takes an address).
PROXY_ONLY_MAX_PREFIX = 26


class RegionalAdapter(Adapter):
    """A regional Compute resource runnet creates: get, insert, delete and the ownership read."""

    client_attr = ""
    arg = ""
    """The client's name parameter for this kind (``backend_service``...)."""
    label = ""
    exclusive = True

    def __init__(self, ctx: Context, name: str, *, field: str) -> None:
        super().__init__(name)
        self.ctx = ctx
        self.field = field
        """The spec field naming this resource, for messages."""

    def client(self) -> Any:
        return getattr(self.ctx.clients, self.client_attr)

    @property
    def collection(self) -> str:
        """The REST collection (``backendServices``), as paths and operations' target links name it."""
        head, *rest = self.client_attr.split("_")
        return head + "".join(word.title() for word in rest)

    def read(self) -> Any:
        c = self.ctx
        return c.read(
            c.regional_path(self.collection, self.name),
            f"{self.label} {self.name}",
            lambda: self.client().get(project=c.project, region=c.region, **{self.arg: self.name}),
            lambda: self.client().list(project=c.project, region=c.region),
        )

    def seen(self, resource: Any) -> Observation:
        owned = self.ctx.owner.owns(resource.description)
        owner = "" if owned else owner_of(resource.description) or ""
        return Observation(exists=True, owned=owned, owner=owner, self_link=resource.self_link, body=resource)

    def differs(self, obs: Observation, problem: str) -> Observation:
        """The resource is not what the spec says: repaired when owned, a conflict otherwise."""
        if obs.owned:
            obs.up_to_date = False
        elif obs.owner:
            obs.conflict = f"{self.label} {self.name} is managed by {obs.owner}: set {self.field} to another name"
        else:
            obs.conflict = (
                f"{self.label} {self.name} exists, was not created by runnet and {problem}: "
                f"set {self.field} to another name or delete it"
            )
        return obs

    def insert(self, body: Any) -> None:
        c = self.ctx
        body.description = c.owner.description()
        compute_write(
            c.clients,
            f"creating {self.label} {self.name}",
            lambda: self.client().insert_unary(project=c.project, region=c.region, **{f"{self.arg}_resource": body}),
        )

    def delete(self, observed: Observation) -> None:
        c = self.ctx
        compute_write(
            c.clients,
            f"deleting {self.label} {self.name}",
            lambda: self.client().delete_unary(project=c.project, region=c.region, **{self.arg: self.name}),
        )


class ServerlessNegAdapter(RegionalAdapter):
    kind = "NetworkEndpointGroup"
    client_attr, arg, label = "network_endpoint_groups", "network_endpoint_group", "network endpoint group"

    def __init__(self, ctx: Context, name: str, *, service: str) -> None:
        super().__init__(ctx, name, field="spec.loadBalancer.neg")
        self.service = service

    def observe(self) -> Observation:
        neg = self.read()
        if neg is None:
            return Observation(exists=False)
        obs = self.seen(neg)
        serves = neg.cloud_run.service if neg.network_endpoint_type == "SERVERLESS" else ""
        if serves == self.service:
            return obs
        if obs.owned:
            # A NEG cannot be changed: a new name gives a new one, which the backend service then uses.
            obs.invalid = (
                f"network endpoint group {self.name} serves Cloud Run service {serves or '(none)'}, not "
                f"{self.service}; NEGs cannot be changed: set {self.field} to a new name"
            )
            return obs
        return self.differs(obs, f"does not serve Cloud Run service {self.service}")

    def create(self) -> None:
        self.insert(
            compute_v1.NetworkEndpointGroup(
                name=self.name,
                network_endpoint_type="SERVERLESS",
                cloud_run=compute_v1.NetworkEndpointGroupCloudRun(service=self.service),
            )
        )


class BackendServiceAdapter(RegionalAdapter):
    kind = "BackendService"
    client_attr, arg, label = "backend_services", "backend_service", "backend service"

    def __init__(self, ctx: Context, name: str, *, neg: str) -> None:
        super().__init__(ctx, name, field="spec.loadBalancer.backendService")
        self.neg = neg
        """Relative path of the serverless NEG."""

    def _backends(self) -> list[compute_v1.Backend]:
        return [compute_v1.Backend(group=COMPUTE + self.neg, balancing_mode="UTILIZATION", capacity_scaler=1.0)]

    def observe(self) -> Observation:
        service = self.read()
        if service is None:
            return Observation(exists=False)
        obs = self.seen(service)
        if service.load_balancing_scheme != "INTERNAL_MANAGED":
            problem = f"uses the {service.load_balancing_scheme} scheme, not INTERNAL_MANAGED"
            if obs.owned:
                obs.invalid = f"backend service {self.name} {problem}: set {self.field} to a new name"
                return obs
            return self.differs(obs, problem)
        groups = [tail(b.group) for b in service.backends]
        if groups != [self.neg] or service.protocol != "HTTP":
            return self.differs(obs, f"does not send HTTP to {self.neg.rsplit('/', 1)[-1]} only")
        return obs

    def create(self) -> None:
        self.insert(
            compute_v1.BackendService(
                name=self.name,
                load_balancing_scheme="INTERNAL_MANAGED",
                protocol="HTTP",
                backends=self._backends(),
            )
        )

    def update(self, observed: Observation) -> None:
        c = self.ctx
        patch = compute_v1.BackendService(
            backends=self._backends(), protocol="HTTP", fingerprint=observed.body.fingerprint
        )
        compute_write(
            c.clients,
            f"updating backend service {self.name}",
            lambda: c.clients.backend_services.patch_unary(
                project=c.project, region=c.region, backend_service=self.name, backend_service_resource=patch
            ),
        )


class UrlMapAdapter(RegionalAdapter):
    kind = "UrlMap"
    client_attr, arg, label = "url_maps", "url_map", "URL map"

    def __init__(self, ctx: Context, name: str, *, backend_service: str) -> None:
        super().__init__(ctx, name, field="spec.loadBalancer.urlMap")
        self.backend_service = backend_service

    def observe(self) -> Observation:
        url_map = self.read()
        if url_map is None:
            return Observation(exists=False)
        obs = self.seen(url_map)
        routes_elsewhere = bool(url_map.host_rules or url_map.path_matchers)
        if tail(url_map.default_service) != self.backend_service or routes_elsewhere:
            return self.differs(obs, f"does not send everything to {self.backend_service.rsplit('/', 1)[-1]}")
        return obs

    def _desired(self) -> compute_v1.UrlMap:
        return compute_v1.UrlMap(name=self.name, default_service=COMPUTE + self.backend_service)

    def create(self) -> None:
        self.insert(self._desired())

    def update(self, observed: Observation) -> None:
        # A full replace (PUT): a patch cannot clear host rules someone added.
        c = self.ctx
        body = self._desired()
        body.description = c.owner.description()
        body.fingerprint = observed.body.fingerprint
        compute_write(
            c.clients,
            f"updating URL map {self.name}",
            lambda: c.clients.url_maps.update_unary(
                project=c.project, region=c.region, url_map=self.name, url_map_resource=body
            ),
        )


class TargetHttpProxyAdapter(RegionalAdapter):
    kind = "TargetHttpProxy"
    client_attr, arg, label = "target_http_proxies", "target_http_proxy", "target HTTP proxy"

    def __init__(self, ctx: Context, name: str, *, url_map: str) -> None:
        super().__init__(ctx, name, field="spec.loadBalancer.targetProxy")
        self.url_map = url_map

    def observe(self) -> Observation:
        proxy = self.read()
        if proxy is None:
            return Observation(exists=False)
        obs = self.seen(proxy)
        if tail(proxy.url_map) != self.url_map:
            return self.differs(obs, f"does not use URL map {self.url_map.rsplit('/', 1)[-1]}")
        return obs

    def create(self) -> None:
        self.insert(compute_v1.TargetHttpProxy(name=self.name, url_map=COMPUTE + self.url_map))

    def update(self, observed: Observation) -> None:
        c = self.ctx
        ref = compute_v1.UrlMapReference(url_map=COMPUTE + self.url_map)
        compute_write(
            c.clients,
            f"pointing target HTTP proxy {self.name} at URL map {self.url_map.rsplit('/', 1)[-1]}",
            lambda: c.clients.target_http_proxies.set_url_map_unary(
                project=c.project, region=c.region, target_http_proxy=self.name, url_map_reference_resource=ref
            ),
        )


class InternalRuleAdapter(RegionalAdapter):
    """The producer's INTERNAL_MANAGED forwarding rule: the target the service attachment publishes."""

    kind = "ForwardingRule"
    client_attr, arg, label = "forwarding_rules", "forwarding_rule", "forwarding rule"

    def __init__(self, ctx: Context, name: str, *, network: str, subnet: str, proxy: str, port: int) -> None:
        super().__init__(ctx, name, field="spec.loadBalancer.forwardingRule")
        self.network = network
        self.subnet = subnet
        self.proxy = proxy
        self.port = port

    def observe(self) -> Observation:
        rule = self.read()
        if rule is None:
            return Observation(exists=False)
        obs = self.seen(rule)
        obs.outputs["ip"] = rule.I_p_address
        fixed = {
            "scheme": (rule.load_balancing_scheme, "INTERNAL_MANAGED"),
            "port": (rule.port_range, f"{self.port}-{self.port}"),
            "network": (tail(rule.network), self.ctx.network_path(self.network)),
            "subnetwork": (tail(rule.subnetwork), self.ctx.regional_path("subnetworks", self.subnet)),
        }
        wrong = [what for what, (seen, want) in fixed.items() if seen != want]
        if wrong and obs.owned:
            obs.invalid = (
                f"forwarding rule {self.name} has another {wrong[0]} than the spec and GCP cannot change it in "
                f"place: set {self.field} to a new name"
            )
            return obs
        if wrong or tail(rule.target) != self.proxy:
            return self.differs(obs, f"does not forward port {self.port} to {self.proxy.rsplit('/', 1)[-1]}")
        return obs

    def create(self) -> None:
        c = self.ctx
        self.insert(
            compute_v1.ForwardingRule(
                name=self.name,
                load_balancing_scheme="INTERNAL_MANAGED",
                I_p_protocol="TCP",
                port_range=str(self.port),
                network=COMPUTE + c.network_path(self.network),
                subnetwork=COMPUTE + c.regional_path("subnetworks", self.subnet),
                target=COMPUTE + self.proxy,
                network_tier="PREMIUM",
            )
        )

    def update(self, observed: Observation) -> None:
        c = self.ctx
        ref = compute_v1.TargetReference(target=COMPUTE + self.proxy)
        compute_write(
            c.clients,
            f"pointing forwarding rule {self.name} at {self.proxy.rsplit('/', 1)[-1]}",
            lambda: c.clients.forwarding_rules.set_target_unary(
                project=c.project, region=c.region, forwarding_rule=self.name, target_reference_resource=ref
            ),
        )


class ProxyOnlySubnetAdapter(SubnetAdapter):
    """The network's ACTIVE proxy-only subnet in the region: the spec's, or the one already there.

    A network and region hold at most one ACTIVE proxy-only subnet, shared by all its managed
    load balancers: when one exists under another name it is used (never modified or deleted)
    and the adapter takes its name. One list of the region's subnets answers both questions.
    """

    def __init__(self, ctx: Context, name: str, *, network: str, ip_cidr_range: str | None) -> None:
        super().__init__(
            ctx,
            name,
            network=network,
            ip_cidr_range=ip_cidr_range,
            field="spec.subnets.proxyOnly",
            purpose="REGIONAL_MANAGED_PROXY",
            role="ACTIVE",
        )
        self.requested = name

    def _get(self) -> compute_v1.Subnetwork | None:
        c = self.ctx
        subnets: list[compute_v1.Subnetwork] = c.read_all(
            c.regional_path("subnetworks", "")[:-1],
            f"subnetworks in {c.region}",
            lambda: c.clients.subnetworks.list(project=c.project, region=c.region),
        )
        network = c.network_path(self.network)
        active = [
            s for s in subnets if tail(s.network) == network and s.purpose in PROXY_PURPOSES and s.role == "ACTIVE"
        ]
        named = next((s for s in subnets if s.name == self.requested), None)
        if active and (named is None or named not in active):
            self.name, self.purpose = active[0].name, active[0].purpose
            return active[0]
        return named

    def delete(self, observed: Observation) -> None:
        """GCP refuses to delete a proxy-only subnet while a managed load balancer of the network uses it."""
        users = self._managed_rules()
        if users:
            raise GCPCallError(
                f"proxy-only subnet {self.name} is still used by forwarding rule {users[0]}: it is deleted once the "
                "network's other managed load balancers in the region are gone (or set deletionPolicy: Orphan)",
                retryable=True,
                reason="resourceInUseByAnotherResource",
            )
        super().delete(observed)

    def _managed_rules(self) -> list[str]:
        c = self.ctx
        request = compute_v1.ListForwardingRulesRequest(
            project=c.project, region=c.region, filter="loadBalancingScheme = INTERNAL_MANAGED"
        )
        pages = find("listing forwarding rules", lambda: c.clients.forwarding_rules.list(request=request))
        network = c.network_path(self.network)
        return [r.name for r in pages or [] if tail(r.network) == network]

    def _check_range(self, sub: compute_v1.Subnetwork, obs: Observation) -> None:
        """The network's existing proxy-only subnet is reused whatever its range; only runnet's own is checked."""
        if obs.owned:
            super()._check_range(sub, obs)

    def observe(self) -> Observation:
        obs = super().observe()
        obs.outputs["reused"] = obs.exists and not obs.owned
        if obs.outputs["reused"]:
            obs.message = (
                f"the load balancer uses the network's existing ACTIVE proxy-only subnet {self.name} "
                "(not created by runnet, never deleted by it)"
            )
        return obs
