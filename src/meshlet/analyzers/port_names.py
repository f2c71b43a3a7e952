"""IST0118 PortNameIsNotUnderNamingConvention (Info): a Service port whose protocol
Istio cannot tell from its ``appProtocol`` or its name (``<protocol>`` or
``<protocol>-<suffix>``), so the sidecar sniffs it.

The rule is Istio's ``ConvertProtocol``: UDP ports are fine; ``appProtocol``, when
set, is read instead of the name; ``grpc-web`` is a protocol of its own; ports 25, 53,
3306 and 27017 are TCP when unnamed. Services in Kubernetes' own namespaces and the
mesh's root namespace are skipped, as istioctl skips them.
"""

from __future__ import annotations

from meshlet.analyzers._system import is_system_namespace
from meshlet.analyzers.context import Context
from meshlet.analyzers.message import PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION, Message
from meshlet.resources.k8s import ServicePort

__all__ = ["analyze_port_names", "protocol_known"]

_PROTOCOLS = frozenset(
    {
        "tcp",
        "udp",
        "grpc",
        "grpc-web",
        "http",
        "http_proxy",
        "http2",
        "https",
        "tls",
        "mongo",
        "redis",
        "mysql",
    }
)
_WELL_KNOWN_PORTS = frozenset({25, 53, 3306, 27017})


def protocol_known(port: ServicePort) -> bool:
    """Whether Istio gets a protocol for ``port`` without sniffing."""
    if port.protocol == "UDP":
        return True
    name = port.app_protocol if port.app_protocol is not None else port.name
    if name[: len("grpc-web")].lower() == "grpc-web":
        return True
    if name.split("-", 1)[0].lower() in _PROTOCOLS:
        return True
    return port.port in _WELL_KNOWN_PORTS


def analyze_port_names(context: Context) -> list[Message]:
    messages: list[Message] = []
    for service in context.services:
        value = service.value
        if is_system_namespace(value.namespace, context.mesh) or value.type == "ExternalName":
            continue
        for index, port in enumerate(value.ports):
            if protocol_known(port):
                continue
            messages.append(
                PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION.message(
                    f"Port name {port.name} (port: {port.port}, targetPort: {port.target_port}) "
                    "doesn't follow the naming convention of Istio port.",
                    service.resource.ref,
                    context.location(service.resource, ("spec", "ports", index)),
                )
            )
    return messages
