"""The worker's small gRPC client (``grpc_stream``): its bytes, and calls to real grpcio
servers on unix sockets — a scripted one, the agent's local xDS and the agent's SDS."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.listener.v3 import listener_pb2

from meshlet.agent.cache import SecretCache
from meshlet.agent.sds import SDSServer
from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.endpoints import build_endpoints
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from meshlet.proxy.config import CLUSTER_TYPE, LISTENER_TYPE
from meshlet.proxy.grpc_stream import (
    GrpcError,
    MessageDecoder,
    Status,
    frame_message,
    open_stream,
    status_of,
)
from meshlet.proxy.local_xds import LocalXdsServer
from meshlet.proxy.sds_client import SdsClient
from meshlet.proxy.xds_client import Backoff, XdsClient, unix_socket_connector
from tests.pilot.scenario import scenario_snapshot, sleep_proxy

# --- the bytes -----------------------------------------------------------------------------


def test_a_message_is_a_flag_a_big_endian_length_and_its_bytes() -> None:
    assert frame_message(b"") == b"\x00\x00\x00\x00\x00"
    assert frame_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert frame_message(b"x" * 300)[:5] == b"\x00\x00\x00\x01\x2c"


def test_the_decoder_cuts_messages_wherever_the_frames_split_them() -> None:
    wire = frame_message(b"first") + frame_message(b"") + frame_message(b"third" * 100)
    for size in (1, 2, 5, 7, len(wire)):
        decoder = MessageDecoder()
        got: list[bytes] = []
        for start in range(0, len(wire), size):
            got.extend(decoder.feed(wire[start : start + size]))
        assert got == [b"first", b"", b"third" * 100]
        assert decoder.pending == 0
    decoder = MessageDecoder()
    assert decoder.feed(wire[:8]) == []
    assert decoder.pending == 8


def test_the_decoder_refuses_compressed_and_oversized_messages() -> None:
    with pytest.raises(GrpcError) as compressed:
        MessageDecoder().feed(b"\x01\x00\x00\x00\x01x")
    assert compressed.value.status is Status.INTERNAL
    with pytest.raises(GrpcError) as large:
        MessageDecoder(max_message=10).feed(b"\x00\x00\x00\x00\x0b")
    assert large.value.status is Status.RESOURCE_EXHAUSTED


def test_the_status_is_read_from_trailers_and_its_message_percent_decoded() -> None:
    assert status_of({}) is None
    assert status_of({"grpc-status": "0"}) == (Status.OK, "")
    assert status_of({"grpc-status": "3", "grpc-message": "bad%20field%3A%20%C3%A9"}) == (
        Status.INVALID_ARGUMENT,
        "bad field: é",
    )
    assert status_of({"grpc-status": "x"}) == (Status.UNKNOWN, "invalid grpc-status 'x'")
    assert status_of({"grpc-status": "99"}) == (Status.UNKNOWN, "invalid grpc-status '99'")


def test_status_codes_are_grpcs() -> None:
    for code in grpc.StatusCode:
        assert Status(code.value[0]).name == code.name


# --- against a scripted grpcio server ------------------------------------------------------

Handler = Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext], AsyncIterator[bytes]]


@contextlib.asynccontextmanager
async def grpcio_server(path: Path, handler: Handler) -> AsyncIterator[grpc.aio.Server]:
    """A grpcio server on a unix socket whose one method ``/test.Echo/Stream`` streams raw
    bytes both ways through ``handler``."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
    )
    method = grpc.stream_stream_rpc_method_handler(handler)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Echo", {"Stream": method}),)
    )
    assert server.add_insecure_port(f"unix:{path}") != 0
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


