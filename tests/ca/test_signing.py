from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

import meshlet.ca
from meshlet.ca.signing import (
    KeyAlgorithm,
    Signer,
    SpiffeId,
    format_go_duration,
    issue_serving_certificate,
    load_plugin_ca,
    make_self_signed_root,
    sign_csr,
)
from meshlet.errors import CertificateError

from .conftest import NOW, key_pem, make_csr, make_intermediate, make_key

SLEEP = SpiffeId("cluster.local", "test", "sleep")


def leaf_of(chain: list[str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(chain[0].encode())


def verify_client(chain: list[str], root: x509.Certificate, *, at=NOW):
    certs = [x509.load_pem_x509_certificate(pem.encode()) for pem in chain]
    verifier = PolicyBuilder().store(Store([root])).time(at).build_client_verifier()
    return verifier.verify(certs[0], certs[1:-1])


# --- SPIFFE IDs --------------------------------------------------------------------


def test_spiffe_id_round_trip() -> None:
    identity = SpiffeId("cluster.local", "test", "httpbin")
    assert str(identity) == "spiffe://cluster.local/ns/test/sa/httpbin"
    assert SpiffeId.parse(str(identity)) == identity


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://cluster.local/ns/test/sa/httpbin/extra",
        "spiffe://cluster.local/ns/test/sa/",
        "spiffe://cluster.local/ns//sa/httpbin",
        "spiffe://cluster.local/sa/httpbin/ns/test",
        "spiffe://Cluster.Local/ns/test/sa/httpbin",
        "spiffe://cluster.local:8443/ns/test/sa/httpbin",
        "spiffe://cluster.local/ns/test/sa/httpbin?x=1",
        "spiffe://cluster.local/ns/../sa/httpbin",
        "spiffe:///ns/test/sa/httpbin",
        "https://cluster.local/ns/test/sa/httpbin",
        "spiffe://cluster.local",
        "",
    ],
)
def test_spiffe_id_parse_is_strict(uri: str) -> None:
    with pytest.raises(CertificateError):
        SpiffeId.parse(uri)


# --- the workload certificate, field by field --------------------------------------


def test_leaf_fields_as_istio_signs_them(rsa_root: Signer, ec_key) -> None:
    ttl = timedelta(hours=24)
    chain = sign_csr(make_csr(ec_key), SLEEP, rsa_root, now=NOW, ttl=ttl)
    assert len(chain) == 2
    assert all(pem.endswith("-----END CERTIFICATE-----\n") for pem in chain)
    leaf = leaf_of(chain)
    assert chain[-1] == rsa_root.root_pem.decode()
    assert leaf.version is x509.Version.v3
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == rsa_root.certificate.subject
    assert leaf.not_valid_before_utc == NOW - timedelta(minutes=2)
    assert leaf.not_valid_after_utc == NOW + ttl
    assert leaf.public_key() == ec_key.public_key()
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/test/sa/sleep"
    ]
    assert len(list(san.value)) == 1

    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_encipherment
    assert not (
        usage.value.key_cert_sign
        or usage.value.crl_sign
        or usage.value.content_commitment
        or usage.value.data_encipherment
        or usage.value.key_agreement
    )

    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]

    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False
    assert constraints.critical

    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = rsa_root.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest

    leaf.verify_directly_issued_by(rsa_root.certificate)


def test_leaf_verifies_strictly_and_the_san_comes_back(rsa_root: Signer, ec_key) -> None:
    chain = sign_csr(make_csr(ec_key), SLEEP, rsa_root, now=NOW, ttl=timedelta(hours=24))
    verified = verify_client(chain, rsa_root.certificate, at=NOW + timedelta(hours=1))
    assert verified.subjects is not None
    assert [n.value for n in verified.subjects] == ["spiffe://cluster.local/ns/test/sa/sleep"]
    # A minute of clock skew does not break a fresh certificate.
    verify_client(chain, rsa_root.certificate, at=NOW - timedelta(minutes=1))
    with pytest.raises(VerificationError):
        verify_client(chain, rsa_root.certificate, at=NOW + timedelta(hours=25))


