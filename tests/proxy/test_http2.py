"""Downstream HTTP/2 through the connection manager, with an ``h2`` client in memory."""

from __future__ import annotations

import asyncio

import h2.config
import h2.connection
import h2.events

from meshlet.proxy.hcm import DownstreamInfo, HttpConnectionManager
from meshlet.proxy.streams import MemoryStream, memory_stream_pair
from tests.proxy.hcm_support import ScriptedUpstream, canned, manager_for

CLOSE = (
    b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
)


class Client:
    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.responses: dict[int, list[tuple[bytes, bytes]]] = {}
        self.bodies: dict[int, bytes] = {}
        self.ended: set[int] = set()
        self.resets: set[int] = set()

    def flush(self) -> None:
        self.stream.write(self.conn.data_to_send())

    def request(self, path: str, *, body: bytes = b"", method: str = "GET") -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https"),
                   (":authority", "httpbin.test.svc.cluster.local")]  # fmt: skip
        self.conn.send_headers(sid, headers, end_stream=not body)
        if body:
            self.conn.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    async def until_done(self, *ids: int) -> None:
        async with asyncio.timeout(5):
            while not all(i in self.ended or i in self.resets for i in ids):
                data = await self.stream.read()
                assert data, "server closed early"
                for event in self.conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        self.responses[event.stream_id] = list(event.headers)
                    elif isinstance(event, h2.events.DataReceived):
                        self.bodies[event.stream_id] = (
                            self.bodies.get(event.stream_id, b"") + event.data
                        )
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        self.ended.add(event.stream_id)
                    elif isinstance(event, h2.events.StreamReset):
                        self.resets.add(event.stream_id)
                self.flush()


async def _start(manager: HttpConnectionManager) -> tuple[Client, asyncio.Task[None]]:
    near, far = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(far))
    return Client(near), task


def _h2(upstream: ScriptedUpstream) -> HttpConnectionManager:
    info = DownstreamInfo(source=("10.0.0.1", 1), destination=("10.244.0.7", 9080), tls=True,
                          alpn="h2")  # fmt: skip
    return manager_for(upstream, downstream=info)


async def test_http2_response_headers_and_hop_by_hop() -> None:
    upstream = ScriptedUpstream(canned(CLOSE, close=True))
    client, task = await _start(_h2(upstream))
    first = client.request("/close")
    await client.until_done(first)
    second = client.request("/again")
    await client.until_done(second)
    for sid in (first, second):
        headers = client.responses[sid]
        assert headers[0] == (b":status", b"200")
        names = [name for name, _ in headers]
        assert b"connection" not in names and b"keep-alive" not in names
        assert (b"server", b"istio-envoy") in headers
        assert (b"x-envoy-decorator-operation", b"ingress-sidecar.test:9080/*") in headers
        assert client.bodies[sid] == b"ok"
    assert upstream.connections == 2
    assert upstream.requests[0].startswith(
        b"GET /close HTTP/1.1\r\nhost: httpbin.test.svc.cluster.local\r\n"
    )
    client.stream.close()
    await asyncio.wait_for(task, 5)


async def test_http2_request_body_and_large_response_respect_flow_control() -> None:
    big = b"x" * 300_000
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(big), big)
    upstream = ScriptedUpstream(canned(response))
    client, task = await _start(_h2(upstream))
    sid = client.request("/echo", body=b"payload", method="POST")
    await client.until_done(sid)
    assert client.bodies[sid] == big
    assert upstream.requests[0].endswith(
        b"transfer-encoding: chunked\r\n\r\n7\r\npayload\r\n0\r\n\r\n"
    )
    client.stream.close()
    await asyncio.wait_for(task, 5)


async def test_http2_concurrent_streams() -> None:
    upstream = ScriptedUpstream(canned(CLOSE.replace(b"Connection: close\r\n", b""), delay=0.05))
    client, task = await _start(_h2(upstream))
    ids = [client.request(f"/{n}") for n in range(20)]
    await client.until_done(*ids)
    assert all(client.bodies[i] == b"ok" for i in ids)
    assert len(upstream.requests) == 20
    client.stream.close()
    await asyncio.wait_for(task, 5)


async def test_http2_no_route_is_404_and_refused_upstream_is_503() -> None:
    upstream = ScriptedUpstream(canned(CLOSE), refuse=True)
    client, task = await _start(_h2(upstream))
    sid = client.request("/x")
    await client.until_done(sid)
    assert client.responses[sid][0] == (b":status", b"503")
    assert client.bodies[sid] == (
        b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    )
    client.stream.close()
    await asyncio.wait_for(task, 5)


async def test_http2_prior_knowledge_on_a_plaintext_connection() -> None:
    upstream = ScriptedUpstream(canned(CLOSE))
    client, task = await _start(manager_for(upstream))  # no ALPN: the preface decides
    sid = client.request("/status/200")
    await client.until_done(sid)
    assert client.responses[sid][0] == (b":status", b"200")
    client.stream.close()
    await asyncio.wait_for(task, 5)


async def test_http2_garbage_ends_the_connection_only() -> None:
    near, far = memory_stream_pair()
    manager = _h2(ScriptedUpstream(canned(CLOSE)))
    task = asyncio.get_running_loop().create_task(manager.serve(far))
    near.write(b"this is not HTTP/2 at all\r\n\r\n")
    async with asyncio.timeout(5):
        while await near.read():
            pass
        await task
