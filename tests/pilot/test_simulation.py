"""The scenario's outcomes, and the PeerAuthentication x Sidecar ingress TLS x flag matrix,
asked of the simulator as Istio's sidecar simulation tests ask them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from meshlet.pilot.simulation import Call, CallTLS, Direction, Reason, simulate
from meshlet.resources.istio import MTLSMode, PeerAuthentication
from meshlet.resources.mesh import MeshSettings
from tests.pilot import helpers as h
from tests.pilot.scenario import (
    HTTPBIN_IP,
    HTTPBIN_POD,
    HTTPBIN_VIP,
    httpbin_proxy,
    scenario_resources,
    scenario_snapshot,
    sleep_proxy,
    snapshot_of,
)

CLIENT = "CN=client.test.svc.cluster.local,O=client organization"
MESH_CLIENT = "spiffe://cluster.local/ns/test/sa/sleep"


def test_8080_from_the_mesh_is_served_with_mtls_by_the_9081_chain() -> None:
    snapshot = scenario_snapshot()
    client = sleep_proxy(snapshot)
    outbound = simulate(
        build_listeners(client, snapshot),
        Call(Direction.OUTBOUND, 8080, HTTPBIN_VIP, host="httpbin:8080", path="/status/200"),
        build_routes(client, snapshot),
    )
    assert outbound.served
    assert outbound.filter_chain == f"{HTTPBIN_VIP}_8080"
    assert outbound.route_config == "8080"
    assert outbound.cluster == "outbound|8080||httpbin.test.svc.cluster.local"
    upstream = h.upstream_tls(h.cluster(build_clusters(client, snapshot), outbound.cluster))

    server = httpbin_proxy(snapshot)
    inbound = simulate(
        build_listeners(server, snapshot),
        Call(
            Direction.INBOUND,
            9081,
            HTTPBIN_IP,
            tls=CallTLS.MESH_MTLS,
            sni=upstream.sni,
            alpn=tuple(upstream.common_tls_context.alpn_protocols),
            client_identity=MESH_CLIENT,
            host="httpbin:8080",
            path="/status/200",
        ),
    )
    assert inbound.served
    assert inbound.filter_chain == "0.0.0.0_9081"
    assert inbound.tls_certificate == "default"
    assert inbound.route_config == "inbound|9081||"
    assert inbound.cluster == "inbound|9081||"


def test_8443_with_the_clients_certificate_is_served_by_the_user_tls_chain() -> None:
    snapshot = scenario_snapshot()
    result = simulate(
        build_listeners(httpbin_proxy(snapshot), snapshot),
        Call(
            Direction.INBOUND,
            9080,
            HTTPBIN_IP,
            tls=CallTLS.PLAIN_TLS,
            sni="httpbin.test.svc.cluster.local",
            alpn=("h2", "http/1.1"),
            client_identity=CLIENT,
            host="httpbin.test.svc.cluster.local",
            path="/status/200",
        ),
    )
    assert result.served
    assert result.filter_chain == "0.0.0.0_9080"
    assert result.tls_certificate == (
        "file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key"
    )
    assert result.cluster == "inbound|9080||"
    assert result.decorator == "ingress-sidecar.test:9080/*"


def test_8443_without_a_client_certificate_is_refused() -> None:
    snapshot = scenario_snapshot()
    result = simulate(
        build_listeners(httpbin_proxy(snapshot), snapshot),
        Call(Direction.INBOUND, 9080, HTTPBIN_IP, tls=CallTLS.PLAIN_TLS, alpn=("h2",)),
    )
    assert result.reason is Reason.CLIENT_CERTIFICATE_REQUIRED


def test_plaintext_to_9081_from_outside_finds_no_filter_chain() -> None:
    snapshot = scenario_snapshot()
    result = simulate(
        build_listeners(httpbin_proxy(snapshot), snapshot),
        Call(Direction.INBOUND, 9081, HTTPBIN_IP, tls=CallTLS.NONE, host="httpbin:8080"),
    )
    assert result.reason is Reason.NO_FILTER_CHAIN
    assert result.filter_chain is None


def test_plain_tls_to_9081_needs_mesh_mtls() -> None:
    snapshot = scenario_snapshot()
    result = simulate(
        build_listeners(httpbin_proxy(snapshot), snapshot),
        Call(Direction.INBOUND, 9081, HTTPBIN_IP, tls=CallTLS.PLAIN_TLS, client_identity=CLIENT),
    )
    assert result.reason is Reason.MTLS_REQUIRED
    assert result.filter_chain == "0.0.0.0_9081"


def test_unknown_host_goes_to_passthrough_and_unknown_rds_has_no_route() -> None:
    snapshot = scenario_snapshot()
    client = sleep_proxy(snapshot)
    listeners = build_listeners(client, snapshot)
    result = simulate(
        listeners,
        Call(Direction.OUTBOUND, 8080, HTTPBIN_VIP, host="example.com"),
        build_routes(client, snapshot),
    )
    assert result.cluster == "PassthroughCluster"
    missing = simulate(listeners, Call(Direction.OUTBOUND, 8080, HTTPBIN_VIP, host="httpbin"))
    assert missing.reason is Reason.NO_ROUTE


# --- the PeerAuthentication x Sidecar ingress TLS x flag matrix -------------------------


def _snapshot(port_mode: MTLSMode, flag: bool) -> object:
    resources = [r for r in scenario_resources() if r.kind != "PeerAuthentication"]
    snapshot = snapshot_of(
        resources, mesh=replace(MeshSettings(), enable_tls_on_sidecar_ingress=flag)
    )
    policy = PeerAuthentication(
        name="httpbin",
        namespace="test",
        selector={"app": "httpbin"},
        mtls_mode=MTLSMode.STRICT,
        port_level_mtls={9080: port_mode},
    )
    return replace(snapshot, peer_authentications=(policy,))


MATRIX = [
    # mode on 9080, flag, what a client with its own TLS certificate gets, 9080 chains' certs
    (MTLSMode.STRICT, True, Reason.MTLS_REQUIRED, ["default"]),
    (MTLSMode.PERMISSIVE, True, Reason.NO_FILTER_CHAIN, ["default", None]),
    (
        MTLSMode.DISABLE,
        True,
        None,
        ["file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key"],
    ),
    (MTLSMode.STRICT, False, Reason.MTLS_REQUIRED, ["default"]),
    (MTLSMode.PERMISSIVE, False, None, ["default", None, None]),
    (MTLSMode.DISABLE, False, Reason.NO_FILTER_CHAIN, [None]),
]


@pytest.mark.parametrize(("mode", "flag", "reason", "certificates"), MATRIX)
def test_tls_block_honoured_only_under_disable_with_the_flag(
    mode: MTLSMode, flag: bool, reason: Reason | None, certificates: list[str | None]
) -> None:
    snapshot = _snapshot(mode, flag)
    proxy = snapshot.proxy("test", HTTPBIN_POD)  # type: ignore[attr-defined]
    listeners = build_listeners(proxy, snapshot)  # type: ignore[arg-type]
    inbound = h.listener(listeners, "virtualInbound")
    found = []
    for chain in h.chains(inbound, "0.0.0.0_9080"):
        if chain.HasField("transport_socket"):
            found.append(h.sds_names(h.downstream_tls(chain).common_tls_context)[0][0])
        else:
            found.append(None)
    assert found == certificates

    external = simulate(
        listeners,
        Call(
            Direction.INBOUND,
            9080,
            HTTPBIN_IP,
            tls=CallTLS.PLAIN_TLS,
            sni="httpbin.test.svc.cluster.local",
            alpn=("h2", "http/1.1"),
            client_identity=CLIENT,
        ),
    )
    assert external.reason is reason
    # The user's certificate is served only under DISABLE with the flag on. Under
    # PERMISSIVE the client's TLS is never terminated: with the flag off the port is a
    # TCP port (HTTPS) and plain TLS passes through; with it on the port is HTTP, whose
    # only TLS chain wants Istio's ALPN, so there is no chain.
    assert external.terminated_tls is (mode is MTLSMode.DISABLE and flag)

    mesh = simulate(
        listeners,
        Call(
            Direction.INBOUND, 9080, HTTPBIN_IP, tls=CallTLS.MESH_MTLS, client_identity=MESH_CLIENT
        ),
    )
    if mode is MTLSMode.DISABLE:
        assert mesh.tls_certificate != "default"
    else:
        assert mesh.served and mesh.tls_certificate == "default"
