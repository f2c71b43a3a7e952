"""Listeners of a sidecar: ``virtualInbound`` (15006) and ``virtualOutbound`` (15001).

Theory of operation (Istio's ``listener_inbound.go`` and ``filterchain_options.go``).

Inbound. For each inbound port (see ``_inbound.plan_inbound``) the composed mTLS mode
of that container port decides which filter chains exist:

- a user ``tls`` block (flag on) *and* mode DISABLE: one chain
  ``{destination_port, transport_protocol: tls}`` terminating the user's TLS
  (SDS ``file-cert:<cert>~<key>`` / ``file-root:<ca>``, ALPN ``h2,http/1.1``);
  under STRICT or PERMISSIVE the block is silently ignored, as in Istio;
- STRICT: mesh mTLS chains only (transport ``tls``), so plaintext finds no chain;
- PERMISSIVE: the mesh mTLS chain (matching Istio's mTLS ALPNs) plus a plaintext one;
- DISABLE: plaintext only.

A port whose protocol is unknown gets both an HTTP and a TCP chain, told apart by
ALPN, as Istio's protocol sniffing does. Before the port chains come the
``virtualInbound-blackhole`` chain (traffic to 15006 itself) and the passthrough
chains (``virtualInbound-catchall-http`` / ``virtualInbound``) for the workload's
mode and for port-level modes of ports no chain serves.

Outbound. ``virtualOutbound`` holds one chain per Service VIP and port
(``<vip>_<port>``, matched on the VIP/32 and the port): HTTP ports get an HTTP
connection manager reading route configuration ``<port>`` over RDS, other ports a TCP
proxy to ``outbound|<port>||<host>``. Traffic to 15001 itself goes to
``BlackHoleCluster``; everything else to ``PassthroughCluster`` (``BlackHoleCluster``
under ``REGISTRY_ONLY``).
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.core.v3 import protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from google.protobuf.message import Message

from meshlet.pilot import _xds
from meshlet.pilot._inbound import InboundChain, ListenerProtocol, listener_protocol, plan_inbound
from meshlet.pilot._outbound import visible_services
from meshlet.pilot.authn import ComposedMTLS
from meshlet.pilot.routes import build_inbound_route_config, registry_only
from meshlet.pilot.snapshot import MeshService, Protocol, Proxy, Snapshot
from meshlet.resources.istio import MTLSMode, ServerTLSSettings, TLSMode, TLSProtocol
from meshlet.resources.validation.tls import VALID_CIPHER_SUITES

__all__ = [
    "INBOUND_PORT",
    "OUTBOUND_PORT",
    "OutboundChainKey",
    "build_downstream_tls_context",
    "build_inbound_listener",
    "build_listeners",
    "build_mesh_inbound_tls_context",
    "build_outbound_listener",
    "outbound_listener_frame",
    "outbound_service_chains",
]

INBOUND_PORT = 15006
OUTBOUND_PORT = 15001
INBOUND_SERVER_NAME = "istio-envoy"

_TLS_VERSIONS = {
    TLSProtocol.TLSV1_0: common_pb2.TlsParameters.TLSv1_0,
    TLSProtocol.TLSV1_1: common_pb2.TlsParameters.TLSv1_1,
    TLSProtocol.TLSV1_2: common_pb2.TlsParameters.TLSv1_2,
    TLSProtocol.TLSV1_3: common_pb2.TlsParameters.TLSv1_3,
}


@dataclass(frozen=True, slots=True)
class _Option:
    """One filter chain to build for a port (Istio's ``FilterChainMatchOptions``)."""

    protocol: ListenerProtocol  # HTTP or TCP, never AUTO
    transport_protocol: str
    application_protocols: tuple[str, ...] = ()
    tls: bool = False


_HTTP, _TCP = ListenerProtocol.HTTP, ListenerProtocol.TCP
_MTLS_TCP_WITH_MXC = ("istio-peer-exchange", "istio")

_OPTIONS: dict[tuple[ListenerProtocol, MTLSMode], tuple[_Option, ...]] = {
    (_HTTP, MTLSMode.STRICT): (_Option(_HTTP, _xds.TLS, (), True),),
    (_HTTP, MTLSMode.PERMISSIVE): (
        _Option(_HTTP, _xds.TLS, _xds.ALL_ISTIO_MTLS_ALPNS, True),
        _Option(_HTTP, _xds.RAW_BUFFER),
    ),
    (_HTTP, MTLSMode.DISABLE): (_Option(_HTTP, _xds.RAW_BUFFER),),
    (_TCP, MTLSMode.STRICT): (_Option(_TCP, _xds.TLS, (), True),),
    (_TCP, MTLSMode.PERMISSIVE): (
        _Option(_TCP, _xds.TLS, _xds.ALL_ISTIO_MTLS_ALPNS, True),
        _Option(_TCP, _xds.RAW_BUFFER),
        _Option(_TCP, _xds.TLS),
    ),
    (_TCP, MTLSMode.DISABLE): (_Option(_TCP, _xds.RAW_BUFFER),),
    (ListenerProtocol.AUTO, MTLSMode.STRICT): (
        _Option(_HTTP, _xds.TLS, _xds.MTLS_HTTP_ALPNS, True),
        _Option(_TCP, _xds.TLS, (), True),
    ),
    (ListenerProtocol.AUTO, MTLSMode.PERMISSIVE): (
        _Option(_HTTP, _xds.TLS, _xds.MTLS_HTTP_ALPNS, True),
        _Option(_HTTP, _xds.RAW_BUFFER, _xds.PLAINTEXT_HTTP_ALPNS),
        _Option(_TCP, _xds.TLS, _MTLS_TCP_WITH_MXC, True),
        _Option(_TCP, _xds.RAW_BUFFER),
        _Option(_TCP, _xds.TLS),
    ),
    (ListenerProtocol.AUTO, MTLSMode.DISABLE): (
        _Option(_HTTP, _xds.RAW_BUFFER, _xds.PLAINTEXT_HTTP_ALPNS),
        _Option(_TCP, _xds.RAW_BUFFER),
    ),
}


def _options_for(protocol: ListenerProtocol, mode: MTLSMode) -> tuple[_Option, ...]:
    if mode is MTLSMode.UNSET:
        mode = MTLSMode.PERMISSIVE
    return _OPTIONS[(protocol, mode)]


# --- TLS contexts -----------------------------------------------------------------------


def build_mesh_inbound_tls_context(
    protocol: ListenerProtocol, trust_domain: str
) -> tls_pb2.DownstreamTlsContext:
    """Istio's ``BuildInboundTLS``: the workload certificate, the mesh root, a client cert.

    TLS 1.2-1.3 with Istio's server ciphers; ALPN ``h2,http/1.1`` for HTTP chains and
    ``istio-peer-exchange,h2,http/1.1`` for TCP ones; the peer's certificate must carry
    a SPIFFE URI of the trust domain.
    """
    alpn = _xds.ALPN_HTTP if protocol is ListenerProtocol.HTTP else _xds.ALPN_DOWNSTREAM_WITH_MXC
    common = tls_pb2.CommonTlsContext(
        tls_params=common_pb2.TlsParameters(
            tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
            tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
            cipher_suites=list(_xds.MESH_MTLS_CIPHERS),
        ),
        alpn_protocols=list(alpn),
        tls_certificate_sds_secret_configs=[_xds.sds_secret_config(_xds.SDS_DEFAULT)],
    )
    combined = common.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.append(
        _xds.spiffe_uri_prefix(trust_domain)
    )
    combined.validation_context_sds_secret_config.CopyFrom(_xds.sds_secret_config(_xds.SDS_ROOT))
    return tls_pb2.DownstreamTlsContext(
        common_tls_context=common, require_client_certificate=_xds.boolean(True)
    )


def build_downstream_tls_context(settings: ServerTLSSettings) -> tls_pb2.DownstreamTlsContext:
    """Istio's ``BuildListenerTLSContext`` for TLS given by file paths (a Sidecar ingress).

    ALPN ``h2,http/1.1``; the certificate from SDS ``file-cert:<cert>~<key>`` (``default``
    when a path is missing); for MUTUAL and OPTIONAL_MUTUAL the peer is validated
    against ``file-root:<ca>`` (``ROOTCA`` when unset), and for MUTUAL it must present a
    certificate. The TLS minimum is TLSv1_2 unless the user sets one; the user's
    maximum and cipher suites (invalid and duplicate names dropped) follow.
    """
    require = settings.mode in (TLSMode.MUTUAL, TLSMode.ISTIO_MUTUAL)
    validate = require or settings.mode is TLSMode.OPTIONAL_MUTUAL
    common = tls_pb2.CommonTlsContext(alpn_protocols=list(_xds.ALPN_HTTP))
    cert_name = (
        _xds.file_cert_name(settings.server_certificate, settings.private_key) or _xds.SDS_DEFAULT
    )
    common.tls_certificate_sds_secret_configs.append(_xds.sds_secret_config(cert_name))
    if validate:
        combined = common.combined_validation_context
        default = combined.default_validation_context
        for name in settings.subject_alt_names:
            default.match_subject_alt_names.add(exact=name)
        if settings.ca_crl:
            default.crl.filename = settings.ca_crl
        if settings.insecure_skip_verify:
            default.trust_chain_verification = (
                common_pb2.CertificateValidationContext.ACCEPT_UNTRUSTED
            )
        root_name = _xds.file_root_name(settings.ca_certificates) or _xds.SDS_ROOT
        combined.validation_context_sds_secret_config.CopyFrom(_xds.sds_secret_config(root_name))
    if settings.mode in (TLSMode.SIMPLE, TLSMode.MUTUAL, TLSMode.OPTIONAL_MUTUAL):
        params = common.tls_params
        params.tls_minimum_protocol_version = _TLS_VERSIONS.get(
            settings.min_protocol_version, common_pb2.TlsParameters.TLSv1_2
        )
        if settings.max_protocol_version in _TLS_VERSIONS:
            params.tls_maximum_protocol_version = _TLS_VERSIONS[settings.max_protocol_version]
        ciphers = _filter_ciphers(settings.cipher_suites)
        if ciphers:
            params.cipher_suites.extend(ciphers)
        if settings.ecdh_curves:
            params.ecdh_curves.extend(settings.ecdh_curves)
    return tls_pb2.DownstreamTlsContext(
        common_tls_context=common, require_client_certificate=_xds.boolean(require)
    )


def _filter_ciphers(ciphers: tuple[str, ...]) -> list[str]:
    """``security.FilterCipherSuites``: keep valid names once, in the user's order."""
    kept: list[str] = []
    for cipher in ciphers:
        valid = cipher in VALID_CIPHER_SUITES or (cipher and not cipher[0].isalnum())
        if valid and cipher not in kept:
            kept.append(cipher)
    return kept


# --- network filters --------------------------------------------------------------------


def _tcp_proxy(stat_prefix: str, cluster: str) -> listener_components_pb2.Filter:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)
    return listener_components_pb2.Filter(name=_xds.TCP_PROXY, typed_config=_xds.pack(proxy))


