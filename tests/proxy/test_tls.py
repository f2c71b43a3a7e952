"""TLS contexts from Envoy's protos, SAN checks, the context cache, TLS on memory BIOs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from meshlet.errors import TLSConfigError
from meshlet.pilot import _xds
from meshlet.proxy.runtime import StaticSecretProvider
from meshlet.proxy.streams import memory_stream_pair
from meshlet.proxy.tls import (
    PEER_CACHE_SIZE,
    SanMatcher,
    TlsContextCache,
    TlsHandshakeError,
    _cached_sans,
    accept_tls,
    client_tls,
    connect_tls,
    peer_subject_alt_names,
    sans_match,
    server_tls,
)

SERVER_ID = "spiffe://cluster.local/ns/test/sa/httpbin"
CLIENT_ID = "spiffe://cluster.local/ns/test/sa/sleep"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class MeshPki:
    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")])
        self.ca = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )  # fmt: skip

    def leaf(self, uri: str, serial: int = 2) -> tuple[bytes, bytes]:
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.ca.subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True
            )
            .sign(self.ca_key, hashes.SHA256())
        )  # fmt: skip
        return _pem(cert), _key_pem(key)


@pytest.fixture(scope="module")
def mesh() -> MeshPki:
    return MeshPki()


def _secrets(mesh: MeshPki, identity: str) -> StaticSecretProvider:
    chain, key = mesh.leaf(identity)
    default = secret_pb2.Secret(name="default")
    default.tls_certificate.certificate_chain.inline_bytes = chain
    default.tls_certificate.private_key.inline_bytes = key
    root = secret_pb2.Secret(name="ROOTCA")
    root.validation_context.trusted_ca.inline_bytes = _pem(mesh.ca)
    return StaticSecretProvider([default, root])


def _server_context(require: bool = True) -> tls_pb2.DownstreamTlsContext:
    """The shape of Istio's mesh inbound context (``virtualInbound`` chains)."""
    context = tls_pb2.DownstreamTlsContext()
    context.require_client_certificate.value = require
    common = context.common_tls_context
    common.alpn_protocols.extend(["istio-peer-exchange", "h2", "http/1.1"])
    common.tls_certificate_sds_secret_configs.append(_xds.sds_secret_config("default"))
    combined = common.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.append(
        _xds.spiffe_uri_prefix("cluster.local")
    )
    combined.validation_context_sds_secret_config.CopyFrom(_xds.sds_secret_config("ROOTCA"))
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    common.tls_params.tls_maximum_protocol_version = common_pb2.TlsParameters.TLSv1_3
    return context


def _client_context(expect: str) -> tls_pb2.UpstreamTlsContext:
    context = tls_pb2.UpstreamTlsContext(sni="outbound_.8080_._.httpbin.test.svc.cluster.local")
    common = context.common_tls_context
    common.alpn_protocols.extend(["istio-peer-exchange", "istio"])
    common.tls_certificate_sds_secret_configs.append(_xds.sds_secret_config("default"))
    combined = common.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.append(
        _xds.spiffe_uri_exact(expect)
    )
    combined.validation_context_sds_secret_config.CopyFrom(_xds.sds_secret_config("ROOTCA"))
    return context


async def _handshake(server_secrets, client_secrets, expect: str):  # type: ignore[no-untyped-def]
    near, far = memory_stream_pair()
    server = server_tls(_server_context(), server_secrets)
    client = client_tls(_client_context(expect), client_secrets)
    return await asyncio.gather(
        accept_tls(far, server, timeout=5), connect_tls(near, client, timeout=5),
        return_exceptions=True,
    )  # fmt: skip


async def test_mesh_mtls_in_memory_with_spiffe_checks(mesh: MeshPki) -> None:
    accepted, connected = await _handshake(
        _secrets(mesh, SERVER_ID), _secrets(mesh, CLIENT_ID), SERVER_ID
    )
    assert not isinstance(accepted, BaseException), accepted
    assert not isinstance(connected, BaseException), connected
    assert accepted.alpn_protocol == "istio-peer-exchange"
    assert accepted.peer_certificate is not None
    connected.write(b"ping")
    assert await accepted.read() == b"ping"
    accepted.write(b"pong" * 20000)
    received = b""
    while len(received) < 80000:
        received += await connected.read()
    assert received == b"pong" * 20000


async def test_the_wrong_server_identity_is_refused(mesh: MeshPki) -> None:
    _, connected = await _handshake(
        _secrets(mesh, "spiffe://cluster.local/ns/test/sa/impostor"),
        _secrets(mesh, CLIENT_ID),
        SERVER_ID,
    )
    assert isinstance(connected, TlsHandshakeError)
    assert "SAN" in connected.reason


