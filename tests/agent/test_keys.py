from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

from meshlet.agent import keys, rotation, secret
from meshlet.agent.keys import (
    KeyAlgorithm,
    KeyOptions,
    build_csr,
    generate_key,
    key_matches_certificate,
    make_key_and_csr,
)

SPIFFE = "spiffe://cluster.local/ns/test/sa/httpbin"


def _load_key(pem: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem, password=None)


def test_default_key_is_rsa_2048_in_traditional_pem() -> None:
    made = make_key_and_csr(SPIFFE)
    assert made.key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    key = _load_key(made.key_pem)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


def test_ecdsa_key_is_p256() -> None:
    made = make_key_and_csr(SPIFFE, KeyOptions(algorithm=KeyAlgorithm.ECDSA))
    assert made.key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    key = _load_key(made.key_pem)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_pkcs8_option() -> None:
    made = make_key_and_csr(SPIFFE, KeyOptions(algorithm=KeyAlgorithm.ECDSA, pkcs8=True))
    assert made.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_rsa_below_2048_refused() -> None:
    with pytest.raises(ValueError, match="below 2048"):
        KeyOptions(rsa_key_size=1024)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_csr_has_empty_subject_and_critical_spiffe_san(algorithm: KeyAlgorithm) -> None:
    made = make_key_and_csr(SPIFFE, KeyOptions(algorithm=algorithm))
    csr = x509.load_pem_x509_csr(made.csr_pem)
    assert csr.is_signature_valid
    assert len(csr.subject) == 0
    san = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE]
    assert san.value.get_values_for_type(x509.DNSName) == []
    public = _load_key(made.key_pem).public_key()
    assert csr.public_key() == public


def test_csr_refuses_a_name_that_is_not_spiffe() -> None:
    with pytest.raises(ValueError, match="not a SPIFFE ID"):
        build_csr(generate_key(KeyOptions(algorithm=KeyAlgorithm.ECDSA)), "httpbin.test")


def test_key_is_left_out_of_repr() -> None:
    made = make_key_and_csr(SPIFFE, KeyOptions(algorithm=KeyAlgorithm.ECDSA))
    text = repr(made)
    assert "PRIVATE" not in text
    assert made.key_pem.decode().splitlines()[1] not in text


def test_key_matches_certificate(signer) -> None:  # type: ignore[no-untyped-def]
    from tests.agent.conftest import issue

    first, second = issue(signer, "a"), issue(signer, "b")
    leaf = x509.load_pem_x509_certificates(first.chain)[0]
    assert key_matches_certificate(first.key, leaf)
    assert not key_matches_certificate(second.key, leaf)
    with pytest.raises(ValueError):
        key_matches_certificate(b"not a key", leaf)


_IMPURE = {"asyncio", "socket", "os", "io", "time", "random", "subprocess", "pathlib", "grpc"}


@pytest.mark.parametrize("module", [keys, rotation, secret])
def test_pure_modules_import_no_io_clock_or_randomness(module: object) -> None:
    source = Path(module.__file__).read_text()  # type: ignore[attr-defined]
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & _IMPURE
    assert "datetime.now" not in source and "open(" not in source
