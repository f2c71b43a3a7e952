"""EDS: one ``ClusterLoadAssignment`` per outbound cluster, the endpoints' IP:targetPort."""

from __future__ import annotations

from envoy.config.endpoint.v3 import endpoint_pb2

from meshlet.pilot import _xds
from meshlet.pilot._outbound import visible_services
from meshlet.pilot.snapshot import MeshService, Proxy, Snapshot

__all__ = ["build_endpoints", "build_load_assignments"]


def build_load_assignments(service: MeshService) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """The load assignments of one Service's ports (they depend on the Service alone).

    Each Service port lists the running workloads the Service selects, at the target
    port resolved on each pod (a named target port is looked up in its containers);
    a pod where the name does not resolve is left out, as Kubernetes does.
    """
    assignments = []
    for port in service.ports:
        name = _xds.outbound_cluster_name(port.port, service.hostname)
        addresses = sorted(
            (tuple(int(p) for p in w.ip.split(".")) if "." in w.ip else (), w.ip, target)
            for w in service.endpoints
            if (target := w.resolve_port(port.target_port)) is not None
        )
        assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
        if addresses:
            locality = assignment.endpoints.add()
            for _, ip, target in addresses:
                endpoint = locality.lb_endpoints.add()
                endpoint.endpoint.address.CopyFrom(_xds.socket_address(ip, target))
                endpoint.load_balancing_weight.value = 1
            locality.load_balancing_weight.value = len(addresses)
        assignments.append(assignment)
    return assignments


def build_endpoints(proxy: Proxy, snapshot: Snapshot) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """The load assignments of the proxy's EDS clusters, sorted by cluster name."""
    assignments = [
        assignment
        for service in visible_services(proxy, snapshot)
        for assignment in build_load_assignments(service)
    ]
    assignments.sort(key=lambda item: item.cluster_name)
    return assignments
