"""The proxy's ADS client: Envoy's side of state-of-the-world xDS over gRPC.

Theory of operation
-------------------
One ADS stream carries four types. As Envoy does, the client first asks for every
cluster (CDS) and every listener (LDS) — wildcard requests, no names — and then for
the load assignments (EDS) of its EDS clusters and the route configurations (RDS) its
HTTP connection managers name, by name. When a CDS or LDS response changes which names
are referenced, the EDS or RDS subscription is updated in a new request.

Every response is checked with ``config.validate_resources`` before anything of it is
used:

- bad: the client NACKs it — the request carries the version it still runs (the last
  one it accepted), the response's nonce, and ``error_detail`` whose message lists each
  problem with the resource and field path — and keeps serving its last good config;
- good: its resources replace those of that type (CDS and LDS responses are the whole
  set; EDS and RDS responses update the named resources and leave the others), and the
  client ACKs with the response's version and nonce.

The proxy is handed a config only when it is consistent: every EDS cluster has its load
assignment and every RDS name its route configuration (Envoy's warming). Then
``on_update(listeners, clusters, routes, endpoints)`` is called with four dicts of
protos by name; the runtime turns them into a new ``ProxyState``. If ``on_update``
raises, the response that led to it is NACKed with the error and the proxy keeps what
it had.

When the stream fails or ends the client reconnects with exponential back-off (0.2 s
doubling to 10 s, with jitter; reset once a response arrives) and subscribes again,
telling the server the versions it has. Node id and metadata are the caller's.

How a stream proves who it is is the caller's too: fixed ``credentials``, or an
``auth`` function asked before every stream (with the status the last stream ended
with) for the channel's credentials and the call's metadata — so a sidecar can present
its current workload certificate, or its token before it has one.

How a stream is carried is a ``connect`` function: by default a grpcio channel to
``target`` (imported when the first stream opens, so a process that never uses it does
not load gRPC); ``unix_socket_connector(path)`` is the small HTTP/2 client of
``grpc_stream`` on a unix socket, which a worker uses for its agent's local xDS. Either
way a stream that ends with a status raises ``GrpcError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from meshlet.proxy import grpc_stream
from meshlet.proxy.config import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    resource_name,
    unpack_resources,
    validate_resources,
)
from meshlet.proxy.grpc_stream import GrpcError, Status

if TYPE_CHECKING:
    import grpc

__all__ = [
    "ADS_METHOD",
    "AdsCall",
    "AdsConnector",
    "Backoff",
    "ConfigUpdate",
    "StreamAuth",
    "StreamAuthSource",
    "XdsClient",
    "grpc_channel_connector",
    "unix_socket_connector",
]

log = logging.getLogger("meshlet.proxy.xds")

_INVALID_ARGUMENT = 3
_HCM_TYPE = "type.googleapis.com/" + hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name
_CACHE_LIMIT = 50_000

Resources = dict[str, Message]
#: ``on_update(listeners, clusters, routes, endpoints)``; may be a coroutine function.
ConfigUpdate = Callable[[Resources, Resources, Resources, Resources], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial`` doubling up to ``maximum``, ± ``jitter`` of each."""

    initial: float = 0.2
    maximum: float = 10.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * 2.0 ** max(0, attempt))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True, slots=True)
class StreamAuth:
    """How one stream proves who it is: TLS credentials (None: plaintext) and the call's
    metadata (``authorization: Bearer …``)."""

    credentials: grpc.ChannelCredentials | None = None
    metadata: tuple[tuple[str, str], ...] = ()


#: Asked before each stream, with the status code the last stream ended with (None if
#: it did not end with one, or on the first).
StreamAuthSource = Callable[[Status | None], StreamAuth]

#: The ADS method's path, as gRPC names it on the wire.
ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


class AdsCall(Protocol):
    """One open ADS stream."""

    async def write(self, request: discovery_pb2.DiscoveryRequest) -> None: ...

    async def read(self) -> discovery_pb2.DiscoveryResponse | None:
        """The next response; None when the server ended the stream with ``OK``."""
        ...

    def cancel(self) -> None: ...


#: Opens one ADS stream with the given auth, for an ``async with`` block; a stream that
#: ends with a status raises ``GrpcError``.
AdsConnector = Callable[[StreamAuth], AbstractAsyncContextManager[AdsCall]]


