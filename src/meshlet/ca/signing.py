"""Signing workload certificates the way Istio's CA signs them (pure: no I/O, no clock).

Theory of operation
-------------------
A ``Signer`` is the CA's certificate, its private key and the certificates above it up
to the root (empty when the CA is itself the root). ``sign_csr`` takes a PEM CSR and an
identity that the *caller proved* (a pod token, a mesh certificate) and returns the
chain for that identity, leaf first and root last. Nothing in the CSR but its public
key is used: the subject, the SANs and any extensions the CSR asks for are ignored, so
a workload cannot ask for someone else's name. The CSR's own signature must verify
(proof that the caller holds the private key).

The leaf follows Istio's ``security/pkg/pki/util/generate_cert.go``: an empty subject,
so the URI SAN ``spiffe://<td>/ns/<ns>/sa/<sa>`` is critical (RFC 5280 §4.2.1.6); key
usage digitalSignature + keyEncipherment (critical); extended key usage serverAuth +
clientAuth; basicConstraints CA:false; a random serial below 2**128; NotBefore two
minutes in the past (clock skew between pods and the CA); NotAfter = now + TTL, never
past the signer's own NotAfter. A TTL above the maximum is refused with Istio's message,
durations written as Go writes them (``2400h0m0s``).

``make_self_signed_root`` makes the cluster's root (O = trust domain; valid from now
for exactly its TTL, 3650 days, as Istio's self-signed root is), and
``load_plugin_ca`` reads Istio's ``cacerts`` layout to sign as an intermediate.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshlet.errors import CertificateError, Location

__all__ = [
    "CLOCK_SKEW_GRACE",
    "DEFAULT_ROOT_TTL",
    "DEFAULT_TRUST_DOMAIN",
    "DEFAULT_WORKLOAD_TTL",
    "MAX_WORKLOAD_TTL",
    "PLUGIN_CA_FILES",
    "KeyAlgorithm",
    "Signer",
    "SpiffeId",
    "format_go_duration",
    "generate_private_key",
    "issue_serving_certificate",
    "load_plugin_ca",
    "make_self_signed_root",
    "sign_csr",
]

DEFAULT_TRUST_DOMAIN = "cluster.local"
DEFAULT_WORKLOAD_TTL = timedelta(hours=24)  # DEFAULT_WORKLOAD_CERT_TTL
MAX_WORKLOAD_TTL = timedelta(days=90)  # MAX_WORKLOAD_CERT_TTL
DEFAULT_ROOT_TTL = timedelta(days=3650)  # CITADEL_SELF_SIGNED_CA_CERT_TTL
CLOCK_SKEW_GRACE = timedelta(minutes=2)  # ClockSkewGracePeriod

#: Istio's ``cacerts`` secret: the CA's certificate and key, the root, and the chain
#: from the CA's certificate up to the root.
PLUGIN_CA_FILES = ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem")

_MIN_RSA_BITS = 2048

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyAlgorithm(enum.Enum):
    """The kind of key a CA (or a serving certificate) is made with."""

    RSA = "RSA"
    ECDSA = "ECDSA"  # P-256, as Istio's ECC_CURVE default


# --- SPIFFE identities -------------------------------------------------------------

# SPIFFE: a trust domain is lowercase letters, digits, dots, dashes and underscores; a
# path segment is letters, digits, dots, dashes and underscores, and is not "." or "..".
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_MAX_SPIFFE_ID = 2048


def _check_segment(value: str, what: str) -> None:
    if not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise CertificateError(
            f"invalid {what} {value!r} in a SPIFFE ID: use letters, digits, '.', '-' and '_'"
        )


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A workload identity: ``spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>``."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        if not _TRUST_DOMAIN.fullmatch(self.trust_domain):
            raise CertificateError(
                f"invalid trust domain {self.trust_domain!r}: use lowercase letters, "
                "digits, '.', '-' and '_'"
            )
        _check_segment(self.namespace, "namespace")
        _check_segment(self.service_account, "service account")

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Read ``spiffe://td/ns/NS/sa/SA`` exactly; anything else raises ``CertificateError``."""
        prefix = "spiffe://"
        if len(uri) > _MAX_SPIFFE_ID or not uri.startswith(prefix):
            raise CertificateError(f"not a SPIFFE ID: {uri!r} (want spiffe://TD/ns/NS/sa/SA)")
        trust_domain, slash, path = uri[len(prefix) :].partition("/")
        parts = path.split("/") if slash else []
        if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
            raise CertificateError(f"not a SPIFFE ID: {uri!r} (want spiffe://TD/ns/NS/sa/SA)")
        return cls(trust_domain, parts[1], parts[3])


