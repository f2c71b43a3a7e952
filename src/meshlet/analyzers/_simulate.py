"""Asking the control plane what a call to a workload's inbound port meets.

The analyzers that speak of what a client experiences build the workload's listeners
with pilot's own builders and follow one call through them with pilot's simulator,
so their words match what the sidecar will do.
"""

from __future__ import annotations

from meshlet.analyzers._targets import Target
from meshlet.analyzers.context import Context
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.simulation import Call, CallTLS, Direction, Reason, Result, simulate

__all__ = ["CLIENT_IDENTITY", "inbound_call", "outcome_of_plaintext", "outcome_of_tls"]

CLIENT_IDENTITY = "CN=client"  # a client outside the mesh that presents its own certificate


def inbound_call(context: Context, target: Target, port: int, tls: CallTLS) -> Result:
    """What a call from outside the mesh to ``port`` of ``target`` meets."""
    listeners = build_listeners(target.proxy, context.snapshot)
    call = Call(
        Direction.INBOUND,
        port,
        target.workload.ip,
        tls=tls,
        alpn=("h2", "http/1.1") if tls is CallTLS.PLAIN_TLS else None,
        client_identity=CLIENT_IDENTITY if tls is CallTLS.PLAIN_TLS else None,
    )
    return simulate(listeners, call)


def outcome_of_tls(result: Result) -> str:
    """What a client's own TLS handshake meets, in a user's words."""
    if result.reason is Reason.MTLS_REQUIRED:
        return (
            "a client's own TLS handshake meets the mesh certificate and a demand for a mesh "
            "client certificate, and fails"
        )
    if result.reason is Reason.CLIENT_CERTIFICATE_REQUIRED:
        return "a client's TLS handshake fails for want of a client certificate"
    if result.reason is Reason.NO_FILTER_CHAIN:
        return "no filter chain accepts a client's TLS there, so the connection is reset"
    if result.served and not result.terminated_tls:
        return "a client's TLS passes through the sidecar untouched to the application"
    if result.served and result.tls_certificate is not None:
        return f"the sidecar answers a client's TLS with the certificate {result.tls_certificate}"
    return "a client's TLS is not served"  # pragma: no cover - every Reason is named above


def outcome_of_plaintext(result: Result) -> str:
    """What a plaintext client meets, in a user's words."""
    if result.served and not result.terminated_tls:
        return "plaintext is accepted there and passed on to the application"
    if result.reason is Reason.NO_FILTER_CHAIN:
        return "plaintext finds no filter chain and is reset"
    return "plaintext is refused"
