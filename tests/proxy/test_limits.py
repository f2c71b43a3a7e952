"""Envoy's edge limits, each with the client that would abuse it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket

import h2.config
import h2.connection
import h2.events
import h2.settings
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshlet.pilot import _xds
from meshlet.proxy.http2 import MAX_CONCURRENT_STREAMS
from meshlet.proxy.limits import EDGE_BUFFER_LIMIT, ConnectionGate, ListenerLimits
from meshlet.proxy.routing import HcmSettings
from meshlet.proxy.runtime import ListenerServer, ProxyState, StaticSecretProvider
from meshlet.proxy.streams import MemoryStream, memory_stream_pair, wrap_socket
from tests.proxy.hcm_support import (
    OK_RESPONSE,
    ScriptedUpstream,
    canned,
    exchange,
    inbound_hcm,
    manager_for,
    route_config,
    static_cluster,
)


def _hcm(**timeouts: float) -> hcm_pb2.HttpConnectionManager:
    hcm = inbound_hcm()
    for name, seconds in timeouts.items():
        target = hcm.common_http_protocol_options if name == "idle_timeout" else hcm
        getattr(target, name).FromNanoseconds(int(seconds * 1e9))
    return hcm


async def _read_all(client: MemoryStream) -> bytes:
    out = b""
    while piece := await client.read():
        out += piece
    return out


# --- heads ------------------------------------------------------------------------------


async def test_request_headers_over_60_kib_get_431() -> None:
    manager = manager_for(ScriptedUpstream(canned(OK_RESPONSE)))
    big = b"GET / HTTP/1.1\r\nHost: a\r\nx-big: " + b"a" * (60 * 1024) + b"\r\n\r\n"
    out = await exchange(manager, big)
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close\r\n" in out


async def test_a_head_just_under_the_limit_is_served() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager = manager_for(upstream)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nx-big: "
    filler = 60 * 1024 - len(head) - len(b"\r\n\r\n")
    out = await exchange(manager, head + b"a" * filler + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_more_than_100_headers_get_431() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager = manager_for(upstream)
    hundred = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"x-h: 1\r\n" * 99 + b"\r\n"
    assert (await exchange(manager, hundred)).startswith(b"HTTP/1.1 200 OK\r\n")
    many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"x-h: 1\r\n" * 100 + b"\r\n"
    out = await exchange(manager_for(upstream), many)
    assert out.startswith(b"HTTP/1.1 431 ")


def test_timeouts_default_to_envoy_edge_values_and_zero_turns_them_off() -> None:
    settings = HcmSettings.from_proto(inbound_hcm(), 0)
    assert (settings.idle_timeout, settings.stream_idle_timeout) == (3600.0, 300.0)
    assert settings.request_headers_timeout == 10.0
    off = HcmSettings.from_proto(
        _hcm(idle_timeout=0, stream_idle_timeout=0, request_headers_timeout=0), 0
    )
    assert (off.idle_timeout, off.stream_idle_timeout, off.request_headers_timeout) == (
        None,
        None,
        None,
    )


# --- timeouts ----------------------------------------------------------------------------


async def test_a_client_that_never_finishes_its_head_is_cut_off_with_408() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager = manager_for(upstream, hcm=_hcm(request_headers_timeout=0.05))
    client, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    client.write(b"GET / HTTP/1.1\r\nHost: a\r\nx-slow: ")  # and nothing more
    async with asyncio.timeout(5):
        out = await _read_all(client)
        await task
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in out
    assert upstream.requests == []


async def test_an_idle_connection_is_closed() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager = manager_for(upstream, hcm=_hcm(idle_timeout=0.05))
    client, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    client.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # one request, then silence
    async with asyncio.timeout(5):
        out = await _read_all(client)
        await task
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.count(b"HTTP/1.1") == 1  # closed without another word
    assert server.closed


async def test_a_stalled_upstream_hits_the_stream_idle_timeout() -> None:
    async def never(request: bytes, stream: MemoryStream) -> None:
        await asyncio.sleep(3600)

    upstream = ScriptedUpstream(never)
    manager = manager_for(
        upstream, hcm=_hcm(stream_idle_timeout=0.05), routes=route_config(timeout=0.0)
    )
    async with asyncio.timeout(5):
        out = await exchange(manager, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert out.endswith(b"stream timeout")
    for task in upstream.tasks:
        task.cancel()


async def test_a_timeout_moved_later_fires_at_its_new_time_not_the_old_one() -> None:
    # The head's short timeout (0.05 s) is armed first; once the head is in, the stream
    # idle timeout (0.3 s) applies: the stalled upstream is answered 408 only then.
    async def never(request: bytes, stream: MemoryStream) -> None:
        await asyncio.sleep(3600)

    upstream = ScriptedUpstream(never)
    manager = manager_for(
        upstream,
        hcm=_hcm(request_headers_timeout=0.05, stream_idle_timeout=0.3),
        routes=route_config(timeout=0.0),
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(5):
        out = await exchange(manager, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert loop.time() - started >= 0.299  # uvloop's clock counts whole milliseconds
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert out.endswith(b"stream timeout")
    for task in upstream.tasks:
        task.cancel()


async def test_each_request_of_a_connection_gets_its_own_route_timeout() -> None:
    calls = 0

    async def slow_second(request: bytes, stream: MemoryStream) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            await asyncio.sleep(0.25)  # over the route timeout counted from its own start
        stream.write(OK_RESPONSE)

    upstream = ScriptedUpstream(slow_second)
    manager = manager_for(upstream, routes=route_config(timeout=0.15))
    client, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    async with asyncio.timeout(5):
        client.write(request)
        await asyncio.sleep(0.1)  # the first is answered at once
        client.write(request)
        await asyncio.sleep(0.3)
        client.write(request + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        out = await _read_all(client)
        await task
    statuses = re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", out)
    assert statuses == [b"200", b"504", b"200", b"200"]


async def test_a_body_that_stops_midway_resets_the_stream() -> None:
    async def half(request: bytes, stream: MemoryStream) -> None:
        stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await asyncio.sleep(3600)

    upstream = ScriptedUpstream(half)
    manager = manager_for(upstream, hcm=_hcm(stream_idle_timeout=0.05))
    client, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    client.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    async with asyncio.timeout(5):
        out = await _read_all(client)
        await task
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"x" * 10)  # what came is passed on; then the stream is reset
    assert server.reset
    for pending in upstream.tasks:
        pending.cancel()


# --- buffers ----------------------------------------------------------------------------


async def test_a_client_that_never_reads_does_not_grow_the_proxy() -> None:
    """A 32 MiB response to a client that reads nothing: the proxy holds its 32 KiB per
    direction and stops reading from the upstream, which is left holding the rest."""
    total = 32 * 1024 * 1024
    sent: list[MemoryStream] = []

    async def huge(request: bytes, stream: MemoryStream) -> None:
        stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        stream.write(b"x" * total)
        sent.append(stream)

    upstream = ScriptedUpstream(huge)
    manager = manager_for(upstream)
    listening = socket.create_server(("127.0.0.1", 0))
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(listening.getsockname())
    accepted, _ = listening.accept()
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listening.close()
    stream = await wrap_socket(accepted)
    task = asyncio.get_running_loop().create_task(manager.serve(stream))
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        async with asyncio.timeout(10):
            while not sent:
                await asyncio.sleep(0.01)
            upstream_end = sent[0].peer
            assert upstream_end is not None
            left = -1
            while left != len(upstream_end._buffer):  # wait until the proxy stops reading
                left = len(upstream_end._buffer)
                await asyncio.sleep(0.1)
        transport = stream._transport
        assert transport.get_write_buffer_size() <= 2 * EDGE_BUFFER_LIMIT
        assert left > total - 8 * 1024 * 1024  # the upstream still holds nearly all of it
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        client.close()
        for pending in upstream.tasks:
            pending.cancel()


def test_listener_buffer_limit_comes_from_the_listener() -> None:
    listener = listener_pb2.Listener(name="l")
    assert ListenerLimits.of(listener).buffer_limit == 32 * 1024
    listener.per_connection_buffer_limit_bytes.value = 16 * 1024
    assert ListenerLimits.of(listener, max_connections=7) == ListenerLimits(16 * 1024, 7)


# --- HTTP/2 ----------------------------------------------------------------------------


async def test_http2_advertises_100_concurrent_streams_and_serves_them() -> None:
    release = asyncio.Event()

    async def slow(request: bytes, stream: MemoryStream) -> None:
        await release.wait()
        stream.write(OK_RESPONSE)

    upstream = ScriptedUpstream(slow)
    manager = manager_for(upstream)
    client, server = memory_stream_pair()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for index in range(MAX_CONCURRENT_STREAMS):
        conn.send_headers(
            1 + 2 * index,
            [(":method", "GET"), (":path", f"/{index}"), (":scheme", "https"),
             (":authority", "a")],
            end_stream=True,
        )  # fmt: skip
    client.write(conn.data_to_send())
    manager.downstream = type(manager.downstream)(
        source=manager.downstream.source, destination=manager.downstream.destination, alpn="h2"
    )
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    done: set[int] = set()
    advertised = None
    async with asyncio.timeout(10):
        while len(upstream.requests) < MAX_CONCURRENT_STREAMS:
            await asyncio.sleep(0.01)
        release.set()
        while len(done) < MAX_CONCURRENT_STREAMS:
            data = await client.read()
            assert data
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    changed = event.changed_settings.get(
                        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
                    )
                    if changed is not None:
                        advertised = changed.new_value
                if isinstance(event, h2.events.StreamEnded):
                    done.add(event.stream_id)
            client.write(conn.data_to_send())
        client.close()
        await task
    assert advertised == 100


async def test_http2_stream_101_is_refused() -> None:
    async def never(request: bytes, stream: MemoryStream) -> None:
        await asyncio.sleep(3600)

    upstream = ScriptedUpstream(never)
    manager = manager_for(upstream)
    manager.downstream = type(manager.downstream)(
        source=manager.downstream.source, destination=manager.downstream.destination, alpn="h2"
    )
    client, server = memory_stream_pair()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.local_settings.max_concurrent_streams = 1000
    client.write(conn.data_to_send())
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    # a client that ignores the advertised limit
    conn.remote_settings.max_concurrent_streams = 1000
    conn.remote_settings.acknowledge()
    for index in range(MAX_CONCURRENT_STREAMS + 1):
        conn.send_headers(
            1 + 2 * index,
            [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")],
            end_stream=True,
        )
    client.write(conn.data_to_send())
    async with asyncio.timeout(10):
        received = b""
        while piece := await client.read():
            received += piece
        await task
    assert len(upstream.requests) <= MAX_CONCURRENT_STREAMS
    refused = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    refused.initiate_connection()
    events = []
    with contextlib.suppress(h2.exceptions.ProtocolError):
        events = refused.receive_data(received)
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    for pending in upstream.tasks:
        pending.cancel()


# --- connections per listener ----------------------------------------------------------


def _plaintext_listener(port: int) -> listener_pb2.Listener:
    hcm = inbound_hcm()
    hcm.route_config.CopyFrom(route_config())
    listener = listener_pb2.Listener(name=f"127.0.0.1_{port}")
    listener.address.CopyFrom(_xds.socket_address("127.0.0.1", port))
    chain = listener.filter_chains.add()
    network = chain.filters.add(name="envoy.filters.network.http_connection_manager")
    network.typed_config.Pack(hcm)
    return listener


def test_connection_gate_counts_places() -> None:
    gate = ConnectionGate(2)
    assert gate.try_enter() and gate.try_enter()
    assert not gate.try_enter()
    gate.leave()
    assert gate.try_enter()


async def test_the_listener_closes_connections_over_its_limit() -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    state = ProxyState(StaticSecretProvider(), clusters=[static_cluster()])
    server = ListenerServer(
        _plaintext_listener(port), state, limits=ListenerLimits(max_connections=2)
    )
    serving = asyncio.get_running_loop().create_task(server.serve(listening))
    streams = []
    try:
        async with asyncio.timeout(10):
            for _ in range(2):
                streams.append(await asyncio.open_connection("127.0.0.1", port))
            while server.gate.active < 2:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                data = await reader.read()
            except ConnectionResetError:
                data = b""
            assert data == b""
            writer.close()
            assert server.stats["downstream_cx_overflow"] == 1
            # a place frees when a connection ends
            streams.pop()[1].close()
            while server.gate.active > 1:
                await asyncio.sleep(0.01)
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            streams.append((_reader, writer))
            while server.gate.active < 2:
                await asyncio.sleep(0.01)
            assert server.stats["downstream_cx_overflow"] == 1
    finally:
        for _, writer in streams:
            writer.close()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        listening.close()


async def test_an_idle_http2_connection_gets_goaway() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager = manager_for(upstream, hcm=_hcm(idle_timeout=0.05))
    manager.downstream = type(manager.downstream)(
        source=manager.downstream.source, destination=manager.downstream.destination, alpn="h2"
    )
    client, server = memory_stream_pair()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    client.write(conn.data_to_send())
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    async with asyncio.timeout(5):
        received = await _read_all(client)
        await task
    events = conn.receive_data(received)
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
