"""HTTP route configurations: the inbound one inlined in each inbound HTTP chain, and the
outbound ones served over RDS (one per port, named by the port, as Istio names them).

Outbound virtual hosts carry every name a client may use for a Service: its FQDN,
``name.ns.svc``, ``name.ns``, the bare ``name`` (only for clients in the same
namespace, as a pod's DNS search path makes it work only there) and the VIP, each
with and without ``:port``. A last virtual host ``allow_any`` (``*``) sends
everything else to ``PassthroughCluster``, or ``block_all`` answers 502 when the
Sidecar's outbound traffic policy is ``REGISTRY_ONLY``.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2, route_pb2

from meshlet.pilot import _xds
from meshlet.pilot._outbound import http_ports, visible_services
from meshlet.pilot.snapshot import MeshService, Proxy, Snapshot

__all__ = [
    "build_inbound_route_config",
    "build_routes",
    "outbound_domains",
    "registry_only",
]


def _route_action(cluster: str) -> route_components_pb2.RouteAction:
    action = route_components_pb2.RouteAction(cluster=cluster, timeout=_xds.duration(0))
    action.max_stream_duration.max_stream_duration.CopyFrom(_xds.duration(0))
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(_xds.duration(0))
    return action


def _default_route(
    cluster: str, operation: str, name: str = "default"
) -> route_components_pb2.Route:
    return route_components_pb2.Route(
        name=name,
        match=route_components_pb2.RouteMatch(prefix="/"),
        route=_route_action(cluster),
        decorator=route_components_pb2.Decorator(operation=operation),
    )


def build_inbound_route_config(
    cluster: str, service_port: int, instance_hostname: str
) -> route_pb2.RouteConfiguration:
    """``inbound|P||``: vhost ``inbound|http|<port>``, ``*``, one route ``default``.

    The decorator is ``<instance hostname>:<port>/*`` (``ingress-sidecar.test:9080/*``
    for a Sidecar ingress listener).
    """
    return route_pb2.RouteConfiguration(
        name=cluster,
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=f"inbound|http|{service_port}",
                domains=["*"],
                routes=[_default_route(cluster, f"{instance_hostname}:{service_port}/*")],
            )
        ],
        validate_clusters=_xds.boolean(False),
    )


def outbound_domains(service: MeshService, port: int, client_namespace: str) -> list[str]:
    """Every host header a client in ``client_namespace`` may send for ``service:port``."""
    names = [service.hostname]
    if service.namespace == client_namespace:
        names.append(service.name)
    names.append(f"{service.name}.{service.namespace}.svc")
    names.append(f"{service.name}.{service.namespace}")
    if service.vip:
        names.append(service.vip)
    domains: list[str] = []
    for name in names:
        domains.extend((name, f"{name}:{port}"))
    return domains


def registry_only(proxy: Proxy) -> bool:
    """Whether the proxy's Sidecar allows only registered destinations."""
    return proxy.sidecar is not None and proxy.sidecar.outbound_traffic_policy == "REGISTRY_ONLY"


def _catch_all(proxy: Proxy) -> route_components_pb2.VirtualHost:
    if registry_only(proxy):
        return route_components_pb2.VirtualHost(
            name="block_all",
            domains=["*"],
            routes=[
                route_components_pb2.Route(
                    name="block_all",
                    match=route_components_pb2.RouteMatch(prefix="/"),
                    direct_response=route_components_pb2.DirectResponseAction(status=502),
                )
            ],
        )
    return route_components_pb2.VirtualHost(
        name="allow_any",
        domains=["*"],
        routes=[
            route_components_pb2.Route(
                name="allow_any",
                match=route_components_pb2.RouteMatch(prefix="/"),
                route=_route_action(_xds.PASSTHROUGH_CLUSTER),
            )
        ],
    )


def build_routes(proxy: Proxy, snapshot: Snapshot) -> list[route_pb2.RouteConfiguration]:
    """The outbound RDS route configurations of a proxy, sorted by name."""
    services = visible_services(proxy, snapshot)
    configs: list[route_pb2.RouteConfiguration] = []
    for port in http_ports(services):
        hosts: list[route_components_pb2.VirtualHost] = []
        for service in services:
            if not any(p.port == port and p.protocol.is_http for p in service.ports):
                continue
            cluster = _xds.outbound_cluster_name(port, service.hostname)
            hosts.append(
                route_components_pb2.VirtualHost(
                    name=f"{service.hostname}:{port}",
                    domains=outbound_domains(service, port, proxy.namespace),
                    routes=[_default_route(cluster, f"{service.hostname}:{port}/*")],
                    include_request_attempt_count=True,
                )
            )
        hosts.sort(key=lambda host: host.name)
        hosts.append(_catch_all(proxy))
        configs.append(
            route_pb2.RouteConfiguration(
                name=str(port),
                virtual_hosts=hosts,
                validate_clusters=_xds.boolean(False),
            )
        )
    configs.sort(key=lambda config: config.name)
    return configs
