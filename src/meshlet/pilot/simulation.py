"""What happens to a call, answered from a built config (Istio's sidecar simulation).

Theory of operation. ``simulate`` takes a proxy's built listeners (and its RDS route
configurations) and a ``Call``, and walks the config the way the sidecar would:

1. the listener: ``virtualInbound`` for inbound calls, ``virtualOutbound`` for outbound;
2. the filter chain, chosen by ``meshlet.envoy.filter_chain.select_filter_chain`` from
   what the TLS and HTTP inspectors would report (transport ``tls`` or
   ``raw_buffer``, the SNI, the ALPN list); none: ``NO_FILTER_CHAIN``;
3. the chain's TLS, if it terminates TLS: a chain that serves the mesh certificate
   (SDS ``default``) and asks for a client certificate needs mesh mTLS
   (``MTLS_REQUIRED`` otherwise); a chain with the user's certificate that requires a
   client certificate refuses a client without one (``CLIENT_CERTIFICATE_REQUIRED``);
   a chain that terminates TLS refuses a plaintext call (``MTLS_REQUIRED``);
4. the network filter: a TCP proxy names its cluster; an HTTP connection manager
   picks the virtual host by the Host header (exact, then ``*.suffix``/``prefix*``,
   then ``*``) and the first route whose prefix matches the path; none: ``NO_ROUTE``.

The answer is a ``Result`` with a ``Reason`` when the call is refused, never a bool.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from meshlet.envoy.filter_chain import ConnectionFacts, select_filter_chain
from meshlet.pilot import _xds

__all__ = ["Call", "CallTLS", "Direction", "Reason", "Result", "simulate"]


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallTLS(enum.Enum):
    """What the client speaks: plaintext, its own TLS, or mesh mTLS (a sidecar client)."""

    NONE = "none"
    PLAIN_TLS = "plain_tls"
    MESH_MTLS = "mesh_mtls"


class Reason(enum.Enum):
    """Why a call is not served."""

    NO_FILTER_CHAIN = "NO_FILTER_CHAIN"
    MTLS_REQUIRED = "MTLS_REQUIRED"
    CLIENT_CERTIFICATE_REQUIRED = "CLIENT_CERTIFICATE_REQUIRED"
    NO_ROUTE = "NO_ROUTE"


@dataclass(frozen=True, slots=True)
class Call:
    """One connection (and, for HTTP, one request) to simulate.

    ``alpn`` defaults to what the client would offer: Istio's mesh ALPN for mesh mTLS
    (``istio-peer-exchange,istio``), nothing for the client's own TLS, and for
    plaintext HTTP what the HTTP inspector reports (``http/1.1``). ``client_identity``
    is the subject or SPIFFE URI of the certificate the client presents (None: none).
    """

    direction: Direction
    port: int
    destination_ip: str
    tls: CallTLS = CallTLS.NONE
    sni: str = ""
    alpn: tuple[str, ...] | None = None
    client_identity: str | None = None
    host: str = ""
    path: str = "/"
    http: bool = True
    source_ip: str = "10.244.0.100"
    source_port: int = 40000

    def offered_alpn(self) -> tuple[str, ...]:
        if self.alpn is not None:
            return self.alpn
        if self.tls is CallTLS.MESH_MTLS:
            return _xds.ALPN_IN_MESH_WITH_MXC
        if self.tls is CallTLS.NONE and self.http:
            return ("http/1.1",)
        return ()


@dataclass(frozen=True, slots=True)
class Result:
    """Where the call went, or why it was refused (``reason`` is None when served)."""

    listener: str | None = None
    filter_chain: str | None = None
    terminated_tls: bool = False
    tls_certificate: str | None = None  # the SDS name of the certificate served
    route_config: str | None = None
    virtual_host: str | None = None
    route: str | None = None
    cluster: str | None = None
    decorator: str | None = None
    reason: Reason | None = None

    @property
    def served(self) -> bool:
        return self.reason is None


def _listener_named(
    listeners: Iterable[listener_pb2.Listener], name: str
) -> listener_pb2.Listener | None:
    for listener in listeners:
        if listener.name == name:
            return listener
    return None


def _tls_context(chain: listener_components_pb2.FilterChain) -> tls_pb2.DownstreamTlsContext | None:
    if not chain.HasField("transport_socket"):
        return None
    context = tls_pb2.DownstreamTlsContext()
    if not chain.transport_socket.typed_config.Unpack(context):
        return None
    return context


def _domain_matches(domain: str, host: str) -> int:
    """How well ``domain`` matches ``host``: 3 exact, 2 suffix, 1 prefix, 0 ``*``, -1 none."""
    if domain == host:
        return 3
    if domain == "*":
        return 0
    if domain.startswith("*") and host.endswith(domain[1:]):
        return 2
    if domain.endswith("*") and host.startswith(domain[:-1]):
        return 1
    return -1


def _pick_virtual_host(
    config: route_pb2.RouteConfiguration, host: str
) -> route_components_pb2.VirtualHost | None:
    best: tuple[int, int] | None = None
    chosen = None
    for vhost in config.virtual_hosts:
        for domain in vhost.domains:
            score = _domain_matches(domain.lower(), host.lower())
            if score < 0:
                continue
            key = (score, len(domain))
            if best is None or key > best:
                best, chosen = key, vhost
    return chosen


def _pick_route(
    vhost: route_components_pb2.VirtualHost, path: str
) -> route_components_pb2.Route | None:
    for route in vhost.routes:
        match = route.match
        if match.HasField("prefix") and path.startswith(match.prefix):
            return route
        if match.HasField("path") and path == match.path:
            return route
    return None


def simulate(
    listeners: Iterable[listener_pb2.Listener],
    call: Call,
    routes: Iterable[route_pb2.RouteConfiguration] = (),
) -> Result:
    """Follow ``call`` through a proxy's config (see the module docstring).

    ``routes`` are the proxy's RDS route configurations (``build_routes``).
    """
    route_table = {config.name: config for config in routes}
    name = _xds.VIRTUAL_INBOUND if call.direction is Direction.INBOUND else _xds.VIRTUAL_OUTBOUND
    listener = _listener_named(listeners, name)
    if listener is None:
        return Result(reason=Reason.NO_FILTER_CHAIN)
    facts = ConnectionFacts(
        destination_ip=call.destination_ip,
        destination_port=call.port,
        source_ip=call.source_ip,
        source_port=call.source_port,
        transport_protocol=_xds.RAW_BUFFER if call.tls is CallTLS.NONE else _xds.TLS,
        server_name=call.sni if call.tls is not CallTLS.NONE else "",
        application_protocols=call.offered_alpn(),
    )
    chain = select_filter_chain(listener, facts)
    if chain is None:
        return Result(listener=listener.name, reason=Reason.NO_FILTER_CHAIN)
    result = Result(listener=listener.name, filter_chain=chain.name)

    context = _tls_context(chain)
    certificate = None
    if context is not None:
        common = context.common_tls_context
        names = [config.name for config in common.tls_certificate_sds_secret_configs]
        certificate = names[0] if names else None
        requires_client_cert = context.require_client_certificate.value
        if call.tls is CallTLS.NONE:
            return _replace(result, reason=Reason.MTLS_REQUIRED)
        if requires_client_cert and certificate == _xds.SDS_DEFAULT:
            if call.tls is not CallTLS.MESH_MTLS:
                return _replace(result, reason=Reason.MTLS_REQUIRED)
        elif requires_client_cert and call.client_identity is None:
            return _replace(result, reason=Reason.CLIENT_CERTIFICATE_REQUIRED)
    result = _replace(result, terminated_tls=context is not None, tls_certificate=certificate)

    for network in chain.filters:
        if network.name == _xds.TCP_PROXY:
            proxy = tcp_proxy_pb2.TcpProxy()
            network.typed_config.Unpack(proxy)
            return _replace(result, cluster=proxy.cluster)
        if network.name == _xds.HTTP_CONNECTION_MANAGER:
            hcm = hcm_pb2.HttpConnectionManager()
            network.typed_config.Unpack(hcm)
            return _route_http(result, hcm, call, route_table)
    return _replace(result, reason=Reason.NO_ROUTE)


def _route_http(
    result: Result,
    hcm: hcm_pb2.HttpConnectionManager,
    call: Call,
    routes: Mapping[str, route_pb2.RouteConfiguration],
) -> Result:
    if hcm.HasField("route_config"):
        config: route_pb2.RouteConfiguration | None = hcm.route_config
    else:
        config = routes.get(hcm.rds.route_config_name)
    config_name = config.name if config is not None else hcm.rds.route_config_name
    result = _replace(result, route_config=config_name)
    if config is None:
        return _replace(result, reason=Reason.NO_ROUTE)
    host = call.host or f"{call.destination_ip}:{call.port}"
    vhost = _pick_virtual_host(config, host)
    if vhost is None:
        return _replace(result, reason=Reason.NO_ROUTE)
    result = _replace(result, virtual_host=vhost.name)
    route = _pick_route(vhost, call.path)
    if route is None:
        return _replace(result, reason=Reason.NO_ROUTE)
    result = _replace(
        result,
        route=route.name,
        decorator=route.decorator.operation if route.HasField("decorator") else None,
    )
    if not route.HasField("route") or not route.route.cluster:
        return _replace(result, reason=Reason.NO_ROUTE)
    return _replace(result, cluster=route.route.cluster)


def _replace(result: Result, **changes: Any) -> Result:
    return replace(result, **changes)