# --- the signer --------------------------------------------------------------------


def _pem(certificate: x509.Certificate) -> str:
    text = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return text if text.endswith("\n") else text + "\n"


@dataclass(frozen=True, slots=True)
class Signer:
    """A CA that signs: its certificate, its key, and the certificates above it.

    ``chain`` runs from the certificate's issuer up to the root, nearest first; it is
    empty when ``certificate`` is itself the root.
    """

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    # Worked out once, used for every certificate signed.
    _pems: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _aki: x509.AuthorityKeyIdentifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pems", tuple(_pem(c) for c in (self.certificate, *self.chain)))
        object.__setattr__(self, "_aki", _aki(self.certificate))

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1] if self.chain else self.certificate

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root).encode("ascii")

    @property
    def certificate_pem(self) -> bytes:
        return _pem(self.certificate).encode("ascii")

    @property
    def key_pem(self) -> bytes:
        """The CA key, PKCS#8 PEM, unencrypted (for the CA's own store only)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def chain_pems(self) -> list[str]:
        """The signer's certificate and everything above it, ending with the root."""
        return list(self._pems)


def generate_private_key(algorithm: KeyAlgorithm, *, key_size: int = 2048) -> PrivateKey:
    if algorithm is KeyAlgorithm.ECDSA:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _random_serial() -> int:
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def make_self_signed_root(
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    *,
    now: datetime,
    key_size: int = 2048,
    ttl: timedelta = DEFAULT_ROOT_TTL,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA,
) -> Signer:
    """The cluster's root CA: O = trust domain, CA:TRUE (critical), keyCertSign + cRLSign."""
    _check_aware(now)
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise CertificateError(f"invalid trust domain {trust_domain!r}")
    key = generate_private_key(algorithm, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now)  # as Istio's self-signed root: no clock-skew grace
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, _hash_for(key))
    )
    return Signer(certificate, key)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


# --- signing -----------------------------------------------------------------------


def format_go_duration(value: timedelta) -> str:
    """A duration as Go's ``time.Duration.String`` writes it: ``2400h0m0s``, ``1.5s``, ``300ms``."""
    nanos = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1000
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos == 0:
        return "0s"
    if nanos < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if nanos < size * 1000:
                return f"{sign}{_decimal(nanos, size)}{unit}"
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


def _decimal(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(fraction).rjust(digits, '0').rstrip('0')}"


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")