def _hcm_common(stat_prefix: str) -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        use_remote_address=_xds.boolean(False),
        normalize_path=_xds.boolean(True),
        path_with_escaped_slashes_action=hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED,
        stream_idle_timeout=_xds.duration(0),
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        http_filters=[
            hcm_pb2.HttpFilter(name=_xds.ROUTER, typed_config=_xds.pack(router_pb2.Router()))
        ],
    )
    hcm.tracing.SetInParent()
    return hcm


def _inbound_hcm(
    stat_prefix: str, cluster: str, service_port: int, instance_hostname: str, http2: bool
) -> listener_components_pb2.Filter:
    hcm = _hcm_common(stat_prefix)
    hcm.route_config.CopyFrom(build_inbound_route_config(cluster, service_port, instance_hostname))
    hcm.server_name = INBOUND_SERVER_NAME
    hcm.server_header_transformation = hcm_pb2.HttpConnectionManager.OVERWRITE
    hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.APPEND_FORWARD
    details = hcm.set_current_client_cert_details
    details.subject.value = True
    details.uri = True
    details.dns = True
    if http2:
        hcm.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
    return listener_components_pb2.Filter(
        name=_xds.HTTP_CONNECTION_MANAGER, typed_config=_xds.pack(hcm)
    )


# --- inbound ----------------------------------------------------------------------------


