"""MSH0010 TLSPortServesPlaintext: a Sidecar ingress port declared HTTPS or TLS with no
``tls`` block, where the composed mTLS mode is DISABLE.

Nothing terminates TLS on such a port and nothing asks for mesh mTLS: the sidecar
forwards whatever arrives, so clients told "this port is TLS" reach a port that
accepts plaintext. What a plaintext and a TLS client meet comes from the simulator.
(A port whose ``tls`` block is ignored is MSH0001's.)
"""

from __future__ import annotations

from meshlet.analyzers._authn import describe_mode, port_mode
from meshlet.analyzers._simulate import (
    inbound_call,
    outcome_of_plaintext,
    outcome_of_tls,
)
from meshlet.analyzers._targets import sidecar_targets
from meshlet.analyzers.context import Context
from meshlet.analyzers.message import TLS_PORT_SERVES_PLAINTEXT, Message
from meshlet.pilot.simulation import CallTLS
from meshlet.pilot.snapshot import Protocol, parse_protocol
from meshlet.resources.istio import MTLSMode

__all__ = ["analyze_plaintext_tls_ports"]


def analyze_plaintext_tls_ports(context: Context) -> list[Message]:
    messages: list[Message] = []
    for sourced in context.sidecars:
        sidecar = sourced.value
        for index, listener in enumerate(sidecar.ingress):
            if listener is None or listener.port is None or listener.tls is not None:
                continue
            protocol = parse_protocol(listener.port.protocol)
            if protocol not in (Protocol.HTTPS, Protocol.TLS):
                continue
            port = listener.port.number
            for target in sidecar_targets(context, sidecar):
                mode = port_mode(context, target.workload, port)
                if mode.mode is not MTLSMode.DISABLE:
                    continue
                plaintext = inbound_call(context, target, port, CallTLS.NONE)
                if not plaintext.served or plaintext.terminated_tls:
                    continue
                tls = inbound_call(context, target, port, CallTLS.PLAIN_TLS)
                text = (
                    f"Ingress port {port} of {target.label} is declared "
                    f"{listener.port.protocol} but has no tls block, and its mTLS mode is "
                    f"{describe_mode(context, mode)}: {outcome_of_plaintext(plaintext)}, and "
                    f"{outcome_of_tls(tls)}. Clients that expect TLS reach a port that serves "
                    "plaintext. Fix: add a tls block (mode SIMPLE or MUTUAL, with "
                    "serverCertificate and privateKey mounted into the sidecar, and "
                    "ENABLE_TLS_ON_SIDECAR_INGRESS=true), or declare the port HTTP or TCP."
                )
                messages.append(
                    TLS_PORT_SERVES_PLAINTEXT.message(
                        text,
                        sourced.resource.ref,
                        context.location(sourced.resource, ("spec", "ingress", index, "port")),
                    )
                )
    return messages
