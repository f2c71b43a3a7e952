"""Whose config a proxy may have on the authenticated port: istiod's identity check."""

from __future__ import annotations

import pytest

from meshlet.ca.signing import SpiffeId
from meshlet.errors import AuthorizationError
from meshlet.xds.auth import NodeClaim, authorization_failure, authorize_node
from tests.purity import impurities

HTTPBIN = SpiffeId("cluster.local", "test", "httpbin")
NODE = "sidecar~10.244.0.5~httpbin-5bbdbd6588-z9vbs.test~test.svc.cluster.local"


def test_the_claim_names_every_namespace_the_node_does() -> None:
    claim = NodeClaim.of(NODE, {"NAMESPACE": "test", "SERVICE_ACCOUNT": "httpbin"})
    assert claim == NodeClaim(("test",), "httpbin")
    mixed = NodeClaim.of(
        "sidecar~10.244.0.5~httpbin-x.test~other.svc.cluster.local", {"NAMESPACE": "third"}
    )
    assert mixed == NodeClaim(("other", "test", "third"), "")
    assert NodeClaim.of("debug~0.0.0.0~meshlet~cluster.local", {}) == NodeClaim((), "")
    assert NodeClaim.of("not-a-node-id", {"NAMESPACE": "test"}) == NodeClaim(("test",), "")


@pytest.mark.parametrize(
    "metadata",
    [{}, {"NAMESPACE": "test"}, {"NAMESPACE": "test", "SERVICE_ACCOUNT": "httpbin"}],
)
def test_a_node_of_the_identity_is_allowed(metadata: dict[str, str]) -> None:
    authorize_node(HTTPBIN, NodeClaim.of(NODE, metadata))


@pytest.mark.parametrize(
    ("identity", "node", "metadata", "reason"),
    [
        (  # a certificate of another namespace than the node id's
            SpiffeId("cluster.local", "default", "sleep"),
            NODE,
            {"NAMESPACE": "test", "SERVICE_ACCOUNT": "sleep"},
            "no identities ([spiffe://cluster.local/ns/default/sa/sleep]) matched test/sleep",
        ),
        (  # the node id names a pod of another namespace than its metadata says
            HTTPBIN,
            "sidecar~10.244.0.9~sleep-557747455f-xx88g.default~default.svc.cluster.local",
            {"NAMESPACE": "test"},
            "no identities ([spiffe://cluster.local/ns/test/sa/httpbin]) matched default/",
        ),
        (  # the right namespace, another service account
            HTTPBIN,
            NODE,
            {"NAMESPACE": "test", "SERVICE_ACCOUNT": "sleep"},
            "no identities ([spiffe://cluster.local/ns/test/sa/httpbin]) matched test/sleep",
        ),
        (  # no namespace at all
            HTTPBIN,
            "debug~0.0.0.0~meshlet~cluster.local",
            {},
            "no identities ([spiffe://cluster.local/ns/test/sa/httpbin]) matched /",
        ),
    ],
)
def test_a_node_of_another_identity_is_refused_in_istiods_words(
    identity: SpiffeId, node: str, metadata: dict[str, str], reason: str
) -> None:
    with pytest.raises(AuthorizationError) as refused:
        authorize_node(identity, NodeClaim.of(node, metadata))
    assert refused.value.message == reason
    assert authorization_failure(refused.value) == f"authorization failed: {reason}"


def test_the_auth_module_is_pure() -> None:
    assert impurities("meshlet.xds.auth") == []