def _chain_match(port: int, option: _Option) -> listener_components_pb2.FilterChainMatch:
    match = listener_components_pb2.FilterChainMatch(
        transport_protocol=option.transport_protocol,
        application_protocols=list(option.application_protocols),
    )
    if port > 0:
        match.destination_port.value = port
    return match


def _inbound_chains(
    chain: InboundChain, mtls: ComposedMTLS, trust_domain: str
) -> list[listener_components_pb2.FilterChain]:
    mode = mtls.for_port(chain.target_port)
    user_tls = chain.tls is not None and mode is MTLSMode.DISABLE
    protocol = listener_protocol(chain.protocol)
    if user_tls:
        options: tuple[_Option, ...] = (
            _Option(_HTTP if protocol is _HTTP else _TCP, _xds.TLS, (), True),
        )
    else:
        options = _options_for(protocol, mode)
    chains = []
    for option in options:
        if option.protocol is _HTTP:
            network = _inbound_hcm(
                f"inbound_{chain.chain_name}",
                chain.cluster_name,
                chain.service_port,
                chain.instance_hostname,
                chain.protocol.is_http2,
            )
        else:
            network = _tcp_proxy(chain.cluster_name, chain.cluster_name)
        filter_chain = listener_components_pb2.FilterChain(
            name=chain.chain_name,
            filter_chain_match=_chain_match(chain.target_port, option),
            filters=[network],
        )
        if option.tls:
            if user_tls and chain.tls is not None:
                context = build_downstream_tls_context(chain.tls)
            else:
                context = build_mesh_inbound_tls_context(option.protocol, trust_domain)
            filter_chain.transport_socket.CopyFrom(_xds.transport_socket(context))
        chains.append(filter_chain)
    return chains


