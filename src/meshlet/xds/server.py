"""The control plane's ADS server: Envoy's Aggregated Discovery Service v3 on grpc.aio.

Theory of operation
-------------------
Each ``StreamAggregatedResources`` call is one proxy connection speaking
state-of-the-world xDS for CDS, LDS, EDS and RDS (Envoy's type URLs). The proxy is
known by ``node.id`` (``sidecar~IP~POD.NS~NS.svc.cluster.local``), which names its pod
in the current ``Snapshot``; its config is what the pilot builders return for that pod,
held as versioned bytes by ``cache``.

Per connection and type the server keeps what xDS needs: the names asked for (CDS and
LDS are wildcard: everything; EDS and RDS: the names in the request), the last version
and nonce sent, the last nonce ACKed, and the last NACK. A request whose
``response_nonce`` is not the last one sent is stale and ignored. One that names it is
an ACK, or a NACK when it carries ``error_detail``; a NACK is kept with its message
(``proxy-status`` shows it) and the same config is not sent again — only a new one is.
That bookkeeping, and the stream's queue of requests and pushes, is ``stream``'s,
shared with the agent's local server.

A response's version is a hash of the resources (``cache``): the same config always has
the same version. CDS and LDS responses carry every resource; EDS and RDS responses
carry the requested resources that are new or changed since they were last sent on this
connection (a request for new names gets those names), as Envoy expects of
non-wildcard types.

``update_snapshot`` may be called at any rate: changes are debounced (100 ms of quiet,
at most 1 s of delay), then each connected proxy's config is updated
(``cache.update_proxy_config``, incremental where the change allows, with the outbound
side built once per Service and view and shared through one ``cache.BuildCache`` per
snapshot) and pushed to that proxy only if some of its resources changed. Proxies are rebuilt one at a time with
the event loop let through in between, and each is pushed as soon as it is built.

``istio.io/debug/syncz`` requests (``status``) are answered on any stream with the
status of every connected proxy: how ``meshlet proxy-status`` asks, as istioctl asks
istiod.

Two ports serve the same proxies (one set of connections, one ``status()``):

- ``start(host, 15010)``: plaintext, no authentication, for the node's own tools;
- ``add_authenticated_service(server, authenticate)``: the ADS service on another gRPC
  server, the CA's TLS port 15012 (``meshlet.ca.server.CAServer(services=[...])``).
  There each stream proves an identity before anything else (``UNAUTHENTICATED``
  otherwise) and its node must be of that identity (``PERMISSION_DENIED`` otherwise):
  the rules are ``auth``'s.

``ServerTLS`` makes ``start`` serve TLS itself, without authenticating callers; the
mesh's sidecars use the authenticated port instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from meshlet import __version__
from meshlet.errors import AuthenticationError, AuthorizationError
from meshlet.pilot.snapshot import Snapshot
from meshlet.xds.auth import (
    AUTHENTICATION_FAILURE,
    NodeClaim,
    authorization_failure,
    authorize_node,
)
from meshlet.xds.cache import (
    TYPE_ORDER,
    WILDCARD_TYPES,
    BuildCache,
    Impact,
    Interner,
    ProxyConfig,
    TypeResources,
    encode_response,
    parse_node_id,
    proxy_for_node,
    short_type,
    snapshot_impact,
    update_proxy_config,
)
from meshlet.xds.status import (
    DISPLAY_TYPES,
    SYNCZ_TYPE,
    ProxyStatus,
    SyncState,
    TypeStatus,
    syncz_response,
)
from meshlet.xds.stream import AdsStream, Answer, Watch

if TYPE_CHECKING:
    from meshlet.ca.server import Caller
    from meshlet.ca.signing import SpiffeId

__all__ = ["DEFAULT_DEBOUNCE", "AdsServer", "AdsService", "ServerTLS"]

log = logging.getLogger("meshlet.xds")

DEFAULT_DEBOUNCE = 0.1
_MAX_DEBOUNCE = 1.0
_MAX_MESSAGE = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The server's TLS for 15012: PEM certificate chain, private key, and mesh root."""

    certificate_chain: bytes
    private_key: bytes
    root_certificates: bytes | None = None