def test_rsa_csr_under_an_ecdsa_ca(ec_root: Signer, rsa_key) -> None:
    chain = sign_csr(make_csr(rsa_key), SLEEP, ec_root, now=NOW, ttl=timedelta(hours=1))
    leaf = leaf_of(chain)
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    verify_client(chain, ec_root.certificate)


def test_identity_comes_from_the_argument_never_from_the_csr(rsa_root: Signer, ec_key) -> None:
    csr = make_csr(ec_key, uri="spiffe://cluster.local/ns/test/sa/httpbin", common_name="httpbin")
    leaf = leaf_of(sign_csr(csr, SLEEP, rsa_root, now=NOW, ttl=timedelta(hours=1)))
    assert leaf.subject == x509.Name([])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/test/sa/sleep")]


def test_serials_are_random_and_below_2_to_the_128(rsa_root: Signer, ec_key) -> None:
    csr = make_csr(ec_key)
    serials = [
        leaf_of(sign_csr(csr, SLEEP, rsa_root, now=NOW, ttl=timedelta(hours=1))).serial_number
        for _ in range(24)
    ]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**128 for s in serials)
    # 24 draws all below 2**120 would happen with probability 2**-192.
    assert max(s.bit_length() for s in serials) > 120


# --- TTL ---------------------------------------------------------------------------


def test_ttl_above_the_maximum_is_refused_with_istios_message(rsa_root: Signer, ec_key) -> None:
    with pytest.raises(CertificateError) as caught:
        sign_csr(make_csr(ec_key), SLEEP, rsa_root, now=NOW, ttl=timedelta(days=100))
    assert str(caught.value) == (
        "requested TTL 2400h0m0s is greater than the max allowed TTL 2160h0m0s"
    )
    # Exactly the maximum is allowed.
    sign_csr(make_csr(ec_key), SLEEP, rsa_root, now=NOW, ttl=timedelta(days=90))


def test_ttl_must_be_positive(rsa_root: Signer, ec_key) -> None:
    with pytest.raises(CertificateError, match="not positive"):
        sign_csr(make_csr(ec_key), SLEEP, rsa_root, now=NOW, ttl=timedelta(0))


def test_not_after_is_clamped_to_the_signers(ec_key) -> None:
    short = make_self_signed_root(
        "cluster.local", now=NOW, ttl=timedelta(hours=3), algorithm=KeyAlgorithm.ECDSA
    )
    leaf = leaf_of(sign_csr(make_csr(ec_key), SLEEP, short, now=NOW, ttl=timedelta(hours=24)))
    assert (
        leaf.not_valid_after_utc
        == short.certificate.not_valid_after_utc
        == NOW + timedelta(hours=3)
    )


def test_an_expired_signer_refuses(ec_key) -> None:
    old = make_self_signed_root(
        "cluster.local",
        now=NOW - timedelta(days=2),
        ttl=timedelta(days=1),
        algorithm=KeyAlgorithm.ECDSA,
    )
    with pytest.raises(CertificateError, match="expired"):
        sign_csr(make_csr(ec_key), SLEEP, old, now=NOW, ttl=timedelta(hours=1))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(days=100), "2400h0m0s"),
        (timedelta(days=90), "2160h0m0s"),
        (timedelta(hours=24), "24h0m0s"),
        (timedelta(minutes=90), "1h30m0s"),
        (timedelta(seconds=60), "1m0s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(milliseconds=300), "300ms"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(microseconds=1), "1µs"),
        (timedelta(hours=1, microseconds=1), "1h0m0.000001s"),
        (timedelta(seconds=-5), "-5s"),
    ],
)
def test_go_duration_format(value: timedelta, text: str) -> None:
    assert format_go_duration(value) == text


# --- bad CSRs ----------------------------------------------------------------------