class _GrpcioCall:
    def __init__(self, call: Any) -> None:
        self._call = call

    async def write(self, request: discovery_pb2.DiscoveryRequest) -> None:
        await self._call.write(request)

    async def read(self) -> discovery_pb2.DiscoveryResponse | None:
        import grpc

        response = await self._call.read()
        return None if response is grpc.aio.EOF else response

    def cancel(self) -> None:
        self._call.cancel()


def grpc_channel_connector(target: str) -> AdsConnector:
    """ADS streams over a grpcio channel to ``target`` (``host:port``, ``unix:/path``);
    TLS when the auth has credentials."""

    @contextlib.asynccontextmanager
    async def connect(auth: StreamAuth) -> AsyncIterator[AdsCall]:
        import grpc
        from envoy.service.discovery.v3 import ads_pb2_grpc

        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", grpc_stream.MAX_MESSAGE),
            ("grpc.max_send_message_length", grpc_stream.MAX_MESSAGE),
        ]
        if auth.credentials is not None:
            # A connection of its own: never one opened with an earlier certificate.
            options.append(("grpc.use_local_subchannel_pool", 1))
            channel = grpc.aio.secure_channel(target, auth.credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        async with channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            call = stub.StreamAggregatedResources(metadata=auth.metadata or None)
            try:
                yield _GrpcioCall(call)
            except grpc.aio.AioRpcError as exc:
                raise GrpcError(Status(exc.code().value[0]), exc.details() or "") from None
            finally:
                call.cancel()

    return connect


class _H2Call:
    def __init__(self, stream: grpc_stream.GrpcStream) -> None:
        self._stream = stream

    async def write(self, request: discovery_pb2.DiscoveryRequest) -> None:
        await self._stream.send(request.SerializeToString())

    async def read(self) -> discovery_pb2.DiscoveryResponse | None:
        data = await self._stream.receive()
        return None if data is None else discovery_pb2.DiscoveryResponse.FromString(data)

    def cancel(self) -> None:
        self._stream.cancel()


def unix_socket_connector(socket_path: str) -> AdsConnector:
    """ADS streams over ``grpc_stream`` to the gRPC server on a unix socket (plaintext;
    the auth's metadata is sent, its credentials must be None)."""

    @contextlib.asynccontextmanager
    async def connect(auth: StreamAuth) -> AsyncIterator[AdsCall]:
        if auth.credentials is not None:
            raise ValueError("a unix socket stream has no TLS")
        async with grpc_stream.open_stream(socket_path, ADS_METHOD, auth.metadata) as stream:
            yield _H2Call(stream)

    return connect


@dataclass
class _TypeState:
    version: str = ""  # last accepted
    nonce: str = ""  # last received
    names: tuple[str, ...] = ()  # requested (EDS/RDS)
    nack: str = ""  # last NACK message sent
    received: bool = False  # some response of this type was accepted
    resources: dict[str, Message] = field(default_factory=dict)


def _eds_names(clusters: Mapping[str, Message]) -> tuple[str, ...]:
    names = set()
    for cluster in clusters.values():
        assert isinstance(cluster, cluster_pb2.Cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            names.add(cluster.eds_cluster_config.service_name or cluster.name)
    return tuple(sorted(names))


def _rds_names(listeners: Mapping[str, Message]) -> tuple[str, ...]:
    names = set()
    for listener in listeners.values():
        assert isinstance(listener, listener_pb2.Listener)
        chains = list(listener.filter_chains)
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for network in chain.filters:
                if network.typed_config.type_url != _HCM_TYPE:
                    continue
                hcm = hcm_pb2.HttpConnectionManager()
                network.typed_config.Unpack(hcm)
                if hcm.HasField("rds"):
                    names.add(hcm.rds.route_config_name)
    return tuple(sorted(names))


class XdsClient:
    """An ADS client for one proxy (see the module docstring).

    ``await run()`` until ``await stop()``. ``target`` is a gRPC target
    (``127.0.0.1:15010``, ``unix:/path``); ``credentials`` makes the channel TLS;
    ``auth``, when given, replaces it and is asked before each stream. ``connect``
    replaces the grpcio channel to ``target`` (``target`` then only names the server in
    logs).
    ``validation_cache`` may be shared by clients in one process: verdicts are kept by
    the digest of a resource's bytes.
    """

    def __init__(
        self,
        target: str,
        node_id: str,
        on_update: ConfigUpdate,
        *,
        metadata: Mapping[str, str] | None = None,
        cluster: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        auth: StreamAuthSource | None = None,
        backoff: Backoff | None = None,
        validation_cache: dict[bytes, tuple[str, ...]] | None = None,
        connect: AdsConnector | None = None,
    ) -> None:
        self.target = target
        self._connect = connect or grpc_channel_connector(target)
        self.node = base_pb2.Node(id=node_id, cluster=cluster, user_agent_name="meshlet")
        meta = struct_pb2.Struct()
        for key, value in sorted((metadata or {}).items()):
            meta.fields[key].string_value = value
        self.node.metadata.CopyFrom(meta)
        self._on_update = on_update
        self._auth = auth or (lambda _code: StreamAuth(credentials))
        self._ended_with: Status | None = None
        self._backoff = backoff or Backoff()
        self._cache = validation_cache if validation_cache is not None else {}
        self._types = {
            t: _TypeState() for t in (CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE)
        }
        self._stopping = asyncio.Event()
        self._call: AdsCall | None = None
        self._changed = asyncio.Condition()
        #: How many consistent configs were handed to ``on_update``.
        self.updates = 0
        #: How many responses were ACKed and NACKed, and the last NACK message.
        self.acks = 0
        self.nacks = 0
        self.last_nack = ""
        self.connected = False

    # --- public state --------------------------------------------------------------------

    def version(self, type_url: str) -> str:
        """The version last accepted for a type ("" before any)."""
        return self._types[type_url].version

    def resources(self, type_url: str) -> dict[str, Message]:
        """The accepted resources of a type, by name (a copy)."""
        return dict(self._types[type_url].resources)

    async def wait_for(self, predicate: Callable[[XdsClient], bool], timeout: float) -> None:
        """Until ``predicate(self)`` holds after some response (TimeoutError after ``timeout``)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a stream to the server, reconnecting with back-off, until ``stop()``."""
        attempt = 0
        while not self._stopping.is_set():
            got_response = False
            try:
                got_response = await self._stream_once()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self._stopping.is_set() or (task is not None and task.cancelling()):
                    raise
                break  # stop() cancelled the call
            except GrpcError as exc:
                self._ended_with = exc.status
                if not self._stopping.is_set():
                    log.info(
                        "xDS stream to %s ended: %s: %s", self.target, exc.status.name, exc.details
                    )
            except Exception:
                if not self._stopping.is_set():
                    log.exception("xDS stream to %s failed", self.target)
            finally:
                self.connected = False
            if self._stopping.is_set():
                break
            attempt = 0 if got_response else attempt + 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._backoff.delay(attempt)):
                    await self._stopping.wait()

    async def stop(self) -> None:
        self._stopping.set()
        call = self._call
        if call is not None:
            call.cancel()

    # --- one stream ----------------------------------------------------------------------

    async def _stream_once(self) -> bool:
        got_response = False
        auth = self._auth(self._ended_with)
        self._ended_with = None
        async with self._connect(auth) as call:
            self._call = call
            try:
                first = True
                for type_url in (CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE):
                    state = self._types[type_url]
                    if type_url in (ENDPOINT_TYPE, ROUTE_TYPE) and not state.names:
                        continue
                    request = self._request(type_url, nonce="")
                    if first:
                        request.node.CopyFrom(self.node)
                        first = False
                    await call.write(request)
                self.connected = True
                while True:
                    response = await call.read()
                    if response is None:
                        return got_response
                    got_response = True
                    for request in await self._on_response(response):
                        await call.write(request)
                    async with self._changed:
                        self._changed.notify_all()
            finally:
                self._call = None
                call.cancel()

    def _request(
        self, type_url: str, *, nonce: str, error: str = ""
    ) -> discovery_pb2.DiscoveryRequest:
        state = self._types[type_url]
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url, version_info=state.version, response_nonce=nonce
        )
        if type_url in (ENDPOINT_TYPE, ROUTE_TYPE):
            request.resource_names.extend(state.names)
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=_INVALID_ARGUMENT, message=error))
        return request

    def _validate(self, type_url: str, response: Any) -> tuple[list[Message], list[str]]:
        messages, problems = unpack_resources(type_url, response.resources)
        if problems:
            return messages, problems
        for packed, message in zip(response.resources, messages, strict=True):
            key = hashlib.blake2b(type_url.encode() + b"\0" + packed.value, digest_size=16).digest()
            verdict = self._cache.get(key)
            if verdict is None:
                verdict = tuple(validate_resources(type_url, [message]))
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = verdict
            problems.extend(verdict)
        names = [resource_name(m) for m in messages]
        if len(set(names)) != len(names):
            problems.extend(validate_resources(type_url, messages))
        return messages, list(dict.fromkeys(problems))

    async def _on_response(self, response: Any) -> list[discovery_pb2.DiscoveryRequest]:
        type_url = response.type_url
        state = self._types.get(type_url)
        if state is None:
            log.warning("xDS: ignoring a response of unknown type %s", type_url)
            return []
        state.nonce = response.nonce
        messages, problems = self._validate(type_url, response)
        if problems:
            return [self._nack(type_url, response, problems)]
        if type_url in (CLUSTER_TYPE, LISTENER_TYPE):
            incoming = {resource_name(m): m for m in messages}
        else:
            incoming = dict(state.resources)
            incoming.update((resource_name(m), m) for m in messages)
        # What CDS and LDS reference decides the EDS and RDS subscriptions.
        follow = {CLUSTER_TYPE: ENDPOINT_TYPE, LISTENER_TYPE: ROUTE_TYPE}.get(type_url)
        dependent = self._types[follow] if follow is not None else None
        saved = (state.resources, state.received)
        saved_dependent = (dependent.names, dependent.resources) if dependent else None
        resubscribe = False
        state.resources, state.received = incoming, True
        if dependent is not None:
            wanted = _eds_names(incoming) if follow == ENDPOINT_TYPE else _rds_names(incoming)
            if wanted != dependent.names:
                keep = set(wanted)
                dependent.names = wanted
                dependent.resources = {n: r for n, r in dependent.resources.items() if n in keep}
                resubscribe = True
        try:
            await self._deliver_if_consistent()
        except Exception as exc:
            state.resources, state.received = saved
            if dependent is not None and saved_dependent is not None:
                dependent.names, dependent.resources = saved_dependent
            log.warning("xDS: the proxy could not apply %s: %s", type_url, exc)
            return [self._nack(type_url, response, [str(exc) or type(exc).__name__])]
        state.version = response.version_info
        state.nack = ""
        self.acks += 1
        requests = [self._request(type_url, nonce=response.nonce)]
        if resubscribe and follow is not None and dependent is not None:
            requests.append(self._request(follow, nonce=dependent.nonce))
        return requests

    def _nack(self, type_url: str, response: Any, problems: list[str]) -> Any:
        state = self._types[type_url]
        message = "\n".join(problems)
        state.nack = message
        self.nacks += 1
        self.last_nack = message
        log.warning(
            "xDS: NACK %s version %s: %s",
            type_url.rsplit(".", 1)[-1],
            response.version_info,
            message,
        )
        return self._request(type_url, nonce=response.nonce, error=message)

    def _consistent(self) -> bool:
        clusters = self._types[CLUSTER_TYPE]
        listeners = self._types[LISTENER_TYPE]
        if not (clusters.received and listeners.received):
            return False
        # The EDS and RDS subscriptions are the names CDS and LDS reference.
        eds, rds = self._types[ENDPOINT_TYPE], self._types[ROUTE_TYPE]
        return all(n in eds.resources for n in eds.names) and all(
            n in rds.resources for n in rds.names
        )

    async def _deliver_if_consistent(self) -> None:
        if not self._consistent():
            return
        result = self._on_update(
            dict(self._types[LISTENER_TYPE].resources),
            dict(self._types[CLUSTER_TYPE].resources),
            dict(self._types[ROUTE_TYPE].resources),
            dict(self._types[ENDPOINT_TYPE].resources),
        )
        if inspect.isawaitable(result):
            await result
        self.updates += 1
