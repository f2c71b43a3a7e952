"""The running proxy: its current config, its secrets, and the listeners that serve them.

Theory of operation.

State. ``ProxyState`` holds the current ``ProxyConfig`` — listeners, clusters, route
configurations and endpoints (``ClusterLoadAssignment``) by name, as Envoy v3 protos
already validated by whoever fed them (the xDS client) — plus the secret provider, the
TLS context cache and the upstream pools. ``replace`` swaps in a new config in one
assignment: a connection takes the config that is current when it is accepted and
keeps it to its end (drain), the next connection sees the new one. Pools and TLS
contexts outlive config versions (they are keyed by what they were built from).

Secrets. A ``SecretProvider`` returns SDS ``Secret`` protos by name and tells
subscribers when one changes; ``StaticSecretProvider`` is the in-process one (tests,
standalone use, or a cache an SDS client fills).

Serving. ``serve_listener`` binds the listener's address (``SO_REUSEPORT``, so several
worker processes can serve one port) or takes a given socket, and runs
``InspectingListener`` (original destination, TLS inspector, filter-chain match, reset
when no chain matches). For a matched chain it terminates TLS when the chain has a
``DownstreamTlsContext`` transport socket (a failed handshake ends that connection
only), computes the client certificate's XFCC element once, and runs the chain's
network filter: the HTTP connection manager or the TCP proxy. Other network filters
before them (Istio's metadata exchange, authn/authz extensions) have no data-path
effect here. A listener whose config is replaced keeps its socket and switches its
filter chains for new connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from meshlet.envoy.filter_chain import compile_filter_chains
from meshlet.errors import TLSConfigError
from meshlet.proxy.access_log import AccessLogBuffer
from meshlet.proxy.hcm import DownstreamInfo, HttpConnectionManager
from meshlet.proxy.http_headers import (
    ForwardClientCert,
    client_cert_element,
    describe_peer_certificate,
)
from meshlet.proxy.limits import ConnectionGate, ListenerLimits
from meshlet.proxy.listener import AcceptedConnection, InspectingListener
from meshlet.proxy.metrics import ConnectionLabels, MetricsRegistry, Reporter, Workload
from meshlet.proxy.routing import HcmSettings, RouteTable
from meshlet.proxy.streams import ByteStream, wrap_socket
from meshlet.proxy.tcp_proxy import serve_tcp_proxy
from meshlet.proxy.tls import (
    SecretProvider,
    TlsContextCache,
    TlsHandshakeError,
    TlsStream,
    accept_tls,
)
from meshlet.proxy.upstream import OpenStream, UpstreamManager

__all__ = [
    "ListenerServer",
    "ProxyConfig",
    "ProxyState",
    "SecretProvider",
    "StaticSecretProvider",
    "bind_listener_socket",
    "serve_listener",
]

log = logging.getLogger(__name__)

_HCM = "envoy.filters.network.http_connection_manager"
_TCP_PROXY = "envoy.filters.network.tcp_proxy"
_TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
_DEFAULT_FILTERS_TIMEOUT = 15.0


class StaticSecretProvider:
    """Secrets held in memory; ``set``/``remove`` notify subscribers."""

    def __init__(self, secrets: Iterable[secret_pb2.Secret] = ()) -> None:
        self._secrets = {secret.name: secret for secret in secrets}
        self._subscribers: list[Callable[[str], None]] = []

    def get(self, name: str) -> secret_pb2.Secret | None:
        return self._secrets.get(name)

    def subscribe(self, callback: Callable[[str], None]) -> None:
        self._subscribers.append(callback)

    def set(self, secret: secret_pb2.Secret) -> None:
        self._secrets[secret.name] = secret
        self._notify(secret.name)

    def remove(self, name: str) -> None:
        if self._secrets.pop(name, None) is not None:
            self._notify(name)

    def _notify(self, name: str) -> None:
        for callback in list(self._subscribers):
            callback(name)


def _by_name(items: Iterable[object], attribute: str) -> Mapping[str, object]:
    return MappingProxyType({getattr(item, attribute): item for item in items})


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """One version of the proxy's config (protos by name)."""

    listeners: Mapping[str, listener_pb2.Listener]
    clusters: Mapping[str, cluster_pb2.Cluster]
    route_configs: Mapping[str, route_pb2.RouteConfiguration]
    endpoints: Mapping[str, endpoint_pb2.ClusterLoadAssignment]
    version: int = 0
    _tables: dict[str, RouteTable] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        *,
        listeners: Iterable[listener_pb2.Listener] = (),
        clusters: Iterable[cluster_pb2.Cluster] = (),
        route_configs: Iterable[route_pb2.RouteConfiguration] = (),
        endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
        version: int = 0,
    ) -> ProxyConfig:
        return cls(
            listeners=_by_name(listeners, "name"),
            clusters=_by_name(clusters, "name"),
            route_configs=_by_name(route_configs, "name"),
            endpoints=_by_name(endpoints, "cluster_name"),
            version=version,
        )

    def route_table(self, name: str) -> RouteTable | None:
        """The compiled route configuration ``name`` (RDS), or ``None``."""
        table = self._tables.get(name)
        if table is None:
            config = self.route_configs.get(name)
            if config is None:
                return None
            table = self._tables[name] = RouteTable(config)
        return table


