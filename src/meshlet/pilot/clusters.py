"""Clusters of a sidecar: inbound ``inbound|<port>||``, outbound ``outbound|<port>||<host>``
and Istio's built-in ``BlackHoleCluster``, ``PassthroughCluster`` and
``InboundPassthroughCluster``.

Theory of operation.

Inbound clusters send to the application. A Sidecar ingress ``defaultEndpoint`` makes
a STATIC cluster: ``0.0.0.0:P`` (or ``[::]:P``) is the pod's IP on port P,
``127.0.0.1:P`` / ``[::1]:P`` localhost, ``unix://path`` a socket; a port that comes
from a Service (or a listener without ``defaultEndpoint``) makes an ORIGINAL_DST
cluster to wherever the connection was going. Every inbound cluster binds its
upstream connections to 127.0.0.6, as Envoy under Istio does, so that they are not
captured again into 15006.

Outbound clusters are EDS clusters named ``outbound|<port>||<host>``. Their upstream
TLS, first match wins:

1. a DestinationRule for the host (port-level ``tls`` before the rule's ``tls``):
   DISABLE is plaintext, ISTIO_MUTUAL is mesh mTLS, SIMPLE/MUTUAL originate the
   user's TLS from file paths (SDS ``file-cert:…``/``file-root:…``);
2. otherwise Istio's auto mTLS: mesh mTLS when every endpoint runs a sidecar and the
   composed PeerAuthentication mode of each endpoint's target port is not DISABLE;
   plaintext otherwise.

Mesh mTLS is an ``UpstreamTlsContext`` with SDS ``default`` and ``ROOTCA``, SNI
``outbound_.<port>_._.<host>``, ALPN ``istio-peer-exchange,istio`` and the SPIFFE
identities of the endpoints' service accounts as the only acceptable peer names.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from meshlet.pilot import _xds
from meshlet.pilot._inbound import InboundChain, plan_inbound
from meshlet.pilot._outbound import visible_services
from meshlet.pilot.snapshot import MeshService, Proxy, ServicePortInfo, Snapshot
from meshlet.resources.istio import ClientTLSMode, ClientTLSSettings, DestinationRule, MTLSMode

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "build_clusters",
    "build_fixed_clusters",
    "build_inbound_clusters",
    "build_mesh_upstream_tls_context",
    "build_outbound_clusters",
    "destination_rule_for",
    "outbound_tls",
    "outbound_tls_under",
]

CONNECT_TIMEOUT_SECONDS = 10
_MAX = 4294967295


def _circuit_breakers() -> circuit_breaker_pb2.CircuitBreakers:
    threshold = circuit_breaker_pb2.CircuitBreakers.Thresholds(track_remaining=True)
    for name in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        getattr(threshold, name).value = _MAX
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[threshold])


def _base(name: str, kind: cluster_pb2.Cluster.DiscoveryType.ValueType) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=name,
        type=kind,
        connect_timeout=_xds.duration(CONNECT_TIMEOUT_SECONDS),
        circuit_breakers=_circuit_breakers(),
    )


def _bind_inbound(cluster: cluster_pb2.Cluster) -> None:
    source = cluster.upstream_bind_config.source_address
    source.address = _xds.INBOUND_PASSTHROUGH_BIND_IP
    source.port_value = 0


def _original_dst(name: str) -> cluster_pb2.Cluster:
    cluster = _base(name, cluster_pb2.Cluster.ORIGINAL_DST)
    cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    return cluster


def _static_endpoint(name: str, address: address_pb2.Address) -> cluster_pb2.Cluster:
    cluster = _base(name, cluster_pb2.Cluster.STATIC)
    cluster.load_assignment.CopyFrom(
        endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(address=address)
                        )
                    ]
                )
            ],
        )
    )
    return cluster


def _default_endpoint_address(default_endpoint: str, pod_ip: str) -> address_pb2.Address | None:
    """The address behind a Sidecar ingress ``defaultEndpoint``, or None for passthrough."""
    if not default_endpoint:
        return None
    if default_endpoint.startswith("unix://"):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=default_endpoint[len("unix://") :]))
    host, _, port_text = default_endpoint.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit():
        return None
    port = int(port_text)
    if host in ("0.0.0.0", "::"):
        return _xds.socket_address(pod_ip or "127.0.0.1", port)
    if host in ("127.0.0.1", "::1"):
        return _xds.socket_address(host, port)
    return None


def _inbound_cluster(chain: InboundChain, pod_ip: str) -> cluster_pb2.Cluster:
    address = _default_endpoint_address(chain.default_endpoint or "", pod_ip)
    if address is None:
        cluster = _original_dst(chain.cluster_name)
    else:
        cluster = _static_endpoint(chain.cluster_name, address)
    _bind_inbound(cluster)
    return cluster


def build_mesh_upstream_tls_context(
    port: int, hostname: str, identities: list[str]
) -> tls_pb2.UpstreamTlsContext:
    """Istio's ISTIO_MUTUAL client context for ``outbound|<port>||<host>``."""
    common = tls_pb2.CommonTlsContext(
        tls_params=common_pb2.TlsParameters(
            tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
            tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
        ),
        alpn_protocols=list(_xds.ALPN_IN_MESH_WITH_MXC),
        tls_certificate_sds_secret_configs=[_xds.sds_secret_config(_xds.SDS_DEFAULT)],
    )
    combined = common.combined_validation_context
    combined.default_validation_context.SetInParent()
    for identity in identities:
        combined.default_validation_context.match_typed_subject_alt_names.append(
            _xds.spiffe_uri_exact(identity)
        )
    combined.validation_context_sds_secret_config.CopyFrom(_xds.sds_secret_config(_xds.SDS_ROOT))
    return tls_pb2.UpstreamTlsContext(
        common_tls_context=common, sni=_xds.outbound_sni(port, hostname)
    )


