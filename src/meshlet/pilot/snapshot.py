"""The push context as values: what the control plane knows when it builds config.

Theory of operation. ``build_snapshot`` takes the cluster's typed objects (Services,
Pods, Sidecars, PeerAuthentications, DestinationRules) and the runtime facts only the
local cluster knows (each pod's IP, each Service's VIP, which pods run a sidecar), and
returns a ``Snapshot``: frozen, sorted, and complete enough that every per-proxy
builder is a pure function of ``(Proxy, Snapshot)``.

- A ``Workload`` is a running pod: name, namespace, IP, labels, service account,
  whether it has a sidecar, and its container ports (numbers and names).
- A ``MeshService`` is a Kubernetes Service as Istio's registry sees it: hostname
  ``name.ns.svc.cluster.local``, VIP, ports with their target ports and protocols,
  and its endpoints (the running workloads its selector picks).
- A ``Proxy`` is one sidecar: its workload and its Sidecar scope (the Sidecar that
  applies to it, if any), with Istio's node id ``sidecar~IP~POD.NS~NS.svc.cluster.local``.

Pods without an IP (not running yet) are not endpoints. Everything is sorted by name,
so the same objects give the same snapshot.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from meshlet.errors import ConfigError, ObjectRef
from meshlet.pilot.authn import ComposedMTLS, compose_peer_authentication, creation_time
from meshlet.resources.istio import DestinationRule, PeerAuthentication, Sidecar
from meshlet.resources.k8s import Pod, Service
from meshlet.resources.mesh import MeshSettings

__all__ = [
    "MeshService",
    "Protocol",
    "Proxy",
    "ServicePortInfo",
    "Snapshot",
    "Workload",
    "build_snapshot",
    "parse_protocol",
    "spiffe_id",
]

CLUSTER_DOMAIN = "cluster.local"


class Protocol(enum.Enum):
    """Istio's port protocols (``pkg/config/protocol``); UNSUPPORTED means "sniff"."""

    HTTP = "HTTP"
    HTTPS = "HTTPS"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    TCP = "TCP"
    TLS = "TLS"
    MONGO = "Mongo"
    REDIS = "Redis"
    MYSQL = "MySQL"
    UNSUPPORTED = "UnsupportedProtocol"

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC)

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.HTTP2, Protocol.GRPC)

    def after_tls_termination(self) -> Protocol:
        """HTTPS becomes HTTP and TLS becomes TCP once a listener has terminated TLS."""
        if self is Protocol.HTTPS:
            return Protocol.HTTP
        if self is Protocol.TLS:
            return Protocol.TCP
        return self


_PROTOCOL_NAMES = {
    "http": Protocol.HTTP,
    "https": Protocol.HTTPS,
    "http2": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.HTTP,
    "tcp": Protocol.TCP,
    "tls": Protocol.TLS,
    "mongo": Protocol.MONGO,
    "redis": Protocol.REDIS,
    "mysql": Protocol.MYSQL,
}


def parse_protocol(name: str) -> Protocol:
    """A protocol name (``HTTP``, ``https`` …) as Istio's ``protocol.Parse`` reads it."""
    return _PROTOCOL_NAMES.get(name.strip().lower(), Protocol.UNSUPPORTED)


