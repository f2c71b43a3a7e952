"""Which inbound ports a sidecar serves, and how: shared by the listener and cluster builders.

Istio's ``buildInboundChainConfigs``: if the proxy's Sidecar has ingress listeners,
exactly those ports get chains (their number is also the target port: the API has no
target port); otherwise every target port of every Service that selects the workload
does. A port seen twice keeps its first config. The Sidecar's ``tls`` block is kept
only when ``ENABLE_TLS_ON_SIDECAR_INGRESS`` is on, and then the port's protocol is the
one after TLS termination (HTTPS → HTTP, TLS → TCP).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meshlet.pilot.snapshot import Protocol, Proxy, Snapshot, parse_protocol
from meshlet.resources.istio import ServerTLSSettings

__all__ = ["InboundChain", "ListenerProtocol", "listener_protocol", "plan_inbound"]

WILDCARD = "0.0.0.0"


class ListenerProtocol(enum.Enum):
    """How a chain handles bytes: an HTTP connection manager, a TCP proxy, or sniffing."""

    HTTP = "HTTP"
    TCP = "TCP"
    AUTO = "AUTO"


def listener_protocol(protocol: Protocol) -> ListenerProtocol:
    if protocol.is_http:
        return ListenerProtocol.HTTP
    if protocol is Protocol.UNSUPPORTED:
        return ListenerProtocol.AUTO
    return ListenerProtocol.TCP


@dataclass(frozen=True, slots=True)
class InboundChain:
    """One inbound port of a proxy (Istio's ``inboundChainConfig``)."""

    target_port: int
    service_port: int
    port_name: str
    protocol: Protocol
    bind: str
    instance_hostname: str  # for telemetry and the route decorator
    tls: ServerTLSSettings | None = None  # the user's TLS, only with the flag on
    default_endpoint: str | None = None  # None: from a Service (original destination)

    @property
    def cluster_name(self) -> str:
        return f"inbound|{self.target_port}||"

    @property
    def chain_name(self) -> str:
        return f"{self.bind}_{self.target_port}"


def plan_inbound(proxy: Proxy, snapshot: Snapshot) -> tuple[InboundChain, ...]:
    """The proxy's inbound ports, sorted by target port."""
    chains: dict[int, InboundChain] = {}
    sidecar = proxy.sidecar
    ingress = [item for item in (sidecar.ingress if sidecar else ()) if item is not None]
    if sidecar is not None and ingress:
        for item in ingress:
            if item.port is None or item.port.number in chains:
                continue
            protocol = parse_protocol(item.port.protocol)
            tls = None
            if item.tls is not None and snapshot.mesh.enable_tls_on_sidecar_ingress:
                tls = item.tls
                protocol = protocol.after_tls_termination()
            chains[item.port.number] = InboundChain(
                target_port=item.port.number,
                service_port=item.port.number,
                port_name=item.port.name,
                protocol=protocol,
                bind=item.bind or WILDCARD,
                instance_hostname=f"{sidecar.name}.{sidecar.namespace}",
                tls=tls,
                default_endpoint=item.default_endpoint,
            )
    else:
        for service in snapshot.services_of(proxy.workload):
            for port in service.ports:
                target = proxy.workload.resolve_port(port.target_port)
                if target is None or target in chains:
                    continue
                chains[target] = InboundChain(
                    target_port=target,
                    service_port=port.port,
                    port_name=port.name,
                    protocol=port.protocol,
                    bind=WILDCARD,
                    instance_hostname=service.hostname,
                )
    return tuple(chains[port] for port in sorted(chains))
