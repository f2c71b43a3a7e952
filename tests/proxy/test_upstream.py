"""Clusters, endpoints, pools, circuit breakers and mesh mTLS origination."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshlet.pilot import _xds
from meshlet.proxy.streams import open_tcp_stream
from meshlet.proxy.upstream import Endpoint, UpstreamFailure, cluster_hosts
from tests.proxy.hcm_support import (
    OK_RESPONSE,
    ScriptedUpstream,
    canned,
    exchange,
    manager_for,
    route_config,
    shared_upstreams,
    static_cluster,
)
from tests.proxy.support import App, run, running_proxy, tls_upstream_context
from tests.proxy.test_tls import CLIENT_ID, SERVER_ID, MeshPki, _pem, _secrets

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def test_hosts_of_static_eds_and_original_dst_clusters() -> None:
    static = static_cluster(8000)
    assert cluster_hosts(static, {}, None) == [Endpoint("10.244.0.7", 8000)]
    eds = cluster_pb2.Cluster(name="outbound|8080||httpbin.test.svc.cluster.local",
                              type=cluster_pb2.Cluster.EDS)  # fmt: skip
    eds.eds_cluster_config.service_name = eds.name
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=eds.name)
    locality = assignment.endpoints.add()
    for ip, health in (("10.244.0.7", 0), ("10.244.0.9", health_check_pb2.UNHEALTHY)):
        lb = locality.lb_endpoints.add(health_status=health)
        lb.endpoint.address.CopyFrom(_xds.socket_address(ip, 80))
    assert cluster_hosts(eds, {eds.name: assignment}, None) == [Endpoint("10.244.0.7", 80)]
    assert cluster_hosts(eds, {}, None) == []
    original = cluster_pb2.Cluster(name="PassthroughCluster", type=cluster_pb2.Cluster.ORIGINAL_DST)
    assert cluster_hosts(original, {}, ("10.1.2.3", 443)) == [Endpoint("10.1.2.3", 443)]


async def test_blackhole_has_no_healthy_upstream() -> None:
    blackhole = cluster_pb2.Cluster(name="inbound|9080||", type=cluster_pb2.Cluster.STATIC)
    out = await exchange(
        manager_for(ScriptedUpstream(canned(OK_RESPONSE)), clusters=[blackhole]), GET
    )
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert out.endswith(b"\r\n\r\nno healthy upstream")


async def test_circuit_breaker_max_requests_overflows() -> None:
    cluster = static_cluster()
    cluster.circuit_breakers.thresholds.add().max_requests.value = 1
    upstream = ScriptedUpstream(canned(OK_RESPONSE, delay=0.2))
    shared = shared_upstreams(upstream)
    results = await asyncio.gather(
        exchange(manager_for(upstream, clusters=[cluster], upstreams=shared), GET),
        exchange(manager_for(upstream, clusters=[cluster], upstreams=shared), GET),
    )
    statuses = sorted(out.split(b"\r\n", 1)[0] for out in results)
    assert statuses == [b"HTTP/1.1 200 OK", b"HTTP/1.1 503 Service Unavailable"]
    assert any(out.endswith(b"reset reason: overflow") for out in results)


async def test_max_connections_makes_requests_wait_then_reuse() -> None:
    cluster = static_cluster()
    threshold = cluster.circuit_breakers.thresholds.add()
    threshold.max_connections.value = 1
    upstream = ScriptedUpstream(canned(OK_RESPONSE, delay=0.05))
    shared = shared_upstreams(upstream)
    results = await asyncio.gather(
        *(
            exchange(manager_for(upstream, clusters=[cluster], upstreams=shared), GET)
            for _ in range(4)
        )
    )
    assert all(out.startswith(b"HTTP/1.1 200 OK") for out in results)
    assert upstream.connections == 1


async def test_a_pooled_connection_the_server_closed_is_retried_once() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE, close=True))  # closes without saying so
    out = await exchange(manager_for(upstream), GET + GET)
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert upstream.connections == 2


async def test_connection_refused_on_loopback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await open_tcp_stream("127.0.0.1", port, timeout=2)
    with pytest.raises(UpstreamFailure):
        raise UpstreamFailure("connection failure")


@pytest.mark.integration
@pytest.mark.parametrize(("identity", "ok"), [(SERVER_ID, True), (CLIENT_ID, False)])
async def test_mesh_mtls_origination_checks_the_servers_spiffe_identity(
    identity: str, ok: bool
) -> None:
    """An outbound HCM (plaintext in) sends to a cluster with Istio's UpstreamTlsContext;
    the server is a TLS app that requires a client certificate from the mesh CA."""
    mesh = MeshPki()
    app = await App().start()
    folder = Path(tempfile.mkdtemp())
    chain, key = mesh.leaf(SERVER_ID)
    (folder / "cert.pem").write_bytes(chain)
    (folder / "key.pem").write_bytes(key)
    (folder / "ca.pem").write_bytes(_pem(mesh.ca))
    server_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ssl.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server_ssl.load_verify_locations(folder / "ca.pem")
    server_ssl.verify_mode = ssl.CERT_REQUIRED
    seen_alpn: list[str | None] = []

    async def terminate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen_alpn.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", app.port)

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer),
                             return_exceptions=True)  # fmt: skip

    server_ssl.set_alpn_protocols(["istio-peer-exchange", "istio"])
    tls_server = await asyncio.start_server(terminate, "127.0.0.1", 0, ssl=server_ssl)
    port = tls_server.sockets[0].getsockname()[1]
    try:
        cluster = static_cluster(port)
        cluster.name = "outbound|8080||httpbin.test.svc.cluster.local"
        endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint
        endpoint.address.socket_address.address = "127.0.0.1"
        context = tls_upstream_context(
            folder / "ca.pem", sni="outbound_.8080_._.httpbin.test.svc.cluster.local",
            alpn=("istio-peer-exchange", "istio"), cert_secret="default",
            root_secret_name="ROOTCA", san_exact=identity,
        )  # fmt: skip
        cluster.transport_socket.CopyFrom(_xds.transport_socket(context))
        routes = route_config()
        routes.name = "8080"
        routes.virtual_hosts[0].routes[0].route.cluster = cluster.name
        hcm = hcm_pb2.HttpConnectionManager(stat_prefix="outbound_0.0.0.0_8080")
        hcm.rds.route_config_name = "8080"
        hcm.tracing.SetInParent()
        chain_listener = listener_pb2.Listener(
            name="10.100.78.113_8080", address=_xds.socket_address("127.0.0.1", 0),
            traffic_direction=core_base_pb2.OUTBOUND,
        )  # fmt: skip
        chain_listener.filter_chains.add().filters.add(
            name="envoy.filters.network.http_connection_manager", typed_config=_xds.pack(hcm)
        )
        async with running_proxy(
            chain_listener, [cluster], _secrets(mesh, CLIENT_ID), route_configs=[routes]
        ) as proxy:
            result = await run("curl", "-sS", "-i", "--max-time", "10",
                               f"http://127.0.0.1:{proxy.port}/status/200")  # fmt: skip
        assert result.code == 0, result.stderr
        if ok:
            assert result.stdout.startswith("HTTP/1.1 200 OK\r\n")
            assert "server: envoy\r\n" in result.stdout
            assert seen_alpn == ["istio-peer-exchange"]
            assert len(app.requests) == 1
        else:
            assert result.stdout.startswith("HTTP/1.1 503 Service Unavailable\r\n")
            assert "transport failure reason: TLS error" in result.stdout
            assert app.requests == []
    finally:
        tls_server.close()
        await app.stop()
