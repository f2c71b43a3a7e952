"""Services as the endpoints controller, kube-proxy and cluster DNS see them.

- ``service_endpoints``: for each port of a Service, its ready endpoints: the ready
  pods its selector picks, each at the port's ``targetPort`` (a number, or the name of
  a container port of that pod; a pod without that named port is left out). A
  Service without a selector takes its endpoints from ``manual`` (the control plane's
  ``istiod`` Service points at the node).
- ``service_rules``: kube-proxy's input (``meshlet.runtime.services``) for every
  Service with a ClusterIP.
- ``dns_table``: ``name.namespace.svc.cluster.local`` → the ClusterIP, or the ready
  pods' addresses for a headless Service (``clusterIP: None``).

Pure: dicts in, values out, sorted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any

from meshlet.daemon.controllers.deployments import is_pod_ready
from meshlet.runtime.dnsmsg import service_names
from meshlet.runtime.services import Endpoint, Protocol, ServicePortRules

__all__ = ["dns_table", "pod_ip", "selects", "service_endpoints", "service_rules"]

Manual = Mapping[tuple[str, str], Sequence[IPv4Address]]


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def pod_ip(pod: Mapping[str, Any]) -> IPv4Address | None:
    raw = (pod.get("status") or {}).get("podIP")
    try:
        return IPv4Address(raw) if raw else None
    except ValueError:
        return None


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _target_port(target: Any, pod: Mapping[str, Any], protocol: str) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                number = port.get("containerPort")
                return int(number) if isinstance(number, int) else None
    return None


def service_endpoints(
    service: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    manual: Manual | None = None,
) -> dict[str, tuple[Endpoint, ...]]:
    """Port name (or number, when unnamed) → its ready endpoints, sorted."""
    meta = _meta(service)
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    result: dict[str, tuple[Endpoint, ...]] = {}
    for port in spec.get("ports") or []:
        key = str(port.get("name") or port.get("port"))
        protocol = str(port.get("protocol") or "TCP")
        target = port.get("targetPort") or port.get("port")
        found: set[Endpoint] = set()
        if not selector:
            for address in (manual or {}).get((namespace, name), ()):
                number = _target_port(target, {}, protocol)
                if number:
                    found.add(Endpoint(address, number))
        else:
            for pod in pods:
                pod_meta = _meta(pod)
                if pod_meta.get("namespace") != namespace or not is_pod_ready(pod):
                    continue
                if not selects(selector, pod_meta.get("labels") or {}):
                    continue
                found_ip = pod_ip(pod)
                number = _target_port(target, pod, protocol)
                if found_ip is not None and number:
                    found.add(Endpoint(found_ip, number))
        result[key] = tuple(sorted(found, key=lambda e: (e.ip, e.port)))
    return result


def _cluster_ip(service: Mapping[str, Any]) -> IPv4Address | None:
    raw = (service.get("spec") or {}).get("clusterIP")
    if not raw or raw == "None":
        return None
    try:
        return IPv4Address(raw)
    except ValueError:
        return None


def service_rules(
    services: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    manual: Manual | None = None,
) -> list[ServicePortRules]:
    """kube-proxy's rules for every Service with a ClusterIP."""
    rules: list[ServicePortRules] = []
    for service in services:
        address = _cluster_ip(service)
        if address is None:
            continue
        meta = _meta(service)
        endpoints = service_endpoints(service, pods, manual)
        for port in (service.get("spec") or {}).get("ports") or []:
            try:
                protocol = Protocol(str(port.get("protocol") or "TCP"))
            except ValueError:
                continue
            number = port.get("port")
            if not isinstance(number, int):
                continue
            rules.append(
                ServicePortRules(
                    namespace=str(meta.get("namespace")),
                    name=str(meta.get("name")),
                    cluster_ip=address,
                    port=number,
                    port_name=str(port.get("name") or ""),
                    protocol=protocol,
                    endpoints=endpoints.get(str(port.get("name") or number), ()),
                )
            )
    return sorted(rules, key=lambda r: (r.namespace, r.name, r.port_name, r.port))


def dns_table(
    services: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    *,
    zone: str = "cluster.local",
) -> Mapping[str, tuple[IPv4Address, ...]]:
    """Cluster DNS names → addresses."""
    entries: list[tuple[str, str, IPv4Address]] = []
    for service in services:
        meta = _meta(service)
        name, namespace = str(meta.get("name")), str(meta.get("namespace"))
        address = _cluster_ip(service)
        if address is not None:
            entries.append((name, namespace, address))
            continue
        if (service.get("spec") or {}).get("clusterIP") == "None":
            selector = (service.get("spec") or {}).get("selector") or {}
            for pod in pods:
                pod_meta = _meta(pod)
                if pod_meta.get("namespace") != namespace or not is_pod_ready(pod):
                    continue
                ip = pod_ip(pod)
                if ip is not None and selects(selector, pod_meta.get("labels") or {}):
                    entries.append((name, namespace, ip))
    return service_names(entries, zone=zone)
