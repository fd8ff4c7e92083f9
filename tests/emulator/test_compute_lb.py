"""Regional load balancing in the GCP emulator, through google-cloud-compute over HTTP.

Serverless NEG → backend service → URL map → target HTTP proxy → INTERNAL_MANAGED forwarding
rule, with the defaults, errors and in-use rules of the real-GCP recordings (NOTES.md).
"""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions
from google.cloud import compute_v1

from runnet.emulator.gcp import GCPEmulator
from runnet.gcp.clients import Clients
from tests.emulator import lb_topology as t
from tests.emulator.lb_topology import PRODUCER, REGION

P, R = PRODUCER, REGION
SCOPE = f"projects/{P}/regions/{R}"


def op_types(gcp: GCPEmulator, method_id: str) -> list[str]:
    return [
        e.response_body["operationType"] for e in gcp.log.snapshot() if e.method_id == method_id and e.status == 200
    ]


def test_reference_chain_gets_gcp_defaults(clients: Clients, gcp: GCPEmulator) -> None:
    p = t.producer(clients)

    neg = clients.network_endpoint_groups.get(project=P, region=R, network_endpoint_group="hello-serverless-neg")
    assert (neg.size, neg.cloud_run.service, neg.network_endpoint_type) == (0, "hello-service", "SERVERLESS")
    assert op_types(gcp, "compute.regionNetworkEndpointGroups.insert") == ["compute.regionNetworkEndpointGroups.insert"]

    bs = clients.backend_services.get(project=P, region=R, backend_service="hello-backend-service")
    assert (bs.port, bs.port_name, bs.timeout_sec, bs.session_affinity) == (80, "http", 30, "NONE")
    assert (bs.protocol, bs.affinity_cookie_ttl_sec, bs.connection_draining.draining_timeout_sec) == ("HTTP", 0, 0)
    assert bs.description == "" and bs.fingerprint
    assert bs.iap.oauth2_client_secret_sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    [backend] = bs.backends
    assert (backend.group, backend.balancing_mode, backend.capacity_scaler) == (p.neg, "UTILIZATION", 1.0)

    um = clients.url_maps.get(project=P, region=R, url_map="hello-url-map")
    assert um.default_service == p.backend and um.fingerprint
    # google-cloud-compute 1.56 has no UrlMap.status: read it over plain HTTP.
    raw = requests.get(f"{gcp.base_url}/compute/v1/{SCOPE}/urlMaps/hello-url-map", timeout=5).json()
    assert raw["status"]["quotaUsage"]["forwardingRules"] == 1  # the proxy's forwarding rule uses it

    proxy = clients.target_http_proxies.get(project=P, region=R, target_http_proxy="hello-http-proxy")
    assert proxy.url_map == p.url_map and proxy.fingerprint

    rule = clients.forwarding_rules.get(project=P, region=R, forwarding_rule="hello-forwarding-rule")
    assert rule.I_p_address == "10.0.1.2"  # first usable host of producer-subnet
    assert (rule.I_p_protocol, rule.port_range, rule.network_tier) == ("TCP", "80-80", "PREMIUM")
    assert (rule.network, rule.subnetwork, rule.target) == (p.vpc, p.subnet, p.proxy)
    assert rule.label_fingerprint == "42WmSpB8rSM=" and rule.fingerprint and rule.description == ""
    assert rule.self_link_with_id.endswith(f"/forwardingRules/{rule.id}")
    assert rule.load_balancing_scheme == "INTERNAL_MANAGED"


def test_forwarding_rule_needs_an_active_proxy_only_subnet(clients: Clients) -> None:
    vpc, main, _, _ = t.producer_network(clients, proxy_subnet=False)
    *_, proxy = t.backend_chain(clients)
    with pytest.raises(exceptions.BadRequest, match=r"An active proxy-only subnetwork is required in the same region"):
        t.proxy_rule(clients, "no-proxy-subnet", vpc, main, proxy)
    t.subnet(clients, P, "late-proxy-subnet", "10.0.9.0/24", vpc, "REGIONAL_MANAGED_PROXY", "ACTIVE")
    assert t.proxy_rule(clients, "with-proxy-subnet", vpc, main, proxy).endswith("/with-proxy-subnet")


