from __future__ import annotations

import datetime
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshlet.proxy.http_headers import (
    PEER_CERTIFICATE_CACHE_SIZE,
    ClientCertDetails,
    ForwardClientCert,
    Header,
    PeerCertificate,
    TrafficDirection,
    apply_decorator_operation,
    apply_forward_client_cert,
    client_cert_element,
    connection_tokens,
    describe_peer_certificate,
    edit_headers,
    ensure_request_id,
    get_header,
    lower_names,
    overwrite_server,
    set_forwarded_proto,
    set_upstream_service_time,
    strip_hop_by_hop,
)

ISTIO = ClientCertDetails(subject=True, uri=True, dns=True)
UUID = "3f2c7c1e-9a57-4c1b-8f0e-2d1f6f0b9a10"


def test_names_are_lower_cased_and_input_untouched() -> None:
    headers: list[Header] = [(b"Content-Type", b"text/plain"), (b"X-Custom-ID", b"A")]
    assert lower_names(headers) == [(b"content-type", b"text/plain"), (b"x-custom-id", b"A")]
    assert headers[0] == (b"Content-Type", b"text/plain")


def test_connection_tokens() -> None:
    headers = [(b"Connection", b"Keep-Alive, X-Foo"), (b"connection", b" close ,,")]
    assert connection_tokens(headers) == {b"keep-alive", b"x-foo", b"close"}


def test_hop_by_hop_headers_never_reach_http2() -> None:
    headers = [
        (b"Host", b"httpbin"),
        (b"Connection", b"keep-alive, X-Session"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Upgrade", b"websocket"),
        (b"X-Session", b"abc"),  # named by Connection
        (b"TE", b"gzip"),
        (b"Accept", b"*/*"),
    ]
    assert strip_hop_by_hop(headers) == [(b"host", b"httpbin"), (b"accept", b"*/*")]


@pytest.mark.parametrize(
    ("te", "kept"),
    [
        (b"trailers", True),
        (b"Trailers", True),
        (b"gzip, trailers", True),
        (b"trailers;q=0.5", True),
        (b"gzip", False),
        (b"", False),
    ],
)
def test_te_survives_only_as_trailers(te: bytes, kept: bool) -> None:
    out = strip_hop_by_hop([(b"te", te), (b"te", b"trailers" if kept else b"deflate")])
    assert out == ([(b"te", b"trailers")] if kept else [])


def test_te_named_by_connection_is_dropped() -> None:
    assert strip_hop_by_hop([(b"connection", b"te"), (b"te", b"trailers")]) == []


def test_server_overwrite() -> None:
    app = [(b"Server", b"gunicorn/19.9.0"), (b"Content-Length", b"0"), (b"server", b"x")]
    assert overwrite_server(app, "istio-envoy") == [
        (b"server", b"istio-envoy"),
        (b"content-length", b"0"),
    ]
    assert overwrite_server([(b"date", b"d")]) == [(b"date", b"d"), (b"server", b"envoy")]


def test_upstream_service_time_replaces_the_previous_hop() -> None:
    inbound = set_upstream_service_time([(b"content-type", b"text/html")], 203)
    assert inbound == [(b"content-type", b"text/html"), (b"x-envoy-upstream-service-time", b"203")]
    outbound = set_upstream_service_time(inbound, 205)
    assert get_header(outbound, b"X-Envoy-Upstream-Service-Time") == b"205"
    assert len(outbound) == 2
    with pytest.raises(ValueError):
        set_upstream_service_time([], -1)


def test_decorator_operation_inbound_adds_outbound_removes() -> None:
    response = [(b"content-type", b"application/json")]
    inbound = apply_decorator_operation(
        response, TrafficDirection.INBOUND, "ingress-sidecar.test:9080/*"
    )
    assert inbound[-1] == (b"x-envoy-decorator-operation", b"ingress-sidecar.test:9080/*")
    outbound = apply_decorator_operation(inbound, TrafficDirection.OUTBOUND, "ignored")
    assert outbound == response
    assert apply_decorator_operation(response, TrafficDirection.INBOUND, None) == response


def test_forwarded_proto() -> None:
    spoofed = [(b"X-Forwarded-Proto", b"https")]
    assert set_forwarded_proto(spoofed, tls=False) == [(b"x-forwarded-proto", b"http")]
    assert set_forwarded_proto([], tls=True) == [(b"x-forwarded-proto", b"https")]
    trusted = set_forwarded_proto(spoofed, tls=False, xff_num_trusted_hops=1)
    assert trusted == [(b"x-forwarded-proto", b"https")]
    assert set_forwarded_proto([], tls=False, xff_num_trusted_hops=1) == [
        (b"x-forwarded-proto", b"http")
    ]


def test_request_id_kept_or_generated() -> None:
    assert ensure_request_id([(b"X-Request-Id", b"abc")], UUID) == [(b"x-request-id", b"abc")]
    assert ensure_request_id([], UUID) == [(b"x-request-id", UUID.encode())]


def test_edit_headers_replaces_in_place_and_appends() -> None:
    out = edit_headers(
        [(b"A", b"1"), (b"B", b"2"), (b"a", b"3")],
        remove=[b"b"],
        replace=[(b"a", b"new"), (b"c", b"added")],
        append=[(b"D", b"4")],
    )
    assert out == [(b"a", b"new"), (b"c", b"added"), (b"d", b"4")]


# --- x-forwarded-client-cert -------------------------------------------------------------


def make_certificate(
    tmp: Path,
    subject: x509.Name,
    sans: list[x509.GeneralName],
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    (tmp / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate.public_bytes(serialization.Encoding.DER)


LYFT_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lyft"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Lyft Engineering"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Test Frontend Team"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "frontend-team@lyft.com"),
    ]
)


@pytest.fixture
def client_der(tmp_path: Path) -> bytes:
    return make_certificate(
        tmp_path,
        LYFT_SUBJECT,
        [
            x509.UniformResourceIdentifier("spiffe://lyft.com/frontend-team"),
            x509.DNSName("lyft.com"),
            x509.DNSName("www.lyft.com"),
        ],
    )


def test_describe_peer_certificate_is_cached_by_the_der_bytes(client_der: bytes) -> None:
    describe_peer_certificate.cache_clear()
    first = describe_peer_certificate(client_der)
    again = describe_peer_certificate(bytes(bytearray(client_der)))  # equal bytes, new object
    assert again is first
    info = describe_peer_certificate.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, PEER_CERTIFICATE_CACHE_SIZE)
    with pytest.raises(ValueError):
        describe_peer_certificate(b"not a certificate")
    assert describe_peer_certificate.cache_info().currsize == 1  # failures are not kept


