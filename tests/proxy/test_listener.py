"""The listener shell on loopback, with real curl and real TLS."""

from __future__ import annotations

import asyncio
import datetime
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2

from meshlet.envoy.filter_chain import compile_filter_chains
from meshlet.proxy.client_hello import ClientHelloResult
from meshlet.proxy.listener import AcceptedConnection, InspectingListener, original_destination

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]

HOST = "httpbin.test.svc.cluster.local"


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshlet test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out = Pki(tmp / "ca.crt", tmp / "tls.crt", tmp / "tls.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


class _Respond(asyncio.Protocol):
    """Answers one HTTP/1.1 request with 200 and the chain's name, then closes."""

    def __init__(self, chain_name: str) -> None:
        self.chain_name = chain_name
        self.buffer = b""
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and self.transport is not None:
            body = self.chain_name.encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            self.transport.close()


@dataclass
class Running:
    port: int
    listener: InspectingListener
    seen: list[AcceptedConnection]


@pytest.fixture
async def running(pki: Pki) -> AsyncIterator[Running]:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    config = listener_pb2.Listener(name="virtualInbound")
    tls_chain = config.filter_chains.add(name=f"0.0.0.0_{port}")
    tls_chain.filter_chain_match.destination_port.value = port
    tls_chain.filter_chain_match.transport_protocol = "tls"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    context.set_alpn_protocols(["http/1.1"])
    seen: list[AcceptedConnection] = []
    loop = asyncio.get_running_loop()

    async def on_chain(
        sock: socket.socket,
        chain: listener_components_pb2.FilterChain,
        accepted: AcceptedConnection,
    ) -> None:
        seen.append(accepted)
        tls = accepted.facts.transport_protocol == "tls"
        await loop.connect_accepted_socket(
            lambda: _Respond(chain.name), sock=sock, ssl=context if tls else None
        )

    listener = InspectingListener(compile_filter_chains(config), on_chain)
    task = asyncio.create_task(listener.serve(listening))
    try:
        yield Running(port, listener, seen)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        listening.close()


async def curl(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        "10",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_plaintext_to_a_tls_only_port_is_reset(running: Running) -> None:
    code, _, err = await curl(f"http://127.0.0.1:{running.port}/status/200")
    assert code == 56, err
    assert "Connection reset by peer" in err
    assert running.listener.stats["no_filter_chain_match"] == 1
    assert running.seen == []


async def test_tls_to_the_same_port_is_served(running: Running, pki: Pki) -> None:
    code, out, err = await curl(
        "--cacert",
        str(pki.ca),
        "--resolve",
        f"{HOST}:{running.port}:127.0.0.1",
        f"https://{HOST}:{running.port}/status/200",
    )
    assert code == 0, err
    assert out == f"0.0.0.0_{running.port}"  # the handshake read the peeked ClientHello
    (accepted,) = running.seen
    assert isinstance(accepted.client_hello, ClientHelloResult)
    assert accepted.facts.server_name == HOST
    assert "http/1.1" in accepted.facts.application_protocols
    assert running.listener.stats["tls_inspector.tls_found"] == 1


async def test_client_hello_in_pieces(running: Running) -> None:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        for piece in (hello[:3], hello[3:40], hello[40:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)
        async with asyncio.timeout(10):
            answer = await reader.read(5)
        assert answer[:1] == b"\x16"  # the server's handshake record: the hello was not eaten
    finally:
        writer.close()
    (accepted,) = running.seen
    assert accepted.facts.server_name == HOST
    assert accepted.peeked == len(hello)  # every byte seen, none consumed


async def test_whole_client_hello_is_parsed_from_the_first_peek(running: Running) -> None:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(hello)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read(5)
        assert answer[:1] == b"\x16"
    finally:
        writer.close()
    (accepted,) = running.seen
    assert isinstance(accepted.client_hello, ClientHelloResult)
    assert accepted.facts.server_name == HOST
    assert accepted.peeked == len(hello)


async def test_peer_that_closes_early_ends_only_its_connection(running: Running) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(b"\x16\x03\x01")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.2)
    code, _, _ = await curl(f"http://127.0.0.1:{running.port}/")
    assert code == 56  # the listener is still accepting
    assert running.listener.stats["downstream_cx_closed_in_listener_filters"] == 1


def test_original_destination_of_a_connection_that_was_not_redirected() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            assert original_destination(accepted) is None
