"""The proxy's ADS client against a scripted ADS server on loopback: ACK, NACK, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.endpoints import build_endpoints
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from meshlet.proxy.config import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from tests.pilot.scenario import scenario_snapshot, sleep_proxy
from tests.xds.helpers import Recorder, running_client

pytestmark = pytest.mark.integration


class ScriptedAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """An ADS server the test drives: it sends what it is told and records requests."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.streams = 0

    async def StreamAggregatedResources(self, request_iterator, context):  # type: ignore[no-untyped-def]
        self.streams += 1

        async def read() -> None:
            async for request in request_iterator:
                self.requests.put_nowait(request)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while True:
                response = await self.outbox.get()
                if response is None:
                    return
                yield response
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def next_request(self, type_url: str | None = None) -> Any:
        async with asyncio.timeout(5):
            while True:
                request = await self.requests.get()
                if type_url is None or request.type_url == type_url:
                    return request


def _response(type_url: str, version: str, nonce: str, messages: Sequence[Message]) -> Any:
    packed = []
    for message in messages:
        item = any_pb2.Any()
        item.Pack(message)
        packed.append(item)
    return discovery_pb2.DiscoveryResponse(
        type_url=type_url, version_info=version, nonce=nonce, resources=packed
    )


@contextlib.asynccontextmanager
async def scripted_server(port: int = 0) -> AsyncIterator[tuple[ScriptedAds, int, grpc.aio.Server]]:
    script = ScriptedAds()
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(script, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield script, bound, server
    finally:
        await server.stop(0)


async def _serve_good_config(script: ScriptedAds, version: str) -> None:
    snapshot = scenario_snapshot()
    proxy = sleep_proxy(snapshot)
    cds = await script.next_request(CLUSTER_TYPE)
    assert cds.node.id == proxy.id
    assert cds.node.metadata.fields["ISTIO_VERSION"].string_value == "1.0-test"
    assert list(cds.resource_names) == []  # wildcard
    script.outbox.put_nowait(
        _response(CLUSTER_TYPE, version, f"c{version}", build_clusters(proxy, snapshot))
    )
    script.outbox.put_nowait(
        _response(LISTENER_TYPE, version, f"l{version}", build_listeners(proxy, snapshot))
    )
    eds = await script.next_request(ENDPOINT_TYPE)
    assert sorted(eds.resource_names) == sorted(
        a.cluster_name for a in build_endpoints(proxy, snapshot)
    )
    script.outbox.put_nowait(
        _response(ENDPOINT_TYPE, version, f"e{version}", build_endpoints(proxy, snapshot))
    )
    rds = await script.next_request(ROUTE_TYPE)
    assert sorted(rds.resource_names) == sorted(r.name for r in build_routes(proxy, snapshot))
    script.outbox.put_nowait(
        _response(ROUTE_TYPE, version, f"r{version}", build_routes(proxy, snapshot))
    )


async def test_good_config_is_acked_and_a_bad_one_nacked_naming_the_field() -> None:
    node = sleep_proxy(scenario_snapshot()).id
    recorder = Recorder()
    async with (
        scripted_server() as (script, port, _),
        running_client(f"127.0.0.1:{port}", node, recorder) as client,
    ):
        await _serve_good_config(script, "v1")
        await client.wait_for(lambda c: c.updates == 1 and c.version(ROUTE_TYPE) == "v1", 5)
        acked = {
            t: client.version(t) for t in (CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE)
        }
        assert set(acked.values()) == {"v1"}
        good_listeners = client.resources(LISTENER_TYPE)
        assert sorted(good_listeners) == ["virtualInbound", "virtualOutbound"]

        # A listener with a field the proxy does not implement.
        snapshot = scenario_snapshot()
        listeners = build_listeners(sleep_proxy(snapshot), snapshot)
        bad = listener_pb2.Listener()
        bad.CopyFrom(listeners[0])
        bad.per_connection_buffer_limit_bytes.value = 1024
        script.outbox.put_nowait(_response(LISTENER_TYPE, "v2", "l-bad", [bad, listeners[1]]))
        while True:
            nack = await script.next_request(LISTENER_TYPE)
            if nack.response_nonce == "l-bad":
                break
        assert nack.version_info == "v1"  # the version it still runs
        assert nack.error_detail.code == 3
        assert nack.error_detail.message == (
            'listener "virtualInbound": per_connection_buffer_limit_bytes: unsupported field'
        )
        await asyncio.sleep(0.05)
        # The last good config keeps serving: nothing new was handed to the proxy.
        assert client.updates == 1
        assert len(recorder.updates) == 1
        assert client.version(LISTENER_TYPE) == "v1"
        assert {n: m.SerializeToString() for n, m in client.resources(LISTENER_TYPE).items()} == {
            n: m.SerializeToString() for n, m in good_listeners.items()
        }
        assert client.nacks == 1


async def test_a_failure_to_apply_is_a_nack_too() -> None:
    node = sleep_proxy(scenario_snapshot()).id

    def refuse(*_args: object) -> None:
        raise OSError("cannot bind 0.0.0.0:15006: address in use")

    async with (
        scripted_server() as (script, port, _),
        running_client(
            f"127.0.0.1:{port}",
            node,
            refuse,  # type: ignore[arg-type]
        ),
    ):
        await _serve_good_config(script, "v1")
        while True:
            request = await script.next_request(ROUTE_TYPE)
            if request.response_nonce == "rv1":
                break
        assert request.error_detail.message == "cannot bind 0.0.0.0:15006: address in use"
        assert request.version_info == ""


async def test_the_client_reconnects_and_resubscribes_with_its_versions() -> None:
    node = sleep_proxy(scenario_snapshot()).id
    recorder = Recorder()
    async with (
        scripted_server() as (script, port, _server),
        running_client(f"127.0.0.1:{port}", node, recorder) as client,
    ):
        await _serve_good_config(script, "v1")
        await client.wait_for(lambda c: c.updates == 1, 5)
        script.outbox.put_nowait(None)  # the server ends the stream
        # A new stream: CDS and LDS with the versions it has, EDS/RDS by name.
        again = await script.next_request(CLUSTER_TYPE)
        while again.response_nonce:
            again = await script.next_request(CLUSTER_TYPE)
        assert again.version_info == "v1"
        assert again.node.id == node
        eds = await script.next_request(ENDPOINT_TYPE)
        assert eds.version_info == "v1" and eds.resource_names
        assert script.streams == 2
        assert client.updates == 1  # it kept serving meanwhile