def test_forwarding_rule_ports_and_addresses(clients: Clients) -> None:
    p = t.producer(clients)
    with pytest.raises(exceptions.BadRequest, match=r"portRange"):
        t.proxy_rule(clients, "bad-port", p.vpc, p.subnet, p.proxy, port_range="70000")
    with pytest.raises(exceptions.BadRequest, match=r"IPAddress"):
        t.proxy_rule(clients, "outside", p.vpc, p.subnet, p.proxy, I_p_address="10.9.9.9")
    t.proxy_rule(clients, "given-ip", p.vpc, p.subnet, p.proxy, I_p_address="10.0.1.50")
    rule = clients.forwarding_rules.get(project=P, region=R, forwarding_rule="given-ip")
    assert rule.I_p_address == "10.0.1.50"
    with pytest.raises(exceptions.Conflict, match=r"10\.0\.1\.50"):
        t.proxy_rule(clients, "same-ip", p.vpc, p.subnet, p.proxy, I_p_address="10.0.1.50")
    address = t.internal_address(clients, P, "lb-ip", "10.0.1.60", p.subnet)
    t.proxy_rule(clients, "from-address", p.vpc, p.subnet, p.proxy, I_p_address=address)
    assert clients.forwarding_rules.get(project=P, region=R, forwarding_rule="from-address").I_p_address == "10.0.1.60"
    assert clients.addresses.get(project=P, region=R, address="lb-ip").status == "IN_USE"


def test_deleting_what_is_in_use_fails_synchronously(clients: Clients, gcp: GCPEmulator) -> None:
    t.producer(clients)
    chain = [
        ("network_endpoint_groups", "network_endpoint_group", "networkEndpointGroups", "hello-serverless-neg"),
        ("backend_services", "backend_service", "backendServices", "hello-backend-service"),
        ("url_maps", "url_map", "urlMaps", "hello-url-map"),
        ("target_http_proxies", "target_http_proxy", "targetHttpProxies", "hello-http-proxy"),
    ]
    users = [f"{SCOPE}/{c}/{n}" for _, _, c, n in chain[1:]] + [f"{SCOPE}/forwardingRules/hello-forwarding-rule"]
    for (client, field, collection, name), user in zip(chain, users, strict=True):
        with pytest.raises(exceptions.BadRequest) as err:
            getattr(clients, client).delete(project=P, region=R, **{field: name})
        expected = f"The {field} resource '{SCOPE}/{collection}/{name}' is already being used by '{user}'"
        assert expected in str(err.value)
        assert err.value.errors[0]["reason"] == "resourceInUseByAnotherResource"
    clients.forwarding_rules.delete(project=P, region=R, forwarding_rule="hello-forwarding-rule").result()
    for client, field, collection, name in reversed(chain):
        getattr(clients, client).delete(project=P, region=R, **{field: name}).result()
        assert gcp.store.get(f"{SCOPE}/{collection}/{name}") is None
    assert op_types(gcp, "compute.regionNetworkEndpointGroups.delete") == ["compute.regionNetworkEndpointGroups.delete"]


def test_backend_service_patch_and_update_need_the_fingerprint(clients: Clients, gcp: GCPEmulator) -> None:
    t.producer(clients)
    bs = clients.backend_services.get(project=P, region=R, backend_service="hello-backend-service")
    stale = compute_v1.BackendService(fingerprint="c3RhbGUhIQ==", timeout_sec=60)
    with pytest.raises(exceptions.PreconditionFailed):
        clients.backend_services.patch(
            project=P, region=R, backend_service="hello-backend-service", backend_service_resource=stale
        )
    patch = compute_v1.BackendService(fingerprint=bs.fingerprint, timeout_sec=60)
    clients.backend_services.patch(
        project=P, region=R, backend_service="hello-backend-service", backend_service_resource=patch
    ).result()
    patched = clients.backend_services.get(project=P, region=R, backend_service="hello-backend-service")
    assert patched.timeout_sec == 60 and len(patched.backends) == 1 and patched.fingerprint != bs.fingerprint
    assert patched.id == bs.id

    whole = compute_v1.BackendService(
        name="hello-backend-service",
        load_balancing_scheme="INTERNAL_MANAGED",
        description="replaced",
        fingerprint=bs.fingerprint,
    )
    with pytest.raises(exceptions.PreconditionFailed):
        clients.backend_services.update(
            project=P, region=R, backend_service="hello-backend-service", backend_service_resource=whole
        )
    whole.fingerprint = patched.fingerprint
    clients.backend_services.update(
        project=P, region=R, backend_service="hello-backend-service", backend_service_resource=whole
    ).result()
    updated = clients.backend_services.get(project=P, region=R, backend_service="hello-backend-service")
    assert updated.description == "replaced" and updated.timeout_sec == 30 and not updated.backends
    assert op_types(gcp, "compute.regionBackendServices.update") == ["update"]


