"""Which Services a sidecar can reach: its Sidecar's egress hosts, or the whole mesh."""

from __future__ import annotations

from meshlet.pilot.snapshot import MeshService, Proxy, Snapshot

__all__ = ["http_ports", "visible_services"]


def _host_matches(pattern: str, service: MeshService) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return service.hostname.endswith(pattern[1:])
    return pattern in (service.hostname, service.name)


def _egress_allows(hosts: tuple[str, ...], proxy: Proxy, service: MeshService) -> bool:
    for entry in hosts:
        namespace, sep, host = entry.partition("/")
        if not sep:
            continue
        if namespace == ".":
            namespace = proxy.namespace
        if namespace == "~":
            continue
        if namespace not in ("*", service.namespace):
            continue
        if _host_matches(host, service):
            return True
    return False


def visible_services(proxy: Proxy, snapshot: Snapshot) -> tuple[MeshService, ...]:
    """The Services in the proxy's egress scope (all of them without a Sidecar egress).

    A Sidecar's egress hosts are ``namespace/host`` (``.`` is the proxy's namespace,
    ``*`` any; host ``*``, ``*.suffix`` or a name). Ports of egress listeners are not
    modelled: every listed host is visible on all its ports.
    """
    sidecar = proxy.sidecar
    egress = [item for item in (sidecar.egress if sidecar else ()) if item is not None]
    if not egress:
        return snapshot.services
    hosts = tuple(host for item in egress for host in item.hosts)
    return tuple(s for s in snapshot.services if _egress_allows(hosts, proxy, s))


def http_ports(services: tuple[MeshService, ...]) -> list[int]:
    """The Service ports that carry HTTP for at least one of ``services``, ascending."""
    return sorted({p.port for s in services for p in s.ports if p.protocol.is_http})
