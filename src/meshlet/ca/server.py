"""The CA's gRPC service, ``istio.v1.auth.IstioCertificateService``, over TLS (async shell).

Theory of operation
-------------------
Istio's CA asks for a client certificate but does not require one (Go's
``VerifyClientCertIfGiven``): a pod's first request carries only its token, a renewal
may present the pod's current mesh certificate instead. gRPC's Python server cannot
do that (its TLS either requires a client certificate or never asks for one), so the
server is two layers:

- a TLS front (``asyncio`` + OpenSSL through ``ssl``) on the public port: it presents
  the control plane's certificate (``istiod.istio-system.svc`` …, issued by the mesh
  CA), asks for a client certificate and verifies it against the mesh root when one is
  given (an invalid one fails the handshake, as in Go), negotiates ``h2``, and then
  moves bytes both ways to
- a ``grpc.aio`` server listening on a unix socket in a private directory (mode 0700).
  The front opens each backend connection from its own named socket in that directory
  and remembers which client certificate came with it, so the handler, seeing the
  peer ``unix:<that path>``, knows the caller's verified certificate.

The handler then authenticates (``authn``: the mesh certificate first, then the
``authorization: Bearer`` token), signs with ``signing.sign_csr`` for the proven
identity only, and answers the chain, leaf first and root last. Authentication
failures are ``UNAUTHENTICATED`` / ``request authenticate failure`` (the reason goes to
the log, not to the caller); a CSR or TTL that cannot be signed is ``INVALID_ARGUMENT``.
A validity of zero or less asks for the default TTL (24 h), as in Istio.

On Kubernetes the CA is given a ``token_reviewer`` (``meshlet.kube.tokenreview``):
a bearer token that meshlet's own token key did not sign is then checked with the
API server's TokenReview, as istiod checks projected ServiceAccount tokens.

The port is istiod's 15012, which serves more than the CA: ``services`` register more
servicers on the same inner gRPC server (the ADS server does:
``meshlet.xds.server.AdsServer.add_authenticated_service``). Each is handed
``authenticate_caller``, the CA's own check, so a call on any of them learns which
identity its caller proved (``Caller``) or that it proved none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from meshlet.ca.authn import authenticate, bearer_token
from meshlet.ca.protocol import (
    METHOD_NAME,
    SERVICE_NAME,
    IstioCertificateRequest,
    IstioCertificateResponse,
)
from meshlet.ca.signing import (
    DEFAULT_TRUST_DOMAIN,
    DEFAULT_WORKLOAD_TTL,
    MAX_WORKLOAD_TTL,
    Signer,
    SpiffeId,
    format_go_duration,
    issue_serving_certificate,
    sign_csr,
)
from meshlet.errors import AuthenticationError, CertificateError

__all__ = [
    "AUTHENTICATION_FAILURE",
    "ISTIOD_SERVER_NAMES",
    "CAServer",
    "Caller",
    "CallerAuthenticator",
    "ServiceRegistrar",
    "utc_now",
]

log = logging.getLogger("meshlet.ca")

AUTHENTICATION_FAILURE = "request authenticate failure"

#: The names the control plane's certificate carries, as istiod's does.
ISTIOD_SERVER_NAMES = (
    "istiod.istio-system.svc",
    "istiod.istio-system.svc.cluster.local",
    "istiod.istio-system",
    "istiod",
    "istio-pilot.istio-system.svc",
)

_SERVING_TTL = timedelta(days=365)
_HANDSHAKE_TIMEOUT = 10.0
_READ_SIZE = 64 * 1024
_MAX_MESSAGE = 256 * 1024  # a CSR is a few KiB
_MAX_SERVICE_MESSAGE = 16 * 1024 * 1024  # an ADS request naming many resources


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the identity proven, and the TLS peer's address (``host:port``)."""

    identity: SpiffeId
    address: str


#: The caller of a call on the CA's port, or ``AuthenticationError`` saying why not.
CallerAuthenticator = Callable[[grpc.aio.ServicerContext], Awaitable[Caller]]
#: Adds servicers to the CA's inner gRPC server; given the server and the authenticator.
ServiceRegistrar = Callable[[grpc.aio.Server, CallerAuthenticator], None]


@dataclass(frozen=True, slots=True)
class _Peer:
    certificate_der: bytes | None
    address: str