def _service_port_protocol(name: str, app_protocol: str | None) -> Protocol:
    """Istio's rule for Kubernetes ports: ``appProtocol`` first, else the name's prefix."""
    if app_protocol:
        parsed = parse_protocol(app_protocol)
        if parsed is not Protocol.UNSUPPORTED:
            return parsed
    prefix = name.split("-", 1)[0]
    return parse_protocol(prefix)


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True, slots=True)
class Workload:
    """A running pod as the mesh sees it."""

    name: str
    namespace: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    has_sidecar: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    container_ports: tuple[int, ...] = ()
    named_ports: Mapping[str, int] = field(default_factory=dict)

    def identity(self, trust_domain: str) -> str:
        return spiffe_id(trust_domain, self.namespace, self.service_account)

    def resolve_port(self, target: int | str) -> int | None:
        """A Service target port on this pod: a number, or a container port's name."""
        if isinstance(target, int):
            return target
        if target.isdigit():
            return int(target)
        return self.named_ports.get(target)


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """One Service port: its number, name, protocol and target port."""

    name: str
    port: int
    target_port: int | str
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class MeshService:
    """A Service in the registry, with the workloads it selects."""

    name: str
    namespace: str
    vip: str | None
    ports: tuple[ServicePortInfo, ...]
    selector: Mapping[str, str] | None = None
    endpoints: tuple[Workload, ...] = ()

    @property
    def hostname(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    def selects(self, workload: Workload) -> bool:
        if not self.selector or workload.namespace != self.namespace:
            return False
        return all(workload.labels.get(k) == v for k, v in self.selector.items())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the builders read, sorted and frozen."""

    services: tuple[MeshService, ...] = ()
    workloads: tuple[Workload, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
    peer_authentications: tuple[PeerAuthentication, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    mesh: MeshSettings = field(default_factory=MeshSettings)

    def workload(self, namespace: str, name: str) -> Workload | None:
        workloads = self.workloads
        # Sorted by namespace and name (``build_snapshot``): a binary search, then a scan
        # for a snapshot put together in another order.
        at = bisect.bisect_left(workloads, (namespace, name), key=lambda w: (w.namespace, w.name))
        if at < len(workloads) and (workloads[at].namespace, workloads[at].name) == (
            namespace,
            name,
        ):
            return workloads[at]
        for workload in workloads:
            if workload.namespace == namespace and workload.name == name:
                return workload
        return None

    def services_of(self, workload: Workload) -> tuple[MeshService, ...]:
        """The Services whose selector picks ``workload``."""
        namespace = workload.namespace
        return tuple(
            service
            for service in self.services
            if service.namespace == namespace and service.selects(workload)
        )

    def mtls_for(self, workload: Workload) -> ComposedMTLS:
        return compose_peer_authentication(
            self.peer_authentications,
            namespace=workload.namespace,
            workload_labels=workload.labels,
            root_namespace=self.mesh.root_namespace,
        )

    def sidecar_scope(self, workload: Workload) -> Sidecar | None:
        """The Sidecar that applies to ``workload``, as Istio picks it.

        A Sidecar in the workload's namespace whose selector picks it (the oldest if
        several), else one without a selector there, else one without a selector in
        the root namespace.
        """
        selecting = [
            sidecar
            for sidecar in self.sidecars
            if sidecar.namespace == workload.namespace
            and sidecar.workload_selector
            and all(workload.labels.get(k) == v for k, v in sidecar.workload_selector.items())
        ]
        if selecting:
            return min(selecting, key=_age)
        for namespace in (workload.namespace, self.mesh.root_namespace):
            plain = [
                sidecar
                for sidecar in self.sidecars
                if sidecar.namespace == namespace and not sidecar.workload_selector
            ]
            if plain:
                return min(plain, key=_age)
        return None

    def proxy(self, namespace: str, pod: str) -> Proxy:
        """The sidecar proxy of a pod; ``ConfigError`` when the pod has none."""
        workload = self.workload(namespace, pod)
        if workload is None or not workload.has_sidecar:
            raise ConfigError(
                f"pod {namespace}/{pod} has no sidecar proxy",
                resource=ObjectRef("Pod", pod, namespace),
            )
        return Proxy(workload=workload, sidecar=self.sidecar_scope(workload))

    def proxies(self) -> tuple[Proxy, ...]:
        return tuple(
            Proxy(workload=workload, sidecar=self.sidecar_scope(workload))
            for workload in self.workloads
            if workload.has_sidecar
        )


@dataclass(frozen=True, slots=True)
class Proxy:
    """One sidecar: its workload and the Sidecar resource scoping it (if any)."""

    workload: Workload
    sidecar: Sidecar | None = None

    @property
    def id(self) -> str:
        """Istio's node id: ``sidecar~IP~POD.NS~NS.svc.cluster.local``."""
        w = self.workload
        return f"sidecar~{w.ip}~{w.name}.{w.namespace}~{w.namespace}.svc.{CLUSTER_DOMAIN}"

    @property
    def namespace(self) -> str:
        return self.workload.namespace