def _passthrough_chains(
    port: int, mode: MTLSMode, trust_domain: str
) -> list[listener_components_pb2.FilterChain]:
    chains = []
    cluster = _xds.INBOUND_PASSTHROUGH_CLUSTER
    for option in _options_for(ListenerProtocol.AUTO, mode):
        if option.protocol is _HTTP:
            name = _xds.VIRTUAL_INBOUND_CATCHALL_HTTP
            network = _inbound_hcm(cluster, cluster, 0, "", http2=False)
        else:
            name = _xds.VIRTUAL_INBOUND
            network = _tcp_proxy(cluster, cluster)
        filter_chain = listener_components_pb2.FilterChain(
            name=name, filter_chain_match=_chain_match(port, option), filters=[network]
        )
        if option.tls:
            context = build_mesh_inbound_tls_context(option.protocol, trust_domain)
            filter_chain.transport_socket.CopyFrom(_xds.transport_socket(context))
        chains.append(filter_chain)
    return chains


def _listener_filter(name: str, config: Message) -> listener_components_pb2.ListenerFilter:
    return listener_components_pb2.ListenerFilter(name=name, typed_config=_xds.pack(config))


def build_inbound_listener(proxy: Proxy, snapshot: Snapshot) -> listener_pb2.Listener:
    """``virtualInbound`` on 0.0.0.0:15006 (see the module docstring)."""
    trust_domain = snapshot.mesh.trust_domain
    mtls = snapshot.mtls_for(proxy.workload)
    plan = plan_inbound(proxy, snapshot)
    served = {chain.target_port for chain in plan}

    chains = [
        listener_components_pb2.FilterChain(
            name=_xds.VIRTUAL_INBOUND_BLACKHOLE,
            filter_chain_match=listener_components_pb2.FilterChainMatch(
                destination_port=_xds.uint32(INBOUND_PORT)
            ),
            filters=[_tcp_proxy(_xds.BLACKHOLE_CLUSTER, _xds.BLACKHOLE_CLUSTER)],
        )
    ]
    chains.extend(_passthrough_chains(0, mtls.mode, trust_domain))
    for port, mode in sorted(mtls.per_port.items()):
        if port not in served:
            chains.extend(_passthrough_chains(port, mode, trust_domain))
    for chain in plan:
        chains.extend(_inbound_chains(chain, mtls, trust_domain))

    return listener_pb2.Listener(
        name=_xds.VIRTUAL_INBOUND,
        address=_xds.socket_address("0.0.0.0", INBOUND_PORT),
        use_original_dst=_xds.boolean(True),
        traffic_direction=core_base_pb2.INBOUND,
        continue_on_listener_filters_timeout=True,
        listener_filters=[
            _listener_filter(_xds.ORIGINAL_DST, original_dst_pb2.OriginalDst()),
            _listener_filter(_xds.TLS_INSPECTOR, tls_inspector_pb2.TlsInspector()),
            _listener_filter(_xds.HTTP_INSPECTOR, http_inspector_pb2.HttpInspector()),
        ],
        filter_chains=chains,
    )


# --- outbound ---------------------------------------------------------------------------


