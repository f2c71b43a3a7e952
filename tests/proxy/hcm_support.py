"""In-memory harness for the connection manager: a scripted upstream behind memory streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshlet.pilot import _xds
from meshlet.proxy.hcm import DownstreamInfo, HttpConnectionManager
from meshlet.proxy.routing import HcmSettings, RouteTable
from meshlet.proxy.runtime import ProxyConfig, StaticSecretProvider
from meshlet.proxy.streams import ByteStream, MemoryStream, memory_stream_pair
from meshlet.proxy.tls import TlsContextCache
from meshlet.proxy.upstream import Endpoint, UpstreamFailure, UpstreamManager

DATE = b"Mon, 24 Oct 2022 09:05:31 GMT"
REQUEST_ID = "00000000-0000-4000-8000-000000000000"
CLUSTER = "inbound|9080||"

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Handler = Callable[[bytes, MemoryStream], Awaitable[None]]


def route_config(*, timeout: float | None = 0.0) -> route_pb2.RouteConfiguration:
    route = route_components_pb2.Route(name="default")
    route.match.prefix = "/"
    route.route.cluster = CLUSTER
    if timeout is not None:
        route.route.timeout.FromNanoseconds(int(timeout * 1e9))
    route.decorator.operation = "ingress-sidecar.test:9080/*"
    host = route_components_pb2.VirtualHost(name="inbound|http|9080", domains=["*"])
    host.routes.append(route)
    return route_pb2.RouteConfiguration(name="inbound|9080||", virtual_hosts=[host])


def inbound_hcm() -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix="inbound_0.0.0.0_9080",
        server_name="istio-envoy",
        forward_client_cert_details=hcm_pb2.HttpConnectionManager.APPEND_FORWARD,
    )
    hcm.tracing.SetInParent()
    details = hcm.set_current_client_cert_details
    details.subject.value = True
    details.uri = True
    details.dns = True
    return hcm


def static_cluster(port: int = 80) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=CLUSTER, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.FromSeconds(1)
    endpoint = cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint
    endpoint.address.CopyFrom(_xds.socket_address("10.244.0.7", port))
    return cluster


@dataclass
class ScriptedUpstream:
    """Answers each request with ``handler(request_bytes, stream)``; records what came."""

    handler: Handler
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    refuse: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def open(self, endpoint: Endpoint, source: str | None, timeout: float) -> ByteStream:
        if self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        self.connections += 1
        near, far = memory_stream_pair()
        task = asyncio.get_running_loop().create_task(self._serve(far))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return near

    async def _serve(self, stream: MemoryStream) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = await stream.read()
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            request = head + b"\r\n\r\n"
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                if name.lower() == b"transfer-encoding":
                    while not buffer.endswith(b"0\r\n\r\n"):
                        if not (data := await stream.read()):
                            return
                        buffer += data
                    length = len(buffer)
            while len(buffer) < length:
                if not (data := await stream.read()):
                    return
                buffer += data
            request += buffer[:length]
            buffer = buffer[length:]
            self.requests.append(request)
            await self.handler(request, stream)
            if stream.closed:
                return


def canned(response: bytes, *, close: bool = False, delay: float = 0.0) -> Handler:
    async def handler(request: bytes, stream: MemoryStream) -> None:
        if delay:
            await asyncio.sleep(delay)
        stream.write(response)
        if close:
            stream.close()

    return handler


def shared_upstreams(upstream: ScriptedUpstream) -> UpstreamManager:
    """One pool set for several connections (circuit breakers are per cluster)."""
    return UpstreamManager(TlsContextCache(StaticSecretProvider()), open_stream=upstream.open)


def manager_for(
    upstream: ScriptedUpstream,
    *,
    hcm: hcm_pb2.HttpConnectionManager | None = None,
    routes: route_pb2.RouteConfiguration | None = None,
    clusters: list[cluster_pb2.Cluster] | None = None,
    direction: int = core_base_pb2.INBOUND,
    downstream: DownstreamInfo | None = None,
    upstreams: UpstreamManager | None = None,
) -> HttpConnectionManager:
    settings = HcmSettings.from_proto(hcm or inbound_hcm(), direction)
    config = ProxyConfig.of(clusters=[static_cluster()] if clusters is None else clusters)
    if upstreams is None:
        upstreams = UpstreamManager(
            TlsContextCache(StaticSecretProvider()), open_stream=upstream.open
        )
    return HttpConnectionManager(
        settings,
        RouteTable(routes or route_config()),
        config,
        upstreams,
        downstream or DownstreamInfo(source=("10.0.0.1", 5555), destination=("10.244.0.7", 9080)),
        request_id=lambda: REQUEST_ID,
        date=lambda: DATE,
    )


async def exchange(manager: HttpConnectionManager, data: bytes, *, timeout: float = 5) -> bytes:
    """Send ``data`` then end the client's half; everything the proxy wrote back."""
    client, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    client.write(data)
    client.write_eof()
    out = b""
    async with asyncio.timeout(timeout):
        while True:
            piece = await client.read()
            if not piece:
                break
            out += piece
        await task
    return out


__all__ = [
    "CLUSTER",
    "DATE",
    "OK_RESPONSE",
    "REQUEST_ID",
    "ScriptedUpstream",
    "UpstreamFailure",
    "canned",
    "exchange",
    "inbound_hcm",
    "manager_for",
    "route_config",
    "shared_upstreams",
    "static_cluster",
]