def _user_upstream_tls_context(
    settings: ClientTLSSettings, hostname: str
) -> tls_pb2.UpstreamTlsContext:
    common = tls_pb2.CommonTlsContext()
    if settings.mode is ClientTLSMode.MUTUAL:
        name = _xds.file_cert_name(settings.client_certificate, settings.private_key)
        if name:
            common.tls_certificate_sds_secret_configs.append(_xds.sds_secret_config(name))
    root = _xds.file_root_name(settings.ca_certificates)
    if root or settings.subject_alt_names:
        combined = common.combined_validation_context
        combined.default_validation_context.SetInParent()
        for san in settings.subject_alt_names:
            combined.default_validation_context.match_subject_alt_names.add(exact=san)
        if root:
            combined.validation_context_sds_secret_config.CopyFrom(_xds.sds_secret_config(root))
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=settings.sni or hostname)


def _fqdn(host: str, namespace: str) -> str:
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.svc.cluster.local"


def _host_matches(pattern: str, hostname: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:])
    return pattern == hostname


def destination_rule_for(
    proxy: Proxy, service: MeshService, snapshot: Snapshot
) -> DestinationRule | None:
    """The DestinationRule that applies to ``service`` for ``proxy``, as Istio looks it up.

    The proxy's namespace first, then the Service's, then the root namespace; in each,
    rules whose workload selector (if any) picks the proxy and whose host (a short host
    is read in the rule's namespace) matches the Service; exact hosts before wildcards,
    then the oldest.
    """
    labels = proxy.workload.labels
    order = (proxy.namespace, service.namespace, snapshot.mesh.root_namespace)
    for namespace in dict.fromkeys(order):
        found = []
        for rule in snapshot.destination_rules:
            if rule.namespace != namespace:
                continue
            if rule.workload_selector is not None and not (
                rule.namespace == proxy.namespace
                and all(labels.get(k) == v for k, v in rule.workload_selector.items())
            ):
                continue
            if (
                namespace != proxy.namespace
                and rule.export_to
                and not ("*" in rule.export_to or proxy.namespace in rule.export_to)
            ):
                continue
            host = _fqdn(rule.host, rule.namespace)
            if _host_matches(host, service.hostname):
                found.append((host.startswith("*"), rule.creation_timestamp or "", rule.name, rule))
        if found:
            return min(found, key=lambda item: item[:3])[3]
    return None


