"""Small readers over built config, for the pilot tests."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2


def listener(listeners: Iterable[listener_pb2.Listener], name: str) -> listener_pb2.Listener:
    found = [item for item in listeners if item.name == name]
    assert len(found) == 1, name
    return found[0]


def chains(item: listener_pb2.Listener, name: str) -> list[listener_components_pb2.FilterChain]:
    return [chain for chain in item.filter_chains if chain.name == name]


def downstream_tls(chain: listener_components_pb2.FilterChain) -> tls_pb2.DownstreamTlsContext:
    assert chain.transport_socket.name == "envoy.transport_sockets.tls"
    context = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(context)
    return context


def upstream_tls(cluster: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    context = tls_pb2.UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(context)
    return context


def hcm(chain: listener_components_pb2.FilterChain) -> hcm_pb2.HttpConnectionManager:
    (network,) = [
        f for f in chain.filters if f.name == "envoy.filters.network.http_connection_manager"
    ]
    manager = hcm_pb2.HttpConnectionManager()
    assert network.typed_config.Unpack(manager)
    return manager


def tcp_proxy(chain: listener_components_pb2.FilterChain) -> tcp_proxy_pb2.TcpProxy:
    (network,) = [f for f in chain.filters if f.name == "envoy.filters.network.tcp_proxy"]
    proxy = tcp_proxy_pb2.TcpProxy()
    assert network.typed_config.Unpack(proxy)
    return proxy


def cluster(clusters: Iterable[cluster_pb2.Cluster], name: str) -> cluster_pb2.Cluster:
    found = [item for item in clusters if item.name == name]
    assert len(found) == 1, name
    return found[0]


def sds_names(context: tls_pb2.CommonTlsContext) -> tuple[list[str], str]:
    certs = [config.name for config in context.tls_certificate_sds_secret_configs]
    root = context.combined_validation_context.validation_context_sds_secret_config.name
    return certs, root
