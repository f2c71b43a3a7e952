from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def recorded(api_schemas: Path, name: str) -> Any:
    return json.loads((api_schemas / "kubernetes-api" / name).read_text())


def _self_signed(key: Any, common_name: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any, fmt: serialization.PrivateFormat) -> bytes:
    pem: bytes = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    return pem


@pytest.fixture(scope="session")
def tls_pairs() -> dict[str, bytes]:
    """Certificates and keys made for this run: RSA (PKCS#1 and PKCS#8) and ECDSA."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "rsa.crt": _self_signed(rsa_key, "httpbin.test.svc.cluster.local"),
        "rsa.key": _key_pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL),
        "rsa.pk8": _key_pem(rsa_key, serialization.PrivateFormat.PKCS8),
        "other.key": _key_pem(other_rsa, serialization.PrivateFormat.PKCS8),
        "ec.crt": _self_signed(ec_key, "ec.example.com"),
        "ec.key": _key_pem(ec_key, serialization.PrivateFormat.TraditionalOpenSSL),
    }