class ProxyState:
    """The current config, swapped atomically, with the secrets, TLS contexts and pools."""

    def __init__(
        self,
        secrets: SecretProvider,
        *,
        listeners: Iterable[listener_pb2.Listener] = (),
        clusters: Iterable[cluster_pb2.Cluster] = (),
        route_configs: Iterable[route_pb2.RouteConfiguration] = (),
        endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
        open_stream: OpenStream | None = None,
        workload: Workload | None = None,
        access_log: AccessLogBuffer | None = None,
    ) -> None:
        self.secrets = secrets
        #: Istio's metrics of this process, and who it is for their labels.
        self.metrics = MetricsRegistry()
        self.workload = workload or Workload()
        #: Where access log lines go (``None``: no access log).
        self.access_log = access_log
        self.tls = TlsContextCache(secrets)
        self.upstreams = UpstreamManager(self.tls, open_stream=open_stream)
        self.stats: Counter[str] = Counter()
        self._subscribers: list[Callable[[ProxyConfig], None]] = []
        self.current = ProxyConfig.of(
            listeners=listeners, clusters=clusters, route_configs=route_configs,
            endpoints=endpoints,
        )  # fmt: skip

    def replace(
        self,
        *,
        listeners: Iterable[listener_pb2.Listener] | None = None,
        clusters: Iterable[cluster_pb2.Cluster] | None = None,
        route_configs: Iterable[route_pb2.RouteConfiguration] | None = None,
        endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment] | None = None,
    ) -> ProxyConfig:
        """Install a new config; a kind given as ``None`` keeps its current resources."""
        old = self.current
        new = ProxyConfig(
            listeners=old.listeners if listeners is None else _by_name(listeners, "name"),
            clusters=old.clusters if clusters is None else _by_name(clusters, "name"),
            route_configs=old.route_configs
            if route_configs is None
            else _by_name(route_configs, "name"),
            endpoints=old.endpoints if endpoints is None else _by_name(endpoints, "cluster_name"),
            version=old.version + 1,
        )
        self.current = new
        for callback in list(self._subscribers):
            callback(new)
        return new

    def subscribe(self, callback: Callable[[ProxyConfig], None]) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[ProxyConfig], None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(callback)


def bind_listener_socket(
    listener: listener_pb2.Listener, *, reuse_port: bool = True, backlog: int = 1024
) -> socket.socket:
    """A listening socket on the listener's address (``SO_REUSEPORT`` for workers)."""
    address = listener.address.socket_address
    host = address.address or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, address.port_value))
        sock.listen(listener.tcp_backlog_size.value or backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@dataclass(frozen=True, slots=True)
class _ChainPlan:
    """What a filter chain does, read from its protos once."""

    tls: tls_pb2.DownstreamTlsContext | None
    hcm: HcmSettings | None
    routes: RouteTable | None
    tcp_proxy: tcp_proxy_pb2.TcpProxy | None
    problem: str | None = None


def _plan(chain: listener_components_pb2.FilterChain, direction: int) -> _ChainPlan:
    tls = None
    if chain.HasField("transport_socket"):
        config = chain.transport_socket.typed_config
        if config.Is(tls_pb2.DownstreamTlsContext.DESCRIPTOR):
            tls = tls_pb2.DownstreamTlsContext()
            config.Unpack(tls)
        elif chain.transport_socket.name not in ("", "envoy.transport_sockets.raw_buffer"):
            return _ChainPlan(None, None, None, None, "unsupported transport socket")
    for network in reversed(chain.filters):
        config = network.typed_config
        if config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR) or network.name == _HCM:
            hcm = hcm_pb2.HttpConnectionManager()
            config.Unpack(hcm)
            routes = RouteTable(hcm.route_config) if hcm.HasField("route_config") else None
            return _ChainPlan(tls, HcmSettings.from_proto(hcm, direction), routes, None)
        if config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR) or network.name == _TCP_PROXY:
            tcp = tcp_proxy_pb2.TcpProxy()
            config.Unpack(tcp)
            return _ChainPlan(tls, None, None, tcp)
    return _ChainPlan(tls, None, None, None, "no terminal network filter")


