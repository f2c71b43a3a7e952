"""The workload's private key and its certificate signing request.

The agent makes a fresh key for every certificate it asks for, as Istio's agent does:
RSA 2048 by default, ECDSA P-256 when asked. The CSR has an empty subject and one
critical subjectAltName holding the workload's SPIFFE URI (critical because the subject
is empty, as RFC 5280 requires). The CA decides the identity from the caller's proof and
ignores what the CSR asks for; the SAN is there so the request says what it is for.

Pure: no I/O, no clock. The key's randomness comes from the operating system through
``cryptography``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "DEFAULT_KEY_OPTIONS",
    "DEFAULT_RSA_KEY_SIZE",
    "KeyAlgorithm",
    "KeyAndCSR",
    "KeyOptions",
    "PrivateKey",
    "build_csr",
    "generate_key",
    "key_matches_certificate",
    "make_key_and_csr",
]

DEFAULT_RSA_KEY_SIZE = 2048

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class KeyAlgorithm(enum.Enum):
    """The workload key's algorithm (Istio: ``ECC_SIGNATURE_ALGORITHM`` unset or ``ECDSA``)."""

    RSA = "RSA"
    ECDSA = "ECDSA"


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """How the workload key is made.

    ``rsa_key_size`` is Istio's ``WORKLOAD_RSA_KEY_SIZE``; ECDSA always uses P-256
    (Istio's ``ECC_CURVE`` default). ``pkcs8`` writes the key as ``PRIVATE KEY``
    instead of the traditional ``RSA PRIVATE KEY`` / ``EC PRIVATE KEY`` form.
    """

    algorithm: KeyAlgorithm = KeyAlgorithm.RSA
    rsa_key_size: int = DEFAULT_RSA_KEY_SIZE
    pkcs8: bool = False

    def __post_init__(self) -> None:
        if self.algorithm is KeyAlgorithm.RSA and self.rsa_key_size < 2048:
            raise ValueError(f"RSA key size {self.rsa_key_size} is below 2048 bits")


DEFAULT_KEY_OPTIONS = KeyOptions()


@dataclass(frozen=True, slots=True)
class KeyAndCSR:
    """A new private key (PEM) and the CSR (PEM) made with it.

    The key is left out of ``repr`` so that it never reaches a log by accident.
    """

    key_pem: bytes = field(repr=False)
    csr_pem: bytes


def generate_key(options: KeyOptions = DEFAULT_KEY_OPTIONS) -> PrivateKey:
    """A new private key as ``options`` says."""
    if options.algorithm is KeyAlgorithm.ECDSA:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=options.rsa_key_size)


def build_csr(key: PrivateKey, spiffe_id: str) -> bytes:
    """A PEM CSR with an empty subject and the critical URI SAN ``spiffe_id``."""
    if not spiffe_id.startswith("spiffe://"):
        raise ValueError(f"not a SPIFFE ID: {spiffe_id!r}")
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
            critical=True,
        )
    )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def make_key_and_csr(spiffe_id: str, options: KeyOptions = DEFAULT_KEY_OPTIONS) -> KeyAndCSR:
    """A fresh key and a CSR for ``spiffe_id``, both PEM."""
    key = generate_key(options)
    key_format = (
        serialization.PrivateFormat.PKCS8
        if options.pkcs8
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, key_format, serialization.NoEncryption()
    )
    return KeyAndCSR(key_pem=key_pem, csr_pem=build_csr(key, spiffe_id))


def key_matches_certificate(key_pem: bytes, certificate: x509.Certificate) -> bool:
    """Whether ``key_pem`` is the private key of ``certificate``'s public key.

    Raises ``ValueError`` (or ``TypeError`` for a key type that cannot be a TLS key)
    when the key cannot be parsed.
    """
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(
        key.public_key().public_bytes(der, spki) == certificate.public_key().public_bytes(der, spki)
    )