def _load_csr_key(
    csr_pem: bytes,
) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    """The public key of a CSR whose signature verifies."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CertificateError(f"the CSR cannot be parsed: {exc}") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature) as exc:
        raise CertificateError(f"the CSR's signature cannot be checked: {exc}") from None
    if not valid:
        raise CertificateError("the CSR's signature does not verify")
    public_key = csr.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < _MIN_RSA_BITS:
            raise CertificateError(
                f"the CSR's RSA key has {public_key.key_size} bits; at least {_MIN_RSA_BITS} are needed"
            )
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise CertificateError(
                f"the CSR's EC curve {public_key.curve.name} is not supported (use P-256 or P-384)"
            )
    elif not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise CertificateError("the CSR's key type is not supported (use RSA, ECDSA or Ed25519)")
    return public_key


def _leaf(
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
    sans: Sequence[x509.GeneralName],
    signer: Signer,
    *,
    now: datetime,
    ttl: timedelta,
) -> x509.Certificate:
    not_after = min(now + ttl, signer.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(signer.certificate.subject)
        .public_key(public_key)
        .serial_number(_random_serial())
        .not_valid_before(now - CLOCK_SKEW_GRACE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(signer._aki, critical=False)
    )
    return builder.sign(signer.key, _hash_for(signer.key))


def _check_signer_time(signer: Signer, now: datetime) -> None:
    if now >= signer.certificate.not_valid_after_utc:
        raise CertificateError(
            f"the CA certificate expired at {signer.certificate.not_valid_after_utc.isoformat()}"
        )


def sign_csr(
    csr_pem: bytes,
    identity: SpiffeId,
    signer: Signer,
    *,
    now: datetime,
    ttl: timedelta,
    max_ttl: timedelta = MAX_WORKLOAD_TTL,
) -> list[str]:
    """Sign ``csr_pem``'s public key for ``identity``; the chain as PEMs, leaf first, root last.

    Raises ``CertificateError`` for a CSR that cannot be parsed or whose signature does
    not verify, a TTL that is not positive or above ``max_ttl``, or an expired signer.
    """
    _check_aware(now)
    if ttl > max_ttl:
        raise CertificateError(
            f"requested TTL {format_go_duration(ttl)} is greater than the max allowed TTL "
            f"{format_go_duration(max_ttl)}"
        )
    if ttl <= timedelta(0):
        raise CertificateError(f"requested TTL {format_go_duration(ttl)} is not positive")
    _check_signer_time(signer, now)
    public_key = _load_csr_key(csr_pem)
    leaf = _leaf(
        public_key,
        [x509.UniformResourceIdentifier(str(identity))],
        signer,
        now=now,
        ttl=ttl,
    )
    return [_pem(leaf), *signer.chain_pems()]


def issue_serving_certificate(
    signer: Signer,
    dns_names: Sequence[str],
    *,
    now: datetime,
    ttl: timedelta,
    algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA,
) -> tuple[list[str], bytes]:
    """A certificate for the control plane's own TLS (``istiod.istio-system.svc`` …).

    Returns the chain PEMs (leaf first, root last) and the new key as PKCS#8 PEM.
    """
    _check_aware(now)
    if not dns_names:
        raise ValueError("a serving certificate needs at least one DNS name")
    _check_signer_time(signer, now)
    key = generate_private_key(algorithm)
    leaf = _leaf(
        key.public_key(),
        [x509.DNSName(name) for name in dns_names],
        signer,
        now=now,
        ttl=ttl,
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return [_pem(leaf), *signer.chain_pems()], key_pem


# --- the plug-in CA ----------------------------------------------------------------


def _certificates(name: str, data: bytes) -> list[x509.Certificate]:
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(
            f"no PEM certificate can be read: {exc}", location=Location(name)
        ) from None
    return found


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _keys_match(key: PrivateKey, certificate: x509.Certificate) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, fmt) == certificate.public_key().public_bytes(
        der, fmt
    )


def load_plugin_ca(files: Mapping[str, bytes]) -> Signer:
    """A signer from Istio's ``cacerts`` layout (file name → contents).

    ``ca-cert.pem`` and ``ca-key.pem`` sign; ``root-cert.pem`` is the mesh root;
    ``cert-chain.pem`` is the chain from ``ca-cert.pem`` up to the root (it may start
    with ``ca-cert.pem`` and may end with the root, as Istio's samples do). When
    ``ca-cert.pem`` is the root itself, ``cert-chain.pem`` may be empty or absent.
    Every link is checked: the key matches, each certificate is issued by the next, and
    the chain ends at the root.
    """
    for required in ("ca-cert.pem", "ca-key.pem", "root-cert.pem"):
        if required not in files:
            raise CertificateError(f"the plug-in CA has no {required}", location=Location(required))
    ca_certs = _certificates("ca-cert.pem", files["ca-cert.pem"])
    roots = _certificates("root-cert.pem", files["root-cert.pem"])
    if len(ca_certs) != 1:
        raise CertificateError(
            f"want one certificate, found {len(ca_certs)}", location=Location("ca-cert.pem")
        )
    certificate, root = ca_certs[0], roots[0]
    try:
        key = serialization.load_pem_private_key(files["ca-key.pem"], password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"the CA key cannot be read: {exc}", location=Location("ca-key.pem")
        ) from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise CertificateError(
            "the CA key must be RSA, ECDSA or Ed25519", location=Location("ca-key.pem")
        )
    if not _keys_match(key, certificate):
        raise CertificateError(
            "ca-key.pem does not belong to ca-cert.pem", location=Location("ca-key.pem")
        )
    if not _is_ca(certificate):
        raise CertificateError(
            "ca-cert.pem is not a CA certificate (basicConstraints CA:TRUE is missing)",
            location=Location("ca-cert.pem"),
        )
    chain_data = files.get("cert-chain.pem", b"")
    listed = _certificates("cert-chain.pem", chain_data) if chain_data.strip() else []
    if listed and listed[0] == certificate:
        listed = listed[1:]
    if certificate == root:
        if listed:
            raise CertificateError(
                "ca-cert.pem is the root, so the chain must be empty",
                location=Location("cert-chain.pem"),
            )
        return Signer(certificate, key)
    if not listed or listed[-1] != root:
        listed.append(root)
    child = certificate
    for parent in listed:
        if not _issued_by(child, parent):
            raise CertificateError(
                f"the chain is broken: {child.subject.rfc4514_string() or '(empty subject)'} "
                f"is not issued by {parent.subject.rfc4514_string() or '(empty subject)'}",
                location=Location("cert-chain.pem"),
            )
        child = parent
    return Signer(certificate, key, tuple(listed))
