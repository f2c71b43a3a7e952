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
    "catch_all_virtual_host",
    "outbound_domains",
    "outbound_route_config_frame",
    "outbound_virtual_hosts",
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


def catch_all_virtual_host(proxy: Proxy) -> route_components_pb2.VirtualHost:
    """The last virtual host of every outbound route configuration: ``allow_any`` or
    ``block_all`` (``REGISTRY_ONLY``)."""
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


def outbound_virtual_hosts(
    service: MeshService, client_namespace: str
) -> dict[int, route_components_pb2.VirtualHost]:
    """The virtual hosts ``<host>:<port>`` of one Service, by port (its HTTP ports only).

    They depend on the Service and on whether the client is in its namespace (the bare
    name is a domain only there), so proxies may share them.
    """
    hosts: dict[int, route_components_pb2.VirtualHost] = {}
    for port in service.ports:
        if not port.protocol.is_http or port.port in hosts:
            continue
        cluster = _xds.outbound_cluster_name(port.port, service.hostname)
        hosts[port.port] = route_components_pb2.VirtualHost(
            name=f"{service.hostname}:{port.port}",
            domains=outbound_domains(service, port.port, client_namespace),
            routes=[_default_route(cluster, f"{service.hostname}:{port.port}/*")],
            include_request_attempt_count=True,
        )
    return hosts


def outbound_route_config_frame(port: int) -> route_pb2.RouteConfiguration:
    """The outbound route configuration of ``port`` without its virtual hosts."""
    return route_pb2.RouteConfiguration(name=str(port), validate_clusters=_xds.boolean(False))


def build_routes(proxy: Proxy, snapshot: Snapshot) -> list[route_pb2.RouteConfiguration]:
    """The outbound RDS route configurations of a proxy, sorted by name.

    One per HTTP port of the visible Services: their virtual hosts sorted by name, then
    the catch-all one.
    """
    services = visible_services(proxy, snapshot)
    by_port: dict[int, list[route_components_pb2.VirtualHost]] = {
        port: [] for port in http_ports(services)
    }
    for service in services:
        for port, host in outbound_virtual_hosts(service, proxy.namespace).items():
            by_port[port].append(host)
    configs: list[route_pb2.RouteConfiguration] = []
    for port, hosts in by_port.items():
        hosts.sort(key=lambda host: host.name)
        config = outbound_route_config_frame(port)
        config.virtual_hosts.extend([*hosts, catch_all_virtual_host(proxy)])
        configs.append(config)
    configs.sort(key=lambda config: config.name)
    return configs
