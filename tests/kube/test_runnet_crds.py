"""runnet's own CRDs (crds/) on both backends: accepted with every CEL rule compiling, the same defaults, the
same refusals, word for word.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.kube.conftest import Http
from tests.support.kube_access import CRD_PATH

REPO = Path(__file__).resolve().parents[2]
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def runnet_crds() -> list[dict[str, Any]]:
    files = sorted(p for p in (REPO / "crds").glob("*.yaml") if p.name != "kustomization.yaml")
    return [yaml.safe_load(p.read_text()) for p in files]


async def apply_crd(http: Http, crd: dict[str, Any]) -> tuple[int, Any]:
    """``kubectl apply --server-side`` of one CRD over HTTP; once accepted, wait until it is Established."""
    name = crd["metadata"]["name"]
    status, body, _ = await http.call("PATCH", f"{CRD_PATH}/{name}?fieldManager=runnet-probe&force=true", crd, APPLY)
    if status in (200, 201):
        await http.established(name)
    return status, body


async def test_runnet_crds_are_accepted(http: Http) -> None:
    """The real server refused two things here the stand-in had accepted (a description on the root metadata
    schema, and a CEL rule 1.04 times over its cost budget); both are fixed in runnet.api."""
    crds = runnet_crds()
    assert {c["metadata"]["name"] for c in crds} == {
        "egressgateways.runnet.dev",
        "projectbindings.runnet.dev",
        "pscendpoints.runnet.dev",
        "pscexports.runnet.dev",
    }
    refused = {}
    for crd in crds:
        status, body = await apply_crd(http, crd)
        if status not in (200, 201):  # a CEL rule that does not compile, or costs too much, is a 422 here
            refused[crd["metadata"]["name"]] = body["message"]
    assert not refused, refused


def example(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((REPO / "examples" / name).read_text())
    del obj["metadata"]["namespace"]
    return obj


# What the API server fills into examples/egress-fixed-ip.yaml from the schema's defaults.
EGRESS_DEFAULTED = {
    "project": "my-project",
    "region": "asia-northeast1",
    "network": {"name": "vpc-cloud-run"},
    "subnet": {"name": "subnet-cloud-run", "ipCidrRange": "10.10.10.0/24", "privateIpGoogleAccess": True},
    "router": {"name": "router-cloud-run"},
    "nat": {
        "name": "nat-cloud-run",
        "addresses": ["static-ip"],
        "addressDeletionPolicy": "Retain",
        "adopt": False,
        "drainTimeout": "15m",
        "enableDynamicPortAllocation": False,
        "enableEndpointIndependentMapping": False,
        "minPortsPerVm": 64,
    },
    "services": [{"name": "direct-vpc-egress", "egress": "ALL_TRAFFIC"}],
    "deletionPolicy": "Delete",
}


async def test_runnet_crds_default_and_refuse_alike(http: Http) -> None:
    [crd] = [c for c in runnet_crds() if c["metadata"]["name"] == "egressgateways.runnet.dev"]
    status, body = await apply_crd(http, crd)
    assert status in (200, 201), body
    gateways = f"/apis/runnet.dev/v1alpha1/namespaces/{http.ns}/egressgateways"
    gateway = example("egress-fixed-ip.yaml")
    created = await http.create(gateway, gateways)
    assert created["spec"] == EGRESS_DEFAULTED
    # Before the operator's first pass: "generation 1 not observed yet", from the status schema's defaults.
    assert created["metadata"]["generation"] == 1 and created["status"] == {"observedGeneration": 0, "coverage": ""}

    def refused(name: str, **spec: Any) -> dict[str, Any]:
        bad = copy.deepcopy(gateway)
        bad["metadata"]["name"] = name
        for path, value in spec.items():
            *parents, leaf = path.split("__")
            node = bad["spec"]
            for part in parents:
                node = node[part]
            node[leaf] = value
        return bad

    # A rule on a string shows the value; a rule on a list does not.
    status, body, _ = await http.call("POST", gateways, refused("bad-project", project="My Project"))
    assert status == 422 and body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "My Project": spec.project must be a GCP project id: 6 to 30 lowercase letters, '
            "digits or hyphens, starting with a letter and not ending with a hyphen",
            "field": "spec.project",
        }
    ]
    status, body, _ = await http.call("POST", gateways, refused("twice", nat__addresses=["a-ip", "a-ip"]))
    assert status == 422 and body["message"] == (
        'EgressGateway.runnet.dev "twice" is invalid: spec.nat.addresses: '
        "Invalid value: spec.nat.addresses must not repeat an address"
    )
    # A transition rule (oldSelf) on an update.
    status, body, _ = await http.call("PATCH", f"{gateways}/fixed-ip", {"spec": {"region": "us-central1"}}, MERGE)
    assert status == 422 and body["message"] == (
        'EgressGateway.runnet.dev "fixed-ip" is invalid: spec.region: Invalid value: "us-central1": '
        "spec.region is immutable: create a new EgressGateway instead"
    )


async def test_a_described_metadata_schema_is_refused_by_both(http: Http) -> None:
    crd = copy.deepcopy(runnet_crds()[0])
    crd["metadata"]["name"] = crd["metadata"]["name"].replace("egressgateways", "described")
    crd["spec"]["names"] = {
        **crd["spec"]["names"],
        "plural": "described",
        "singular": "described",
        "kind": "Described",
        "listKind": "DescribedList",
        "shortNames": [],
    }
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"]["description"] = "meta"
    status, body = await apply_crd(http, crd)
    assert status == 422, body
    assert "must not specify anything other than name and generateName" in body["message"]
