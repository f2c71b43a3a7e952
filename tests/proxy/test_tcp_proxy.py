"""The TCP proxy filter: a bounded byte pipe, half-close, unknown and empty clusters."""

from __future__ import annotations

import asyncio

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from meshlet.pilot import _xds
from meshlet.proxy.runtime import StaticSecretProvider
from meshlet.proxy.streams import memory_stream_pair
from meshlet.proxy.tcp_proxy import PIPE_BUFFER, pipe
from tests.proxy.support import running_proxy


async def _read_all(stream) -> bytes:  # type: ignore[no-untyped-def]
    out = b""
    while data := await stream.read():
        out += data
    return out


async def test_pipe_copies_both_ways_and_half_closes() -> None:
    client, down = memory_stream_pair()
    up, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(pipe(down, up))
    client.write(b"x" * (3 * PIPE_BUFFER + 5))
    client.write_eof()
    assert await asyncio.wait_for(_read_all(server), 5) == b"x" * (3 * PIPE_BUFFER + 5)
    server.write(b"reply")
    server.write_eof()
    assert await asyncio.wait_for(_read_all(client), 5) == b"reply"
    await asyncio.wait_for(task, 5)
    assert down.closed and up.closed


def _listener(cluster: str) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(
        name="tcp", address=_xds.socket_address("127.0.0.1", 0),
        traffic_direction=core_base_pb2.OUTBOUND,
    )  # fmt: skip
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix=cluster, cluster=cluster)
    listener.filter_chains.add().filters.add(
        name="envoy.filters.network.tcp_proxy", typed_config=_xds.pack(tcp)
    )
    return listener


async def test_tcp_proxy_on_loopback_to_an_echo_server() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cluster = cluster_pb2.Cluster(name="outbound|8443||echo", type=cluster_pb2.Cluster.STATIC)
    cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.CopyFrom(
        _xds.socket_address("127.0.0.1", port)
    )
    try:
        async with running_proxy(_listener(cluster.name), [cluster], StaticSecretProvider()) as p:
            reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
            payload = b"abc" * 100_000
            writer.write(payload)
            writer.write_eof()
            received = await asyncio.wait_for(reader.read(-1), 10)
            assert received == payload.upper()
            writer.close()
    finally:
        server.close()


async def test_blackhole_and_unknown_clusters_close_the_connection() -> None:
    blackhole = cluster_pb2.Cluster(name="BlackHoleCluster", type=cluster_pb2.Cluster.STATIC)
    for name in ("BlackHoleCluster", "no-such-cluster"):
        async with running_proxy(_listener(name), [blackhole], StaticSecretProvider()) as p:
            reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
            assert await asyncio.wait_for(reader.read(-1), 5) == b""
            writer.close()
