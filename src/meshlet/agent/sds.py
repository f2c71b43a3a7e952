"""The agent's SDS server: Envoy's Secret Discovery Service v3 on a unix socket.

Theory of operation
-------------------
Each ``StreamSecrets`` call is one Envoy connection speaking state-of-the-world xDS for
one type, ``envoy.extensions.transport_sockets.tls.v3.Secret``. Two things wake the
stream: a request from Envoy (read by a small task into the stream's queue) and a change
in the secret cache. Either way the stream computes what it would send for the names
Envoy asked for — every one that is available, in name order — and sends a response
only if some resource is new or different from what it last sent. A resource not
available yet (a file not written, the first certificate not back from the CA) is
simply left out; it is sent as soon as it is there, which is how Istio's agent makes
Envoy wait for it.

Requests are read as xDS says: the first carries the node; a request whose
``response_nonce`` is not the last one sent is stale and ignored; one that names the
last nonce is an ACK, or a NACK if it has ``error_detail`` — logged and not retried
until something changes. A change in ``resource_names`` starts and stops file watches
and answers with the new set.

Secrets are built as Istio's ``toEnvoySecret`` builds them: ``ROOTCA`` and
``file-root:*`` as ``validation_context.trusted_ca``, everything else as
``tls_certificate{certificate_chain, private_key}``, all inline bytes. The key bytes go
to the socket in the pod and nowhere else; no log line carries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from meshlet.agent.cache import SecretCache
from meshlet.agent.secret import SecretItem, SecretKind
from meshlet.proxy.grpc_server import GrpcServer, ServerCall, StreamMethod

__all__ = [
    "SDS_METHOD",
    "SECRET_TYPE_URL",
    "SDSServer",
    "SDSService",
    "short_unix_path",
    "to_envoy_secret",
]

log = logging.getLogger("meshlet.agent.sds")

_MAX_UNIX_PATH = 107  # sun_path is 108 bytes, with the terminating NUL

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
#: The one method served (``DeltaSecrets`` and ``FetchSecrets`` are ``UNIMPLEMENTED``).
SDS_METHOD = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"


def to_envoy_secret(item: SecretItem) -> Any:
    """The ``envoy.extensions.transport_sockets.tls.v3.Secret`` for ``item``."""
    if item.kind is SecretKind.VALIDATION_CONTEXT:
        return secret_pb2.Secret(
            name=item.resource_name,
            validation_context=common_pb2.CertificateValidationContext(
                trusted_ca=base_pb2.DataSource(inline_bytes=item.trusted_ca)
            ),
        )
    return secret_pb2.Secret(
        name=item.resource_name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=item.certificate_chain),
            private_key=base_pb2.DataSource(inline_bytes=item.private_key),
        ),
    )


class _Changed:
    """Queue marker: the cache changed."""


class _Ended:
    """Queue marker: Envoy closed its side of the stream."""


_CHANGED = _Changed()
_ENDED = _Ended()

_connection_ids = itertools.count(1)


class _Connection:
    """The xDS state of one stream."""

    def __init__(self, cache: SecretCache, now: Callable[[], datetime], peer: str) -> None:
        self.cache = cache
        self.now = now
        self.id = f"{peer}-{next(_connection_ids)}"
        self.node_id = ""
        self.names: tuple[str, ...] = ()
        self.sent: dict[str, bytes] = {}
        self.nonce = ""
        self.version = ""
        self.acked_version = ""
        self._versions = itertools.count(1)

    def on_request(self, request: Any) -> Any | None:
        if request.type_url and request.type_url != SECRET_TYPE_URL:
            log.warning(
                "SDS: connection %s asked for type %s; only %s is served",
                self.id,
                request.type_url,
                SECRET_TYPE_URL,
            )
            return None
        first = not self.node_id and not self.nonce and not self.names
        if request.HasField("node") and request.node.id:
            self.node_id = request.node.id
        if first:
            log.info("SDS: new connection %s for node:%s", self.id, self.node_id)
        if request.response_nonce:
            if request.response_nonce != self.nonce:
                log.debug(
                    "SDS: connection %s: ignoring a request for stale nonce %s",
                    self.id,
                    request.response_nonce,
                )
                return None
            if request.HasField("error_detail") and request.error_detail.code != 0:
                log.warning(
                    "SDS: NACK node:%s version:%s resources:%s: %s",
                    self.node_id,
                    self.version,
                    ",".join(self.names),
                    request.error_detail.message,
                )
            else:
                self.acked_version = request.version_info
                log.debug("SDS: ACK node:%s version:%s", self.node_id, request.version_info)
        names = tuple(dict.fromkeys(request.resource_names))
        if names != self.names:
            added = [n for n in names if n not in self.names]
            removed = [n for n in self.names if n not in names]
            self.cache.acquire(added)
            self.cache.release(removed)
            for name in removed:
                self.sent.pop(name, None)
            self.names = names
        return self.respond()

    def respond(self) -> Any | None:
        """A response if any requested resource is new or changed since last sent."""
        current: dict[str, bytes] = {}
        secrets = []
        for name in sorted(self.names):
            item = self.cache.get(name)
            if item is None:
                continue
            secret = to_envoy_secret(item)
            current[name] = secret.SerializeToString(deterministic=True)
            secrets.append(secret)
        if not any(self.sent.get(name) != data for name, data in current.items()):
            return None
        self.sent = current
        self.version = f"{self.now().strftime('%Y-%m-%dT%H:%M:%SZ')}/{next(self._versions)}"
        self.nonce = uuid.uuid4().hex
        resources = []
        for secret in secrets:
            packed = any_pb2.Any()
            packed.Pack(secret)
            resources.append(packed)
        size = sum(len(data) for data in current.values())
        log.info(
            "SDS: PUSH for node:%s resources:%d size:%dB resource:%s",
            self.node_id,
            len(resources),
            size,
            ",".join(current),
        )
        return discovery_pb2.DiscoveryResponse(
            version_info=self.version,
            resources=resources,
            type_url=SECRET_TYPE_URL,
            nonce=self.nonce,
        )

    def close(self) -> None:
        self.cache.release(self.names)
        self.names = ()
        log.info("SDS: connection %s for node:%s closed", self.id, self.node_id)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SDSService:
    """``envoy.service.secret.v3.SecretDiscoveryService`` over a ``SecretCache``.

    Only ``StreamSecrets`` is served (``method()``); ``DeltaSecrets`` and
    ``FetchSecrets`` are left unimplemented, as in Istio's agent.
    """

    def __init__(self, cache: SecretCache, *, now: Callable[[], datetime] = _utc_now) -> None:
        self._cache = cache
        self._now = now

    def method(self) -> StreamMethod:
        """``StreamSecrets`` as ``GrpcServer`` serves it."""
        return StreamMethod(
            self.stream_secrets,
            discovery_pb2.DiscoveryRequest.FromString,
            lambda response: bytes(response.SerializeToString()),
        )

    async def stream_secrets(
        self, request_iterator: AsyncIterator[Any], call: ServerCall
    ) -> AsyncGenerator[Any, None]:
        """One ``StreamSecrets`` call: its responses, until the client ends it."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pending_change = False

        def on_change(_name: str) -> None:
            nonlocal pending_change
            if not pending_change:
                pending_change = True
                queue.put_nowait(_CHANGED)

        async def read_requests() -> None:
            try:
                async for request in request_iterator:
                    queue.put_nowait(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                queue.put_nowait(exc)
                return
            queue.put_nowait(_ENDED)

        connection = _Connection(self._cache, self._now, call.peer or "sds")
        unsubscribe = self._cache.subscribe(on_change)
        reader = asyncio.get_running_loop().create_task(read_requests(), name="sds reader")
        try:
            while True:
                event = await queue.get()
                if event is _ENDED:
                    return
                if isinstance(event, Exception):
                    log.info("SDS: connection %s ended: %s", connection.id, event)
                    return
                if event is _CHANGED:
                    pending_change = False
                    response = connection.respond()
                else:
                    response = connection.on_request(event)
                if response is not None:
                    yield response
        finally:
            unsubscribe()
            connection.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


@contextlib.contextmanager
def short_unix_path(path: str) -> Iterator[str]:
    """``path``, or an equivalent short enough for a unix socket address.

    A socket address holds at most 107 bytes; a pod's directory can be deeper than
    that. Then the directory is opened and named through ``/proc/self/fd/N``, which
    resolves to the same place, for as long as the ``with`` block lasts.
    """
    if len(os.fsencode(path)) <= _MAX_UNIX_PATH:
        yield path
        return
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


class SDSServer:
    """The SDS gRPC server on a unix socket (created with its directory; mode 0660)."""

    def __init__(
        self, cache: SecretCache, socket_path: str, *, now: Callable[[], datetime] = _utc_now
    ) -> None:
        self._cache = cache
        self.socket_path = socket_path
        self._now = now
        self._server: GrpcServer | None = None

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        path = os.path.abspath(self.socket_path)
        service = SDSService(self._cache, now=self._now)
        server = GrpcServer(path, {SDS_METHOD: service.method()})
        await server.start()
        self._server = server
        log.info("SDS server for workload certificates started, listening on %s", path)

    async def stop(self, grace: float | None = 1.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(grace)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