async def echo(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    metadata = dict(context.invocation_metadata())
    yield f"worker-id={metadata.get('worker-id', '')}".encode()
    async for request in requests:
        if request == b"end":
            return
        if request == b"fail":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad field: é 100%")
        yield request[::-1]


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "grpc.sock"


async def test_messages_go_both_ways_and_an_ok_end_is_none(socket_path: Path) -> None:
    async with (
        grpcio_server(socket_path, echo),
        open_stream(str(socket_path), "/test.Echo/Stream", [("worker-id", "7")]) as stream,
    ):
        assert await stream.receive() == b"worker-id=7"
        await stream.send(b"abc")
        assert await stream.receive() == b"cba"
        await stream.send(b"")
        assert await stream.receive() == b""
        await stream.send(b"end")
        assert await stream.receive() is None
        assert await stream.receive() is None  # and stays ended


async def test_large_messages_pass_the_flow_control_windows(socket_path: Path) -> None:
    big = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB: more than any window
    async with (
        grpcio_server(socket_path, echo),
        open_stream(str(socket_path), "/test.Echo/Stream") as stream,
    ):
        await stream.receive()
        for _ in range(2):
            await stream.send(big)
            assert await stream.receive() == big[::-1]


async def test_an_error_status_and_its_message_end_the_call(socket_path: Path) -> None:
    async with (
        grpcio_server(socket_path, echo),
        open_stream(str(socket_path), "/test.Echo/Stream") as stream,
    ):
        await stream.receive()
        await stream.send(b"fail")
        with pytest.raises(GrpcError) as failed:
            await stream.receive()
        assert failed.value.status is Status.INVALID_ARGUMENT
        assert failed.value.details == "bad field: é 100%"
        with pytest.raises(GrpcError):
            await stream.send(b"more")


async def test_a_refusal_before_any_message_is_a_trailers_only_status(socket_path: Path) -> None:
    async def refuse(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
        yield b""  # never reached: makes this a generator

    async with (
        grpcio_server(socket_path, refuse),
        open_stream(str(socket_path), "/test.Echo/Stream") as stream,
    ):
        with pytest.raises(GrpcError) as refused:
            await stream.receive()
        assert (refused.value.status, refused.value.details) == (
            Status.PERMISSION_DENIED,
            "not yours",
        )


async def test_an_unknown_method_is_unimplemented(socket_path: Path) -> None:
    async with (
        grpcio_server(socket_path, echo),
        open_stream(str(socket_path), "/test.Echo/Nothing") as stream,
    ):
        with pytest.raises(GrpcError) as missing:
            await stream.receive()
        assert missing.value.status is Status.UNIMPLEMENTED


async def test_no_server_is_unavailable(socket_path: Path) -> None:
    with pytest.raises(GrpcError) as failed:
        async with open_stream(str(socket_path), "/test.Echo/Stream"):
            pass
    assert failed.value.status is Status.UNAVAILABLE


async def test_a_server_that_stops_ends_the_call_unavailable(socket_path: Path) -> None:
    async with (
        grpcio_server(socket_path, echo) as server,
        open_stream(str(socket_path), "/test.Echo/Stream") as stream,
    ):
        await stream.receive()
        await server.stop(0)
        with pytest.raises(GrpcError) as ended:
            async with asyncio.timeout(5):
                await stream.receive()
        assert ended.value.status is Status.UNAVAILABLE


async def test_cancel_ends_a_pending_receive(socket_path: Path) -> None:
    async with (
        grpcio_server(socket_path, echo),
        open_stream(str(socket_path), "/test.Echo/Stream") as stream,
    ):
        await stream.receive()
        waiting = asyncio.get_running_loop().create_task(stream.receive())
        await asyncio.sleep(0.05)
        stream.cancel()
        with pytest.raises(GrpcError) as cancelled:
            await waiting
        assert cancelled.value.status is Status.CANCELLED


# --- the clients against the agent's own servers -------------------------------------------


def _scenario() -> tuple[str, list[Any], list[Any], dict[str, Any], dict[str, Any]]:
    snapshot = scenario_snapshot()
    proxy = sleep_proxy(snapshot)
    routes = {r.name: r for r in build_routes(proxy, snapshot)}
    endpoints = {e.cluster_name: e for e in build_endpoints(proxy, snapshot)}
    return (
        proxy.id,
        build_listeners(proxy, snapshot),
        build_clusters(proxy, snapshot),
        routes,
        endpoints,
    )


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_the_ads_client_over_the_unix_socket_acks_nacks_and_reconnects(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # longer than a socket address allows
    deep.mkdir(parents=True)
    path = str(deep / "XDS")
    node, listeners, clusters, routes, endpoints = _scenario()
    received: list[dict[str, Any]] = []
    server = LocalXdsServer(path)
    await server.start()
    server.set_config(
        {x.name: x for x in listeners}, {c.name: c for c in clusters}, routes, endpoints
    )
    client = XdsClient(
        f"unix:{path}",
        node,
        lambda listeners, *_: received.append(listeners),
        metadata={"WORKER_ID": "0"},
        backoff=Backoff(initial=0.05, maximum=0.2, jitter=0.0),
        connect=unix_socket_connector(path),
    )
    task = asyncio.get_running_loop().create_task(client.run())
    try:
        await _until(lambda: client.updates == 1)
        assert client.version(LISTENER_TYPE) == server.version(LISTENER_TYPE)
        await _until(
            lambda: [s.acked.get("LDS") for s in server.status()] == [client.version(LISTENER_TYPE)]
        )
        assert [s.node_id for s in server.status()] == [node]

        # A listener the proxy cannot serve: NACKed naming the field, the last good kept.
        bad = listener_pb2.Listener()
        bad.CopyFrom(listeners[0])
        bad.per_connection_buffer_limit_bytes.value = 1024
        good_version = client.version(LISTENER_TYPE)
        server.set_config({bad.name: bad}, {c.name: c for c in clusters}, routes, endpoints)
        await _until(lambda: client.nacks == 1)
        assert "per_connection_buffer_limit_bytes: unsupported field" in client.last_nack
        await _until(lambda: any(s.nacks.get("LDS") for s in server.status()))
        assert client.version(LISTENER_TYPE) == good_version
        assert client.updates == 1

        # The agent's server goes away and comes back: the client connects again.
        await server.stop(0)
        await _until(lambda: not client.connected)
        server = LocalXdsServer(path)
        await server.start()
        server.set_config(
            {x.name: x for x in listeners}, {c.name: c for c in clusters}, routes, endpoints
        )
        await _until(lambda: client.connected and len(server.status()) == 1)
        assert client.version(CLUSTER_TYPE) == server.version(CLUSTER_TYPE)
    finally:
        await client.stop()
        async with asyncio.timeout(5):
            await task
        await server.stop(0)


def _self_signed(folder: Path, name: str) -> Path:
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", "2", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:P-256", "-subj", f"/CN={name}",
         "-keyout", f"{name}.key", "-out", f"{name}.crt"],
        cwd=folder, check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return folder / f"{name}.crt"


async def test_the_sds_client_gets_and_follows_a_file_secret(tmp_path: Path) -> None:
    ca = _self_signed(tmp_path, "ca")
    name = f"file-root:{ca}"
    cache = SecretCache(file_poll_interval=0.2)
    server = SDSServer(cache, str(tmp_path / "run" / "socket"))
    await server.start()
    client = SdsClient(server.socket_path, "sidecar~127.0.0.1~test.test~test.svc.cluster.local")
    changes: list[str] = []
    client.subscribe(changes.append)
    task = asyncio.get_running_loop().create_task(client.run())
    try:
        client.want([name, "file-root:/nonexistent/ca.crt"])
        await _until(lambda: client.get(name) is not None)
        secret = client.get(name)
        assert secret is not None
        assert secret.validation_context.trusted_ca.inline_bytes == ca.read_bytes()
        assert client.get("file-root:/nonexistent/ca.crt") is None
        assert changes == [name]
        _self_signed(tmp_path, "ca")  # replaced: the next response carries the new bytes
        await _until(lambda: len(changes) == 2)
        replaced = client.get(name)
        assert replaced is not None
        assert replaced.validation_context.trusted_ca.inline_bytes == ca.read_bytes()
    finally:
        await client.stop()
        async with asyncio.timeout(5):
            await task
        await server.stop(0)
        await cache.aclose()