def test_a_csr_whose_signature_does_not_verify_is_refused(rsa_root: Signer, ec_key) -> None:
    der = x509.load_pem_x509_csr(make_csr(ec_key, common_name="httpbin")).public_bytes(
        serialization.Encoding.DER
    )
    # Change one letter of the signed subject: the signature no longer matches.
    assert der.count(b"httpbin") == 1
    tampered = x509.load_der_x509_csr(der.replace(b"httpbin", b"httpbIn"))
    pem = tampered.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertificateError, match=r"^the CSR's signature does not verify$"):
        sign_csr(pem, SLEEP, rsa_root, now=NOW, ttl=timedelta(hours=1))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a csr",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
def test_garbage_is_not_a_csr(rsa_root: Signer, data: bytes) -> None:
    with pytest.raises(CertificateError, match="CSR"):
        sign_csr(data, SLEEP, rsa_root, now=NOW, ttl=timedelta(hours=1))


def test_a_small_rsa_key_is_refused(rsa_root: Signer) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CertificateError, match="1024 bits"):
        sign_csr(make_csr(small), SLEEP, rsa_root, now=NOW, ttl=timedelta(hours=1))


def test_now_must_be_aware(rsa_root: Signer, ec_key) -> None:
    with pytest.raises(ValueError, match="aware"):
        sign_csr(
            make_csr(ec_key), SLEEP, rsa_root, now=NOW.replace(tzinfo=None), ttl=timedelta(hours=1)
        )


# --- the root and the serving certificate ------------------------------------------


def test_self_signed_root(rsa_root: Signer) -> None:
    root = rsa_root.certificate
    assert root.subject == x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")]
    )
    assert root.issuer == root.subject
    assert isinstance(rsa_root.key, rsa.RSAPrivateKey) and rsa_root.key.key_size == 2048
    # Istio's self-signed root is valid from the moment it is made, for exactly 3650 days
    # (the scenario's ROOTCA row: 2022-02-09T16:58:00Z to 2032-02-07T16:58:00Z)
    assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(days=3650)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    root.verify_directly_issued_by(root)
    assert rsa_root.root is root and rsa_root.chain == ()
    assert rsa_root.chain_pems() == [rsa_root.root_pem.decode()]