def _auto_mtls(service: MeshService, port: ServicePortInfo, snapshot: Snapshot) -> bool:
    for workload in service.endpoints:
        if not workload.has_sidecar:
            return False
        target = workload.resolve_port(port.target_port)
        if target is not None and snapshot.mtls_for(workload).for_port(target) is MTLSMode.DISABLE:
            return False
    return True


def outbound_tls(
    proxy: Proxy, service: MeshService, port: ServicePortInfo, snapshot: Snapshot
) -> tls_pb2.UpstreamTlsContext | None:
    """The upstream TLS of ``outbound|<port>||<host>`` (rules in the module docstring)."""
    rule = destination_rule_for(proxy, service, snapshot)
    return outbound_tls_under(rule, service, port, snapshot)


def outbound_tls_under(
    rule: DestinationRule | None, service: MeshService, port: ServicePortInfo, snapshot: Snapshot
) -> tls_pb2.UpstreamTlsContext | None:
    """``outbound_tls`` once the DestinationRule that applies (if any) is known."""
    settings = None
    if rule is not None:
        settings = rule.port_level_tls.get(port.port, rule.tls)
    identities = sorted({w.identity(snapshot.mesh.trust_domain) for w in service.endpoints})
    if settings is not None:
        if settings.mode is ClientTLSMode.DISABLE:
            return None
        if settings.mode is ClientTLSMode.ISTIO_MUTUAL:
            return build_mesh_upstream_tls_context(port.port, service.hostname, identities)
        return _user_upstream_tls_context(settings, service.hostname)
    if _auto_mtls(service, port, snapshot):
        return build_mesh_upstream_tls_context(port.port, service.hostname, identities)
    return None


def build_outbound_clusters(
    service: MeshService, rule: DestinationRule | None, snapshot: Snapshot
) -> list[cluster_pb2.Cluster]:
    """The ``outbound|<port>||<host>`` clusters of one Service, under ``rule``.

    They depend on the Service, the DestinationRule that applies to the proxy (see
    ``destination_rule_for``) and the snapshot's policy, not otherwise on the proxy: a
    control plane may share them between proxies that pick the same rule.
    """
    clusters = []
    for port in service.ports:
        name = _xds.outbound_cluster_name(port.port, service.hostname)
        cluster = _base(name, cluster_pb2.Cluster.EDS)
        cluster.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
        cluster.eds_cluster_config.service_name = name
        cluster.eds_cluster_config.eds_config.CopyFrom(_xds.ads_config_source())
        context = outbound_tls_under(rule, service, port, snapshot)
        if context is not None:
            cluster.transport_socket.CopyFrom(_xds.transport_socket(context))
        clusters.append(cluster)
    return clusters


def build_fixed_clusters() -> list[cluster_pb2.Cluster]:
    """Istio's built-in clusters, the same for every sidecar: ``BlackHoleCluster``,
    ``PassthroughCluster`` and ``InboundPassthroughCluster``."""
    blackhole = _base(_xds.BLACKHOLE_CLUSTER, cluster_pb2.Cluster.STATIC)
    blackhole.ClearField("circuit_breakers")
    blackhole.load_assignment.cluster_name = _xds.BLACKHOLE_CLUSTER
    inbound_passthrough = _original_dst(_xds.INBOUND_PASSTHROUGH_CLUSTER)
    _bind_inbound(inbound_passthrough)
    return [blackhole, _original_dst(_xds.PASSTHROUGH_CLUSTER), inbound_passthrough]


def build_inbound_clusters(proxy: Proxy, snapshot: Snapshot) -> list[cluster_pb2.Cluster]:
    """The proxy's ``inbound|<port>||`` clusters, by target port."""
    return [_inbound_cluster(chain, proxy.workload.ip) for chain in plan_inbound(proxy, snapshot)]


def build_clusters(proxy: Proxy, snapshot: Snapshot) -> list[cluster_pb2.Cluster]:
    """The proxy's clusters, sorted by name."""
    clusters = build_fixed_clusters()
    clusters.extend(build_inbound_clusters(proxy, snapshot))
    for service in visible_services(proxy, snapshot):
        rule = destination_rule_for(proxy, service, snapshot)
        clusters.extend(build_outbound_clusters(service, rule, snapshot))
    clusters.sort(key=lambda cluster: cluster.name)
    return clusters
