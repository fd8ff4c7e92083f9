"""API discovery: legacy (/api, /apis, /apis/g/v) for kopf and aggregated (apidiscovery v2) for kubectl."""

from __future__ import annotations

from typing import Any

from runnet.emulator.kube.registry import STATUS_VERBS, Registry, ResourceType

# What the project's real control plane (tools/control-plane, k8s.io/kubernetes v1.37.2) reports: the
# stand-in follows that release's behaviour, which the probes in tests/kube compare it with.
KUBE_VERSION = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.2",
    "gitCommit": "$Format:%H$",
    "gitTreeState": "clean",
    "buildDate": "1970-01-01T00:00:00Z",
    "goVersion": "go1.26.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def aggregated_wanted(accept: str) -> str | None:
    """``v2``/``v2beta1`` if the client accepts an APIGroupDiscoveryList (kubectl does)."""
    for media in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in media.split(";")[1:])
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            return params.get("v", "v2")
    return None


def aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def _subresources(rt: ResourceType) -> list[tuple[str, tuple[str, ...]]]:
    subs: list[tuple[str, tuple[str, ...]]] = []
    if rt.status_subresource:
        subs.append(("status", STATUS_VERBS))
    if rt.group == "" and rt.plural == "namespaces":
        subs.append(("finalize", ("update",)))
    return sorted(subs)


def _legacy_entries(rt: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = rt.storage_version_hash
    subs = [
        {
            "name": f"{rt.plural}/{sub}",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(verbs),
        }
        for sub, verbs in _subresources(rt)
    ]
    return [entry, *subs]


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_version(group, version)
    if not types:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for rt in types for entry in _legacy_entries(rt)],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def api_versions(address: str) -> dict[str, Any]:
    """/api: ``address`` is the server's host:port."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    # Built-in types name only their kind (the group and version are the entry's); custom ones say all three.
    kind = {"group": rt.group if rt.custom else "", "version": rt.version if rt.custom else "", "kind": rt.kind}
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = [{"subresource": s, "responseKind": kind, "verbs": list(v)} for s, v in _subresources(rt)]
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(registry: Registry, core: bool, version: str) -> dict[str, Any]:
    """The APIGroupDiscoveryList for /api (``core``) or /apis."""
    items = []
    for name, versions in registry.groups().items():
        if bool(name) == core:
            continue
        item_versions = [
            {
                "version": v,
                "resources": [_aggregated_resource(rt) for rt in registry.in_version(name, v)],
                "freshness": "Current",
            }
            for v in versions
        ]
        meta = {"name": name} if name else {}
        items.append({"metadata": meta, "versions": item_versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def root_paths(registry: Registry) -> dict[str, Any]:
    paths = {"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openapi/v3"}
    for name, versions in registry.groups().items():
        if name:
            paths.add(f"/apis/{name}")
            paths.update(f"/apis/{name}/{v}" for v in versions)
    return {"paths": sorted(paths)}