class CAServer:
    """Serves ``CreateCertificate`` on ``host:port`` over TLS, signing with ``signer``.

    ``services`` add servicers to the same port (see the module docstring).
    """

    def __init__(
        self,
        signer: Signer,
        token_key: bytes,
        *,
        now: Callable[[], datetime] = utc_now,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        server_names: Sequence[str] = ISTIOD_SERVER_NAMES,
        default_ttl: timedelta = DEFAULT_WORKLOAD_TTL,
        max_ttl: timedelta = MAX_WORKLOAD_TTL,
        token_reviewer: Callable[[str], Awaitable[SpiffeId]] | None = None,
        services: Sequence[ServiceRegistrar] = (),
    ) -> None:
        self.signer = signer
        self._services = tuple(services)
        self._token_reviewer = token_reviewer
        self._token_key = token_key
        self._now = now
        self.trust_domain = trust_domain
        self.server_names = tuple(server_names)
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self._workdir: str | None = None
        self._grpc: grpc.aio.Server | None = None
        self._front: asyncio.Server | None = None
        self._context: ssl.SSLContext | None = None
        self._renew_serving_at: datetime | None = None
        self._peers: dict[str, _Peer] = {}
        self._connections: set[asyncio.Task[Any]] = set()
        self._transports: set[asyncio.WriteTransport] = set()
        self._next_connection = 0
        self.port: int | None = None

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the bound port."""
        if self._front is not None:
            raise RuntimeError("the CA server is already started")
        self._workdir = tempfile.mkdtemp(prefix="meshlet-ca-")
        try:
            self._context = self._make_context()
            limit = _MAX_SERVICE_MESSAGE if self._services else _MAX_MESSAGE
            self._grpc = grpc.aio.server(options=[("grpc.max_receive_message_length", limit)])
            self._grpc.add_generic_rpc_handlers([self._handlers()])
            for register in self._services:
                register(self._grpc, self.authenticate_caller)
            self._grpc.add_insecure_port(f"unix:{self._backend_path}")
            await self._grpc.start()
            self._front = await asyncio.start_server(
                self._serve_connection,
                host,
                port,
                ssl=self._context,
                ssl_handshake_timeout=_HANDSHAKE_TIMEOUT,
                reuse_address=True,
            )
        except BaseException:
            await self.stop()
            raise
        self.port = self._front.sockets[0].getsockname()[1]
        log.info("CA listening on %s:%d", host, self.port)
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        """Stop listening, end open connections and remove the private directory."""
        front, self._front = self._front, None
        if front is not None:
            front.close()
        for transport in list(self._transports):
            transport.abort()  # the pipes see the end and the connection tasks return
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=grace + 1.0)
        if front is not None:
            await front.wait_closed()
        server, self._grpc = self._grpc, None
        if server is not None:
            await server.stop(grace)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self.port = None

    async def __aenter__(self) -> CAServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- TLS front ----------------------------------------------------------------

    @property
    def _backend_path(self) -> str:
        assert self._workdir is not None
        return os.path.join(self._workdir, "ca.sock")

    def _make_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2"])
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=self.signer.root_pem.decode("ascii"))
        self._load_serving_certificate(context)
        return context

    def _load_serving_certificate(self, context: ssl.SSLContext) -> None:
        now = self._now()
        chain, key_pem = issue_serving_certificate(
            self.signer, self.server_names, now=now, ttl=_SERVING_TTL
        )
        presented = chain[:-1] if len(chain) > 1 else chain  # the client has the root
        assert self._workdir is not None
        cert_path = os.path.join(self._workdir, "serving-cert.pem")
        key_path = os.path.join(self._workdir, "serving-key.pem")
        for path, data in ((cert_path, "".join(presented).encode()), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        try:
            context.load_cert_chain(cert_path, key_path)
        finally:
            os.unlink(key_path)
            os.unlink(cert_path)
        lifetime = min(now + _SERVING_TTL, self.signer.certificate.not_valid_after_utc) - now
        self._renew_serving_at = now + lifetime / 2

    def _renew_serving_certificate_if_due(self) -> None:
        if self._context is None or self._renew_serving_at is None:
            return
        if self._now() >= self._renew_serving_at:
            try:
                self._load_serving_certificate(self._context)
            except (CertificateError, OSError, ssl.SSLError) as exc:
                log.warning("CA: cannot renew the serving certificate: %s", exc)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._transports.add(writer.transport)
        self._renew_serving_certificate_if_due()
        ssl_object = writer.get_extra_info("ssl_object")
        peer_der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        peer = _Peer(peer_der, _address(writer.get_extra_info("peername")))
        self._next_connection += 1
        assert self._workdir is not None
        path = os.path.join(self._workdir, f"c{self._next_connection}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        backend_writer: asyncio.StreamWriter | None = None
        try:
            sock.bind(path)
            sock.setblocking(False)
            self._peers[path] = peer
            await asyncio.get_running_loop().sock_connect(sock, self._backend_path)
            backend_reader, backend_writer = await asyncio.open_unix_connection(sock=sock)
            self._transports.add(backend_writer.transport)
            async with asyncio.TaskGroup() as group:
                group.create_task(_pipe(reader, backend_writer))
                group.create_task(_pipe(backend_reader, writer))
        except OSError as exc:
            log.warning("CA: connection failed: %s", exc)
        finally:
            self._peers.pop(path, None)
            self._transports.discard(writer.transport)
            if backend_writer is not None:
                self._transports.discard(backend_writer.transport)
                backend_writer.close()
            else:
                sock.close()
            writer.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            self._connections.discard(task)

    # --- the gRPC service ---------------------------------------------------------

    def _handlers(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                METHOD_NAME: grpc.unary_unary_rpc_method_handler(
                    self._create_certificate,
                    request_deserializer=IstioCertificateRequest.FromString,
                    response_serializer=IstioCertificateResponse.SerializeToString,
                )
            },
        )

    async def authenticate_caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who is calling on this port: its mesh certificate's identity, else its token's.

        ``AuthenticationError`` says why neither holds (for the log, not the caller).
        """
        peer = self._peers.get(context.peer().removeprefix("unix:"))
        if peer is None:  # not a connection of the front: nothing was proven
            raise AuthenticationError("the call did not come through the TLS front")
        try:
            identity = authenticate(
                metadata=context.invocation_metadata() or (),
                peer_certificate_der=peer.certificate_der,
                signer=self.signer,
                token_key=self._token_key,
                trust_domain=self.trust_domain,
                now=self._now(),
            )
        except AuthenticationError as exc:
            identity = await self._review_token(context, exc)
        return Caller(identity, peer.address)

    async def _create_certificate(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        now = self._now()
        try:
            identity = (await self.authenticate_caller(context)).identity
        except AuthenticationError as exc:
            log.info("CA: authentication failed: %s", exc.message)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, AUTHENTICATION_FAILURE)
            raise  # abort raises; this line is never reached
        seconds = int(request.validity_duration)
        try:
            ttl = timedelta(seconds=seconds) if seconds > 0 else self.default_ttl
        except OverflowError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"CSR signing error (requested TTL of {seconds} seconds is greater than the "
                f"max allowed TTL {format_go_duration(self.max_ttl)})",
            )
            raise
        try:
            chain = sign_csr(
                request.csr.encode("utf-8"),
                identity,
                self.signer,
                now=now,
                ttl=ttl,
                max_ttl=self.max_ttl,
            )
        except CertificateError as exc:
            log.info("CA: cannot sign for %s: %s", identity, exc.message)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"CSR signing error ({exc.message})"
            )
            raise
        log.info("CA: signed a certificate for %s (TTL %s)", identity, format_go_duration(ttl))
        return IstioCertificateResponse(cert_chain=chain)

    async def _review_token(
        self, context: grpc.aio.ServicerContext, failure: AuthenticationError
    ) -> SpiffeId:
        """The identity the API server's TokenReview gives the bearer token; else ``failure``
        (with the review's reason added)."""
        token = bearer_token(context.invocation_metadata() or ())
        if self._token_reviewer is None or token is None:
            raise failure
        try:
            return await self._token_reviewer(token)
        except AuthenticationError as exc:
            raise AuthenticationError(f"{failure.message}; {exc.message}") from None


def _address(peername: Any) -> str:
    """``host:port`` of a socket's peer name (``[v6]:port`` for IPv6)."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername or "unknown")


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until end of stream or a failure, then close the sink."""
    try:
        while data := await source.read(_READ_SIZE):
            sink.write(data)
            await sink.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        sink.close()
