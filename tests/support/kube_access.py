"""Reaching a Kubernetes API server from tests: the stand-in (plain HTTP) or a real one (TLS, client certificate).

``ssl_context(kubeconfig)`` builds the TLS context a kubeconfig describes (its CA, its client certificate
and key, inline ``-data`` or as files), for aiohttp or urllib. ``Rest`` is a small blocking JSON client
over urllib for fixtures: namespaces, CRDs, clean-up. ``kubeconfig_for(...)`` writes a copy of a
kubeconfig whose context defaults to a namespace, so kubectl and the kubernetes client need no ``-n``.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _current(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The (context, cluster, user) sections of a kubeconfig's current context."""
    name = config.get("current-context")
    context = next(c for c in config["contexts"] if c["name"] == name or name is None)
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
    return context["context"], cluster["cluster"], user.get("user") or {}


def _pem(section: dict[str, Any], key: str, base: Path) -> bytes | None:
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        return (base / section[key]).read_bytes()
    return None


def server_url(kubeconfig: Path) -> str:
    _, cluster, _ = _current(yaml.safe_load(kubeconfig.read_text()))
    return str(cluster["server"]).rstrip("/")


def ssl_context(kubeconfig: Path) -> ssl.SSLContext | None:
    """The TLS context of a kubeconfig's current context (None for a plain-HTTP server).

    It trusts only the kubeconfig's CA (or skips verification where the kubeconfig says so) and
    presents its client certificate, if any. Python's ssl reads a key pair only from files: they are
    written to a private temporary file and removed at once.
    """
    config = yaml.safe_load(kubeconfig.read_text())
    _, cluster, user = _current(config)
    if not str(cluster["server"]).startswith("https://"):
        return None
    base = kubeconfig.parent
    ca = _pem(cluster, "certificate-authority", base)
    context = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = _pem(user, "client-certificate", base), _pem(user, "client-key", base)
    if cert and key:
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(cert + b"\n" + key)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
    return context


def kubeconfig_for(source: Path, target: Path, namespace: str) -> Path:
    """A copy of ``source`` whose current context defaults to ``namespace``."""
    config = yaml.safe_load(source.read_text())
    context, cluster, user = _current(config)
    context["namespace"] = namespace
    base = source.parent
    for section, key in ((cluster, "certificate-authority"), (user, "client-certificate"), (user, "client-key")):
        if section.get(key):  # file references stay valid from the copy's folder
            section[key] = str((base / section[key]).resolve())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


class Rest:
    """A blocking JSON client for fixtures (not for the stand-in on the caller's own event loop).

    A 429 (a CRD's storage still initializing, the API server's priority and fairness) is retried
    after its Retry-After, as client-go does.
    """

    def __init__(self, url: str, context: ssl.SSLContext | None) -> None:
        self.url, self.context = url.rstrip("/"), context

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> Rest:
        return cls(server_url(kubeconfig), ssl_context(kubeconfig))

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, context=self.context, timeout=30) as rsp:
                    return rsp.status, json.loads(rsp.read() or b"null")
            except urllib.error.HTTPError as err:
                text = err.read()
                if err.code == 429 and time.monotonic() < deadline:
                    time.sleep(float(err.headers.get("Retry-After") or "1"))
                    continue
                try:
                    return err.code, json.loads(text)
                except ValueError:
                    return err.code, text.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        status, found = self.call(method, path, body, content_type)
        if status >= 300:
            raise ApiError(status, found)
        return found

    def get(self, path: str) -> Any:
        return self.ok("GET", path)

    # -- what fixtures need --------------------------------------------------------------------

    def create_namespace(self, name: str) -> None:
        self.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def crd_names(self) -> set[str]:
        return {c["metadata"]["name"] for c in self.get(CRD_PATH)["items"]}

    def install_crd(self, crd: dict[str, Any], timeout: float = 30) -> None:
        """Create (or replace) a CRD and wait until it is Established and its resources are served."""
        name = crd["metadata"]["name"]
        status, current = self.call("GET", f"{CRD_PATH}/{name}")
        if status == 404:
            self.ok("POST", CRD_PATH, crd)
        else:
            replacement = {
                **crd,
                "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            self.ok("PUT", f"{CRD_PATH}/{name}", replacement)
        self.wait_established(name, timeout)

    def wait_established(self, name: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            crd = self.get(f"{CRD_PATH}/{name}")
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                spec = crd["spec"]
                version = next(v["name"] for v in spec["versions"] if v.get("storage"))
                status, _ = self.call("GET", f"/apis/{spec['group']}/{version}/{spec['names']['plural']}?limit=1")
                if status == 200:
                    return crd  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established and served within {timeout}s: {crd.get('status')}")
            time.sleep(0.1)

    def delete_objects(self, crd: dict[str, Any], namespaces: set[str] | None) -> None:
        """Delete a CRD's objects (in ``namespaces``, or all of them), their finalizers stripped first."""
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("storage"))
        base = f"/apis/{spec['group']}/{version}"
        status, listed = self.call("GET", f"{base}/{spec['names']['plural']}")
        if status != 200:
            return
        for obj in listed["items"]:
            meta = obj["metadata"]
            if namespaces is not None and meta.get("namespace") not in namespaces:
                continue
            where = f"{base}/namespaces/{meta['namespace']}" if meta.get("namespace") else base
            path = f"{where}/{spec['names']['plural']}/{meta['name']}"
            if meta.get("finalizers"):
                self.call("PATCH", path, {"metadata": {"finalizers": None}}, "application/merge-patch+json")
            self.call("DELETE", path)

    def delete_crd(self, name: str, timeout: float = 30) -> None:
        """Delete a CRD and wait until it is gone (the API server deletes its objects first)."""
        status, crd = self.call("GET", f"{CRD_PATH}/{name}")
        if status == 404:
            return
        self.delete_objects(crd, None)
        self.call("DELETE", f"{CRD_PATH}/{name}")
        deadline = time.monotonic() + timeout
        while self.call("GET", f"{CRD_PATH}/{name}")[0] != 404:
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} still there {timeout}s after its deletion")
            self.delete_objects(crd, None)  # objects created meanwhile, or finalizers added back
            time.sleep(0.1)
