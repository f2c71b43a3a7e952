"""Fixtures for the CA tests: one root per run, keys and CSRs made with ``cryptography``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from meshlet.ca.signing import KeyAlgorithm, Signer, generate_private_key, make_self_signed_root

NOW = datetime(2026, 3, 1, 9, 53, 46, tzinfo=UTC)


def make_key(algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA, key_size: int = 2048):
    return generate_private_key(algorithm, key_size=key_size)


def make_csr(key, uri: str | None = None, common_name: str | None = None) -> bytes:
    """A CSR as a workload would send it (optionally asking for a name of its own)."""
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    if uri is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_intermediate(
    parent: Signer, *, now: datetime, name: str = "meshlet intermediate"
) -> Signer:
    """An intermediate CA under ``parent``, as an operator's plug-in CA would be."""
    key = ec.generate_private_key(ec.SECP256R1())
    parent_ski = parent.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local"),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(parent.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(parent_ski),
            critical=False,
        )
        .sign(parent.key, hashes.SHA256())
    )
    return Signer(certificate, key, (parent.certificate, *parent.chain))


@pytest.fixture(scope="session")
def rsa_root() -> Signer:
    return make_self_signed_root("cluster.local", now=NOW - timedelta(days=1))


@pytest.fixture(scope="session")
def ec_root() -> Signer:
    return make_self_signed_root(
        "cluster.local", now=NOW - timedelta(days=1), algorithm=KeyAlgorithm.ECDSA
    )


@pytest.fixture(scope="session")
def ec_key():
    return make_key(KeyAlgorithm.ECDSA)


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    key = make_key(KeyAlgorithm.RSA)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key