def test_url_map_update_and_proxy_set_url_map(clients: Clients, gcp: GCPEmulator) -> None:
    p = t.producer(clients)
    um = clients.url_maps.get(project=P, region=R, url_map="hello-url-map")
    body = compute_v1.UrlMap(name="hello-url-map", default_service=p.backend, description="v2", fingerprint="bad=")
    with pytest.raises(exceptions.PreconditionFailed):
        clients.url_maps.update(project=P, region=R, url_map="hello-url-map", url_map_resource=body)
    body.fingerprint = um.fingerprint
    clients.url_maps.update(project=P, region=R, url_map="hello-url-map", url_map_resource=body).result()
    assert clients.url_maps.get(project=P, region=R, url_map="hello-url-map").description == "v2"

    other = compute_v1.UrlMap(name="other-url-map", default_service=p.backend)
    clients.url_maps.insert(project=P, region=R, url_map_resource=other).result()
    proxy = clients.target_http_proxies.get(project=P, region=R, target_http_proxy="hello-http-proxy")
    request = compute_v1.UrlMapReference(url_map=t.link(P, "urlMaps", "other-url-map"))
    clients.target_http_proxies.set_url_map(
        project=P, region=R, target_http_proxy="hello-http-proxy", url_map_reference_resource=request
    ).result()
    moved = clients.target_http_proxies.get(project=P, region=R, target_http_proxy="hello-http-proxy")
    assert moved.url_map.endswith("/urlMaps/other-url-map") and moved.fingerprint != proxy.fingerprint
    assert op_types(gcp, "compute.regionTargetHttpProxies.setUrlMap") == ["setUrlMap"]
    # The first URL map is free now: deleting it works.
    clients.url_maps.delete(project=P, region=R, url_map="hello-url-map").result()
    missing = compute_v1.UrlMapReference(url_map=t.link(P, "urlMaps", "gone"))
    with pytest.raises(exceptions.NotFound):
        clients.target_http_proxies.set_url_map(
            project=P, region=R, target_http_proxy="hello-http-proxy", url_map_reference_resource=missing
        )


def test_references_must_exist_and_names_are_unique(clients: Clients) -> None:
    t.producer(clients)
    with pytest.raises(exceptions.NotFound, match=r"backendServices/nope"):
        clients.backend_services.get(project=P, region=R, backend_service="nope")
    with pytest.raises(exceptions.Conflict, match=r"already exists"):
        t.backend_chain(clients)
    lonely = compute_v1.BackendService(
        name="lonely",
        load_balancing_scheme="INTERNAL_MANAGED",
        backends=[compute_v1.Backend(group=t.link(P, "networkEndpointGroups", "nope"))],
    )
    with pytest.raises(exceptions.NotFound, match=r"networkEndpointGroups/nope"):
        clients.backend_services.insert(project=P, region=R, backend_service_resource=lonely)
    dangling = compute_v1.UrlMap(name="dangling", default_service=t.link(P, "backendServices", "nope"))
    with pytest.raises(exceptions.NotFound):
        clients.url_maps.insert(project=P, region=R, url_map_resource=dangling)
    proxy = compute_v1.TargetHttpProxy(name="dangling", url_map=t.link(P, "urlMaps", "nope"))
    with pytest.raises(exceptions.NotFound):
        clients.target_http_proxies.insert(project=P, region=R, target_http_proxy_resource=proxy)


