"""Pod-bound tokens, as a projected service-account token proves a pod's identity (pure).

Theory of operation
-------------------
The cluster keeps one secret key, made at install and readable by root only. The
runtime gives each pod a token naming its namespace, service account and pod, with an
expiry; the CA trusts the namespace and service account a token carries, and nothing
the caller says besides.

A token has the shape of a JWT, ``header.payload.signature``, each part base64url
without padding. The payload is canonical JSON (sorted keys, no spaces) with the claims
Kubernetes puts in a projected token: ``iss``, ``sub``
(``system:serviceaccount:NS:SA``), ``aud``, ``exp`` and ``kubernetes.io`` (namespace,
pod name, service account name). The signature is HMAC-SHA256 over ``header.payload``
with the cluster key. Verification is strict: the exact header, a signature compared in
constant time before anything in the payload is read, every claim present with its
type, the audience, and an expiry after ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meshlet.errors import AuthenticationError

__all__ = ["TOKEN_AUDIENCE", "TOKEN_ISSUER", "TokenClaims", "issue_token", "verify_token"]

TOKEN_ISSUER = "meshlet"
TOKEN_AUDIENCE = "istio-ca"

_HEADER = {"alg": "HS256", "typ": "JWT"}
_MIN_KEY_BYTES = 16
_MAX_TOKEN = 8192
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """Who a verified token speaks for, and until when."""

    namespace: str
    service_account: str
    pod: str
    expires: datetime


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise AuthenticationError("malformed token: a part is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthenticationError("malformed token: a part is not base64url") from None


def _check_key(key: bytes) -> None:
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"a token key needs at least {_MIN_KEY_BYTES} bytes")


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or len(value) > 253:
        raise ValueError(f"invalid {what} {value!r}")


def _sign(key: bytes, signing_input: bytes) -> bytes:
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def issue_token(
    key: bytes, *, namespace: str, service_account: str, pod: str, expires: datetime
) -> str:
    """A token for ``pod`` running as ``namespace``/``service_account`` until ``expires``."""
    _check_key(key)
    _check_name(namespace, "namespace")
    _check_name(service_account, "service account")
    _check_name(pod, "pod name")
    if expires.tzinfo is None:
        raise ValueError("expires must be an aware datetime (UTC)")
    payload = {
        "aud": [TOKEN_AUDIENCE],
        "exp": int(expires.timestamp()),
        "iss": TOKEN_ISSUER,
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": pod},
            "serviceaccount": {"name": service_account},
        },
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
    }
    signing_input = f"{_b64encode(_canonical(_HEADER))}.{_b64encode(_canonical(payload))}"
    signature = _sign(key, signing_input.encode("ascii"))
    return f"{signing_input}.{_b64encode(signature)}"


def _field(mapping: Any, name: str, kind: type) -> Any:
    value = mapping.get(name) if isinstance(mapping, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AuthenticationError(
            f"malformed token: claim {name!r} is missing or not a {kind.__name__}"
        )
    return value


def verify_token(key: bytes, token: str, *, now: datetime) -> TokenClaims:
    """The claims of a token signed with ``key`` and not expired at ``now``.

    Raises ``AuthenticationError`` for a malformed token, a bad signature, a wrong
    audience, issuer or subject, or an expired token.
    """
    _check_key(key)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        raise AuthenticationError("malformed token")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError("malformed token: want header.payload.signature")
    header_b64, payload_b64, signature_b64 = parts
    expected = _sign(key, f"{header_b64}.{payload_b64}".encode("ascii", "replace"))
    if not hmac.compare_digest(expected, _b64decode(signature_b64)):
        raise AuthenticationError("the token's signature does not verify")
    try:
        header = json.loads(_b64decode(header_b64))
        payload = json.loads(_b64decode(payload_b64))
    except (UnicodeDecodeError, ValueError):
        raise AuthenticationError("malformed token: a part is not JSON") from None
    if header != _HEADER:
        raise AuthenticationError("malformed token: unexpected header")
    if _field(payload, "iss", str) != TOKEN_ISSUER:
        raise AuthenticationError("the token has another issuer")
    audiences = _field(payload, "aud", list)
    if TOKEN_AUDIENCE not in audiences:
        raise AuthenticationError(f"the token is not meant for {TOKEN_AUDIENCE}")
    expiry = _field(payload, "exp", int)
    k8s = _field(payload, "kubernetes.io", dict)
    namespace = _field(k8s, "namespace", str)
    pod = _field(_field(k8s, "pod", dict), "name", str)
    service_account = _field(_field(k8s, "serviceaccount", dict), "name", str)
    if _field(payload, "sub", str) != f"system:serviceaccount:{namespace}:{service_account}":
        raise AuthenticationError("malformed token: the subject does not match its claims")
    try:
        expires = datetime.fromtimestamp(expiry, UTC)
    except (OverflowError, OSError, ValueError):
        raise AuthenticationError("malformed token: bad expiry") from None
    if now >= expires:
        raise AuthenticationError(f"the token expired at {expires.isoformat()}")
    return TokenClaims(namespace, service_account, pod, expires)