def test_describe_peer_certificate(client_der: bytes) -> None:
    peer = describe_peer_certificate(client_der)
    assert peer.sha256 == hashlib.sha256(client_der).hexdigest()
    # OpenSSL's RFC 2253 form, most significant RDN last, as Envoy prints it.
    assert peer.subject == (
        "emailAddress=frontend-team@lyft.com,CN=Test Frontend Team,"
        "OU=Lyft Engineering,O=Lyft,L=San Francisco,ST=California,C=US"
    )
    assert peer.uri_sans == ("spiffe://lyft.com/frontend-team",)
    assert peer.dns_sans == ("lyft.com", "www.lyft.com")


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize(
    "subject",
    [
        LYFT_SUBJECT,
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Acme, "Inc"'),
                x509.NameAttribute(NameOID.COMMON_NAME, "a+b;c<d>e\\f"),
            ]
        ),
        x509.Name([]),
    ],
)
def test_subject_and_hash_agree_with_openssl(tmp_path: Path, subject: x509.Name) -> None:
    der = make_certificate(tmp_path, subject, [])
    peer = describe_peer_certificate(der)
    printed = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(tmp_path / "cert.pem"),
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-fingerprint",
            "-sha256",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.splitlines()
    subject_line = next(line for line in printed if line.startswith("subject="))
    fingerprint = next(line for line in printed if "Fingerprint=" in line)
    assert peer.subject == subject_line.removeprefix("subject=").strip()
    assert peer.sha256 == fingerprint.split("=", 1)[1].replace(":", "").lower()


def test_xfcc_element_in_envoys_order(client_der: bytes) -> None:
    peer = describe_peer_certificate(client_der)
    element = client_cert_element(peer, ISTIO, local_uri_sans=["spiffe://lyft.com/backend-team"])
    assert element == (
        "By=spiffe://lyft.com/backend-team;"
        f"Hash={hashlib.sha256(client_der).hexdigest()};"
        'Subject="emailAddress=frontend-team@lyft.com,CN=Test Frontend Team,'
        'OU=Lyft Engineering,O=Lyft,L=San Francisco,ST=California,C=US";'
        "URI=spiffe://lyft.com/frontend-team;DNS=lyft.com;DNS=www.lyft.com"
    )


def test_xfcc_element_without_sans_or_local_identity() -> None:
    peer = PeerCertificate(sha256="ab" * 32, subject="CN=client,O=example")
    assert client_cert_element(peer, ISTIO) == (
        f'Hash={"ab" * 32};Subject="CN=client,O=example";URI='
    )
    assert client_cert_element(peer, ClientCertDetails()) == f"Hash={'ab' * 32}"


def test_forward_client_cert_modes() -> None:
    previous = [(b"X-Forwarded-Client-Cert", b"By=spiffe://a;Hash=1")]
    mine = "Hash=2;URI="
    append = apply_forward_client_cert(previous, ForwardClientCert.APPEND_FORWARD, mine)
    assert append == [(b"x-forwarded-client-cert", b"By=spiffe://a;Hash=1,Hash=2;URI=")]
    assert apply_forward_client_cert([], ForwardClientCert.APPEND_FORWARD, mine) == [
        (b"x-forwarded-client-cert", b"Hash=2;URI=")
    ]
    # A client that is not mutual TLS cannot forward a certificate of its choosing.
    assert apply_forward_client_cert(previous, ForwardClientCert.APPEND_FORWARD, None) == []
    assert apply_forward_client_cert(previous, ForwardClientCert.SANITIZE, mine) == []
    assert apply_forward_client_cert(previous, ForwardClientCert.SANITIZE_SET, mine) == [
        (b"x-forwarded-client-cert", b"Hash=2;URI=")
    ]
    assert apply_forward_client_cert(previous, ForwardClientCert.FORWARD_ONLY, mine) == [
        (b"x-forwarded-client-cert", b"By=spiffe://a;Hash=1")
    ]
    assert apply_forward_client_cert(previous, ForwardClientCert.ALWAYS_FORWARD_ONLY, None) == [
        (b"x-forwarded-client-cert", b"By=spiffe://a;Hash=1")
    ]


def test_describe_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        describe_peer_certificate(b"not a certificate")
