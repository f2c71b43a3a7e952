"""The CA over real TLS on loopback: the wire format, authentication and renewal."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from meshlet.ca.client import create_certificate
from meshlet.ca.server import CAServer
from meshlet.ca.signing import KeyAlgorithm, Signer, make_self_signed_root
from meshlet.ca.tokens import issue_token
from meshlet.errors import CARequestError

from .conftest import key_pem, make_csr, make_intermediate, make_key

pytestmark = pytest.mark.integration

TOKEN_KEY = os.urandom(32)
SERVER_NAME = "istiod.istio-system.svc"


def utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def live_root() -> Signer:
    return make_self_signed_root("cluster.local", now=utcnow(), algorithm=KeyAlgorithm.ECDSA)


@pytest.fixture
async def ca(live_root: Signer) -> AsyncIterator[tuple[CAServer, str]]:
    server = CAServer(live_root, TOKEN_KEY)
    port = await asyncio.wait_for(server.start("127.0.0.1", 0), 10)
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(server.stop(), 10)


def token_for(
    service_account: str, *, expires: datetime | None = None, key: bytes = TOKEN_KEY
) -> str:
    return issue_token(
        key,
        namespace="test",
        service_account=service_account,
        pod=f"{service_account}-6d8f9-abcde",
        expires=expires or utcnow() + timedelta(hours=1),
    )


def strict_identity(chain: list[str], root: x509.Certificate) -> list[str]:
    certs = [x509.load_pem_x509_certificate(pem.encode()) for pem in chain]
    verifier = PolicyBuilder().store(Store([root])).time(utcnow()).build_client_verifier()
    verified = verifier.verify(certs[0], certs[1:-1])
    return [name.value for name in verified.subjects or []]


# --- the wire format, by hand -------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, data: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(data)) + data


def read_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    fields, at = [], 0

    def read_varint() -> int:
        nonlocal at
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while at < len(data):
        key = read_varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.append((number, wire_type, read_varint()))
        elif wire_type == 2:
            size = read_varint()
            fields.append((number, wire_type, data[at : at + size]))
            at += size
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    return fields


async def test_wire_format_by_hand(ca, live_root: Signer) -> None:
    _, address = ca
    csr = make_csr(make_key())
    # Struct{fields: {"ClusterID": Value{string_value: "Kubernetes"}}}, as Istio's agent sends.
    value = length_delimited(3, b"Kubernetes")
    entry = length_delimited(1, b"ClusterID") + length_delimited(2, value)
    metadata = length_delimited(1, entry)
    request = (
        length_delimited(1, csr)  # csr = 1
        + varint(3 << 3 | 0)
        + varint(7200)  # validity_duration = 3
        + length_delimited(4, metadata)  # metadata = 4
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=live_root.root_pem)
    options = [("grpc.ssl_target_name_override", SERVER_NAME)]
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        call = channel.unary_unary("/istio.v1.auth.IstioCertificateService/CreateCertificate")
        answer = await call(
            request,
            metadata=(("authorization", f"Bearer {token_for('sleep')}"),),
            timeout=10,
        )
    fields = read_fields(answer)
    assert [(number, wire_type) for number, wire_type, _ in fields] == [(1, 2), (1, 2)]
    chain = [payload.decode() for _, _, payload in fields if isinstance(payload, bytes)]
    assert chain[-1] == live_root.root_pem.decode()
    assert all(pem.endswith("\n") for pem in chain)
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=2, minutes=2)
    assert strict_identity(chain, live_root.certificate) == [
        "spiffe://cluster.local/ns/test/sa/sleep"
    ]


# --- authentication ----------------------------------------------------------------


async def test_impersonation_gets_the_token_identity(ca, live_root: Signer) -> None:
    _, address = ca
    csr = make_csr(
        make_key(), uri="spiffe://cluster.local/ns/test/sa/httpbin", common_name="httpbin"
    )
    chain = await create_certificate(
        address, live_root.root_pem, csr, 3600, token=token_for("sleep")
    )
    assert strict_identity(chain, live_root.certificate) == [
        "spiffe://cluster.local/ns/test/sa/sleep"
    ]


@pytest.mark.parametrize("problem", ["missing", "expired", "wrong key", "garbage"])
async def test_bad_tokens_are_unauthenticated(ca, live_root: Signer, problem: str) -> None:
    _, address = ca
    token = {
        "missing": None,
        "expired": token_for("sleep", expires=utcnow() - timedelta(seconds=1)),
        "wrong key": token_for("sleep", key=os.urandom(32)),
        "garbage": "not.a.token",
    }[problem]
    with pytest.raises(CARequestError) as caught:
        await create_certificate(
            address, live_root.root_pem, make_csr(make_key()), 3600, token=token
        )
    assert caught.value.code == "UNAUTHENTICATED"
    assert caught.value.details == "request authenticate failure"


async def test_renewal_with_the_mesh_certificate(ca, live_root: Signer) -> None:
    _, address = ca
    key = make_key(KeyAlgorithm.RSA)
    first = await create_certificate(
        address, live_root.root_pem, make_csr(key), 3600, token=token_for("httpbin")
    )
    # Renew with no token at all: the current certificate is the proof.
    renewed = await create_certificate(
        address,
        live_root.root_pem,
        make_csr(key, uri="spiffe://cluster.local/ns/test/sa/admin"),
        3600,
        cert_chain_pem="".join(first).encode(),
        key_pem=key_pem(key),
    )
    assert strict_identity(renewed, live_root.certificate) == [
        "spiffe://cluster.local/ns/test/sa/httpbin"
    ]
    serial = lambda chain: x509.load_pem_x509_certificate(chain[0].encode()).serial_number  # noqa: E731
    assert serial(renewed) != serial(first)


async def test_a_certificate_from_another_ca_fails_the_handshake(ca, live_root: Signer) -> None:
    _, address = ca
    other = make_self_signed_root("cluster.local", now=utcnow(), algorithm=KeyAlgorithm.ECDSA)
    key = make_key()
    from meshlet.ca.signing import SpiffeId, sign_csr

    foreign = sign_csr(
        make_csr(key),
        SpiffeId("cluster.local", "test", "httpbin"),
        other,
        now=utcnow(),
        ttl=timedelta(hours=1),
    )
    with pytest.raises(CARequestError) as caught:
        await create_certificate(
            address,
            live_root.root_pem,
            make_csr(key),
            3600,
            token=token_for("sleep"),
            cert_chain_pem="".join(foreign).encode(),
            key_pem=key_pem(key),
            timeout=5,
        )
    assert caught.value.code == "UNAVAILABLE"


# --- bad requests ------------------------------------------------------------------


async def test_a_bad_csr_is_an_invalid_argument(ca, live_root: Signer) -> None:
    _, address = ca
    with pytest.raises(CARequestError) as caught:
        await create_certificate(
            address, live_root.root_pem, b"not a CSR", 3600, token=token_for("sleep")
        )
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.details.startswith("CSR signing error (the CSR cannot be parsed")


async def test_ttl_above_the_maximum(ca, live_root: Signer) -> None:
    _, address = ca
    with pytest.raises(CARequestError) as caught:
        await create_certificate(
            address, live_root.root_pem, make_csr(make_key()), 100 * 86400, token=token_for("sleep")
        )
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.details == (
        "CSR signing error (requested TTL 2400h0m0s is greater than the max allowed TTL 2160h0m0s)"
    )


async def test_zero_ttl_means_the_default(ca, live_root: Signer) -> None:
    _, address = ca
    chain = await create_certificate(
        address, live_root.root_pem, make_csr(make_key()), 0, token=token_for("sleep")
    )
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24, minutes=2)


# --- the server itself -------------------------------------------------------------


async def test_tls_front_presents_istiod_and_speaks_h2(ca, live_root: Signer) -> None:
    _, address = ca
    context = ssl.create_default_context(cadata=live_root.root_pem.decode())
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), ssl=context, server_hostname=SERVER_NAME), 10
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "h2"
        names = dict(ssl_object.getpeercert()["subjectAltName"])
        assert names["DNS"]  # verified against the root and the name by ssl itself
    finally:
        writer.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.wait_for(
            asyncio.open_connection(
                host, int(port), ssl=context, server_hostname="evil.example.com"
            ),
            10,
        )


async def test_plugin_intermediate_end_to_end(live_root: Signer) -> None:
    intermediate = make_intermediate(live_root, now=utcnow())
    server = CAServer(intermediate, TOKEN_KEY)
    port = await asyncio.wait_for(server.start("127.0.0.1", 0), 10)
    try:
        key = make_key()
        chain = await create_certificate(
            f"127.0.0.1:{port}", live_root.root_pem, make_csr(key), 600, token=token_for("sleep")
        )
        assert len(chain) == 3
        assert strict_identity(chain, live_root.certificate) == [
            "spiffe://cluster.local/ns/test/sa/sleep"
        ]
        renewed = await create_certificate(
            f"127.0.0.1:{port}",
            live_root.root_pem,
            make_csr(key),
            600,
            cert_chain_pem="".join(chain).encode(),
            key_pem=key_pem(key),
        )
        assert strict_identity(renewed, live_root.certificate) == [
            "spiffe://cluster.local/ns/test/sa/sleep"
        ]
    finally:
        await asyncio.wait_for(server.stop(), 10)


async def test_stop_releases_everything(live_root: Signer) -> None:
    server = CAServer(live_root, TOKEN_KEY)
    port = await server.start("127.0.0.1", 0)
    workdir = server._workdir
    assert workdir is not None and os.path.isdir(workdir)
    assert os.stat(workdir).st_mode & 0o777 == 0o700
    await server.stop()
    assert not os.path.exists(workdir)
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    with pytest.raises(CARequestError) as caught:
        await create_certificate(
            f"127.0.0.1:{port}", live_root.root_pem, make_csr(make_key()), 60, timeout=2
        )
    assert caught.value.code == "UNAVAILABLE"


async def test_concurrent_callers_keep_their_own_identities(ca, live_root: Signer) -> None:
    """Each TLS connection's client certificate reaches only its own request."""
    _, address = ca
    names = [f"sa{i}" for i in range(8)]
    keys = {name: make_key() for name in names}
    firsts = await asyncio.gather(
        *(
            create_certificate(
                address, live_root.root_pem, make_csr(keys[n]), 600, token=token_for(n)
            )
            for n in names
        )
    )

    async def renew(name: str, chain: list[str]) -> list[str]:
        return await create_certificate(
            address,
            live_root.root_pem,
            make_csr(keys[name]),
            600,
            cert_chain_pem="".join(chain).encode(),
            key_pem=key_pem(keys[name]),
        )

    async def by_token(name: str) -> list[str]:
        return await create_certificate(
            address, live_root.root_pem, make_csr(keys[name]), 600, token=token_for(f"t-{name}")
        )

    results = await asyncio.wait_for(
        asyncio.gather(
            *(renew(n, c) for n, c in zip(names, firsts, strict=True)),
            *(by_token(n) for n in names),
        ),
        30,
    )
    expected = [f"spiffe://cluster.local/ns/test/sa/{n}" for n in names]
    expected += [f"spiffe://cluster.local/ns/test/sa/t-{n}" for n in names]
    assert [strict_identity(chain, live_root.certificate)[0] for chain in results] == expected
