"""Service ClusterIPs as kube-proxy makes them in iptables mode, rendered as the node
namespace's whole ``nat`` (and ``filter``) table in ``iptables-restore`` input.

Theory of operation: ``PREROUTING`` (packets from pods, which arrive through their
routed veths) and ``OUTPUT`` (the node namespace's own sockets) jump to
``KUBE-SERVICES``. That chain has one rule per Service port, matching the ClusterIP,
protocol and port, and jumping to the port's ``KUBE-SVC-…`` chain. The ``KUBE-SVC-…``
chain picks one ready endpoint: with n endpoints, rule i (from 0) jumps to the
endpoint's ``KUBE-SEP-…`` chain with probability ``1/(n-i)`` (``-m statistic --mode
random``) and the last rule always does, so each endpoint gets ``1/n`` of the
connections. A ``KUBE-SEP-…`` chain DNATs to ``ip:targetPort``; when the client is the
endpoint itself (a pod calling its own Service) it first marks the packet
(``KUBE-MARK-MASQ``) so ``KUBE-POSTROUTING`` masquerades it and the reply comes back
through the node. A Service port with no ready endpoint gets a ``REJECT`` in the filter
table, so a client is refused at once instead of waiting for a timeout.

Chain names are ``KUBE-SVC-``/``KUBE-SEP-`` and 16 characters of base32 of a SHA-256 of
the Service port (and endpoint), as kube-proxy names them; comments say which
``namespace/name:port`` a rule is for. The output is sorted and depends only on the
input: the same Services give the same bytes, and applying it (with
``iptables-restore``, which replaces each table in one step) is atomic.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

__all__ = [
    "Endpoint",
    "Protocol",
    "ServicePortRules",
    "endpoint_chain",
    "render_service_tables",
    "service_chain",
]

MASQUERADE_MARK = "0x4000"


class Protocol(enum.Enum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One backend of a Service port: a pod address and its resolved target port."""

    ip: IPv4Address
    port: int
    ready: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"endpoint port {self.port} is not in 1-65535")


@dataclass(frozen=True, slots=True)
class ServicePortRules:
    """One port of one Service: its ClusterIP, port, protocol and endpoints."""

    namespace: str
    name: str
    cluster_ip: IPv4Address
    port: int
    port_name: str = ""
    protocol: Protocol = Protocol.TCP
    endpoints: tuple[Endpoint, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"service port {self.port} is not in 1-65535")

    @property
    def service_port_name(self) -> str:
        """``namespace/name:port`` as kube-proxy writes it in comments."""
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def ready_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(sorted({e for e in self.endpoints if e.ready}, key=lambda e: (e.ip, e.port)))


def _chain_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def service_chain(rules: ServicePortRules) -> str:
    """The ``KUBE-SVC-…`` chain of a Service port."""
    key = f"{rules.service_port_name}{rules.protocol.value}"
    return "KUBE-SVC-" + _chain_hash(key)


def endpoint_chain(rules: ServicePortRules, endpoint: Endpoint) -> str:
    """The ``KUBE-SEP-…`` chain of one endpoint of a Service port."""
    key = f"{rules.service_port_name}{rules.protocol.value}{endpoint.ip}:{endpoint.port}"
    return "KUBE-SEP-" + _chain_hash(key)


def _quote(comment: str) -> str:
    return '"' + comment.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_service_tables(services: Iterable[ServicePortRules]) -> str:
    """The node namespace's ``filter`` and ``nat`` tables as ``iptables-restore`` input."""
    ports = sorted(
        services,
        key=lambda s: (s.namespace, s.name, s.port_name, s.port, s.protocol.value),
    )
    seen: set[tuple[IPv4Address, int, Protocol]] = set()
    for rules in ports:
        key = (rules.cluster_ip, rules.port, rules.protocol)
        if key in seen:
            raise ValueError(
                f"{rules.cluster_ip}:{rules.port}/{rules.protocol.value} is claimed by two "
                f"Service ports (one is {rules.service_port_name})"
            )
        seen.add(key)

    filter_rules: list[str] = []
    nat_chains: list[str] = []
    nat_rules: list[str] = []
    for rules in ports:
        proto = rules.protocol.value.lower()
        name = rules.service_port_name
        match = f"-d {rules.cluster_ip}/32 -p {proto} -m {proto} --dport {rules.port}"
        ready = rules.ready_endpoints
        if not ready:
            filter_rules.append(
                f"-A KUBE-SERVICES {match} -m comment --comment "
                f"{_quote(f'{name} has no endpoints')} -j REJECT --reject-with icmp-port-unreachable"
            )
            continue
        svc = service_chain(rules)
        nat_chains.append(svc)
        nat_rules.append(
            f"-A KUBE-SERVICES {match} -m comment --comment {_quote(f'{name} cluster IP')} -j {svc}"
        )
        for index, endpoint in enumerate(ready):
            sep = endpoint_chain(rules, endpoint)
            nat_chains.append(sep)
            remaining = len(ready) - index
            chance = (
                f" -m statistic --mode random --probability {1 / remaining:.10f}"
                if remaining > 1
                else ""
            )
            target = f"{endpoint.ip}:{endpoint.port}"
            nat_rules.append(
                f"-A {svc} -m comment --comment {_quote(f'{name} -> {target}')}{chance} -j {sep}"
            )
        for endpoint in ready:
            sep = endpoint_chain(rules, endpoint)
            nat_rules.append(
                f"-A {sep} -s {endpoint.ip}/32 -m comment --comment {_quote(name)} -j KUBE-MARK-MASQ"
            )
            nat_rules.append(
                f"-A {sep} -p {proto} -m comment --comment {_quote(name)} -m {proto} "
                f"-j DNAT --to-destination {endpoint.ip}:{endpoint.port}"
            )

    lines = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":KUBE-SERVICES - [0:0]",
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        *filter_rules,
        "COMMIT",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        *(f":{chain} - [0:0]" for chain in nat_chains),
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQUERADE_MARK}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQUERADE_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
        *nat_rules,
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"