async def test_a_client_from_another_trust_domain_is_refused(mesh: MeshPki) -> None:
    accepted, _ = await _handshake(
        _secrets(mesh, SERVER_ID), _secrets(mesh, "spiffe://other.domain/ns/x/sa/y"), SERVER_ID
    )
    assert isinstance(accepted, TlsHandshakeError)


def test_missing_secret_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(TLSConfigError) as caught:
        server_tls(_server_context(), StaticSecretProvider())
    assert caught.value.field == "common_tls_context.tls_certificate_sds_secret_configs[0]"
    assert "'default'" in caught.value.message


def test_context_settings(mesh: MeshPki) -> None:
    built = server_tls(_server_context(), _secrets(mesh, SERVER_ID))
    assert built.context.verify_mode is ssl.CERT_REQUIRED
    assert built.context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert built.context.maximum_version is ssl.TLSVersion.TLSv1_3
    assert built.local_uri_sans == (SERVER_ID,)
    optional = server_tls(_server_context(require=False), _secrets(mesh, SERVER_ID))
    assert optional.context.verify_mode is ssl.CERT_OPTIONAL
    client = client_tls(_client_context(SERVER_ID), _secrets(mesh, CLIENT_ID))
    assert client.context.maximum_version is ssl.TLSVersion.TLSv1_2  # Envoy's upstream default
    assert client.server_name == "outbound_.8080_._.httpbin.test.svc.cluster.local"


def test_bad_ciphers_and_versions_are_refused(mesh: MeshPki) -> None:
    context = _server_context()
    context.common_tls_context.tls_params.cipher_suites.append("NOT-A-CIPHER")
    with pytest.raises(TLSConfigError, match="cipher"):
        server_tls(context, _secrets(mesh, SERVER_ID))
    context = _server_context()
    context.common_tls_context.tls_params.tls_minimum_protocol_version = (
        common_pb2.TlsParameters.TLSv1_3
    )
    context.common_tls_context.tls_params.tls_maximum_protocol_version = (
        common_pb2.TlsParameters.TLSv1_2
    )
    with pytest.raises(TLSConfigError, match="minimum"):
        server_tls(context, _secrets(mesh, SERVER_ID))


def test_require_client_certificate_needs_a_ca(mesh: MeshPki) -> None:
    context = _server_context()
    context.common_tls_context.ClearField("combined_validation_context")
    with pytest.raises(TLSConfigError, match="trusted CA"):
        server_tls(context, _secrets(mesh, SERVER_ID))


def test_cache_rebuilds_after_a_secret_changes(mesh: MeshPki) -> None:
    secrets = _secrets(mesh, SERVER_ID)
    cache = TlsContextCache(secrets)
    first = cache.server(_server_context())
    assert cache.server(_server_context()) is first
    chain, key = mesh.leaf(SERVER_ID, serial=3)
    renewed = secret_pb2.Secret(name="default")
    renewed.tls_certificate.certificate_chain.inline_bytes = chain
    renewed.tls_certificate.private_key.inline_bytes = key
    secrets.set(renewed)
    assert cache.server(_server_context()) is not first


@pytest.mark.parametrize(
    ("matcher", "sans", "expected"),
    [
        (SanMatcher("URI", "exact", SERVER_ID), {"URI": (SERVER_ID,)}, True),
        (SanMatcher("URI", "exact", SERVER_ID), {"DNS": (SERVER_ID,)}, False),
        (SanMatcher("URI", "prefix", "spiffe://cluster.local/"), {"URI": (SERVER_ID,)}, True),
        (SanMatcher("DNS", "exact", "a.example.com"), {"DNS": ("*.example.com",)}, True),
        (SanMatcher("DNS", "exact", "a.b.example.com"), {"DNS": ("*.example.com",)}, False),
        (SanMatcher("ANY", "suffix", "/sa/httpbin"), {"URI": (SERVER_ID,)}, True),
        (SanMatcher("URI", "regex", r"spiffe://[^/]+/ns/test/.*"), {"URI": (SERVER_ID,)}, True),
        (SanMatcher("IP_ADDRESS", "exact", "10.0.0.1"), {"IP_ADDRESS": ("10.0.0.1",)}, True),
        (SanMatcher("EMAIL", "contains", "@x", ignore_case=True), {"EMAIL": ("A@X.io",)}, True),
    ],
)
def test_san_matching(
    matcher: SanMatcher, sans: dict[str, tuple[str, ...]], expected: bool
) -> None:
    assert sans_match([matcher], sans) is expected