def _age(sidecar: Sidecar) -> tuple[datetime, str]:
    return creation_time(sidecar.creation_timestamp), sidecar.name


def build_snapshot(
    *,
    services: Iterable[Service] = (),
    pods: Iterable[Pod] = (),
    sidecars: Iterable[Sidecar] = (),
    peer_authentications: Iterable[PeerAuthentication] = (),
    destination_rules: Iterable[DestinationRule] = (),
    mesh: MeshSettings | None = None,
    pod_ips: Mapping[tuple[str, str], str] | None = None,
    service_vips: Mapping[tuple[str, str], str] | None = None,
    pods_with_sidecar: Iterable[tuple[str, str]] = (),
) -> Snapshot:
    """A snapshot from typed objects and the local cluster's runtime facts.

    ``pod_ips`` and ``service_vips`` are keyed by ``(namespace, name)``; a Service's
    VIP falls back to its ``spec.clusterIP``. ``pods_with_sidecar`` names the pods that
    run a sidecar proxy. A pod without an IP is not running and is left out.
    """
    ips = dict(pod_ips or {})
    vips = dict(service_vips or {})
    with_sidecar = set(pods_with_sidecar)
    workloads: list[Workload] = []
    for pod in pods:
        key = (pod.namespace, pod.name)
        ip = ips.get(key)
        if not ip:
            continue
        numbers: set[int] = set()
        names: dict[str, int] = {}
        for container in pod.spec.containers:
            for port in container.ports:
                numbers.add(port.container_port)
                if port.name:
                    names[port.name] = port.container_port
        workloads.append(
            Workload(
                name=pod.name,
                namespace=pod.namespace,
                ip=ip,
                labels=dict(sorted(pod.labels.items())),
                service_account=pod.spec.service_account_name or "default",
                has_sidecar=key in with_sidecar,
                annotations=dict(sorted(pod.annotations.items())),
                container_ports=tuple(sorted(numbers)),
                named_ports=dict(sorted(names.items())),
            )
        )
    workloads.sort(key=lambda w: (w.namespace, w.name))

    mesh_services: list[MeshService] = []
    for service in services:
        ports = tuple(
            ServicePortInfo(
                name=port.name,
                port=port.port,
                target_port=port.target_port,
                protocol=_service_port_protocol(port.name, port.app_protocol),
            )
            for port in service.ports
        )
        vip = vips.get((service.namespace, service.name)) or service.cluster_ip
        if vip == "None":
            vip = None  # a headless Service has no VIP
        selector = dict(sorted(service.selector.items())) if service.selector else None
        draft = MeshService(
            name=service.name,
            namespace=service.namespace,
            vip=vip or None,
            ports=ports,
            selector=selector,
        )
        endpoints = tuple(w for w in workloads if draft.selects(w))
        mesh_services.append(
            MeshService(
                name=draft.name,
                namespace=draft.namespace,
                vip=draft.vip,
                ports=draft.ports,
                selector=draft.selector,
                endpoints=endpoints,
            )
        )
    mesh_services.sort(key=lambda s: s.hostname)

    return Snapshot(
        services=tuple(mesh_services),
        workloads=tuple(workloads),
        sidecars=tuple(sorted(sidecars, key=lambda s: (s.namespace, s.name))),
        peer_authentications=tuple(
            sorted(peer_authentications, key=lambda p: (p.namespace, p.name))
        ),
        destination_rules=tuple(sorted(destination_rules, key=lambda d: (d.namespace, d.name))),
        mesh=mesh or MeshSettings(),
    )
