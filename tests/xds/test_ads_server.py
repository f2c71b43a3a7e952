"""The ADS server over real gRPC on loopback, with the proxy's real xDS client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from meshlet.cli import main as cli
from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.endpoints import build_endpoints
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from meshlet.proxy.config import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from meshlet.xds.server import AdsServer
from meshlet.xds.status import SyncState
from tests.pilot.scenario import (
    HTTPBIN_POD,
    SLEEP_POD,
    httpbin_proxy,
    scenario_snapshot,
    sleep_proxy,
)
from tests.xds.helpers import Recorder, running_client, with_default_endpoint

pytestmark = pytest.mark.integration

TYPES = (CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE)


@pytest.fixture
async def server() -> AsyncIterator[tuple[AdsServer, str]]:
    ads = AdsServer(scenario_snapshot(), debounce=0.05)
    port = await ads.start("127.0.0.1", 0)
    try:
        yield ads, f"127.0.0.1:{port}"
    finally:
        await ads.stop(grace=0)


def _bytes(messages: dict) -> dict[str, bytes]:  # type: ignore[type-arg]
    return {name: m.SerializeToString(deterministic=True) for name, m in messages.items()}


def _by_name(messages: list, key: str = "name") -> dict[str, bytes]:  # type: ignore[type-arg]
    return {getattr(m, key): m.SerializeToString(deterministic=True) for m in messages}


async def _synced(ads: AdsServer, node_id: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            states = [s for s in ads.status() if s.node_id == node_id]
            if states and all(t.state is SyncState.SYNCED for t in states[0].types):
                return
            await asyncio.sleep(0.01)


async def test_proxy_receives_the_scenario_config_and_acks(server: tuple[AdsServer, str]) -> None:
    ads, address = server
    snapshot = scenario_snapshot()
    proxy = httpbin_proxy(snapshot)
    recorder = Recorder()
    async with running_client(address, proxy.id, recorder) as client:
        await client.wait_for(lambda c: c.updates >= 1, 5)
        await _synced(ads, proxy.id)
        listeners, clusters, routes, endpoints = recorder.last
        assert _bytes(listeners) == _by_name(build_listeners(proxy, snapshot))
        assert _bytes(clusters) == _by_name(build_clusters(proxy, snapshot))
        assert _bytes(routes) == _by_name(build_routes(proxy, snapshot))
        assert _bytes(endpoints) == _by_name(build_endpoints(proxy, snapshot), "cluster_name")
        (status,) = ads.status()
        assert status.node_id == proxy.id
        assert status.istio_version == "1.0-test"
        for item in status.types:
            assert item.state is SyncState.SYNCED
            assert item.version_sent == client.version(item.type_url) != ""
        assert client.nacks == 0


async def test_versions_are_hashes_of_the_config(server: tuple[AdsServer, str]) -> None:
    _ads, address = server
    other = AdsServer(scenario_snapshot())
    port = await other.start("127.0.0.1", 0)
    node = sleep_proxy(scenario_snapshot()).id
    try:
        async with (
            running_client(address, node, Recorder()) as first,
            running_client(f"127.0.0.1:{port}", node, Recorder()) as second,
        ):
            await first.wait_for(lambda c: c.updates >= 1, 5)
            await second.wait_for(lambda c: c.updates >= 1, 5)
            for type_url in TYPES:
                assert first.version(type_url) == second.version(type_url) != ""
    finally:
        await other.stop(grace=0)


async def test_a_change_is_pushed_only_to_the_proxies_it_touches(
    server: tuple[AdsServer, str],
) -> None:
    ads, address = server
    snapshot = scenario_snapshot()
    httpbin, sleep = httpbin_proxy(snapshot), sleep_proxy(snapshot)
    httpbin_updates, sleep_updates = Recorder(), Recorder()
    async with (
        running_client(address, httpbin.id, httpbin_updates) as httpbin_client,
        running_client(address, sleep.id, sleep_updates) as sleep_client,
    ):
        await httpbin_client.wait_for(lambda c: c.updates >= 1, 5)
        await sleep_client.wait_for(lambda c: c.updates >= 1, 5)
        await _synced(ads, httpbin.id)
        await _synced(ads, sleep.id)
        before = {t: httpbin_client.version(t) for t in TYPES}
        sleep_before = {t: sleep_client.version(t) for t in TYPES}
        sleep_acks = sleep_client.acks

        # The Sidecar selects httpbin only: its ingress now goes to 127.0.0.1:8081.
        ads.update_snapshot(with_default_endpoint(snapshot, "ingress-sidecar", "127.0.0.1:8081"))
        async with asyncio.timeout(5):
            await ads.wait_pushed()
        await httpbin_client.wait_for(lambda c: c.version(CLUSTER_TYPE) != before[CLUSTER_TYPE], 5)
        await _synced(ads, httpbin.id)

        _, clusters, _, _ = httpbin_updates.last
        inbound = clusters["inbound|9080||"]
        assert isinstance(inbound, cluster_pb2.Cluster)
        address_of = inbound.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
        assert (address_of.socket_address.address, address_of.socket_address.port_value) == (
            "127.0.0.1",
            8081,
        )
        (status,) = [s for s in ads.status() if s.node_id == httpbin.id]
        assert status.of(CLUSTER_TYPE).version_sent == httpbin_client.version(CLUSTER_TYPE)
        assert status.of(CLUSTER_TYPE).state is SyncState.SYNCED
        # Nothing of sleep's changed, so nothing was sent to it.
        await asyncio.sleep(0.1)
        assert sleep_client.acks == sleep_acks
        assert {t: sleep_client.version(t) for t in TYPES} == sleep_before
        assert len(sleep_updates.updates) == 1


async def test_an_endpoint_change_reaches_the_clients_of_the_service(
    server: tuple[AdsServer, str],
) -> None:
    ads, address = server
    snapshot = scenario_snapshot()
    sleep = sleep_proxy(snapshot)
    recorder = Recorder()
    async with running_client(address, sleep.id, recorder) as client:
        await client.wait_for(lambda c: c.updates >= 1, 5)
        cds, eds = client.version(CLUSTER_TYPE), client.version(ENDPOINT_TYPE)
        moved = replace(
            snapshot,
            services=tuple(
                replace(s, endpoints=tuple(replace(w, ip="10.244.0.77") for w in s.endpoints))
                if s.name == "httpbin"
                else s
                for s in snapshot.services
            ),
        )
        ads.update_snapshot(moved)
        await client.wait_for(lambda c: c.version(ENDPOINT_TYPE) != eds, 5)
        await _synced(ads, sleep.id)
        assert client.version(CLUSTER_TYPE) == cds  # only EDS changed
        endpoints = recorder.last[3]["outbound|8080||httpbin.test.svc.cluster.local"]
        ips = [
            e.endpoint.address.socket_address.address
            for group in endpoints.endpoints
            for e in group.lb_endpoints
        ]  # type: ignore[attr-defined]
        assert ips == ["10.244.0.77"]


async def _raw_stream(address: str):  # type: ignore[no-untyped-def]
    channel = grpc.aio.insecure_channel(address)
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    return channel, stub.StreamAggregatedResources()


async def test_status_shows_stale_then_the_nack_then_synced(
    server: tuple[AdsServer, str],
) -> None:
    ads, address = server
    node = httpbin_proxy(scenario_snapshot()).id
    channel, call = await _raw_stream(address)
    try:
        await call.write(
            discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE, node=base_pb2.Node(id=node))
        )
        response = await call.read()
        assert response.type_url == CLUSTER_TYPE and response.resources
        (status,) = ads.status()
        assert status.of(CLUSTER_TYPE).state is SyncState.STALE
        assert status.of(LISTENER_TYPE).state is SyncState.NOT_SENT

        message = 'cluster "inbound|9080||": upstream_bind_config: unsupported field'
        await call.write(
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER_TYPE,
                response_nonce=response.nonce,
                error_detail=status_pb2.Status(code=3, message=message),
            )
        )
        await _wait(lambda: ads.status()[0].of(CLUSTER_TYPE).state is SyncState.ERROR)
        assert ads.status()[0].of(CLUSTER_TYPE).nack == message

        text = await asyncio.to_thread(_proxy_status, address)
        assert "ERROR" in text
        assert f"{HTTPBIN_POD}.test CDS NACK:\n    {message}\n" in text

        # A new config goes out after a NACK; its ACK makes the type SYNCED again.
        ads.update_snapshot(
            with_default_endpoint(scenario_snapshot(), "ingress-sidecar", "127.0.0.1:8081")
        )
        pushed = await call.read()
        assert pushed.version_info != response.version_info
        assert ads.status()[0].of(CLUSTER_TYPE).state is SyncState.STALE
        await call.write(
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER_TYPE,
                version_info=pushed.version_info,
                response_nonce=pushed.nonce,
            )
        )
        await _wait(lambda: ads.status()[0].of(CLUSTER_TYPE).state is SyncState.SYNCED)
    finally:
        call.cancel()
        await channel.close()


async def test_a_node_the_snapshot_does_not_know_gets_nothing(
    server: tuple[AdsServer, str],
) -> None:
    ads, address = server
    channel, call = await _raw_stream(address)
    try:
        node = "sidecar~10.9.9.9~ghost-0.test~test.svc.cluster.local"
        await call.write(
            discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE, node=base_pb2.Node(id=node))
        )
        await _wait(lambda: len(ads.status()) == 1)
        assert all(t.state is SyncState.NOT_SENT for t in ads.status()[0].types)
    finally:
        call.cancel()
        await channel.close()


async def _wait(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def _proxy_status(address: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["proxy-status", "--xds-address", address])
    assert code == 0
    return out.getvalue()


async def test_proxy_status_prints_istioctl_columns(server: tuple[AdsServer, str]) -> None:
    ads, address = server
    snapshot = scenario_snapshot()
    async with (
        running_client(address, httpbin_proxy(snapshot).id, Recorder()) as first,
        running_client(address, sleep_proxy(snapshot).id, Recorder()) as second,
    ):
        await first.wait_for(lambda c: c.updates >= 1, 5)
        await second.wait_for(lambda c: c.updates >= 1, 5)
        await _synced(ads, httpbin_proxy(snapshot).id)
        await _synced(ads, sleep_proxy(snapshot).id)
        text = await asyncio.to_thread(_proxy_status, address)
    lines = text.splitlines()
    assert re.fullmatch(
        r"NAME {5,}CLUSTER {8}CDS {5,}LDS {5,}EDS {5,}RDS {5,}ECDS {5,}ISTIOD {5}VERSION",
        lines[0],
    ), lines[0]
    assert len(lines) == 3
    row = r"{name} {{5,}}Kubernetes {{5}}SYNCED \(\d+s\) {{5}}SYNCED \(\d+s\) {{5}}SYNCED \(\d+s\) {{5}}SYNCED \(\d+s\) {{5}}IGNORED {{5}}istiod {{5}}1\.0-test"
    assert re.fullmatch(row.format(name=re.escape(f"{HTTPBIN_POD}.test")), lines[1]), lines[1]
    assert re.fullmatch(row.format(name=re.escape(f"{SLEEP_POD}.test")), lines[2]), lines[2]
    # Columns line up: each starts at the same offset on every line.
    assert lines[0].index("CLUSTER") == lines[1].index("Kubernetes") == lines[2].index("Kubernetes")


def test_proxy_status_without_a_server_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["proxy-status", "--xds-address", "127.0.0.1:1", "--timeout", "2"])
    assert code == 3
    assert "cannot reach the control plane's xDS server at 127.0.0.1:1" in capsys.readouterr().err