def _outbound_hcm(port: int) -> listener_components_pb2.Filter:
    hcm = _hcm_common(f"outbound_0.0.0.0_{port}")
    hcm.rds.route_config_name = str(port)
    hcm.rds.config_source.CopyFrom(_xds.ads_config_source())
    return listener_components_pb2.Filter(
        name=_xds.HTTP_CONNECTION_MANAGER, typed_config=_xds.pack(hcm)
    )


#: How ``virtualOutbound`` orders its Service chains: the VIP's octets, the port, the
#: VIP, the protocol and the hostname.
OutboundChainKey = tuple[tuple[int, ...], int, str, Protocol, str]


def outbound_service_chains(
    service: MeshService,
) -> list[tuple[OutboundChainKey, listener_components_pb2.FilterChain]]:
    """The ``<vip>_<port>`` chains of one Service in ``virtualOutbound``, with their sort keys.

    They depend on the Service alone (VIP, ports, protocols, hostname), never on the
    proxy, so a control plane may build them once and share them between proxies.
    A headless Service has none.
    """
    vip = service.vip
    if not vip:
        return []  # headless Services are not modelled
    octets = tuple(int(part) for part in vip.split(".")) if "." in vip else ()
    chains = []
    for port in service.ports:
        if listener_protocol(port.protocol) is ListenerProtocol.HTTP:
            network = _outbound_hcm(port.port)
        else:
            cluster = _xds.outbound_cluster_name(port.port, service.hostname)
            network = _tcp_proxy(cluster, cluster)
        match = listener_components_pb2.FilterChainMatch(destination_port=_xds.uint32(port.port))
        prefix = match.prefix_ranges.add()
        prefix.address_prefix = vip
        prefix.prefix_len.value = 128 if ":" in vip else 32
        key = (octets, port.port, vip, port.protocol, service.hostname)
        chains.append(
            (
                key,
                listener_components_pb2.FilterChain(
                    name=f"{vip}_{port.port}", filter_chain_match=match, filters=[network]
                ),
            )
        )
    return chains


def outbound_listener_frame(
    proxy: Proxy,
) -> tuple[listener_pb2.Listener, list[listener_components_pb2.FilterChain]]:
    """``virtualOutbound`` without its Service chains, and the chains that close it.

    The Service chains (``outbound_service_chains``, sorted by key) go first in
    ``filter_chains``; then ``virtualOutbound-blackhole`` and ``PassthroughFilterChain``.
    """
    fallback = _xds.BLACKHOLE_CLUSTER if registry_only(proxy) else _xds.PASSTHROUGH_CLUSTER
    tail = [
        listener_components_pb2.FilterChain(
            name=_xds.VIRTUAL_OUTBOUND_BLACKHOLE,
            filter_chain_match=listener_components_pb2.FilterChainMatch(
                destination_port=_xds.uint32(OUTBOUND_PORT)
            ),
            filters=[_tcp_proxy(_xds.BLACKHOLE_CLUSTER, _xds.BLACKHOLE_CLUSTER)],
        ),
        listener_components_pb2.FilterChain(
            name=_xds.PASSTHROUGH_FILTER_CHAIN, filters=[_tcp_proxy(fallback, fallback)]
        ),
    ]
    frame = listener_pb2.Listener(
        name=_xds.VIRTUAL_OUTBOUND,
        address=_xds.socket_address("0.0.0.0", OUTBOUND_PORT),
        use_original_dst=_xds.boolean(True),
        traffic_direction=core_base_pb2.OUTBOUND,
    )
    return frame, tail


def build_outbound_listener(proxy: Proxy, snapshot: Snapshot) -> listener_pb2.Listener:
    """``virtualOutbound`` on 0.0.0.0:15001 (see the module docstring)."""
    entries = [
        entry
        for service in visible_services(proxy, snapshot)
        for entry in outbound_service_chains(service)
    ]
    entries.sort(key=lambda entry: entry[0])
    listener, tail = outbound_listener_frame(proxy)
    listener.filter_chains.extend([chain for _, chain in entries])
    listener.filter_chains.extend(tail)
    return listener


def build_listeners(proxy: Proxy, snapshot: Snapshot) -> list[listener_pb2.Listener]:
    """The proxy's listeners, sorted by name: ``virtualInbound`` and ``virtualOutbound``."""
    return [build_inbound_listener(proxy, snapshot), build_outbound_listener(proxy, snapshot)]