class _Connection(AdsStream):
    """One proxy's stream, with what its node metadata says of it.

    ``identity`` is what the caller proved on the authenticated port (None on 15010).
    """

    def __init__(self, peer: str, identity: SpiffeId | None = None) -> None:
        super().__init__(peer, log=log, label="ADS")
        self.identity = identity
        self.cluster_id = ""
        self.istio_version = ""

    def status(self) -> ProxyStatus:
        types = []
        for type_url in DISPLAY_TYPES:
            watch = self.watches.get(type_url)
            if watch is None or not watch.nonce:
                types.append(TypeStatus(type_url, SyncState.NOT_SENT))
                continue
            if watch.nack:
                state, acked = SyncState.ERROR, ""
            elif watch.acked_nonce == watch.nonce:
                state, acked = SyncState.SYNCED, watch.version
            else:
                state, acked = SyncState.STALE, ""
            types.append(
                TypeStatus(type_url, state, watch.version, acked, watch.nack, watch.sent_at)
            )
        return ProxyStatus(
            node_id=self.node_id,
            cluster_id=self.cluster_id,
            istio_version=self.istio_version,
            types=tuple(types),
        )


#: The caller of a call, or ``AuthenticationError`` (``CAServer.authenticate_caller``).
Authenticator = Callable[[grpc.aio.ServicerContext], Awaitable["Caller"]]


class AdsService(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """``envoy.service.discovery.v3.AggregatedDiscoveryService`` over the server's state.

    With ``authenticate``, each stream must prove an identity and name a node of it.
    """

    def __init__(self, server: AdsServer, authenticate: Authenticator | None = None) -> None:
        self._server = server
        self._authenticate = authenticate

    async def StreamAggregatedResources(  # noqa: N802 (the gRPC method name)
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        peer, identity = context.peer() or "ads", None
        if self._authenticate is not None:
            try:
                caller = await self._authenticate(context)
            except AuthenticationError as exc:
                log.warning("ADS: failed to authenticate client from %s: %s", peer, exc.message)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, AUTHENTICATION_FAILURE)
                return
            peer, identity = caller.address, caller.identity
        connection = _Connection(peer, identity)
        server = self._server
        responses = connection.serve(
            request_iterator,
            lambda request: server._on_request(connection, request),
            lambda: server._push_responses(connection),
        )
        refused: AuthorizationError | None = None
        try:
            async with contextlib.aclosing(responses):
                async for response in responses:
                    yield response
            if connection.error is not None:
                log.info("ADS: connection %s ended: %s", connection.id, connection.error)
        except AuthorizationError as exc:
            refused = exc
        finally:
            server._disconnect(connection)
        if refused is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, authorization_failure(refused))


