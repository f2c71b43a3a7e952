"""The proxy's SDS client: secrets by name from the agent's socket, as Envoy asks for them.

Theory of operation
-------------------
One ``StreamSecrets`` stream (state of the world) to the agent carries every name the
worker's config references (``want(names)``). Each response holds every requested
secret the agent has; a secret whose bytes changed replaces the one held and the
subscribers are told its name, so the TLS context cache drops what was built from it
and the next handshake uses the new certificate. Each response is ACKed with its
version and nonce. Names the agent does not have yet are simply absent
(``get`` returns ``None``): the worker keeps such a listener unbound.

When the stream fails the client reconnects with back-off (0.1 s doubling to 2 s) and
asks again for the same names; the secrets it holds stay usable meanwhile.

The stream is gRPC on the agent's unix socket, spoken by ``grpc_stream`` (no grpcio in
a worker); a writer task sends the queued requests while the client reads responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2

from meshlet.proxy.grpc_stream import GrpcError, GrpcStream, open_stream

__all__ = ["SDS_METHOD", "SECRET_TYPE_URL", "SdsClient"]

log = logging.getLogger("meshlet.proxy.sds")

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
#: The SDS method's path, as gRPC names it on the wire.
SDS_METHOD = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"


class SdsClient:
    """A ``SecretProvider`` fed by the agent's SDS server over a unix socket."""

    def __init__(self, socket_path: str, node_id: str) -> None:
        self.socket_path = socket_path
        self.node = base_pb2.Node(id=node_id, user_agent_name="meshlet")
        self._secrets: dict[str, secret_pb2.Secret] = {}
        self._subscribers: list[Callable[[str], None]] = []
        self._names: tuple[str, ...] = ()
        self._outgoing: asyncio.Queue[discovery_pb2.DiscoveryRequest] | None = None
        self._version = ""
        self._nonce = ""
        self._stopping = asyncio.Event()
        self._call: GrpcStream | None = None
        self.connected = False

    # --- SecretProvider ------------------------------------------------------------------

    def get(self, name: str) -> secret_pb2.Secret | None:
        return self._secrets.get(name)

    def subscribe(self, callback: Callable[[str], None]) -> None:
        self._subscribers.append(callback)

    # --- subscription --------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def want(self, names: Iterable[str]) -> None:
        """Ask for exactly these names (sorted; a change is sent at once)."""
        wanted = tuple(sorted(set(names)))
        if wanted == self._names:
            return
        self._names = wanted
        if self._outgoing is not None:
            self._outgoing.put_nowait(self._request(self._nonce))

    def _request(self, nonce: str, first: bool = False) -> discovery_pb2.DiscoveryRequest:
        request = discovery_pb2.DiscoveryRequest(
            type_url=SECRET_TYPE_URL,
            version_info=self._version,
            response_nonce=nonce,
            resource_names=list(self._names),
        )
        if first:
            request.node.CopyFrom(self.node)
        return request

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a stream to the agent until ``stop()``."""
        delay = 0.1
        while not self._stopping.is_set():
            got = False
            try:
                got = await self._stream_once()
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
                break
            except GrpcError as exc:
                if not self._stopping.is_set():
                    log.info("SDS stream to the agent ended: %s", exc)
            except Exception:
                if not self._stopping.is_set():
                    log.exception("SDS stream to the agent failed")
            finally:
                self.connected = False
                self._outgoing = None
            if self._stopping.is_set():
                break
            delay = 0.1 if got else min(delay * 2, 2.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def stop(self) -> None:
        self._stopping.set()
        if self._call is not None:
            self._call.cancel()

    async def _stream_once(self) -> bool:
        outgoing: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
        got = False

        async def send(stream: GrpcStream) -> None:
            while True:
                request = await outgoing.get()
                await stream.send(request.SerializeToString())

        async with open_stream(self.socket_path, SDS_METHOD) as stream:
            self._nonce = ""
            outgoing.put_nowait(self._request("", first=True))
            self._outgoing = outgoing
            self._call = stream
            self.connected = True
            writer = asyncio.get_running_loop().create_task(send(stream), name="sds send")
            try:
                while (data := await stream.receive()) is not None:
                    if writer.done():
                        writer.result()  # a failed send ends the stream
                    got = True
                    self._on_response(discovery_pb2.DiscoveryResponse.FromString(data))
                    outgoing.put_nowait(self._request(self._nonce))
            finally:
                self._call = None
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, GrpcError, OSError):
                    await writer
        return got

    def _on_response(self, response: discovery_pb2.DiscoveryResponse) -> None:
        changed = []
        for packed in response.resources:
            secret = secret_pb2.Secret()
            if not packed.Unpack(secret) or not secret.name:
                continue
            if self._secrets.get(secret.name) != secret:
                self._secrets[secret.name] = secret
                changed.append(secret.name)
        self._version = response.version_info
        self._nonce = response.nonce
        for name in changed:
            log.info("SDS: received secret %s version %s", name, response.version_info)
            for callback in list(self._subscribers):
                try:
                    callback(name)
                except Exception:
                    log.exception("secret subscriber failed for %s", name)
