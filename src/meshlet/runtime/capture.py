"""The sidecar's traffic capture, as istio-init writes it into a pod's ``nat`` table.

Theory of operation: inbound TCP (``PREROUTING``) goes to ``ISTIO_INBOUND``, which
returns for the sidecar's own ports (15008 HBONE, 15020 merged metrics, 15021 health,
15090 Envoy's Prometheus endpoint, and 22 as istio-iptables excludes) and any port the
pod excludes, and sends the rest to ``ISTIO_IN_REDIRECT``: ``REDIRECT --to-ports 15006``
(``virtualInbound``). Outbound TCP (``OUTPUT``) goes to ``ISTIO_OUTPUT`` and, unless a
rule there returns, to ``ISTIO_REDIRECT``: ``REDIRECT --to-ports 15001``
(``virtualOutbound``). The proxy reads the original destination with
``SO_ORIGINAL_DST``.

``ISTIO_OUTPUT``, in order:

1. ``-m owner --gid-owner 1337 -j RETURN`` first: the proxy's own connections are never
   captured. istio-init matches ``--uid-owner 1337``, but in the local cluster every
   process runs as uid 0 and the agent and proxy workers run with gid 1337, so the gid
   is what tells them apart. Because this rule comes first, istio-init's rule that
   sends the proxy's loopback traffic to its own pod address back to
   ``ISTIO_IN_REDIRECT`` can never match and is left out.
2. ``-s 127.0.0.6/32 -o lo -j RETURN``: the inbound passthrough source address Envoy
   binds its upstream connections to.
3. ``-o lo -j RETURN``: the app talking to itself over loopback (to 127.0.0.1 or its
   own pod address) is not captured, as istio-init returns for non-proxy loopback.
4. ``-d 127.0.0.1/32 -j RETURN``.
5. TCP to port 53 returns: DNS goes straight to the cluster DNS (UDP is never
   captured; the jump from ``OUTPUT`` is for TCP only).
6. Excluded outbound ports and address ranges return; with ``include_outbound_cidrs``
   other than ``*`` only those ranges go to ``ISTIO_REDIRECT``.

Pure: the rules are text for ``iptables-restore``; ``meshlet.runtime.iptables`` applies
them inside the pod's network namespace before the app starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network

__all__ = [
    "INBOUND_CAPTURE_PORT",
    "OUTBOUND_CAPTURE_PORT",
    "PROXY_GID",
    "SIDECAR_INBOUND_EXCLUDED_PORTS",
    "CaptureConfig",
    "capture_config_from_annotations",
    "render_capture_table",
]

INBOUND_CAPTURE_PORT = 15006
OUTBOUND_CAPTURE_PORT = 15001
PROXY_GID = 1337
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6/32"
# 15008 (HBONE) and 22 are always excluded by istio-iptables; the injector adds
# 15090, 15021 and 15020 to excludeInboundPorts.
SIDECAR_INBOUND_EXCLUDED_PORTS: tuple[int, ...] = (15008, 22, 15090, 15021, 15020)


def _check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not in 1-65535")
    return port


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """What istio-iptables is told for one pod (its flags, as values)."""

    proxy_gid: int = PROXY_GID
    inbound_capture_port: int = INBOUND_CAPTURE_PORT
    outbound_capture_port: int = OUTBOUND_CAPTURE_PORT
    include_inbound_ports: tuple[int, ...] | None = None  # None: "*", every port
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    include_outbound_cidrs: tuple[IPv4Network, ...] | None = None  # None: "*"
    exclude_outbound_cidrs: tuple[IPv4Network, ...] = ()

    def __post_init__(self) -> None:
        for port in (
            self.inbound_capture_port,
            self.outbound_capture_port,
            *(self.include_inbound_ports or ()),
            *self.exclude_inbound_ports,
            *self.exclude_outbound_ports,
        ):
            _check_port(port)
        if not 0 <= self.proxy_gid < 2**32:
            raise ValueError(f"gid {self.proxy_gid} is out of range")


def _ports(value: str, annotation: str) -> tuple[int, ...]:
    ports: list[int] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        if not item.isdigit():
            raise ValueError(f"{annotation}: {item!r} is not a port number")
        ports.append(_check_port(int(item)))
    return tuple(ports)


def _cidrs(value: str, annotation: str) -> tuple[IPv4Network, ...]:
    cidrs: list[IPv4Network] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            cidrs.append(IPv4Network(item, strict=False))
        except ValueError:
            raise ValueError(f"{annotation}: {item!r} is not an IPv4 CIDR") from None
    return tuple(cidrs)


def capture_config_from_annotations(annotations: Mapping[str, str]) -> CaptureConfig:
    """The capture settings a pod asks for with Istio's ``traffic.sidecar.istio.io/…``
    annotations (``includeInboundPorts``, ``excludeInboundPorts``,
    ``excludeOutboundPorts``, ``includeOutboundIPRanges``, ``excludeOutboundIPRanges``).
    Raises ``ValueError`` naming the annotation for a malformed value."""
    prefix = "traffic.sidecar.istio.io/"
    include_in = annotations.get(prefix + "includeInboundPorts", "*").strip()
    include_out = annotations.get(prefix + "includeOutboundIPRanges", "*").strip()
    return CaptureConfig(
        include_inbound_ports=None
        if include_in == "*"
        else _ports(include_in, prefix + "includeInboundPorts"),
        exclude_inbound_ports=_ports(
            annotations.get(prefix + "excludeInboundPorts", ""), prefix + "excludeInboundPorts"
        ),
        exclude_outbound_ports=_ports(
            annotations.get(prefix + "excludeOutboundPorts", ""), prefix + "excludeOutboundPorts"
        ),
        include_outbound_cidrs=None
        if include_out == "*"
        else _cidrs(include_out, prefix + "includeOutboundIPRanges"),
        exclude_outbound_cidrs=_cidrs(
            annotations.get(prefix + "excludeOutboundIPRanges", ""),
            prefix + "excludeOutboundIPRanges",
        ),
    )


def _unique(ports: tuple[int, ...]) -> list[int]:
    return list(dict.fromkeys(ports))


def render_capture_table(config: CaptureConfig | None = None) -> str:
    """The pod's ``nat`` table as ``iptables-restore`` input."""
    config = config or CaptureConfig()
    gid = config.proxy_gid
    lines = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":ISTIO_INBOUND - [0:0]",
        ":ISTIO_IN_REDIRECT - [0:0]",
        ":ISTIO_OUTPUT - [0:0]",
        ":ISTIO_REDIRECT - [0:0]",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
    ]
    if config.include_inbound_ports is None:
        excluded = _unique(SIDECAR_INBOUND_EXCLUDED_PORTS + config.exclude_inbound_ports)
        lines += [f"-A ISTIO_INBOUND -p tcp -m tcp --dport {port} -j RETURN" for port in excluded]
        lines.append("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
    else:
        never = set(SIDECAR_INBOUND_EXCLUDED_PORTS) | set(config.exclude_inbound_ports)
        included = [p for p in _unique(config.include_inbound_ports) if p not in never]
        lines += [
            f"-A ISTIO_INBOUND -p tcp -m tcp --dport {port} -j ISTIO_IN_REDIRECT"
            for port in included
        ]
    lines += [
        f"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {config.inbound_capture_port}",
        f"-A ISTIO_OUTPUT -m owner --gid-owner {gid} -j RETURN",
        f"-A ISTIO_OUTPUT -s {INBOUND_PASSTHROUGH_SOURCE} -o lo -j RETURN",
        "-A ISTIO_OUTPUT -o lo -j RETURN",
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -p tcp -m tcp --dport 53 -j RETURN",
    ]
    lines += [
        f"-A ISTIO_OUTPUT -p tcp -m tcp --dport {port} -j RETURN"
        for port in _unique(config.exclude_outbound_ports)
        if port != 53
    ]
    lines += [f"-A ISTIO_OUTPUT -d {cidr} -j RETURN" for cidr in config.exclude_outbound_cidrs]
    if config.include_outbound_cidrs is None:
        lines.append("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
    else:
        lines += [
            f"-A ISTIO_OUTPUT -d {cidr} -j ISTIO_REDIRECT" for cidr in config.include_outbound_cidrs
        ]
        lines.append("-A ISTIO_OUTPUT -j RETURN")
    lines += [
        f"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {config.outbound_capture_port}",
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"
