"""The CA authenticating a projected ServiceAccount token with the TokenReview API."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from meshlet.ca.client import create_certificate
from meshlet.ca.server import CAServer
from meshlet.ca.signing import KeyAlgorithm, make_self_signed_root
from meshlet.errors import AuthenticationError, CARequestError
from meshlet.kube.client import connect
from meshlet.kube.tokenreview import TOKEN_REVIEW_PATH, TokenReviewer, identity_from_review
from tests.ca.conftest import make_csr, make_key
from tests.kube.fake_apiserver import Answer, FakeApiServer, write_kubeconfig


def _answer(**status: object) -> dict[str, object]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}


AUTHENTICATED = _answer(
    authenticated=True,
    audiences=["istio-ca"],
    user={
        "username": "system:serviceaccount:test:httpbin",
        "uid": "0b5f0a3c-5a4c-4c1e-9d7b-3d1f0e3a2b11",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:test"],
    },
)


def test_the_identity_is_the_tokens_namespace_and_service_account() -> None:
    identity = identity_from_review(AUTHENTICATED, trust_domain="cluster.local")
    assert str(identity) == "spiffe://cluster.local/ns/test/sa/httpbin"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"authenticated": False, "error": "token has expired"}, "token has expired"),
        ({"authenticated": True, "audiences": ["api"], "user": {"username": "x"}}, "audience"),
        (
            {"authenticated": True, "user": {"username": "admin", "groups": ["system:masters"]}},
            "not a service account",
        ),
        (
            {"authenticated": True, "user": {"username": "system:serviceaccount:test"}},
            "malformed",
        ),
    ],
)
def test_other_answers_are_refused(status: dict[str, object], reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        identity_from_review(_answer(**status), trust_domain="cluster.local")


async def test_the_ca_signs_for_the_identity_the_api_server_vouches_for(tmp_path: Path) -> None:
    server = FakeApiServer()
    server.add(
        "POST", TOKEN_REVIEW_PATH, Answer(status=201, body=json.dumps(AUTHENTICATED).encode())
    )
    url = await server.start()
    api = await connect(str(write_kubeconfig(tmp_path / "kubeconfig", url, token="istiod-token")))
    root = make_self_signed_root(now=datetime.now(UTC), algorithm=KeyAlgorithm.ECDSA)
    ca = CAServer(
        root,
        os.urandom(32),
        token_reviewer=TokenReviewer(api, trust_domain="cluster.local"),
    )
    try:
        port = await asyncio.wait_for(ca.start("127.0.0.1", 0), 10)
        chain = await create_certificate(
            f"127.0.0.1:{port}",
            root.root_pem,
            make_csr(make_key()),
            3600,
            token="projected.sa.token",
        )
        leaf = x509.load_pem_x509_certificate(chain[0].encode())
        uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [u.value for u in uris] == ["spiffe://cluster.local/ns/test/sa/httpbin"]
        (review,) = server.seen("POST", TOKEN_REVIEW_PATH)
        assert review.headers["Authorization"] == "Bearer istiod-token"
        assert json.loads(review.body)["spec"] == {
            "token": "projected.sa.token",
            "audiences": ["istio-ca"],
        }

        server.routes.clear()
        server.add(
            "POST",
            TOKEN_REVIEW_PATH,
            Answer(status=201, body=json.dumps(_answer(authenticated=False)).encode()),
        )
        with pytest.raises(CARequestError) as caught:
            await create_certificate(
                f"127.0.0.1:{port}", root.root_pem, make_csr(make_key()), 3600, token="bad"
            )
        assert caught.value.code == "UNAUTHENTICATED"
    finally:
        await asyncio.wait_for(ca.stop(), 10)
        await api.close()
        await server.stop()
