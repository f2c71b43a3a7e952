"""Resource types as kubectl resolves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshlet.kubectl.messages import KubectlError
from meshlet.kubectl.names import (
    ResourceArg,
    name_prefix,
    parse_resource_args,
    qualified_resource,
    resolve_type,
    resolve_types,
)
from meshlet.resources.kinds import KINDS
from tests.kubectl.conftest import recorded


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("pods", "Pod"),
        ("pod", "Pod"),
        ("po", "Pod"),
        ("Pods", "Pod"),
        ("pods.v1", "Pod"),
        ("svc", "Service"),
        ("services", "Service"),
        ("service", "Service"),
        ("deploy", "Deployment"),
        ("deployment", "Deployment"),
        ("deployments", "Deployment"),
        ("deployment.apps", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("deployments.v1.apps", "Deployment"),
        ("ns", "Namespace"),
        ("namespace", "Namespace"),
        ("secret", "Secret"),
        ("secrets", "Secret"),
        ("sa", "ServiceAccount"),
        ("serviceaccount", "ServiceAccount"),
        ("cm", "ConfigMap"),
        ("configmaps", "ConfigMap"),
        ("sidecar", "Sidecar"),
        ("sidecars", "Sidecar"),
        ("sidecars.networking.istio.io", "Sidecar"),
        ("sidecar.v1alpha3.networking.istio.io", "Sidecar"),
        ("peerauthentication", "PeerAuthentication"),
        ("pa", "PeerAuthentication"),
        ("peerauthentications.security.istio.io", "PeerAuthentication"),
        ("destinationrule", "DestinationRule"),
        ("dr", "DestinationRule"),
        ("destinationrules.networking.istio.io", "DestinationRule"),
    ],
)
def test_resolve_type(typed: str, kind: str) -> None:
    assert resolve_type(typed).kind == kind


@pytest.mark.parametrize("typed", ["x", "pod.apps", "deployment.v2.apps", "podz", ""])
def test_unknown_type_is_kubectls_error(typed: str) -> None:
    with pytest.raises(KubectlError) as caught:
        resolve_type(typed)
    assert caught.value.line == f'error: the server doesn\'t have a resource type "{typed}"'


def test_several_types() -> None:
    assert [i.kind for i in resolve_types("pods,svc,po")] == ["Pod", "Service"]


def test_names_used_in_messages() -> None:
    assert qualified_resource(resolve_type("po")) == "pods"
    assert qualified_resource(resolve_type("deploy")) == "deployments.apps"
    assert qualified_resource(resolve_type("pa")) == "peerauthentications.security.istio.io"
    assert name_prefix(resolve_type("svc")) == "service"
    assert name_prefix(resolve_type("deploy")) == "deployment.apps"
    assert name_prefix(resolve_type("sidecar")) == "sidecar.networking.istio.io"


def test_type_and_names_forms() -> None:
    pod, svc = resolve_type("pod"), resolve_type("svc")
    assert parse_resource_args(["pods"]) == [ResourceArg(pod)]
    assert parse_resource_args(["pod", "a", "b"]) == [ResourceArg(pod, ("a", "b"))]
    assert parse_resource_args(["pod/a", "pod/b", "svc/c"]) == [
        ResourceArg(pod, ("a", "b")),
        ResourceArg(svc, ("c",)),
    ]
    assert parse_resource_args(["deployment.apps/httpbin"])[0].names == ("httpbin",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pod", "pod/a"], "there is no need to specify a resource type"),
        (["pod/a/b"], "arguments in resource/name form must have a single resource and name"),
        (["pod/"], "arguments in resource/name form must have a single resource and name"),
        ([], "You must provide one or more resources by argument or filename."),
        (["nothing/a"], 'the server doesn\'t have a resource type "nothing"'),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    with pytest.raises(KubectlError) as caught:
        parse_resource_args(args)
    assert caught.value.message.startswith(message)


def test_names_match_the_api_servers_discovery(api_schemas: Path) -> None:
    """Plural, singular, short names and scope agree with what the API server publishes."""
    published: dict[str, dict[str, Any]] = {}
    for name in (
        "discovery-api-v1.json",
        "discovery-apis-security.istio.io-v1.json",
        "discovery-apis-networking.istio.io-v1alpha3.json",
    ):
        for resource in recorded(api_schemas, name)["resources"]:
            if "/" not in resource["name"]:  # not a subresource
                published[resource["kind"]] = resource
    for info in KINDS:
        entry = published.get(info.kind)
        if entry is None:
            continue  # apps/v1 discovery is not in the recording
        assert entry["name"] == info.plural
        assert entry["namespaced"] == info.namespaced
        assert tuple(entry.get("shortNames") or ()) == info.short_names, info.kind
        assert resolve_type(str(entry["singularName"] or info.kind.lower())) is info
