"""Clusters, endpoints and the HTTP/1.1 keep-alive pools to them.

Theory of operation.

Hosts. ``cluster_hosts`` lists where a cluster's traffic may go: STATIC clusters their
``load_assignment``, EDS clusters the ``ClusterLoadAssignment`` of their
``eds_cluster_config.service_name`` (or their own name) in the current config,
ORIGINAL_DST clusters the downstream connection's original destination. Unhealthy and
draining endpoints are left out. A cluster with no host answers 503 ``no healthy
upstream``. Hosts are taken in turn (round robin; Envoy's LEAST_REQUEST with equal loads
behaves the same).

Connections. ``connect`` opens TCP within ``connect_timeout`` (Envoy's 5 s default),
from ``upstream_bind_config.source_address`` when set (127.0.0.6 for Istio's inbound
clusters, so redirected loopback traffic does not loop back into the proxy), then TLS
when the cluster has an ``UpstreamTlsContext`` (SNI, ALPN, client certificate, the
server's SAN checked). Failures become ``UpstreamFailure`` with Envoy's reset reason
(``connection failure``, ``connection timeout``, ``overflow``, ``connection termination``).

Pools. ``UpstreamManager`` keeps idle HTTP/1.1 connections per (cluster, host, TLS
context): a request takes an idle one (dropping any the server closed meanwhile) or
opens one. After a complete response a connection returns to the pool unless either
side said ``Connection: close`` or the body was delimited by the close. Circuit
breakers are Envoy's, per cluster, from the first ``thresholds`` entry (defaults 1024):
``max_requests`` in flight, ``max_connections`` open, and ``max_pending_requests``
waiting for a connection; over a limit the request fails with ``overflow``. A request
on a reused connection that the server had closed (no response byte came) is retried
once on a new connection when it has no body, as Envoy's connection pool does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from meshlet.proxy.http1 import LAST_CHUNK, ChunkedDecoder, FramingError, encode_chunk
from meshlet.proxy.http1_head import BodyFraming, HeadError, ResponseHead, scan_response_head
from meshlet.proxy.streams import READ_SIZE, ByteStream, open_tcp_stream
from meshlet.proxy.tls import TlsContextCache, TlsHandshakeError, connect_tls

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_THRESHOLD",
    "Endpoint",
    "OpenStream",
    "RequestBody",
    "ResponseBody",
    "UpstreamFailure",
    "UpstreamManager",
    "UpstreamResponse",
    "cluster_hosts",
    "upstream_tls_context",
]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_THRESHOLD = 1024
_SKIPPED_HEALTH = (health_check_pb2.UNHEALTHY, health_check_pb2.DRAINING)


OpenStream = Callable[["Endpoint", str | None, float], Awaitable[ByteStream]]
"""How a connection to a host is opened: ``(endpoint, source address, timeout)``; tests
inject in-memory streams here."""


async def _open_tcp(endpoint: Endpoint, source: str | None, timeout: float) -> ByteStream:
    return await open_tcp_stream(
        endpoint.host, endpoint.port, source_address=source, timeout=timeout
    )


class UpstreamFailure(Exception):
    """The upstream could not be reached or broke before a response; ``reason`` is
    Envoy's reset reason."""

    def __init__(self, reason: str, *, no_host: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.no_host = no_host


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    host: str
    port: int


def cluster_hosts(
    cluster: cluster_pb2.Cluster,
    assignments: Mapping[str, endpoint_pb2.ClusterLoadAssignment],
    original_destination: tuple[str, int] | None,
) -> list[Endpoint]:
    """Where the cluster's traffic may go (see the module docstring)."""
    kind = cluster.type
    if kind == cluster_pb2.Cluster.ORIGINAL_DST:
        return [] if original_destination is None else [Endpoint(*original_destination)]
    if kind == cluster_pb2.Cluster.EDS:
        name = cluster.eds_cluster_config.service_name or cluster.name
        assignment = assignments.get(name)
        if assignment is None:
            return []
    else:
        assignment = cluster.load_assignment
    hosts = []
    for locality in assignment.endpoints:
        for lb_endpoint in locality.lb_endpoints:
            if lb_endpoint.health_status in _SKIPPED_HEALTH:
                continue
            address = lb_endpoint.endpoint.address.socket_address
            if address.address:
                hosts.append(Endpoint(address.address, address.port_value))
    return hosts


def upstream_tls_context(cluster: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext | None:
    if not cluster.HasField("transport_socket"):
        return None
    config = cluster.transport_socket.typed_config
    if not config.Is(tls_pb2.UpstreamTlsContext.DESCRIPTOR):
        return None
    context = tls_pb2.UpstreamTlsContext()
    config.Unpack(context)
    return context


@dataclass(frozen=True, slots=True)
class _Thresholds:
    max_connections: int
    max_pending_requests: int
    max_requests: int

    @classmethod
    def of(cls, cluster: cluster_pb2.Cluster) -> _Thresholds:
        if not cluster.circuit_breakers.thresholds:
            return cls(DEFAULT_THRESHOLD, DEFAULT_THRESHOLD, DEFAULT_THRESHOLD)
        first = cluster.circuit_breakers.thresholds[0]

        def value(name: str) -> int:
            return getattr(first, name).value if first.HasField(name) else DEFAULT_THRESHOLD

        return cls(value("max_connections"), value("max_pending_requests"), value("max_requests"))


@dataclass
class _ClusterState:
    connections: int = 0
    pending: int = 0
    requests: int = 0
    turn: itertools.count[int] = field(default_factory=itertools.count)
    idle: dict[tuple[object, ...], list[_Connection]] = field(default_factory=dict)
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)


class _Connection:
    def __init__(self, stream: ByteStream, key: tuple[object, ...], state: _ClusterState) -> None:
        self.stream = stream
        self.key = key
        self.state = state
        self.buffer = bytearray()
        self.reused = False
        self.local_address: str | None = None
        get_extra_info = getattr(stream, "get_extra_info", None)
        if get_extra_info is not None:
            local = get_extra_info("sockname")
            if isinstance(local, tuple) and len(local) >= 2:
                self.local_address = f"{local[0]}:{local[1]}"

    def stale(self) -> bool:
        at_eof = getattr(self.stream, "at_eof", None)
        return self.stream.closed or bool(at_eof and at_eof())


class RequestBody:
    """A request body as it streams in: ``chunks`` yields decoded data; ``content_length``
    is known or the body is sent chunked."""

    def __init__(self, chunks: AsyncIterator[bytes], content_length: int | None) -> None:
        self.chunks = chunks
        self.content_length = content_length


class ResponseBody:
    """The body of an upstream response; ``read`` returns decoded data, ``b""`` at the end
    (the connection is then back in its pool or closed)."""

    def __init__(
        self, manager: UpstreamManager, connection: _Connection, framing: BodyFraming,
        remaining: int, reusable: bool,
    ) -> None:  # fmt: skip
        self._manager = manager
        self._connection: _Connection | None = connection
        self._framing = framing
        self._remaining = remaining
        self._reusable = reusable
        self._decoder = ChunkedDecoder() if framing is BodyFraming.CHUNKED else None
        self.done = framing is BodyFraming.NONE
        if self.done:
            self._finish()

    def take_buffered(self) -> bytes:
        """The body bytes already read with the head (decoded), possibly all of it."""
        connection = self._connection
        if connection is None or self.done or not connection.buffer:
            return b""
        data = bytes(connection.buffer)
        connection.buffer.clear()
        return self._consume(data)

    def _consume(self, data: bytes) -> bytes:
        if self._framing is BodyFraming.CONTENT_LENGTH:
            piece = data[: self._remaining]
            if len(data) > self._remaining:
                self._reusable = False  # bytes beyond the body: do not trust the connection
            self._remaining -= len(piece)
            if self._remaining == 0:
                self._finish()
            return piece
        if self._decoder is not None:
            try:
                pieces = self._decoder.feed(data)
            except FramingError as exc:
                self.abort()
                raise UpstreamFailure("protocol error") from exc
            if self._decoder.done:
                if self._decoder.leftover:
                    self._reusable = False
                self._finish()
            return b"".join(pieces)
        return data  # until close

    async def read(self) -> bytes:
        while not self.done:
            connection = self._connection
            assert connection is not None
            try:
                data = await connection.stream.read(READ_SIZE)
            except OSError as exc:
                self.abort()
                raise UpstreamFailure("connection termination") from exc
            if not data:
                if self._framing is BodyFraming.UNTIL_CLOSE:
                    self._reusable = False
                    self._finish()
                    return b""
                self.abort()
                raise UpstreamFailure("connection termination")
            piece = self._consume(data)
            if piece:
                return piece
        return b""

    def _finish(self) -> None:
        self.done = True
        connection, self._connection = self._connection, None
        if connection is not None:
            self._manager._release(connection, reusable=self._reusable)

    def abort(self) -> None:
        """Give up on the rest of the body: the connection is closed, not pooled."""
        self.done = True
        connection, self._connection = self._connection, None
        if connection is not None:
            self._manager._release(connection, reusable=False)


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    head: ResponseHead
    body: ResponseBody
    local_address: str | None = None  # ``ip:port`` the connection to the host left from

    @property
    def content_length(self) -> int | None:
        """The body length when the downstream can be told it up front."""
        framing = self.body._framing
        if framing is BodyFraming.NONE:
            return 0 if self.head.content_length is not None else None
        return self.head.content_length if framing is BodyFraming.CONTENT_LENGTH else None


class UpstreamManager:
    """Connection pools and circuit breakers for every cluster (see the module docstring)."""

    def __init__(self, tls: TlsContextCache, *, open_stream: OpenStream | None = None) -> None:
        self.tls = tls
        self._open_stream: OpenStream = open_stream or _open_tcp
        self._clusters: dict[str, _ClusterState] = {}
        self._clusters_read: dict[
            str, tuple[cluster_pb2.Cluster, _Thresholds, tuple[object, ...]]
        ] = {}
        self._hosts: dict[
            str,
            tuple[cluster_pb2.Cluster, endpoint_pb2.ClusterLoadAssignment | None, list[Endpoint]],
        ] = {}

    def _state(self, name: str) -> _ClusterState:
        state = self._clusters.get(name)
        if state is None:
            state = self._clusters[name] = _ClusterState()
        return state

    async def connect(self, cluster: cluster_pb2.Cluster, endpoint: Endpoint) -> ByteStream:
        """A new connection (TCP, then TLS when the cluster has a TLS transport socket)."""
        timeout = DEFAULT_CONNECT_TIMEOUT
        if cluster.HasField("connect_timeout"):
            timeout = cluster.connect_timeout.seconds + cluster.connect_timeout.nanos / 1e9
        source = cluster.upstream_bind_config.source_address.address or None
        try:
            stream = await self._open_stream(endpoint, source, timeout)
        except TimeoutError as exc:
            raise UpstreamFailure("connection timeout") from exc
        except OSError as exc:
            raise UpstreamFailure("connection failure") from exc
        context = upstream_tls_context(cluster)
        if context is not None:
            try:
                client = self.tls.client(context)
                stream = await connect_tls(stream, client, timeout=timeout)
            except TlsHandshakeError as exc:
                stream.abort()
                raise UpstreamFailure(
                    f"connection failure, transport failure reason: TLS error: {exc.reason}"
                ) from exc
            except Exception as exc:  # a TLS context that cannot be built (missing secret …)
                stream.abort()
                raise UpstreamFailure(
                    f"connection failure, transport failure reason: {exc}"
                ) from exc
        return stream

    def _facts(self, cluster: cluster_pb2.Cluster) -> tuple[_Thresholds, tuple[object, ...]]:
        """The cluster's circuit breakers, and what its pooled connections share besides
        the endpoint (transport socket, source address); read once per cluster proto."""
        cached = self._clusters_read.get(cluster.name)
        if cached is None or cached[0] is not cluster:
            transport = (
                cluster.transport_socket.SerializeToString(deterministic=True),
                cluster.upstream_bind_config.source_address.address,
            )
            cached = (cluster, _Thresholds.of(cluster), transport)
            self._clusters_read[cluster.name] = cached
        return cached[1], cached[2]

    def pick(
        self,
        cluster: cluster_pb2.Cluster,
        assignments: Mapping[str, endpoint_pb2.ClusterLoadAssignment],
        original_destination: tuple[str, int] | None,
    ) -> Endpoint:
        if cluster.type == cluster_pb2.Cluster.ORIGINAL_DST:
            hosts = cluster_hosts(cluster, assignments, original_destination)
        else:
            # The hosts of a STATIC or EDS cluster change only with the config: list them
            # once per (cluster proto, endpoints) pair.
            assignment = (
                assignments.get(cluster.eds_cluster_config.service_name or cluster.name)
                if cluster.type == cluster_pb2.Cluster.EDS
                else None
            )
            cached = self._hosts.get(cluster.name)
            if cached is None or cached[0] is not cluster or cached[1] is not assignment:
                listed = cluster_hosts(cluster, assignments, original_destination)
                cached = self._hosts[cluster.name] = (cluster, assignment, listed)
            hosts = cached[2]
        if not hosts:
            raise UpstreamFailure("no healthy upstream", no_host=True)
        return hosts[next(self._state(cluster.name).turn) % len(hosts)]

    async def _acquire(
        self, cluster: cluster_pb2.Cluster, endpoint: Endpoint, *, fresh: bool = False
    ) -> _Connection:
        state = self._state(cluster.name)
        limits, transport = self._facts(cluster)
        key = (endpoint, *transport)
        idle = state.idle.setdefault(key, [])
        while idle and not fresh:
            connection = idle.pop()
            if connection.stale() or connection.buffer:
                self._discard(connection)
                continue
            connection.reused = True
            return connection
        if state.connections >= limits.max_connections:
            if state.pending >= limits.max_pending_requests:
                raise UpstreamFailure("overflow")
            state.pending += 1
            try:
                async with state.freed:
                    await state.freed.wait_for(
                        lambda: state.connections < limits.max_connections or bool(idle)
                    )
            finally:
                state.pending -= 1
            if idle:
                return await self._acquire(cluster, endpoint)
        state.connections += 1
        try:
            stream = await self.connect(cluster, endpoint)
        except BaseException:
            state.connections -= 1
            self._notify(state)
            raise
        return _Connection(stream, key, state)

    def _discard(self, connection: _Connection) -> None:
        connection.stream.close()
        connection.state.connections -= 1
        self._notify(connection.state)

    def _notify(self, state: _ClusterState) -> None:
        async def wake() -> None:
            async with state.freed:
                state.freed.notify()

        if state.pending:
            task = asyncio.get_running_loop().create_task(wake())
            _background.add(task)
            task.add_done_callback(_background.discard)

    def _release(self, connection: _Connection, *, reusable: bool) -> None:
        connection.state.requests -= 1
        if reusable and not connection.stale():
            connection.state.idle.setdefault(connection.key, []).append(connection)
            self._notify(connection.state)
        else:
            self._discard(connection)

    async def request(
        self,
        cluster: cluster_pb2.Cluster,
        endpoint: Endpoint,
        *,
        method: bytes,
        head: bytes,
        body: RequestBody | None,
    ) -> UpstreamResponse:
        """Send one request (``head`` rendered, ``body`` streamed) and read the response
        head. The caller reads the body from ``UpstreamResponse.body``."""
        state = self._state(cluster.name)
        limits, _ = self._facts(cluster)
        if state.requests >= limits.max_requests:
            raise UpstreamFailure("overflow")
        state.requests += 1
        try:
            connection = await self._acquire(cluster, endpoint)
            try:
                return await self._exchange(connection, method, head, body)
            except _StaleConnection:
                if body is not None:
                    raise UpstreamFailure("connection termination") from None
                connection = await self._acquire(cluster, endpoint, fresh=True)
                try:
                    return await self._exchange(connection, method, head, body)
                except _StaleConnection:
                    raise UpstreamFailure("connection termination") from None
        except BaseException:
            state.requests -= 1
            raise

    async def _exchange(
        self, connection: _Connection, method: bytes, head: bytes, body: RequestBody | None
    ) -> UpstreamResponse:
        stream = connection.stream
        try:
            await self._send(stream, head, body)
            response = await self._read_head(connection)
        except _StaleConnection:
            self._close(connection)
            raise
        except UpstreamFailure:
            self._close(connection)
            raise
        except OSError as exc:
            self._close(connection)
            if connection.reused and not connection.buffer:
                raise _StaleConnection from exc
            raise UpstreamFailure("connection termination") from exc
        except BaseException:
            self._close(connection)
            raise
        reusable = response.keep_alive(method)
        framing = response.body_framing(method)
        remaining = response.content_length or 0
        return UpstreamResponse(
            response,
            ResponseBody(self, connection, framing, remaining, reusable),
            connection.local_address,
        )

    def _close(self, connection: _Connection) -> None:
        connection.stream.abort()
        connection.state.connections -= 1
        self._notify(connection.state)

    async def _send(self, stream: ByteStream, head: bytes, body: RequestBody | None) -> None:
        if body is None:
            stream.write(head)
            await stream.drain()
            return
        chunked = body.content_length is None
        pending = head
        async for data in body.chunks:
            stream.write(pending + (encode_chunk(data) if chunked else data))
            pending = b""
            await stream.drain()
        stream.write(pending + (LAST_CHUNK if chunked else b""))
        await stream.drain()

    async def _read_head(self, connection: _Connection) -> ResponseHead:
        buffer = connection.buffer
        searched = 0
        while True:
            while buffer:
                found = scan_response_head(bytes(buffer), search_from=searched)
                if found is None:
                    break
                if isinstance(found, HeadError):
                    raise UpstreamFailure("protocol error")
                if found.status == 100 or (found.status < 200 and found.status != 101):
                    del buffer[: found.size]  # interim responses are not forwarded
                    searched = 0
                    continue
                del buffer[: found.size]
                return found
            searched = len(buffer)
            data = await connection.stream.read(READ_SIZE)
            if not data:
                if connection.reused and not buffer:
                    raise _StaleConnection
                raise UpstreamFailure("connection termination")
            buffer += data


class _StaleConnection(Exception):
    """A pooled connection the server had closed before answering."""


_background: set[asyncio.Task[None]] = set()