class AdsServer:
    """The ADS server: serves per-proxy config built from the latest snapshot.

    Use from one event loop: ``await start(host, port)``, ``update_snapshot(...)`` (on
    the loop's thread), ``status()``, ``await stop()``.
    """

    def __init__(
        self,
        snapshot: Snapshot | None = None,
        *,
        debounce: float = DEFAULT_DEBOUNCE,
        tls: ServerTLS | None = None,
        control_plane_id: str = "istiod",
        on_ack: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._pending: Snapshot | None = None
        self._debounce = debounce
        self._tls = tls
        self.control_plane_id = control_plane_id
        self._on_ack = on_ack  # (node id, type URL, version), e.g. for a benchmark
        self._server: grpc.aio.Server | None = None
        self._connections: dict[str, _Connection] = {}
        self._configs: dict[str, ProxyConfig] = {}
        self._interner = Interner()
        self._cache: BuildCache | None = None  # what proxies of the snapshot share
        self._debounce_task: asyncio.Task[None] | None = None
        self._last_update = 0.0
        self._first_update = 0.0
        self._pushed = asyncio.Event()
        #: Seconds spent building config per proxy in the last push (for the benchmark).
        self.last_build_seconds: list[float] = []

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 15010) -> int:
        """Serve on ``host:port`` (0: any free port); returns the bound port."""
        if self._server is not None:
            raise RuntimeError("already started")
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
            ]
        )
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(AdsService(self), server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self._tls is None:
            bound = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(self._tls.private_key, self._tls.certificate_chain)],
                root_certificates=self._tls.root_certificates,
                require_client_auth=False,
            )
            bound = server.add_secure_port(address, credentials)
        if bound == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server = server
        log.info(
            "ADS server listening on %s:%d (%s)", host, bound, "TLS" if self._tls else "plaintext"
        )
        return int(bound)

    def add_authenticated_service(
        self, server: grpc.aio.Server, authenticate: Authenticator
    ) -> None:
        """Serve these proxies on ``server`` too, each stream authenticated by ``authenticate``
        and its node authorized (``auth``): how the CA's port 15012 carries ADS.

        Fits ``CAServer(services=[ads.add_authenticated_service])``.
        """
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            AdsService(self, authenticate), server
        )

    async def stop(self, grace: float | None = 1.0) -> None:
        task, self._debounce_task = self._debounce_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    # --- snapshots -----------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def update_snapshot(self, snapshot: Snapshot) -> None:
        """Take a new snapshot; proxies get their new config after the debounce."""
        now = time.monotonic()
        if self._pending is None:
            self._first_update = now
        self._pending = snapshot
        self._last_update = now
        self._pushed.clear()
        if self._debounce_task is None or self._debounce_task.done():
            self._debounce_task = asyncio.get_running_loop().create_task(
                self._debounce_then_push(), name="xds debounce"
            )

    async def wait_pushed(self) -> None:
        """Until the latest snapshot has been built and pushed to every proxy."""
        await self._pushed.wait()

    async def _debounce_then_push(self) -> None:
        while self._pending is not None:
            now = time.monotonic()
            quiet_at = self._last_update + self._debounce
            latest = self._first_update + _MAX_DEBOUNCE
            if now < quiet_at and now < latest:
                await asyncio.sleep(min(quiet_at, latest) - now)
                continue
            snapshot, self._pending = self._pending, None
            await self._apply(snapshot)
        self._pushed.set()

    async def _apply(self, snapshot: Snapshot) -> None:
        old, self._snapshot = self._snapshot, snapshot
        impact = snapshot_impact(old, snapshot)
        if impact.empty:
            return
        self.last_build_seconds = []
        self._interner = Interner()  # unchanged resources keep their shared bytes
        for node_id in sorted({c.node_id for c in self._connections.values() if c.node_id}):
            started = time.perf_counter()
            changed = self._rebuild(node_id, snapshot, impact)
            self.last_build_seconds.append(time.perf_counter() - started)
            if changed:
                for connection in self._connections.values():
                    if connection.node_id == node_id:
                        connection.wake()
            await asyncio.sleep(0)  # let pushes and ACKs through between proxies

    def _build_cache(self, snapshot: Snapshot) -> BuildCache:
        """The shared build cache of ``snapshot``, advanced from the previous one."""
        cache = self._cache
        if cache is None:
            cache = BuildCache(snapshot, self._interner)
        elif cache.snapshot is not snapshot:
            cache = cache.advance(snapshot, self._interner)
        self._cache = cache
        return cache

    def _rebuild(self, node_id: str, snapshot: Snapshot, impact: Impact | None) -> bool:
        """Update the node's config; whether it changed."""
        previous = self._configs.get(node_id)
        proxy = proxy_for_node(node_id, snapshot)
        if proxy is None:
            if previous is not None:
                log.warning("ADS: node %s is not in the snapshot any more", node_id)
            self._configs.pop(node_id, None)
            return False
        if impact is None:
            impact = Impact(full=True)
        config = update_proxy_config(
            previous, proxy, snapshot, impact, self._interner, cache=self._build_cache(snapshot)
        )
        if config.node_id != node_id:
            config = dataclasses.replace(config, node_id=node_id)
        self._configs[node_id] = config
        return previous is None or any(
            (previous.of(t) or TypeResources(t)).version
            != (config.of(t) or TypeResources(t)).version
            for t in TYPE_ORDER
        )

    # --- status --------------------------------------------------------------------------

    def status(self) -> list[ProxyStatus]:
        """Every connected proxy's sync state, sorted by node id."""
        statuses = [c.status() for c in self._connections.values() if c.watches]
        return sorted(statuses, key=lambda s: s.node_id)

    # --- the protocol --------------------------------------------------------------------

    def _disconnect(self, connection: _Connection) -> None:
        if self._connections.pop(connection.id, None) is not None:
            log.info("ADS: connection %s for node:%s closed", connection.id, connection.node_id)
        if connection.node_id and not any(
            c.node_id == connection.node_id for c in self._connections.values()
        ):
            self._configs.pop(connection.node_id, None)

    @staticmethod
    def _authorize(connection: _Connection, node_id: str, fields: Any) -> None:
        """``AuthorizationError`` unless the stream's identity may have ``node_id``'s config."""
        assert connection.identity is not None
        metadata = {
            key: fields[key].string_value
            for key in ("NAMESPACE", "SERVICE_ACCOUNT")
            if key in fields and fields[key].HasField("string_value")
        }
        try:
            authorize_node(connection.identity, NodeClaim.of(node_id, metadata))
        except AuthorizationError as exc:
            log.warning(
                "ADS: unauthorized XDS: %s with identity %s: %s",
                connection.peer,
                connection.identity,
                exc.message,
            )
            raise

    def _config_for(self, connection: _Connection) -> ProxyConfig | None:
        node_id = connection.node_id
        if node_id not in self._configs and self._snapshot is not None:
            self._rebuild(node_id, self._snapshot, None)
        return self._configs.get(node_id)

    def _on_request(self, connection: _Connection, request: Any) -> list[Any]:
        if request.type_url == SYNCZ_TYPE:
            return [
                syncz_response(
                    self.status(),
                    control_plane_id=self.control_plane_id,
                    version=__version__,
                    nonce=uuid.uuid4().hex,
                )
            ]
        if request.HasField("node") and request.node.id and not connection.node_id:
            fields = request.node.metadata.fields
            if connection.identity is not None:
                self._authorize(connection, request.node.id, fields)
            connection.node_id = request.node.id
            connection.cluster_id = (
                fields["CLUSTER_ID"].string_value if "CLUSTER_ID" in fields else "Kubernetes"
            )
            connection.istio_version = (
                fields["ISTIO_VERSION"].string_value if "ISTIO_VERSION" in fields else ""
            )
            if parse_node_id(connection.node_id) is None:
                log.warning("ADS: node id %r is not of Istio's form", connection.node_id)
        if not connection.node_id:
            log.warning("ADS: connection %s sent a request without a node", connection.id)
            return []
        type_url = request.type_url
        if type_url not in TYPE_ORDER:
            log.warning("ADS: node:%s asked for unsupported type %s", connection.node_id, type_url)
            return []
        if connection.id not in self._connections:
            self._connections[connection.id] = connection
            log.info("ADS: new connection %s for node:%s", connection.id, connection.node_id)
        watch, answer = connection.receive(request)
        if answer is Answer.STALE:
            return []
        if answer is Answer.ACK and self._on_ack is not None:
            self._on_ack(connection.node_id, type_url, watch.version)
        names = None if type_url in WILDCARD_TYPES else frozenset(request.resource_names)
        first = not watch.nonce and watch.names is None and not request.response_nonce
        if names == watch.names and not first:
            return []  # an ACK or NACK with the same subscription
        added = None if names is None else names - (watch.names or frozenset())
        watch.names = names
        config = self._config_for(connection)
        if config is None:
            return []
        response = self._response_for(watch, config, type_url, added)
        return [] if response is None else [response]

    def _response_for(
        self,
        watch: Watch,
        config: ProxyConfig,
        type_url: str,
        force: frozenset[str] | None,
    ) -> Any | None:
        """What to send for one type now, or None (nothing new)."""
        resources = config.of(type_url)
        assert resources is not None
        if type_url in WILDCARD_TYPES:
            if watch.nonce and watch.version == resources.version and force is None:
                return None
            names: list[str] = list(resources.names())
            version = resources.version
            send = names
        else:
            present = (watch.names or frozenset()) & resources.data.keys()
            version = resources.version_of(present)
            # New or changed since last sent (set operations: thousands of names).
            due = present & {name for name, _ in resources.digests.items() - watch.sent.items()}
            if force is not None:
                due |= present & force
            send = sorted(due)
            if not send:
                return None  # nothing new (a name that went away is not announced)
        response = encode_response(type_url, version, resources, send, self._interner)
        response.nonce = uuid.uuid4().hex
        if type_url in WILDCARD_TYPES:
            watch.sent = dict(resources.digests)
        else:
            for name in send:
                watch.sent[name] = resources.digests[name]
        watch.version = version
        watch.nonce = response.nonce
        watch.nack = ""
        watch.sent_at = time.time()
        log.debug("ADS: PUSH %s resources:%d version:%s", short_type(type_url), len(send), version)
        return response

    def _push_responses(self, connection: _Connection) -> list[Any]:
        config = self._configs.get(connection.node_id)
        if config is None:
            return []
        responses = []
        for type_url in TYPE_ORDER:
            watch = connection.watches.get(type_url)
            if watch is None or (watch.names is None and type_url not in WILDCARD_TYPES):
                continue
            response = self._response_for(watch, config, type_url, None)
            if response is not None:
                responses.append(response)
        return responses