def test_serving_certificate_verifies_as_istiod(rsa_root: Signer) -> None:
    chain, key = issue_serving_certificate(
        rsa_root, ["istiod.istio-system.svc", "istiod"], now=NOW, ttl=timedelta(days=1)
    )
    leaf = leaf_of(chain)
    private = serialization.load_pem_private_key(key, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert leaf.public_key() == private.public_key()
    verifier = (
        PolicyBuilder()
        .store(Store([rsa_root.certificate]))
        .time(NOW)
        .build_server_verifier(DNSName("istiod.istio-system.svc"))
    )
    assert verifier.verify(leaf, []) == [leaf, rsa_root.certificate]
    wrong = (
        PolicyBuilder()
        .store(Store([rsa_root.certificate]))
        .time(NOW)
        .build_server_verifier(DNSName("evil.example.com"))
    )
    with pytest.raises(VerificationError):
        wrong.verify(leaf, [])


# --- the plug-in CA ----------------------------------------------------------------


def plugin_files(intermediate: Signer, *, chain_with_root: bool = True) -> dict[str, bytes]:
    chain = intermediate.certificate_pem + (intermediate.root_pem if chain_with_root else b"")
    return {
        "ca-cert.pem": intermediate.certificate_pem,
        "ca-key.pem": intermediate.key_pem,
        "root-cert.pem": intermediate.root_pem,
        "cert-chain.pem": chain,
    }


@pytest.mark.parametrize("chain_with_root", [True, False])
def test_plugin_ca_signs_as_an_intermediate(
    rsa_root: Signer, ec_key, chain_with_root: bool
) -> None:
    intermediate = make_intermediate(rsa_root, now=NOW)
    signer = load_plugin_ca(plugin_files(intermediate, chain_with_root=chain_with_root))
    assert signer.certificate == intermediate.certificate
    assert signer.chain == (rsa_root.certificate,)
    chain = sign_csr(make_csr(ec_key), SLEEP, signer, now=NOW, ttl=timedelta(hours=1))
    assert len(chain) == 3
    assert chain[1] == intermediate.certificate_pem.decode()
    assert chain[2] == rsa_root.root_pem.decode()
    assert leaf_of(chain).issuer == intermediate.certificate.subject
    verified = verify_client(chain, rsa_root.certificate)
    assert [n.value for n in verified.subjects or []] == [str(SLEEP)]
    assert verified.chain[-1] == rsa_root.certificate


def test_two_level_plugin_chain(rsa_root: Signer, ec_key) -> None:
    middle = make_intermediate(rsa_root, now=NOW, name="middle")
    issuing = make_intermediate(middle, now=NOW, name="issuing")
    files = {
        "ca-cert.pem": issuing.certificate_pem,
        "ca-key.pem": issuing.key_pem,
        "root-cert.pem": rsa_root.root_pem,
        "cert-chain.pem": issuing.certificate_pem + middle.certificate_pem,
    }
    signer = load_plugin_ca(files)
    chain = sign_csr(make_csr(ec_key), SLEEP, signer, now=NOW, ttl=timedelta(hours=1))
    assert len(chain) == 4
    verify_client(chain, rsa_root.certificate)


def test_plugin_ca_problems_are_reported(rsa_root: Signer, ec_root: Signer) -> None:
    intermediate = make_intermediate(rsa_root, now=NOW)
    files = plugin_files(intermediate)

    missing = dict(files)
    del missing["ca-key.pem"]
    with pytest.raises(CertificateError, match=r"no ca-key\.pem"):
        load_plugin_ca(missing)

    mismatched = dict(files, **{"ca-key.pem": key_pem(make_key())})
    with pytest.raises(CertificateError, match="does not belong"):
        load_plugin_ca(mismatched)

    foreign_root = dict(files, **{"root-cert.pem": ec_root.root_pem, "cert-chain.pem": b""})
    with pytest.raises(CertificateError, match="chain is broken"):
        load_plugin_ca(foreign_root)

    garbage = dict(files, **{"ca-cert.pem": b"junk"})
    with pytest.raises(CertificateError) as caught:
        load_plugin_ca(garbage)
    assert str(caught.value).startswith("ca-cert.pem: ")

    leaf_chain = sign_csr(make_csr(make_key()), SLEEP, rsa_root, now=NOW, ttl=timedelta(hours=1))
    not_a_ca = {
        "ca-cert.pem": leaf_chain[0].encode(),
        "ca-key.pem": key_pem(make_key()),
        "root-cert.pem": rsa_root.root_pem,
    }
    with pytest.raises(CertificateError):
        load_plugin_ca(not_a_ca)


def test_root_in_cacerts_layout_loads_back(rsa_root: Signer) -> None:
    files = {
        "ca-cert.pem": rsa_root.certificate_pem,
        "ca-key.pem": rsa_root.key_pem,
        "root-cert.pem": rsa_root.root_pem,
        "cert-chain.pem": b"",
    }
    signer = load_plugin_ca(files)
    assert signer.certificate == rsa_root.certificate and signer.chain == ()


# --- purity ------------------------------------------------------------------------

IMPURE = {"asyncio", "socket", "os", "time", "subprocess", "pathlib", "grpc", "random", "io"}


@pytest.mark.parametrize("module", ["signing.py", "tokens.py", "authn.py"])
def test_pure_modules_import_no_io(module: str) -> None:
    tree = ast.parse((Path(meshlet.ca.__file__).parent / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & IMPURE
    source = (Path(meshlet.ca.__file__).parent / module).read_text()
    assert ".now(" not in source and "open(" not in source
