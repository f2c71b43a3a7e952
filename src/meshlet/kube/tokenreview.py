"""The CA's check of a pod's projected ServiceAccount token, with the TokenReview API.

Theory of operation: on Kubernetes the agent sends the token kubelet projects into
the pod (``/var/run/secrets/tokens/istio-token``, audience ``istio-ca``) as
``authorization: Bearer``. The CA cannot check it itself (the API server holds the
signing keys), so, as istiod does, it asks the API server: it creates a
``TokenReview`` (``authentication.k8s.io/v1``) with the token and the audience
``istio-ca``. ``identity_from_review`` reads the answer: the token must be
authenticated, for the audience asked for, and belong to a ServiceAccount
(``system:serviceaccount:NAMESPACE:NAME``); the identity is
``spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/NAME``. Anything else is an
``AuthenticationError`` saying why (for the CA's log; the caller is told only
``request authenticate failure``).

``TokenReviewer`` is the async call; ``meshlet.ca.server.CAServer`` takes it as its
``token_reviewer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshlet.ca.signing import SpiffeId
from meshlet.ca.tokens import TOKEN_AUDIENCE
from meshlet.errors import AuthenticationError, CertificateError, MeshletError

__all__ = ["TOKEN_REVIEW_PATH", "TokenReviewer", "identity_from_review", "token_review"]

TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
_SA_PREFIX = "system:serviceaccount:"


def token_review(token: str, audience: str = TOKEN_AUDIENCE) -> dict[str, Any]:
    """The TokenReview to create for ``token``."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [audience]},
    }


def identity_from_review(
    review: Mapping[str, Any], *, trust_domain: str, audience: str = TOKEN_AUDIENCE
) -> SpiffeId:
    """The workload identity a TokenReview's answer vouches for."""
    status = review.get("status") or {}
    if not status.get("authenticated"):
        reason = status.get("error") or "the token is not authenticated"
        raise AuthenticationError(f"TokenReview: {reason}")
    audiences = status.get("audiences")
    if audiences is not None and audience not in audiences:
        raise AuthenticationError(f"TokenReview: the token is not for the audience {audience!r}")
    username = str((status.get("user") or {}).get("username") or "")
    if not username.startswith(_SA_PREFIX):
        raise AuthenticationError(f"TokenReview: {username or 'the user'} is not a service account")
    namespace, sep, name = username.removeprefix(_SA_PREFIX).partition(":")
    if not sep or not namespace or not name or ":" in name:
        raise AuthenticationError(f"TokenReview: malformed service account name {username!r}")
    try:
        return SpiffeId(trust_domain, namespace, name)
    except CertificateError as error:
        raise AuthenticationError(f"TokenReview: {error.message}") from None


class TokenReviewer:
    """Checks tokens with the API server (``await reviewer(token)``)."""

    def __init__(self, api: Any, *, trust_domain: str, audience: str = TOKEN_AUDIENCE) -> None:
        self.api = api  # meshlet.kube.client.KubeApi
        self.trust_domain = trust_domain
        self.audience = audience

    async def __call__(self, token: str) -> SpiffeId:
        try:
            review = await self.api.request(
                "POST", TOKEN_REVIEW_PATH, body=token_review(token, self.audience), timeout=10.0
            )
        except MeshletError as error:
            raise AuthenticationError(f"TokenReview failed: {error.message}") from None
        return identity_from_review(review, trust_domain=self.trust_domain, audience=self.audience)