def test_serverless_neg_backend_rules(clients: Clients) -> None:
    p = t.producer(clients)

    def insert(name: str, **kwargs: object) -> None:
        backend = compute_v1.Backend(group=p.neg, **kwargs.pop("backend", {}))  # type: ignore[arg-type]
        body = compute_v1.BackendService(name=name, backends=[backend], **kwargs)  # type: ignore[arg-type]
        clients.backend_services.insert(project=P, region=R, backend_service_resource=body).result()

    with pytest.raises(exceptions.BadRequest, match=r"Invalid load balancing scheme"):
        insert("internal", load_balancing_scheme="INTERNAL")
    with pytest.raises(exceptions.BadRequest, match=r"balancingMode"):
        insert("rate", load_balancing_scheme="INTERNAL_MANAGED", backend={"balancing_mode": "RATE"})
    with pytest.raises(exceptions.BadRequest, match=r"Max utilization"):
        insert("util", load_balancing_scheme="INTERNAL_MANAGED", backend={"max_utilization": 0.8})
    with pytest.raises(exceptions.BadRequest, match=r"healthcheck"):
        insert("checked", load_balancing_scheme="EXTERNAL_MANAGED", health_checks=[t.link(P, "healthChecks", "hc")])
    insert("external", load_balancing_scheme="EXTERNAL_MANAGED")


def test_serverless_neg_shapes(clients: Clients) -> None:
    def insert(name: str, **kwargs: object) -> None:
        body = compute_v1.NetworkEndpointGroup(name=name, **kwargs)  # type: ignore[arg-type]
        clients.network_endpoint_groups.insert(project=P, region=R, network_endpoint_group_resource=body).result()

    insert(
        "mask",
        network_endpoint_type="SERVERLESS",
        cloud_run=compute_v1.NetworkEndpointGroupCloudRun(url_mask="<service>.example.com"),
    )
    insert(
        "app",
        network_endpoint_type="SERVERLESS",
        app_engine=compute_v1.NetworkEndpointGroupAppEngine(service="default"),
    )
    with pytest.raises(exceptions.BadRequest, match=r"exactly one"):
        insert("none", network_endpoint_type="SERVERLESS")
    with pytest.raises(exceptions.BadRequest, match=r"cloudRun"):
        insert("empty", network_endpoint_type="SERVERLESS", cloud_run=compute_v1.NetworkEndpointGroupCloudRun(tag="x"))
    with pytest.raises(exceptions.BadRequest, match=r"networkEndpointType"):
        insert("vm", network_endpoint_type="GCE_VM_IP_PORT")
    listed = clients.network_endpoint_groups.list(project=P, region=R)
    assert sorted(n.name for n in listed) == ["app", "mask"]


def test_forwarding_rule_labels_and_patch(clients: Clients) -> None:
    t.producer(clients)
    name = "hello-forwarding-rule"
    rule = clients.forwarding_rules.get(project=P, region=R, forwarding_rule=name)
    labels = compute_v1.RegionSetLabelsRequest(labels={"team": "a"}, label_fingerprint="c3RhbGU=")
    with pytest.raises(exceptions.PreconditionFailed):
        clients.forwarding_rules.set_labels(
            project=P, region=R, resource=name, region_set_labels_request_resource=labels
        )
    labels.label_fingerprint = rule.label_fingerprint
    clients.forwarding_rules.set_labels(
        project=P, region=R, resource=name, region_set_labels_request_resource=labels
    ).result()
    labelled = clients.forwarding_rules.get(project=P, region=R, forwarding_rule=name)
    assert dict(labelled.labels) == {"team": "a"} and labelled.label_fingerprint != "42WmSpB8rSM="

    # The fingerprint is optional on a forwarding rule patch, but a stale one is refused.
    clients.forwarding_rules.patch(
        project=P,
        region=R,
        forwarding_rule=name,
        forwarding_rule_resource=compute_v1.ForwardingRule(allow_global_access=True),
    ).result()
    assert clients.forwarding_rules.get(project=P, region=R, forwarding_rule=name).allow_global_access
    stale = compute_v1.ForwardingRule(allow_global_access=False, fingerprint=rule.fingerprint)
    with pytest.raises(exceptions.PreconditionFailed):
        clients.forwarding_rules.patch(project=P, region=R, forwarding_rule=name, forwarding_rule_resource=stale)
    with pytest.raises(exceptions.BadRequest, match=r"portRange"):
        clients.forwarding_rules.patch(
            project=P,
            region=R,
            forwarding_rule=name,
            forwarding_rule_resource=compute_v1.ForwardingRule(port_range="8080"),
        )


