"""Istio's facts (names, chain matches, SDS names, ALPN, server name, decorator), asserted on
the reference scenario's config."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2

from meshlet.envoy.filter_chain import find_duplicate_matches
from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.endpoints import build_endpoints
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from meshlet.pilot.secrets import parse_resource_name, referenced_secret_names
from tests.pilot import helpers as h
from tests.pilot.scenario import (
    HTTPBIN_IP,
    HTTPBIN_VIP,
    httpbin_proxy,
    scenario_snapshot,
    sleep_proxy,
)

CERT = "file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key"
ROOT = "file-root:/etc/istio/tls-ca-certs/ca.crt"
HTTPBIN = "httpbin.test.svc.cluster.local"


def test_node_id() -> None:
    snapshot = scenario_snapshot()
    assert (
        httpbin_proxy(snapshot).id
        == f"sidecar~{HTTPBIN_IP}~httpbin-5bbdbd6588-z9vbs.test~test.svc.cluster.local"
    )


def test_virtual_inbound_shape() -> None:
    snapshot = scenario_snapshot()
    inbound = h.listener(build_listeners(httpbin_proxy(snapshot), snapshot), "virtualInbound")
    assert inbound.address.socket_address.address == "0.0.0.0"
    assert inbound.address.socket_address.port_value == 15006
    assert inbound.use_original_dst.value is True
    assert inbound.traffic_direction == base_pb2.INBOUND
    assert [f.name for f in inbound.listener_filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
        "envoy.filters.listener.http_inspector",
    ]
    assert [f.typed_config.type_url for f in inbound.listener_filters] == [
        "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
        "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
    ]
    assert find_duplicate_matches(inbound) == ()


def test_user_tls_chain_on_9080() -> None:
    snapshot = scenario_snapshot()
    inbound = h.listener(build_listeners(httpbin_proxy(snapshot), snapshot), "virtualInbound")
    (chain,) = h.chains(inbound, "0.0.0.0_9080")
    assert chain.filter_chain_match.destination_port.value == 9080
    assert chain.filter_chain_match.transport_protocol == "tls"
    assert list(chain.filter_chain_match.application_protocols) == []
    context = h.downstream_tls(chain)
    assert context.require_client_certificate.value is True
    common = context.common_tls_context
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]
    assert h.sds_names(common) == ([CERT], ROOT)
    sds = common.tls_certificate_sds_secret_configs[0].sds_config.api_config_source
    assert sds.grpc_services[0].envoy_grpc.cluster_name == "sds-grpc"
    assert common.tls_params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_2
    manager = h.hcm(chain)
    assert manager.server_name == "istio-envoy"
    assert manager.server_header_transformation == hcm_pb2.HttpConnectionManager.OVERWRITE
    assert manager.forward_client_cert_details == hcm_pb2.HttpConnectionManager.APPEND_FORWARD
    details = manager.set_current_client_cert_details
    assert (details.subject.value, details.uri, details.dns) == (True, True, True)
    routes = manager.route_config
    assert routes.name == "inbound|9080||"
    (vhost,) = routes.virtual_hosts
    assert vhost.name == "inbound|http|9080"
    assert list(vhost.domains) == ["*"]
    (route,) = vhost.routes
    assert route.name == "default"
    assert route.match.prefix == "/"
    assert route.route.cluster == "inbound|9080||"
    assert route.decorator.operation == "ingress-sidecar.test:9080/*"


def test_mesh_mtls_chain_on_9081() -> None:
    snapshot = scenario_snapshot()
    inbound = h.listener(build_listeners(httpbin_proxy(snapshot), snapshot), "virtualInbound")
    (chain,) = h.chains(inbound, "0.0.0.0_9081")  # STRICT: no plaintext chain
    assert chain.filter_chain_match.destination_port.value == 9081
    assert chain.filter_chain_match.transport_protocol == "tls"
    context = h.downstream_tls(chain)
    assert context.require_client_certificate.value is True
    common = context.common_tls_context
    assert h.sds_names(common) == (["default"], "ROOTCA")
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]
    params = common.tls_params
    assert params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_2
    assert params.tls_maximum_protocol_version == common_pb2.TlsParameters.TLSv1_3
    (san,) = (
        common.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    )
    assert san.matcher.prefix == "spiffe://cluster.local/"
    assert h.hcm(chain).route_config.virtual_hosts[0].routes[0].decorator.operation == (
        "ingress-sidecar.test:9081/*"
    )


def test_inbound_clusters_to_default_endpoint() -> None:
    snapshot = scenario_snapshot()
    clusters = build_clusters(httpbin_proxy(snapshot), snapshot)
    for port in (9080, 9081):
        cluster = h.cluster(clusters, f"inbound|{port}||")
        assert cluster.type == cluster_pb2.Cluster.STATIC
        (endpoint,) = cluster.load_assignment.endpoints[0].lb_endpoints
        address = endpoint.endpoint.address.socket_address
        assert (address.address, address.port_value) == (HTTPBIN_IP, 80)
        assert cluster.upstream_bind_config.source_address.address == "127.0.0.6"


def test_localhost_default_endpoint() -> None:
    from dataclasses import replace

    snapshot = scenario_snapshot()
    proxy = httpbin_proxy(snapshot)
    assert proxy.sidecar is not None
    ingress = tuple(
        replace(item, default_endpoint="127.0.0.1:8000") if item is not None else None
        for item in proxy.sidecar.ingress
    )
    proxy = replace(proxy, sidecar=replace(proxy.sidecar, ingress=ingress))
    address = (
        h.cluster(build_clusters(proxy, snapshot), "inbound|9081||")
        .load_assignment.endpoints[0]
        .lb_endpoints[0]
        .endpoint.address.socket_address
    )
    assert (address.address, address.port_value) == ("127.0.0.1", 8000)


def test_outbound_from_sleep() -> None:
    snapshot = scenario_snapshot()
    proxy = sleep_proxy(snapshot)
    listeners = build_listeners(proxy, snapshot)
    outbound = h.listener(listeners, "virtualOutbound")
    assert outbound.address.socket_address.port_value == 15001
    assert outbound.use_original_dst.value is True
    (http,) = h.chains(outbound, f"{HTTPBIN_VIP}_8080")
    assert http.filter_chain_match.prefix_ranges[0].address_prefix == HTTPBIN_VIP
    manager = h.hcm(http)
    assert manager.rds.route_config_name == "8080"
    assert manager.server_name == ""  # Envoy's default, "envoy"
    (tcp,) = h.chains(outbound, f"{HTTPBIN_VIP}_8443")
    assert h.tcp_proxy(tcp).cluster == f"outbound|8443||{HTTPBIN}"
    (passthrough,) = h.chains(outbound, "PassthroughFilterChain")
    assert h.tcp_proxy(passthrough).cluster == "PassthroughCluster"
    assert find_duplicate_matches(outbound) == ()


def test_outbound_virtual_host_names() -> None:
    snapshot = scenario_snapshot()
    routes = {r.name: r for r in build_routes(sleep_proxy(snapshot), snapshot)}
    vhost = next(v for v in routes["8080"].virtual_hosts if v.name == f"{HTTPBIN}:8080")
    for name in ("httpbin", "httpbin.test", "httpbin.test.svc", HTTPBIN, HTTPBIN_VIP):
        assert name in vhost.domains
        assert f"{name}:8080" in vhost.domains
    assert vhost.routes[0].route.cluster == f"outbound|8080||{HTTPBIN}"
    # the sleep of namespace "default" is reachable only by its qualified names
    other = next(v for v in routes["80"].virtual_hosts if v.name.startswith("sleep.default."))
    assert "sleep" not in other.domains and "sleep.default" in other.domains


def test_outbound_mesh_mtls_where_the_server_has_a_sidecar() -> None:
    snapshot = scenario_snapshot()
    clusters = build_clusters(sleep_proxy(snapshot), snapshot)
    mtls = h.cluster(clusters, f"outbound|8080||{HTTPBIN}")
    assert mtls.type == cluster_pb2.Cluster.EDS
    context = h.upstream_tls(mtls)
    assert context.sni == f"outbound_.8080_._.{HTTPBIN}"
    common = context.common_tls_context
    assert list(common.alpn_protocols) == ["istio-peer-exchange", "istio"]
    assert h.sds_names(common) == (["default"], "ROOTCA")
    sans = common.combined_validation_context.default_validation_context
    assert [s.matcher.exact for s in sans.match_typed_subject_alt_names] == [
        "spiffe://cluster.local/ns/test/sa/httpbin"
    ]
    # 8443 targets 9080, where PeerAuthentication is DISABLE: plaintext (the client's TLS)
    assert not h.cluster(clusters, f"outbound|8443||{HTTPBIN}").HasField("transport_socket")
    # the sleep of "default" has no sidecar: plaintext
    plain = h.cluster(clusters, "outbound|80||sleep.default.svc.cluster.local")
    assert not plain.HasField("transport_socket")


def test_endpoints_are_pod_ip_and_target_port() -> None:
    snapshot = scenario_snapshot()
    assignments = {a.cluster_name: a for a in build_endpoints(sleep_proxy(snapshot), snapshot)}
    for port, target in ((8080, 9081), (8443, 9080)):
        (endpoint,) = assignments[f"outbound|{port}||{HTTPBIN}"].endpoints[0].lb_endpoints
        address = endpoint.endpoint.address.socket_address
        assert (address.address, address.port_value) == (HTTPBIN_IP, target)


def test_secret_names_the_agent_must_serve() -> None:
    snapshot = scenario_snapshot()
    proxy = httpbin_proxy(snapshot)
    names = referenced_secret_names(
        build_listeners(proxy, snapshot), build_clusters(proxy, snapshot)
    )
    assert names == ("ROOTCA", "default", CERT, ROOT)
    cert = parse_resource_name(CERT)
    assert cert is not None and cert.certificate_path == "/etc/istio/tls-certs/tls.crt"
    assert cert.private_key_path == "/etc/istio/tls-certs/tls.key"
    root = parse_resource_name(ROOT)
    assert root is not None and root.ca_certificate_path == "/etc/istio/tls-ca-certs/ca.crt"
    assert parse_resource_name("file-cert:only-one") is None
    assert parse_resource_name("default") is None


def test_same_input_same_bytes() -> None:
    first, second = scenario_snapshot(), scenario_snapshot()
    for build in (build_listeners, build_clusters, build_routes, build_endpoints):
        a = [m.SerializeToString(deterministic=True) for m in build(httpbin_proxy(first), first)]
        b = [m.SerializeToString(deterministic=True) for m in build(httpbin_proxy(second), second)]
        assert a == b
