"""The agent's small gRPC server (``grpc_server``): real grpcio clients and ``grpc_stream``
calling it on a unix socket, and its HTTP/2 frames read by a raw ``h2`` client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from meshlet.proxy import grpc_server
from meshlet.proxy.grpc_server import GrpcServer, ServerCall, StreamMethod, encode_grpc_message
from meshlet.proxy.grpc_stream import GrpcError, Status, frame_message, open_stream
from meshlet.proxy.local_xds import ADS_METHOD, LocalXdsServer
from meshlet.xds.cache import CLUSTER_TYPE

ECHO = "/test.Echo/Stream"


class Recorder:
    """What the handlers saw: calls started and how each ended."""

    def __init__(self) -> None:
        self.started: list[ServerCall] = []
        self.ended: list[str] = []
        self.release = asyncio.Event()  # for the handler that waits before reading


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def echo_method(recorder: Recorder) -> StreamMethod:
    async def handler(requests: AsyncIterator[Any], call: ServerCall) -> AsyncGenerator[Any, None]:
        recorder.started.append(call)
        how = "returned"
        try:
            yield f"worker-id={dict(call.metadata).get('worker-id', '')}".encode()
            async for request in requests:
                if request == b"end":
                    return
                if request == b"fail":
                    raise GrpcError(Status.INVALID_ARGUMENT, "bad field: é 100%")
                if request == b"crash":
                    raise ValueError("a bug")
                if request == b"wait":
                    await recorder.release.wait()
                    continue
                if request.startswith(b"many "):
                    for index in range(int(request.split()[1])):
                        yield str(index).encode()
                    continue
                yield request[::-1]
        except asyncio.CancelledError:
            how = "cancelled"
            raise
        finally:
            recorder.ended.append(how)

    return StreamMethod(handler, bytes, bytes)


def _parse_digits(data: bytes) -> bytes:
    if not data.isdigit():
        raise ValueError("not digits")
    return data


@contextlib.asynccontextmanager
async def serving(path: Path, recorder: Recorder) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(
        str(path),
        {ECHO: echo_method(recorder), "/test.Echo/Digits": echo_method(recorder)},
    )
    server.methods["/test.Echo/Digits"] = StreamMethod(
        server.methods["/test.Echo/Digits"].handler, _parse_digits, bytes
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "grpc.sock"


# --- grpcio clients ------------------------------------------------------------------------


def _grpcio_stream(channel: grpc.aio.Channel, method: str = ECHO) -> Any:
    return channel.stream_stream(method)  # bytes in, bytes out


async def test_a_grpcio_client_streams_both_ways_with_metadata(socket_path: Path) -> None:
    recorder = Recorder()
    async with serving(socket_path, recorder):
        assert oct(socket_path.stat().st_mode & 0o777) == "0o660"
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            call = _grpcio_stream(channel)(metadata=(("worker-id", "3"),))
            assert await call.read() == b"worker-id=3"
            for message in (b"abc", b"", b"xyz" * 1000):
                await call.write(message)
                assert await call.read() == message[::-1]
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK
    assert recorder.ended == ["returned"]
    assert recorder.started[0].peer.startswith("unix:pid=")
    assert not socket_path.exists()


async def test_many_grpcio_calls_share_one_connection(socket_path: Path) -> None:
    recorder = Recorder()
    async with (
        serving(socket_path, recorder) as server,
        grpc.aio.insecure_channel(f"unix:{socket_path}") as channel,
    ):
        calls = [_grpcio_stream(channel)(metadata=(("worker-id", str(i)),)) for i in range(8)]
        heads = await asyncio.gather(*(call.read() for call in calls))
        assert sorted(heads) == sorted(f"worker-id={i}".encode() for i in range(8))
        assert server.connections() == 1

        async def talk(call: Any, index: int) -> None:
            for round_ in range(20):
                message = f"{index}:{round_}".encode()
                await call.write(message)
                assert await call.read() == message[::-1]
            await call.write(b"end")
            assert await call.code() == grpc.StatusCode.OK

        await asyncio.gather(*(talk(call, i) for i, call in enumerate(calls)))
    assert recorder.ended == ["returned"] * 8


async def test_messages_larger_than_the_windows_pass_both_ways(socket_path: Path) -> None:
    big = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MB: more than a 16 MB window
    recorder = Recorder()
    async with serving(socket_path, recorder):
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
        async with grpc.aio.insecure_channel(f"unix:{socket_path}", options=options) as channel:
            call = _grpcio_stream(channel)()
            await call.read()
            await call.write(big)
            assert await call.read() == big[::-1]
            await call.write(b"many 3000")
            assert [await call.read() for _ in range(3000)] == [
                str(i).encode() for i in range(3000)
            ]
            call.cancel()
        async with open_stream(str(socket_path), ECHO) as stream:
            await stream.receive()
            await stream.send(big)
            assert await stream.receive() == big[::-1]


async def test_statuses_reach_a_grpcio_client(socket_path: Path) -> None:
    recorder = Recorder()
    async with (
        serving(socket_path, recorder),
        grpc.aio.insecure_channel(f"unix:{socket_path}") as channel,
    ):
        call = _grpcio_stream(channel)()
        await call.read()
        await call.write(b"fail")
        assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert await call.details() == "bad field: é 100%"

        crashed = _grpcio_stream(channel)()
        await crashed.read()  # (grpcio gives the status once every message is read)
        await crashed.write(b"crash")
        assert await crashed.code() == grpc.StatusCode.UNKNOWN
        assert await crashed.details() == "unexpected error: a bug"

        unknown = _grpcio_stream(channel, "/test.Echo/Nothing")()
        assert await unknown.code() == grpc.StatusCode.UNIMPLEMENTED
        assert await unknown.details() == "Method not found: /test.Echo/Nothing"

        unparsable = _grpcio_stream(channel, "/test.Echo/Digits")()
        await unparsable.read()
        await unparsable.write(b"12")
        assert await unparsable.read() == b"21"
        await unparsable.write(b"x")
        assert await unparsable.code() == grpc.StatusCode.INTERNAL
        assert await unparsable.details() == "cannot parse the request: not digits"
    assert sorted(recorder.ended) == ["cancelled", "returned", "returned"]


async def test_a_stopping_server_ends_grpcio_calls_unavailable(socket_path: Path) -> None:
    recorder = Recorder()
    server = GrpcServer(str(socket_path), {ECHO: echo_method(recorder)})
    await server.start()
    async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
        call = _grpcio_stream(channel)()
        await call.read()
        await server.stop(0.1)
        assert await call.code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.ended == ["cancelled"]
    assert server.connections() == 0


async def test_the_local_xds_server_answers_a_grpcio_ads_client(socket_path: Path) -> None:
    server = LocalXdsServer(str(socket_path))
    await server.start()
    try:
        server.set_config({}, {"a": cluster_pb2.Cluster(name="a")}, {}, {})
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            call = stub.StreamAggregatedResources()
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    node=base_pb2.Node(id="sidecar~127.0.0.1~a.test~test.svc.cluster.local"),
                    type_url=CLUSTER_TYPE,
                )
            )
            response = await call.read()
            assert response.type_url == CLUSTER_TYPE
            assert [r.type_url for r in response.resources] == [CLUSTER_TYPE]
            assert response.version_info == server.version(CLUSTER_TYPE)
            await _until(lambda: [s.node_id for s in server.status()] != [])
            delta = stub.DeltaAggregatedResources()
            assert await delta.code() == grpc.StatusCode.UNIMPLEMENTED
            call.cancel()
        await _until(lambda: server.status() == [])
    finally:
        await server.stop(0)
    assert ADS_METHOD.endswith("/StreamAggregatedResources")


# --- grpc_stream clients -------------------------------------------------------------------


async def test_grpc_stream_clients_on_several_connections(socket_path: Path) -> None:
    recorder = Recorder()
    async with serving(socket_path, recorder) as server:
        async with contextlib.AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(
                    open_stream(str(socket_path), ECHO, (("worker-id", str(i)),))
                )
                for i in range(3)
            ]
            for index, stream in enumerate(streams):
                assert await stream.receive() == f"worker-id={index}".encode()
                await stream.send(b"hello")
                assert await stream.receive() == b"olleh"
            assert server.connections() == 3
            await streams[0].send(b"end")
            assert await streams[0].receive() is None
            await streams[1].send(b"fail")
            with pytest.raises(GrpcError) as failed:
                await streams[1].receive()
            assert (failed.value.status, failed.value.details) == (
                Status.INVALID_ARGUMENT,
                "bad field: é 100%",
            )
            streams[2].cancel()  # RST_STREAM(CANCEL): the handler is cancelled
            await _until(lambda: len(recorder.ended) == 3)
        assert sorted(recorder.ended) == ["cancelled", "returned", "returned"]
        await _until(lambda: server.connections() == 0)


async def test_a_stopping_server_ends_a_grpc_stream_call_unavailable(socket_path: Path) -> None:
    recorder = Recorder()
    server = GrpcServer(str(socket_path), {ECHO: echo_method(recorder)})
    await server.start()
    async with open_stream(str(socket_path), ECHO) as stream:
        await stream.receive()
        await server.stop(0)
        with pytest.raises(GrpcError) as ended:
            await stream.receive()
    assert ended.value.status is Status.UNAVAILABLE
    assert recorder.ended == ["cancelled"]


# --- the frames ----------------------------------------------------------------------------


class RawClient:
    """An HTTP/2 client on ``h2`` that shows the server's events as they come."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.events: list[h2.events.Event] = []

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    def start(self, path: str = ECHO, content_type: str = "application/grpc") -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream_id,
            [(":method", "POST"), (":scheme", "http"), (":path", path),
             (":authority", "x"), ("content-type", content_type), ("te", "trailers")],
        )  # fmt: skip
        self.flush()
        return stream_id

    async def wait_for(
        self, predicate: Callable[[h2.events.Event], bool], timeout: float = 5.0
    ) -> h2.events.Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if predicate(event):
                        self.events.remove(event)
                        return event
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("closed")
                self.events.extend(self.conn.receive_data(data))
                self.flush()

    async def quiet(self, seconds: float) -> list[h2.events.Event]:
        """The events that come within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await self.wait_for(lambda _event: False, seconds)
        return list(self.events)


@contextlib.asynccontextmanager
async def raw_client(path: Path) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    client = RawClient(reader, writer)
    client.conn.initiate_connection()
    client.flush()
    try:
        yield client
    finally:
        writer.close()


def _is(kind: type, stream_id: int | None = None) -> Callable[[h2.events.Event], bool]:
    return lambda e: isinstance(e, kind) and (stream_id is None or e.stream_id == stream_id)


def test_grpc_message_is_percent_encoded() -> None:
    assert encode_grpc_message("bad field: é 100%") == "bad field: %C3%A9 100%25"
    assert encode_grpc_message("tab\there") == "tab%09here"


async def test_the_settings_and_an_unknown_method_answered_trailers_only(
    socket_path: Path,
) -> None:
    async with serving(socket_path, Recorder()), raw_client(socket_path) as client:
        settings = await client.wait_for(_is(h2.events.RemoteSettingsChanged))
        assert isinstance(settings, h2.events.RemoteSettingsChanged)
        changed = {int(k): v.new_value for k, v in settings.changed_settings.items()}
        assert changed[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 100
        assert changed[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 16 * 1024 * 1024
        stream_id = client.start("/test.Echo/Nothing")
        response = await client.wait_for(_is(h2.events.ResponseReceived, stream_id))
        assert isinstance(response, h2.events.ResponseReceived)
        assert response.stream_ended is not None  # trailers-only
        assert list(response.headers) == [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "12"),
            ("grpc-message", "Method not found: /test.Echo/Nothing"),
        ]
        # the client had not finished sending: the stream is reset with NO_ERROR
        reset = await client.wait_for(_is(h2.events.StreamReset, stream_id))
        assert isinstance(reset, h2.events.StreamReset)
        assert reset.error_code == h2.errors.ErrorCodes.NO_ERROR


async def test_not_grpc_is_refused_with_an_http_status(socket_path: Path) -> None:
    async with serving(socket_path, Recorder()), raw_client(socket_path) as client:
        stream_id = client.start(content_type="application/json")
        response = await client.wait_for(_is(h2.events.ResponseReceived, stream_id))
        assert isinstance(response, h2.events.ResponseReceived)
        assert list(response.headers) == [(":status", "415")]


async def test_a_call_has_headers_messages_then_trailers(socket_path: Path) -> None:
    async with serving(socket_path, Recorder()), raw_client(socket_path) as client:
        stream_id = client.start()
        response = await client.wait_for(_is(h2.events.ResponseReceived, stream_id))
        assert isinstance(response, h2.events.ResponseReceived)
        assert response.stream_ended is None
        assert dict(response.headers)["content-type"] == "application/grpc"
        first = await client.wait_for(_is(h2.events.DataReceived, stream_id))
        assert isinstance(first, h2.events.DataReceived)
        assert first.data == frame_message(b"worker-id=")
        client.conn.acknowledge_received_data(first.flow_controlled_length, stream_id)
        # a message split over DATA frames, then the client's end of stream
        wire = frame_message(b"abcdef")
        client.conn.send_data(stream_id, wire[:3])
        client.conn.send_data(stream_id, wire[3:], end_stream=True)
        client.flush()
        echoed = await client.wait_for(_is(h2.events.DataReceived, stream_id))
        assert isinstance(echoed, h2.events.DataReceived)
        assert echoed.data == frame_message(b"fedcba")
        trailers = await client.wait_for(_is(h2.events.TrailersReceived, stream_id))
        assert isinstance(trailers, h2.events.TrailersReceived)
        assert list(trailers.headers) == [("grpc-status", "0")]
        assert not any(_is(h2.events.StreamReset)(e) for e in await client.quiet(0.2))


async def test_a_compressed_message_ends_the_call_internal(socket_path: Path) -> None:
    recorder = Recorder()
    async with serving(socket_path, recorder), raw_client(socket_path) as client:
        stream_id = client.start()
        await client.wait_for(_is(h2.events.DataReceived, stream_id))  # the handler runs
        client.conn.send_data(stream_id, b"\x01\x00\x00\x00\x01x")
        client.flush()
        trailers = await client.wait_for(_is(h2.events.TrailersReceived, stream_id))
        assert isinstance(trailers, h2.events.TrailersReceived)
        assert dict(trailers.headers) == {
            "grpc-status": str(int(Status.INTERNAL)),
            "grpc-message": "a compressed message, and none was offered",
        }
        await _until(lambda: recorder.ended == ["cancelled"])


async def test_a_request_refused_before_the_handler_runs_is_trailers_only(
    socket_path: Path,
) -> None:
    recorder = Recorder()
    async with serving(socket_path, recorder), raw_client(socket_path) as client:
        stream_id = client.start("/test.Echo/Digits")
        client.conn.send_data(stream_id, frame_message(b"x"), end_stream=True)
        client.flush()  # the headers and the bad request in one write
        response = await client.wait_for(_is(h2.events.ResponseReceived, stream_id))
        assert isinstance(response, h2.events.ResponseReceived)
        assert response.stream_ended is not None
        assert list(response.headers) == [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "13"),
            ("grpc-message", "cannot parse the request: not digits"),
        ]
    assert recorder.started == []


async def test_reset_and_goaway_cancel_the_handlers(socket_path: Path) -> None:
    recorder = Recorder()
    async with serving(socket_path, recorder) as server, raw_client(socket_path) as client:
        first, second, third = client.start(), client.start(), client.start()
        await _until(lambda: len(recorder.started) == 3)
        client.conn.reset_stream(first, h2.errors.ErrorCodes.CANCEL)
        client.flush()
        await _until(lambda: recorder.ended == ["cancelled"])
        # nothing is sent on a stream the client reset
        events = await client.quiet(0.2)
        assert not any(_is(h2.events.TrailersReceived, first)(e) for e in events)
        client.conn.close_connection()
        client.flush()
        await _until(lambda: recorder.ended == ["cancelled"] * 3)
        await _until(lambda: server.connections() == 0)
        assert (second, third) == (3, 5)


async def test_a_lost_connection_cancels_its_handlers(socket_path: Path) -> None:
    recorder = Recorder()
    async with serving(socket_path, recorder) as server:
        async with raw_client(socket_path) as client:
            client.start()
            client.start()
            await _until(lambda: len(recorder.started) == 2)
        await _until(lambda: recorder.ended == ["cancelled"] * 2)
        await _until(lambda: server.connections() == 0)


async def test_a_stopping_server_refuses_new_streams(socket_path: Path) -> None:
    recorder = Recorder()
    server = GrpcServer(str(socket_path), {ECHO: echo_method(recorder)})
    await server.start()
    async with raw_client(socket_path) as client:
        client.start()
        await _until(lambda: len(recorder.started) == 1)
        stopping = asyncio.get_running_loop().create_task(server.stop(1.0))
        await asyncio.sleep(0.1)
        late = client.start()
        reset = await client.wait_for(_is(h2.events.StreamReset, late))
        assert isinstance(reset, h2.events.StreamReset)
        assert reset.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
        trailers = await client.wait_for(_is(h2.events.TrailersReceived, 1))
        assert isinstance(trailers, h2.events.TrailersReceived)
        assert dict(trailers.headers) == {
            "grpc-status": str(int(Status.UNAVAILABLE)),
            "grpc-message": "the server is stopping",
        }
        goaway = await client.wait_for(_is(h2.events.ConnectionTerminated))
        assert isinstance(goaway, h2.events.ConnectionTerminated)
        assert goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
        await stopping
    assert len(recorder.started) == 1


async def test_a_handler_that_does_not_read_gets_no_more_window(
    socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, buffered = 64 * 1024, 16 * 1024
    monkeypatch.setattr(grpc_server, "_WINDOW", window)
    monkeypatch.setattr(grpc_server, "_BUFFERED", buffered)
    recorder = Recorder()
    async with serving(socket_path, recorder), raw_client(socket_path) as client:
        await client.wait_for(_is(h2.events.RemoteSettingsChanged))
        stream_id = client.start()
        client.conn.send_data(stream_id, frame_message(b"wait"))
        client.flush()
        await _until(lambda: len(recorder.started) == 1)
        message = frame_message(b"m" * 1000)
        sent = 0
        while client.conn.local_flow_control_window(stream_id) >= len(message):
            client.conn.send_data(stream_id, message)
            sent += 1
        client.flush()
        assert sent * len(message) > window - 2 * len(message)
        # unread requests above the limit: the stream's window stays closed
        await client.quiet(0.3)
        assert client.conn.local_flow_control_window(stream_id) < len(message)
        # the handler reads them: the window opens again and every echo comes back
        recorder.release.set()
        await _until_window(client, stream_id, len(message))
        echoed = 0
        while echoed < sent * 1000:
            event = await client.wait_for(_is(h2.events.DataReceived, stream_id))
            assert isinstance(event, h2.events.DataReceived)
            client.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            client.flush()
            echoed += event.data.count(b"m")
        assert echoed == sent * 1000


async def _until_window(client: RawClient, stream_id: int, size: int) -> None:
    async with asyncio.timeout(5):
        while client.conn.local_flow_control_window(stream_id) < size:
            with contextlib.suppress(TimeoutError):
                await client.wait_for(lambda _event: False, 0.05)