def test_forwarding_rule_set_target(clients: Clients, gcp: GCPEmulator) -> None:
    p = t.producer(clients)
    name = "hello-forwarding-rule"
    proxy = compute_v1.TargetHttpProxy(name="second-proxy", url_map=p.url_map)
    clients.target_http_proxies.insert(project=P, region=R, target_http_proxy_resource=proxy).result()
    target = compute_v1.TargetReference(target=t.link(P, "targetHttpProxies", "second-proxy"))
    clients.forwarding_rules.set_target(
        project=P, region=R, forwarding_rule=name, target_reference_resource=target
    ).result()
    assert clients.forwarding_rules.get(project=P, region=R, forwarding_rule=name).target == target.target
    assert op_types(gcp, "compute.forwardingRules.setTarget") == ["SetTarget"]
    clients.target_http_proxies.delete(project=P, region=R, target_http_proxy="hello-http-proxy").result()


def test_url_map_validate(clients: Clients) -> None:
    p = t.producer(clients)
    good = compute_v1.RegionUrlMapsValidateRequest(resource=compute_v1.UrlMap(name="x", default_service=p.backend))
    result = clients.url_maps.validate(
        project=P, region=R, url_map="hello-url-map", region_url_maps_validate_request_resource=good
    )
    assert result.result.load_succeeded
    bad = compute_v1.RegionUrlMapsValidateRequest(
        resource=compute_v1.UrlMap(name="x", default_service=t.link(P, "backendServices", "nope"))
    )
    result = clients.url_maps.validate(
        project=P, region=R, url_map="hello-url-map", region_url_maps_validate_request_resource=bad
    )
    assert not result.result.load_succeeded and "nope" in result.result.load_errors[0]


def test_aggregated_lists_gcloud_reads(clients: Clients, gcp: GCPEmulator) -> None:
    """``gcloud compute <kind> list`` reads aggregated lists of the global collections."""
    t.producer(clients)
    for collection, name in [
        ("networkEndpointGroups", "hello-serverless-neg"),
        ("backendServices", "hello-backend-service"),
        ("urlMaps", "hello-url-map"),
        ("targetHttpProxies", "hello-http-proxy"),
        ("forwardingRules", "hello-forwarding-rule"),
    ]:
        body = requests.get(f"{gcp.base_url}/compute/v1/projects/{P}/aggregated/{collection}", timeout=5).json()
        assert [r["name"] for r in body["items"][f"regions/{R}"][collection]] == [name], collection


def test_fingerprint_in_url_safe_base64_is_accepted(clients: Clients) -> None:
    """gcloud echoes fingerprints re-encoded as URL-safe base64: ``+``/``/`` come back as ``-``/``_``."""
    t.producer(clients)
    name = "hello-backend-service"
    for timeout in range(31, 90):
        current = clients.backend_services.get(project=P, region=R, backend_service=name).fingerprint
        if "+" in current or "/" in current:
            break
        body = compute_v1.BackendService(fingerprint=current, timeout_sec=timeout)
        clients.backend_services.patch(
            project=P, region=R, backend_service=name, backend_service_resource=body
        ).result()
    assert "+" in current or "/" in current
    url_safe = current.replace("+", "-").replace("/", "_")
    body = compute_v1.BackendService(fingerprint=url_safe, timeout_sec=5)
    clients.backend_services.patch(project=P, region=R, backend_service=name, backend_service_resource=body).result()
    assert clients.backend_services.get(project=P, region=R, backend_service=name).timeout_sec == 5


def test_serverless_neg_lists_no_network_endpoints(clients: Clients, gcp: GCPEmulator) -> None:
    """A serverless NEG points at a service, not at network endpoints (its ``size`` is 0)."""
    t.producer(clients)
    neg = "hello-serverless-neg"
    endpoints = clients.network_endpoint_groups.list_network_endpoints(project=P, region=R, network_endpoint_group=neg)
    assert list(endpoints) == []
    url = f"{gcp.base_url}/compute/v1/{SCOPE}/networkEndpointGroups"
    body = requests.post(f"{url}/{neg}/listNetworkEndpoints", timeout=5).json()
    assert body == {"kind": "compute#networkEndpointGroupsListNetworkEndpoints"}
    assert requests.post(f"{url}/missing/listNetworkEndpoints", timeout=5).status_code == 404
