"""A small SDS client for tests: the Envoy side of a ``StreamSecrets`` stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.rpc import status_pb2

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
NODE_ID = "sidecar~10.244.0.5~httpbin-0.test~test.svc.cluster.local"

_END = object()


@dataclass
class Received:
    """One response, decoded."""

    response: Any
    secrets: dict[str, Any]


class SDSClient:
    """Speaks SotW SDS over the agent's unix socket, as Envoy would."""

    def __init__(self, socket_path: str, node_id: str = NODE_ID) -> None:
        self.socket_path = socket_path
        self.node_id = node_id
        self.channel: grpc.aio.Channel | None = None
        self._outgoing: asyncio.Queue[Any] = asyncio.Queue()
        self.call: Any = None
        self.latest: dict[str, Any] = {}
        self.last: Received | None = None
        self.names: list[str] = []

    async def __aenter__(self) -> SDSClient:
        # A deep test directory can exceed a socket address; connect through the same
        # /proc/self/fd alias the server binds with (the connection is made lazily, so
        # the descriptor is kept open for the client's life).
        self._dir_fd: int | None = None
        target = self.socket_path
        if len(os.fsencode(target)) > 107:
            self._dir_fd = os.open(os.path.dirname(target), os.O_PATH | os.O_DIRECTORY)
            target = f"/proc/self/fd/{self._dir_fd}/{os.path.basename(target)}"
        self.channel = grpc.aio.insecure_channel(f"unix:{target}")
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(self.channel)
        self.call = stub.StreamSecrets(self._requests())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._outgoing.put_nowait(_END)
        if self.call is not None:
            self.call.cancel()
        if self.channel is not None:
            await self.channel.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            request = await self._outgoing.get()
            if request is _END:
                return
            yield request

    def send(
        self,
        names: list[str],
        *,
        nonce: str = "",
        version: str = "",
        error: str | None = None,
        node: bool = True,
    ) -> None:
        self.names = list(names)
        request = discovery_pb2.DiscoveryRequest(
            version_info=version,
            resource_names=names,
            type_url=SECRET_TYPE_URL,
            response_nonce=nonce,
        )
        if node:
            request.node.CopyFrom(base_pb2.Node(id=self.node_id))
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._outgoing.put_nowait(request)

    async def receive(self) -> Received:
        response = await self.call.read()
        if response is grpc.aio.EOF:
            raise EOFError("the SDS stream ended")
        assert response.type_url == SECRET_TYPE_URL
        secrets: dict[str, Any] = {}
        for packed in response.resources:
            secret = secret_pb2.Secret()
            assert packed.Unpack(secret)
            secrets[secret.name] = secret
        self.latest.update(secrets)
        self.last = Received(response, secrets)
        return self.last

    def ack(self, received: Received | None = None) -> None:
        received = received or self.last
        assert received is not None
        self.send(self.names, nonce=received.response.nonce, version=received.response.version_info)

    async def receive_until(
        self, predicate: Callable[[dict[str, Any]], bool], *, deadline: float = 10.0
    ) -> dict[str, Any]:
        """Receive (and ACK) responses until ``predicate(latest secrets by name)`` holds."""
        async with asyncio.timeout(deadline):
            while not predicate(self.latest):
                self.ack(await self.receive())
        return dict(self.latest)


def chain_of(secret: Any) -> bytes:
    return bytes(secret.tls_certificate.certificate_chain.inline_bytes)


def key_of(secret: Any) -> bytes:
    return bytes(secret.tls_certificate.private_key.inline_bytes)


def trusted_ca_of(secret: Any) -> bytes:
    return bytes(secret.validation_context.trusted_ca.inline_bytes)


@dataclass
class Handshake:
    """What a client saw of a TLS handshake with a server built from SDS secrets."""

    peer_der: bytes
    server_saw_client: bytes | None


async def tls_handshake(
    server_chain: bytes,
    server_key: bytes,
    client_trust: bytes,
    *,
    client_chain: bytes | None = None,
    client_key: bytes | None = None,
    server_trust: bytes | None = None,
) -> Handshake:
    """A real TLS handshake on loopback: an ``ssl`` server from ``server_chain``/``key``
    (requiring a client certificate verified by ``server_trust`` when given), a client
    that verifies the server against ``client_trust`` (no host name: SPIFFE certificates
    carry a URI, not a DNS name)."""
    with tempfile.TemporaryDirectory() as tmp:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert_file, key_file = Path(tmp, "server.crt"), Path(tmp, "server.key")
        cert_file.write_bytes(server_chain)
        key_file.write_bytes(server_key)
        server_ctx.load_cert_chain(cert_file, key_file)
        if server_trust is not None:
            server_ctx.load_verify_locations(cadata=server_trust.decode("ascii"))
            server_ctx.verify_mode = ssl.CERT_REQUIRED
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_REQUIRED
        client_ctx.load_verify_locations(cadata=client_trust.decode("ascii"))
        if client_chain is not None and client_key is not None:
            ccert, ckey = Path(tmp, "client.crt"), Path(tmp, "client.key")
            ccert.write_bytes(client_chain)
            ckey.write_bytes(client_key)
            client_ctx.load_cert_chain(ccert, ckey)

        seen: list[bytes | None] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            ssl_object = writer.get_extra_info("ssl_object")
            seen.append(ssl_object.getpeercert(binary_form=True) if ssl_object else None)
            writer.write(b"ok")
            await writer.drain()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
                assert await reader.read() == b"ok"
                ssl_object = writer.get_extra_info("ssl_object")
                peer = ssl_object.getpeercert(binary_form=True)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()
        return Handshake(peer_der=peer, server_saw_client=seen[0] if seen else None)
