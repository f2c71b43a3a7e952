from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meshlet.ca.authn import authenticate, bearer_token, identity_from_certificate
from meshlet.ca.signing import KeyAlgorithm, Signer, SpiffeId, make_self_signed_root, sign_csr
from meshlet.ca.tokens import issue_token
from meshlet.errors import AuthenticationError

from .conftest import NOW, make_csr, make_intermediate

KEY = bytes(32)
TD = "cluster.local"


def der_of(chain: list[str]) -> bytes:
    return x509.load_pem_x509_certificate(chain[0].encode()).public_bytes(
        serialization.Encoding.DER
    )


def mesh_cert(signer: Signer, ec_key, identity: SpiffeId, ttl=timedelta(hours=1)) -> bytes:
    return der_of(sign_csr(make_csr(ec_key), identity, signer, now=NOW, ttl=ttl))


def test_bearer_token() -> None:
    assert bearer_token([("authorization", "Bearer abc.def.ghi")]) == "abc.def.ghi"
    assert bearer_token([("x", "y"), ("Authorization", b"bearer  t ")]) == "t"
    assert bearer_token([("authorization", "Basic dXNlcg==")]) is None
    assert bearer_token([("authorization", "Bearer ")]) is None
    assert bearer_token([]) is None


def test_token_identity(rsa_root: Signer) -> None:
    token = issue_token(
        KEY, namespace="test", service_account="sleep", pod="p", expires=NOW + timedelta(hours=1)
    )
    identity = authenticate(
        metadata=[("authorization", f"Bearer {token}")],
        peer_certificate_der=None,
        signer=rsa_root,
        token_key=KEY,
        trust_domain=TD,
        now=NOW,
    )
    assert identity == SpiffeId(TD, "test", "sleep")


def test_certificate_identity(rsa_root: Signer, ec_key) -> None:
    der = mesh_cert(rsa_root, ec_key, SpiffeId(TD, "test", "httpbin"))
    assert identity_from_certificate(der, rsa_root, now=NOW, trust_domain=TD) == SpiffeId(
        TD, "test", "httpbin"
    )


def test_certificate_under_a_plugin_intermediate(rsa_root: Signer, ec_key) -> None:
    intermediate = make_intermediate(rsa_root, now=NOW)
    der = mesh_cert(intermediate, ec_key, SpiffeId(TD, "a", "b"))
    assert identity_from_certificate(der, intermediate, now=NOW, trust_domain=TD).namespace == "a"


def test_certificate_from_another_root_is_refused(
    rsa_root: Signer, ec_root: Signer, ec_key
) -> None:
    der = mesh_cert(ec_root, ec_key, SpiffeId(TD, "test", "httpbin"))
    with pytest.raises(AuthenticationError, match="does not verify"):
        identity_from_certificate(der, rsa_root, now=NOW, trust_domain=TD)


def test_expired_certificate_is_refused(rsa_root: Signer, ec_key) -> None:
    der = mesh_cert(rsa_root, ec_key, SpiffeId(TD, "test", "httpbin"))
    with pytest.raises(AuthenticationError, match="does not verify"):
        identity_from_certificate(der, rsa_root, now=NOW + timedelta(hours=2), trust_domain=TD)


def test_certificate_of_another_trust_domain_is_refused(rsa_root: Signer, ec_key) -> None:
    der = mesh_cert(rsa_root, ec_key, SpiffeId("other.domain", "test", "httpbin"))
    with pytest.raises(AuthenticationError, match="trust domain"):
        identity_from_certificate(der, rsa_root, now=NOW, trust_domain=TD)


def test_certificate_first_then_token(rsa_root: Signer, ec_root: Signer, ec_key) -> None:
    token = issue_token(
        KEY, namespace="test", service_account="sleep", pod="p", expires=NOW + timedelta(hours=1)
    )
    metadata = [("authorization", f"Bearer {token}")]
    good_cert = mesh_cert(rsa_root, ec_key, SpiffeId(TD, "test", "httpbin"))
    foreign_cert = mesh_cert(ec_root, ec_key, SpiffeId(TD, "test", "httpbin"))
    common = {"signer": rsa_root, "token_key": KEY, "trust_domain": TD, "now": NOW}
    assert (
        authenticate(metadata=metadata, peer_certificate_der=good_cert, **common).service_account
        == "httpbin"
    )
    assert (
        authenticate(metadata=metadata, peer_certificate_der=foreign_cert, **common).service_account
        == "sleep"
    )
    with pytest.raises(AuthenticationError) as caught:
        authenticate(metadata=[], peer_certificate_der=foreign_cert, **common)
    assert "client certificate" in str(caught.value)


def test_nothing_proven(rsa_root: Signer) -> None:
    common = {"signer": rsa_root, "token_key": KEY, "trust_domain": TD, "now": NOW}
    with pytest.raises(AuthenticationError, match="no token and no client certificate"):
        authenticate(metadata=[], peer_certificate_der=None, **common)
    expired = issue_token(KEY, namespace="a", service_account="b", pod="c", expires=NOW)
    with pytest.raises(AuthenticationError, match="expired"):
        authenticate(
            metadata=[("authorization", f"Bearer {expired}")], peer_certificate_der=None, **common
        )


def test_ecdsa_root_signs_and_authenticates(ec_key) -> None:
    root = make_self_signed_root(TD, now=NOW, algorithm=KeyAlgorithm.ECDSA)
    der = mesh_cert(root, ec_key, SpiffeId(TD, "x", "y"))
    assert identity_from_certificate(der, root, now=NOW, trust_domain=TD) == SpiffeId(TD, "x", "y")
