from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from meshlet.ca.tokens import TokenClaims, issue_token, verify_token
from meshlet.errors import AuthenticationError

from .conftest import NOW

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def token(expires=NOW + timedelta(hours=1), **names: str) -> str:
    fields = {"namespace": "test", "service_account": "sleep", "pod": "sleep-7f9c-x2"} | names
    return issue_token(KEY, expires=expires, **fields)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_good_token_gives_its_claims() -> None:
    claims = verify_token(KEY, token(), now=NOW)
    assert claims == TokenClaims("test", "sleep", "sleep-7f9c-x2", NOW + timedelta(hours=1))


def test_the_payload_is_a_projected_token_shape() -> None:
    _, payload, _ = token().split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded["sub"] == "system:serviceaccount:test:sleep"
    assert decoded["kubernetes.io"] == {
        "namespace": "test",
        "pod": {"name": "sleep-7f9c-x2"},
        "serviceaccount": {"name": "sleep"},
    }
    assert decoded["exp"] == int((NOW + timedelta(hours=1)).timestamp())


def test_same_input_same_token() -> None:
    assert token() == token()


def test_expired_token() -> None:
    expires = NOW + timedelta(minutes=5)
    verify_token(KEY, token(expires), now=expires - timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        verify_token(KEY, token(expires), now=expires)
    with pytest.raises(AuthenticationError, match="expired"):
        verify_token(KEY, token(NOW - timedelta(days=1)), now=NOW)


def test_wrong_key() -> None:
    with pytest.raises(AuthenticationError, match="signature"):
        verify_token(OTHER_KEY, token(), now=NOW)


def test_tampered_payload_is_refused() -> None:
    header, payload, signature = token().split(".")
    _, other_payload, _ = token(service_account="httpbin").split(".")
    with pytest.raises(AuthenticationError, match="signature"):
        verify_token(KEY, f"{header}.{other_payload}.{signature}", now=NOW)
    # A later expiry written into the payload by hand is refused the same way.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 86_400
    forged = b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(AuthenticationError, match="signature"):
        verify_token(KEY, f"{header}.{forged}.{signature}", now=NOW)


def test_a_validly_signed_token_with_another_header_is_refused() -> None:
    import hashlib
    import hmac

    _, payload, _ = token().split(".")
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    signature = b64(hmac.new(KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthenticationError, match="header"):
        verify_token(KEY, f"{header}.{payload}.{signature}", now=NOW)


def test_a_validly_signed_token_with_missing_claims_is_refused() -> None:
    import hashlib
    import hmac

    header = b64(
        json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":"), sort_keys=True).encode()
    )
    payload = b64(json.dumps({"iss": "meshlet", "aud": ["istio-ca"], "exp": 2**40}).encode())
    signature = b64(hmac.new(KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthenticationError, match=r"kubernetes\.io"):
        verify_token(KEY, f"{header}.{payload}.{signature}", now=NOW)


@pytest.mark.parametrize(
    "bad",
    ["", "a.b", "a.b.c.d", "...", "a.b.c", "%%%.b.c", "x" * 9000],
)
def test_malformed_tokens(bad: str) -> None:
    with pytest.raises(AuthenticationError):
        verify_token(KEY, bad, now=NOW)


def test_truncated_signature() -> None:
    good = token()
    with pytest.raises(AuthenticationError):
        verify_token(KEY, good[:-2], now=NOW)


@pytest.mark.parametrize(
    "names",
    [{"namespace": "Test"}, {"service_account": ""}, {"pod": "a/b"}, {"namespace": "-x"}],
)
def test_issue_checks_names(names: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        token(**names)


def test_keys_and_times_are_checked() -> None:
    with pytest.raises(ValueError, match="bytes"):
        issue_token(b"short", namespace="a", service_account="b", pod="c", expires=NOW)
    with pytest.raises(ValueError, match="aware"):
        verify_token(KEY, token(), now=NOW.replace(tzinfo=None))
