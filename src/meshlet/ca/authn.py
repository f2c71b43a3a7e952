"""Who is calling the CA (pure: values in, an identity or ``AuthenticationError`` out).

Theory of operation
-------------------
A caller proves its identity in one of two ways, tried in Istio's order:

1. its current mesh certificate, presented as the TLS client certificate when it renews:
   the certificate must verify strictly (RFC 5280, ``cryptography``'s verifier, client
   policy) up to the mesh root through the CA's own chain, at ``now``, and carry
   exactly one SPIFFE URI in the mesh's trust domain; the identity is that URI;
2. a pod token in the ``authorization: Bearer <token>`` metadata, signed with the
   cluster's token key and not expired; the identity is the token's namespace and
   service account in the mesh's trust domain.

The first proof that holds wins. When none holds, the error lists why each failed (for
the CA's log); the caller is told only ``request authenticate failure``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from meshlet.ca.signing import Signer, SpiffeId
from meshlet.ca.tokens import verify_token
from meshlet.errors import AuthenticationError, CertificateError

__all__ = ["authenticate", "bearer_token", "identity_from_certificate"]


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry, if there is one."""
    for name, value in metadata:
        if name.lower() != "authorization":
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def identity_from_certificate(
    certificate_der: bytes, signer: Signer, *, now: datetime, trust_domain: str
) -> SpiffeId:
    """The SPIFFE identity of a mesh certificate that chains to ``signer``'s root."""
    try:
        leaf = x509.load_der_x509_certificate(certificate_der)
    except ValueError as exc:
        raise AuthenticationError(f"the client certificate cannot be parsed: {exc}") from None
    verifier = PolicyBuilder().store(Store([signer.root])).time(now).build_client_verifier()
    intermediates = [signer.certificate, *signer.chain[:-1]] if signer.chain else []
    try:
        verified = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise AuthenticationError(f"the client certificate does not verify: {exc}") from None
    uris = [
        name.value
        for name in verified.subjects or []
        if isinstance(name, x509.UniformResourceIdentifier)
    ]
    if len(uris) != 1:
        raise AuthenticationError(
            f"the client certificate has {len(uris)} URI SANs; want one SPIFFE ID"
        )
    try:
        identity = SpiffeId.parse(uris[0])
    except CertificateError as exc:
        raise AuthenticationError(str(exc)) from None
    if identity.trust_domain != trust_domain:
        raise AuthenticationError(
            f"the client certificate is for trust domain {identity.trust_domain!r}, "
            f"not {trust_domain!r}"
        )
    return identity


def authenticate(
    *,
    metadata: Iterable[tuple[str, str | bytes]],
    peer_certificate_der: bytes | None,
    signer: Signer,
    token_key: bytes,
    trust_domain: str,
    now: datetime,
) -> SpiffeId:
    """The identity the caller proved; ``AuthenticationError`` saying why when none holds."""
    reasons: list[str] = []
    if peer_certificate_der is not None:
        try:
            return identity_from_certificate(
                peer_certificate_der, signer, now=now, trust_domain=trust_domain
            )
        except AuthenticationError as exc:
            reasons.append(f"client certificate: {exc.message}")
    token = bearer_token(metadata)
    if token is not None:
        try:
            claims = verify_token(token_key, token, now=now)
            return SpiffeId(trust_domain, claims.namespace, claims.service_account)
        except (AuthenticationError, CertificateError) as exc:
            reasons.append(f"token: {exc.message}")
    if not reasons:
        reasons.append("no token and no client certificate")
    raise AuthenticationError("; ".join(reasons))