def test_no_matchers_accept_any_certificate() -> None:
    assert sans_match([], {})


# --- connection set-up: the first bytes handed over, per-certificate work cached ---------


async def test_server_handshake_from_bytes_already_taken_off_the_connection(
    mesh: MeshPki,
) -> None:
    """The listener may pass the ClientHello it read; the handshake starts from it."""
    near, far = memory_stream_pair()
    server = server_tls(_server_context(), _secrets(mesh, SERVER_ID))
    client = client_tls(_client_context(SERVER_ID), _secrets(mesh, CLIENT_ID))
    connecting = asyncio.ensure_future(connect_tls(near, client, timeout=5))
    hello = await far.read()  # the ClientHello, off the stream
    assert hello[:1] == b"\x16"
    accepted = await accept_tls(far, server, timeout=5, initial=hello)
    connected = await connecting
    assert accepted.peer_certificate is not None
    assert connected.alpn_protocol == accepted.alpn_protocol == "istio-peer-exchange"
    connected.write(b"ping")
    assert await accepted.read() == b"ping"


async def test_server_handshake_ends_cleanly_when_the_peer_sends_nothing(mesh: MeshPki) -> None:
    near, far = memory_stream_pair()
    server = server_tls(_server_context(), _secrets(mesh, SERVER_ID))
    near.close()
    with pytest.raises(TlsHandshakeError):
        await accept_tls(far, server, timeout=5)


async def test_san_checks_hold_for_a_certificate_seen_before(mesh: MeshPki) -> None:
    """The parsed SANs are cached by certificate; the verdict stays per connection."""
    client_secrets = _secrets(mesh, "spiffe://other.domain/ns/x/sa/y")
    for _ in range(2):  # the second time the certificate's SANs come from the cache
        near, far = memory_stream_pair()
        accepted, _ = await asyncio.gather(
            accept_tls(far, server_tls(_server_context(), _secrets(mesh, SERVER_ID)), timeout=5),
            connect_tls(near, client_tls(_client_context(SERVER_ID), client_secrets), timeout=5),
            return_exceptions=True,
        )
        assert isinstance(accepted, TlsHandshakeError)
        assert "SAN" in accepted.reason


def test_peer_subject_alt_names_is_cached_and_returns_a_fresh_dict(mesh: MeshPki) -> None:
    chain, _ = mesh.leaf("spiffe://cluster.local/ns/a/sa/b", serial=77)
    der = x509.load_pem_x509_certificate(chain).public_bytes(serialization.Encoding.DER)
    _cached_sans.cache_clear()
    first = peer_subject_alt_names(der)
    first["URI"] = ("changed by the caller",)
    second = peer_subject_alt_names(bytes(der))  # an equal, distinct bytes object
    assert second["URI"] == ("spiffe://cluster.local/ns/a/sa/b",)
    info = _cached_sans.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, PEER_CACHE_SIZE)
    with pytest.raises(ValueError):
        peer_subject_alt_names(b"not a certificate")


def _memory_handshake(
    server: ssl.SSLObject, client: ssl.SSLObject, wires: list[ssl.MemoryBIO]
) -> None:
    """Both sides of a handshake over memory BIOs (``wires``: server in/out, client in/out)."""
    server_in, server_out, client_in, client_out = wires
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    side.do_handshake()
                    done[name] = True
            server_in.write(client_out.read())
            client_in.write(server_out.read())
    with contextlib.suppress(ssl.SSLWantReadError):
        client.read(1)  # takes in the tickets the server sent after the handshake
    assert all(done.values())


def test_a_client_resumes_its_session_with_a_ticket(mesh: MeshPki) -> None:
    """Resumption as Envoy offers it by default: stateless session tickets (a worker
    resumes the sessions of the tickets it issued)."""
    server = server_tls(_server_context(), _secrets(mesh, SERVER_ID))
    client = client_tls(_client_context(SERVER_ID), _secrets(mesh, CLIENT_ID))
    session = None
    for attempt in range(2):
        wires = [ssl.MemoryBIO() for _ in range(4)]
        server_side = server.context.wrap_bio(wires[0], wires[1], server_side=True)
        client_side = client.context.wrap_bio(wires[2], wires[3], session=session)
        _memory_handshake(server_side, client_side, wires)
        assert client_side.session_reused is (attempt == 1)
        session = client_side.session
        assert session is not None
