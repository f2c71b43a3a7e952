"""The agent's local xDS endpoint: the config it holds, served to its workers over ADS.

Theory of operation
-------------------
Istio's pilot-agent runs an xDS proxy: Envoy connects to a unix socket in the pod and
the agent relays to istiod over its one upstream connection. Here several worker
processes connect, so the agent does not relay streams one to one; it keeps the last
good config it accepted (from the control plane, or built from files in standalone
mode) and serves that to every worker with state-of-the-world ADS, the protocol the
workers' ``XdsClient`` already speaks.

``set_config(listeners, clusters, routes, endpoints)`` replaces what is served. Each
type is held as versioned bytes (``meshlet.xds.cache.TypeResources``: the same
resources always give the same version). Per stream and type the server keeps what
xDS needs: the names asked for (CDS and LDS are wildcard; EDS and RDS are by name), the
version and nonce last sent, and the last ACK or NACK. A request naming a nonce other
than the last one sent is stale and ignored. A change of config wakes every stream,
which sends each type whose resources changed, in the order clusters, endpoints,
listeners, routes. A NACK from a worker is logged and kept for the admin endpoint; the
same config is not sent again. The per-stream bookkeeping (queue, watches, nonces,
ACK and NACK) is ``meshlet.xds.stream``'s, as in the control plane's server. The
transport is ``meshlet.proxy.grpc_server`` (gRPC on ``h2``), so the agent loads no grpcio
to serve it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from meshlet.proxy.grpc_server import GrpcServer, ServerCall, StreamMethod
from meshlet.xds.cache import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TYPE_ORDER,
    WILDCARD_TYPES,
    TypeResources,
    short_type,
)
from meshlet.xds.stream import AdsStream, Answer, Watch, discovery_response

__all__ = ["ADS_METHOD", "LocalXdsServer", "StreamStatus"]

log = logging.getLogger("meshlet.proxy.xdsproxy")

#: The one method served (delta xDS is not: a call to it is ``UNIMPLEMENTED``).
ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One connected worker as the agent sees it."""

    node_id: str
    peer: str
    acked: Mapping[str, str]  # short type -> version ACKed
    nacks: Mapping[str, str]  # short type -> last NACK message


class LocalXdsServer:
    """State-of-the-world ADS on a unix socket, serving one config to every client."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = os.path.abspath(socket_path)
        self._server: GrpcServer | None = None
        self._streams: dict[str, AdsStream] = {}
        self._types: dict[str, TypeResources] | None = None
        self._messages: dict[str, dict[str, Message]] = {t: {} for t in TYPE_ORDER}
        #: How many configs were set (0: none yet).
        self.generation = 0

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        method = StreamMethod(
            self._stream_aggregated_resources,
            discovery_pb2.DiscoveryRequest.FromString,
            lambda response: bytes(response.SerializeToString()),
        )
        server = GrpcServer(self.socket_path, {ADS_METHOD: method})
        await server.start()
        self._server = server
        log.info("xDS proxy listening on %s", self.socket_path)

    async def stop(self, grace: float | None = 0.5) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def _stream_aggregated_resources(
        self, requests: AsyncIterator[Any], call: ServerCall
    ) -> AsyncGenerator[Any, None]:
        stream = AdsStream(call.peer or "worker", log=log, label="xDS proxy")
        responses = stream.serve(
            requests,
            lambda request: self._on_request(stream, request),
            lambda: self._push(stream),
        )
        self._streams[stream.id] = stream
        try:
            async with contextlib.aclosing(responses):
                async for response in responses:
                    yield response
        finally:
            self._streams.pop(stream.id, None)
            log.info("xDS proxy: connection %s for node:%s closed", stream.id, stream.node_id)

    # --- the config ----------------------------------------------------------------------

    @property
    def has_config(self) -> bool:
        return self._types is not None

    def set_config(
        self,
        listeners: Mapping[str, Message],
        clusters: Mapping[str, Message],
        routes: Mapping[str, Message],
        endpoints: Mapping[str, Message],
    ) -> None:
        """Serve these resources (by name) from now on; every stream is told."""
        given = {
            LISTENER_TYPE: dict(listeners),
            CLUSTER_TYPE: dict(clusters),
            ROUTE_TYPE: dict(routes),
            ENDPOINT_TYPE: dict(endpoints),
        }
        self._messages = {t: dict(sorted(given[t].items())) for t in TYPE_ORDER}
        self._types = {
            t: TypeResources.from_messages(t, self._messages[t].values()) for t in TYPE_ORDER
        }
        self.generation += 1
        for stream in self._streams.values():
            stream.wake()

    def messages(self, type_url: str) -> dict[str, Message]:
        """The resources served of one type, by name (sorted)."""
        return dict(self._messages[type_url])

    def version(self, type_url: str) -> str:
        """The version of a whole type as served ("" before any config)."""
        return "" if self._types is None else self._types[type_url].version

    def status(self) -> list[StreamStatus]:
        """Every connected client, sorted by node id and peer."""
        statuses = [
            StreamStatus(
                node_id=s.node_id,
                peer=s.peer,
                acked={short_type(t): w.acked_version for t, w in s.watches.items()},
                nacks={short_type(t): w.nack for t, w in s.watches.items() if w.nack},
            )
            for s in self._streams.values()
        ]
        return sorted(statuses, key=lambda s: (s.node_id, s.peer))

    # --- the protocol --------------------------------------------------------------------

    def _on_request(self, stream: AdsStream, request: Any) -> list[Any]:
        if request.HasField("node") and request.node.id and not stream.node_id:
            stream.node_id = request.node.id
            log.info("xDS proxy: new connection %s for node:%s", stream.id, stream.node_id)
        type_url = request.type_url
        if type_url not in TYPE_ORDER:
            log.warning("xDS proxy: ignoring a request for type %s", type_url)
            return []
        watch, answer = stream.receive(request)
        if answer is Answer.STALE:
            return []
        names = None if type_url in WILDCARD_TYPES else frozenset(request.resource_names)
        first = answer is Answer.REQUEST
        if names == watch.names and not first:
            return []  # an ACK or NACK of the same subscription
        watch.names = names
        response = self._response(watch, type_url, force=True)
        return [] if response is None else [response]

    def _push(self, stream: AdsStream) -> list[Any]:
        responses = []
        for type_url in TYPE_ORDER:
            watch = stream.watches.get(type_url)
            if watch is None:
                continue
            response = self._response(watch, type_url, force=False)
            if response is not None:
                responses.append(response)
        return responses

    def _response(self, watch: Watch, type_url: str, *, force: bool) -> Any | None:
        if self._types is None:
            return None
        resources = self._types[type_url]
        if watch.names is None:
            names = list(resources.names())
            version = resources.version
        else:
            names = sorted(name for name in watch.names if name in resources.data)
            version = resources.version_of(names)
        sent = {name: resources.digests[name] for name in names}
        if not force and sent == watch.sent and version == watch.version:
            return None
        response = discovery_response(type_url, version, (resources.data[n] for n in names))
        watch.sent, watch.version, watch.nonce = sent, version, response.nonce
        return response
