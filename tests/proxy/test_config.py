"""The proxy's supported subset of Envoy's API: what validates and what is named as not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.redis_proxy.v3 import redis_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.listeners import build_listeners
from meshlet.proxy.config import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SUPPORTED_FIELDS,
    validate_resources,
)
from tests.pilot.scenario import httpbin_proxy, scenario_snapshot

GOLDEN = Path(__file__).resolve().parents[1] / "pilot" / "golden"
KINDS = {
    "listeners": (LISTENER_TYPE, listener_pb2.Listener),
    "clusters": (CLUSTER_TYPE, cluster_pb2.Cluster),
    "routes": (ROUTE_TYPE, route_pb2.RouteConfiguration),
    "endpoints": (ENDPOINT_TYPE, endpoint_pb2.ClusterLoadAssignment),
}


def _golden(workload: str, kind: str) -> list[Message]:
    _, message_type = KINDS[kind]
    items = json.loads((GOLDEN / f"{workload}.{kind}.json").read_text())
    return [json_format.ParseDict(item, message_type()) for item in items]


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("workload", ["httpbin", "sleep"])
def test_every_shape_in_the_goldens_is_supported(workload: str, kind: str) -> None:
    type_url, _ = KINDS[kind]
    assert validate_resources(type_url, _golden(workload, kind)) == []


def test_packed_resources_validate_too() -> None:
    snapshot = scenario_snapshot()
    packed = []
    for cluster in build_clusters(httpbin_proxy(snapshot), snapshot):
        item = any_pb2.Any()
        item.Pack(cluster)
        packed.append(item)
    assert validate_resources(CLUSTER_TYPE, packed) == []
    assert validate_resources(LISTENER_TYPE, packed)[0].startswith(
        "resources[0]: type envoy.config.cluster.v3.Cluster in a envoy.config.listener.v3.Listener"
    )


def _inbound() -> listener_pb2.Listener:
    snapshot = scenario_snapshot()
    (listener,) = [
        item
        for item in build_listeners(httpbin_proxy(snapshot), snapshot)
        if item.name == "virtualInbound"
    ]
    return listener


def test_an_unsupported_network_filter_is_named() -> None:
    listener = _inbound()
    listener.filter_chains[2].filters[0].typed_config.Pack(
        redis_proxy_pb2.RedisProxy(stat_prefix="redis")
    )
    assert validate_resources(LISTENER_TYPE, [listener]) == [
        'listener "virtualInbound": filter_chains[2].filters[0].typed_config: unsupported type '
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"
    ]


def test_a_set_field_outside_the_subset_is_named() -> None:
    listener = _inbound()
    listener.per_connection_buffer_limit_bytes.value = 1024
    chain = listener.filter_chains[-1]
    hcm = hcm_pb2.HttpConnectionManager()
    assert chain.filters[0].typed_config.Unpack(hcm)
    hcm.xff_num_trusted_hops = 2
    chain.filters[0].typed_config.Pack(hcm)
    problems = validate_resources(LISTENER_TYPE, [listener])
    index = len(listener.filter_chains) - 1
    assert problems == [
        f'listener "virtualInbound": filter_chains[{index}].filters[0].typed_config.'
        "xff_num_trusted_hops: unsupported field",
        'listener "virtualInbound": per_connection_buffer_limit_bytes: unsupported field',
    ]


def test_unsupported_tls_settings_are_named() -> None:
    listener = _inbound()
    index = next(
        i for i, chain in enumerate(listener.filter_chains) if chain.HasField("transport_socket")
    )
    chain = listener.filter_chains[index]
    context = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(context)
    context.ocsp_staple_policy = tls_pb2.DownstreamTlsContext.STRICT_STAPLING
    chain.transport_socket.typed_config.Pack(context)
    assert validate_resources(LISTENER_TYPE, [listener]) == [
        f'listener "virtualInbound": filter_chains[{index}].transport_socket.typed_config.'
        "ocsp_staple_policy: unsupported field"
    ]


def test_a_transport_socket_holds_the_context_of_its_side() -> None:
    snapshot = scenario_snapshot()
    clusters = build_clusters(httpbin_proxy(snapshot), snapshot)
    (mesh,) = [c for c in clusters if c.name == "outbound|8080||httpbin.test.svc.cluster.local"]
    mesh.transport_socket.typed_config.Pack(tls_pb2.DownstreamTlsContext())
    assert validate_resources(CLUSTER_TYPE, [mesh]) == [
        'cluster "outbound|8080||httpbin.test.svc.cluster.local": transport_socket.typed_config: '
        "unsupported type envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
    ]


def test_enum_values_outside_the_subset_are_named() -> None:
    cluster = cluster_pb2.Cluster(name="dns", type=cluster_pb2.Cluster.STRICT_DNS)
    cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
    assert validate_resources(CLUSTER_TYPE, [cluster]) == [
        'cluster "dns": type: unsupported value STRICT_DNS',
        'cluster "dns": lb_policy: unsupported value MAGLEV',
    ]


def test_rules_envoy_applies_on_load() -> None:
    static = cluster_pb2.Cluster(name="s", type=cluster_pb2.Cluster.STATIC)
    original = cluster_pb2.Cluster(name="o", type=cluster_pb2.Cluster.ORIGINAL_DST)
    assert validate_resources(CLUSTER_TYPE, [static, original, static]) == [
        'cluster "s": load_assignment: a STATIC cluster needs a load_assignment',
        'cluster "o": lb_policy: an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED',
        'cluster "s": duplicate name',
        'cluster "s": load_assignment: a STATIC cluster needs a load_assignment',
    ]
    route = route_pb2.RouteConfiguration(name="80")
    host = route.virtual_hosts.add(name="h")
    host.routes.add(name="r")
    assert validate_resources(ROUTE_TYPE, [route]) == [
        'route "80": virtual_hosts[0].domains: at least one domain is required',
        'route "80": virtual_hosts[0].routes[0]: a route or a direct_response is required',
        'route "80": virtual_hosts[0].routes[0].match: a prefix or a path is required',
    ]


def test_listener_filter_chain_rules_come_from_the_matcher() -> None:
    listener = _inbound()
    listener.filter_chains.append(listener.filter_chains[0])
    problems = validate_resources(LISTENER_TYPE, [listener])
    assert len(problems) == 1
    assert problems[0].startswith('listener "virtualInbound": filter_chains')
    assert "has the same matching rules as" in problems[0]


def test_bytes_from_a_newer_envoy_are_refused() -> None:
    cluster = cluster_pb2.Cluster(
        name="c",
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
    )
    data = cluster.SerializeToString() + b"\xf8\x7f\x01"  # field 2047, varint 1
    packed = any_pb2.Any(type_url=CLUSTER_TYPE, value=data)
    assert validate_resources(CLUSTER_TYPE, [packed]) == [
        'cluster "c": unknown field number 2047 in envoy.config.cluster.v3.Cluster'
    ]


def test_the_subset_names_real_fields() -> None:
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    for type_name, fields in SUPPORTED_FIELDS.items():
        descriptor = pool.FindMessageTypeByName(type_name)
        assert fields <= set(descriptor.fields_by_name), type_name


def test_documented_subset_matches_the_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "envoy-api-subset.md").read_text()
    for type_name, fields in SUPPORTED_FIELDS.items():
        assert f"`{type_name}`" in doc, type_name
        for name in fields:
            assert f"`{name}`" in doc, (type_name, name)