def _inspects_tls(listener: listener_pb2.Listener) -> bool:
    if any(f.name == _TLS_INSPECTOR for f in listener.listener_filters):
        return True
    return any(
        chain.filter_chain_match.transport_protocol
        or chain.filter_chain_match.server_names
        or chain.filter_chain_match.application_protocols
        for chain in listener.filter_chains
    )


def _seconds(duration: object, default: float) -> float:
    seconds = getattr(duration, "seconds", 0) + getattr(duration, "nanos", 0) / 1e9
    return seconds or default


class ListenerServer:
    """Serves one listener (see the module docstring)."""

    def __init__(
        self,
        listener: listener_pb2.Listener,
        state: ProxyState,
        *,
        limits: ListenerLimits | None = None,
        gate: ConnectionGate | None = None,
    ) -> None:
        self.state = state
        self.listener = listener
        self.limits = limits or ListenerLimits.of(listener)
        self.gate = gate or ConnectionGate(self.limits.max_connections)
        self.inspecting = InspectingListener(
            compile_filter_chains(listener),
            self._on_chain,
            use_original_dst=listener.use_original_dst.value,
            listener_filters_timeout=_seconds(
                listener.listener_filters_timeout, _DEFAULT_FILTERS_TIMEOUT
            )
            if listener.HasField("listener_filters_timeout")
            else _DEFAULT_FILTERS_TIMEOUT,
            continue_on_listener_filters_timeout=listener.continue_on_listener_filters_timeout,
            inspect_tls=_inspects_tls(listener),
            gate=self.gate,
        )
        self.stats = self.inspecting.stats
        self._plans: dict[int, tuple[listener_components_pb2.FilterChain, _ChainPlan]] = {}

    def _config_changed(self, config: ProxyConfig) -> None:
        new = config.listeners.get(self.listener.name)
        if new is None or new == self.listener:
            return
        self.listener = new
        self._plans = {}
        self.inspecting.table = compile_filter_chains(new)

    def _plan_for(self, chain: listener_components_pb2.FilterChain) -> _ChainPlan:
        found = self._plans.get(id(chain))
        if found is None or found[0] is not chain:
            found = (chain, _plan(chain, self.listener.traffic_direction))
            self._plans[id(chain)] = found
        return found[1]

    async def serve(self, sock: socket.socket) -> None:
        self.state.subscribe(self._config_changed)
        try:
            await self.inspecting.serve(sock)
        finally:
            self.state.unsubscribe(self._config_changed)

    async def _on_chain(
        self,
        sock: socket.socket,
        chain: listener_components_pb2.FilterChain,
        accepted: AcceptedConnection,
    ) -> None:
        config = self.state.current  # this connection keeps this config to its end
        plan = self._plan_for(chain)
        stats = self.stats
        if plan.problem is not None:
            stats["downstream_cx_no_filter"] += 1
            log.warning("filter chain %s: %s", chain.name, plan.problem)
            raise RuntimeError(plan.problem)  # the listener resets the connection
        initial = b""
        try:
            if plan.tls is not None and accepted.peeked:
                # The ClientHello the inspector peeked is waiting in the socket: take it
                # now so that the handshake answers it without waiting for it again.
                initial = sock.recv(accepted.peeked)
            stream: ByteStream = await wrap_socket(sock, max_buffer=self.limits.buffer_limit)
        except OSError:  # BlockingIOError included: the peeked bytes cannot vanish
            sock.close()
            return
        try:
            await self._run(stream, plan, accepted, config, initial)
        except Exception:
            stats["downstream_cx_error"] += 1
            log.debug("connection ended with an error on %s", chain.name, exc_info=True)
            stream.abort()
        finally:
            if not stream.closed:
                stream.close()

    async def _run(
        self, stream: ByteStream, plan: _ChainPlan, accepted: AcceptedConnection,
        config: ProxyConfig, initial: bytes = b"",
    ) -> None:  # fmt: skip
        facts = accepted.facts
        element: str | None = None
        alpn: str | None = None
        local_principal = peer_principal = "unknown"
        mutual = False
        if plan.tls is not None:
            try:
                server = self.state.tls.server(plan.tls)
            except TLSConfigError as exc:
                self.stats["ssl.connection_error"] += 1
                log.warning("listener %s: TLS not ready: %s", self.listener.name, exc)
                stream.abort()
                return
            try:
                tls_stream: TlsStream = await accept_tls(stream, server, initial=initial)
            except TlsHandshakeError as exc:
                self.stats["ssl.connection_error"] += 1
                log.debug("TLS handshake failed: %s", exc.reason)
                await _close_after_alert(stream)
                return
            self.stats["ssl.handshake"] += 1
            stream = tls_stream
            alpn = tls_stream.alpn_protocol
            peer = tls_stream.peer_certificate
            if server.local_uri_sans:
                local_principal = server.local_uri_sans[0]
            if peer is not None:
                mutual = True
                try:
                    described = describe_peer_certificate(peer)
                except ValueError:
                    described = None
                if described is not None and described.uri_sans:
                    peer_principal = described.uri_sans[0]
                if (
                    described is not None
                    and plan.hcm is not None
                    and plan.hcm.forward_client_cert
                    in (ForwardClientCert.APPEND_FORWARD, ForwardClientCert.SANITIZE_SET)
                ):
                    element = client_cert_element(
                        described,
                        plan.hcm.client_cert_details,
                        local_uri_sans=server.local_uri_sans,
                    )
        direction = self.listener.traffic_direction
        labels = ConnectionLabels(
            reporter=Reporter.SOURCE
            if direction == core_base_pb2.OUTBOUND
            else Reporter.DESTINATION,
            local=self.state.workload,
            local_principal=local_principal,
            peer_principal=peer_principal,
            mutual_tls=mutual,
        )
        metrics = self.state.metrics.connection(labels)
        destination = (facts.destination_ip, facts.destination_port)
        if plan.hcm is not None:
            info = DownstreamInfo(
                source=(facts.source_ip, facts.source_port),
                destination=destination,
                tls=plan.tls is not None,
                alpn=alpn,
                client_cert_element=element,
                server_name=facts.server_name or None,
            )
            manager = HttpConnectionManager(
                plan.hcm, plan.routes, config, self.state.upstreams, info,
                listener_port=facts.destination_port, metrics=metrics,
                access_log=self.state.access_log,
            )  # fmt: skip
            await manager.serve(stream)
        elif plan.tcp_proxy is not None:
            await serve_tcp_proxy(
                stream,
                config=plan.tcp_proxy,
                clusters=config.clusters,
                assignments=config.endpoints,
                upstreams=self.state.upstreams,
                original_destination=destination,
                metrics=metrics,
            )


async def serve_listener(
    listener: listener_pb2.Listener, state: ProxyState, *, sock: socket.socket | None = None
) -> None:
    """Serve ``listener`` until cancelled, on ``sock`` or on a socket bound to its address."""
    own = sock is None
    listening = bind_listener_socket(listener) if sock is None else sock
    try:
        await ListenerServer(listener, state).serve(listening)
    finally:
        if own:
            listening.close()


async def _close_after_alert(stream: ByteStream, *, linger: float = 1.0) -> None:
    """Close a connection whose handshake failed so that the peer reads the TLS alert.

    A TLS 1.3 client sends its first application bytes right after its Finished; a
    close with those bytes unread makes the kernel send a reset, which can reach the
    client before the alert does. So: half-close, read and drop what still arrives
    for a short while, then close.
    """
    with contextlib.suppress(OSError, TimeoutError):
        stream.write_eof()
        async with asyncio.timeout(linger):
            while await stream.read():
                pass
    stream.close()
