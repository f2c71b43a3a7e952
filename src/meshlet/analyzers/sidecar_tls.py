"""MSH0001 SidecarIngressTLSIgnored: TLS on a Sidecar ingress port that will be ignored.

Istio keeps a Sidecar ingress listener's ``tls`` only when pilot runs with
``ENABLE_TLS_ON_SIDECAR_INGRESS=true``, and uses it only on a port whose composed
mTLS mode is DISABLE; otherwise it builds the usual mesh-mTLS chains and says nothing
(istio/istio#21024, #48049). This analyzer names which of the two it is, the
PeerAuthentication that decides the mode, and the exact change that fixes it; what a
client then meets comes from the simulator.
"""

from __future__ import annotations

from meshlet.analyzers._authn import PortMode, describe_mode, port_level_path, port_mode
from meshlet.analyzers._simulate import inbound_call, outcome_of_tls
from meshlet.analyzers._targets import Target, sidecar_targets
from meshlet.analyzers.context import Context
from meshlet.analyzers.message import SIDECAR_INGRESS_TLS_IGNORED, Message
from meshlet.pilot.simulation import CallTLS
from meshlet.resources.istio import MTLSMode, Sidecar

__all__ = ["FLAG", "analyze_sidecar_ingress_tls", "port_level_fix"]

FLAG = "ENABLE_TLS_ON_SIDECAR_INGRESS"


def _flow_map(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in sorted(labels.items())) + "}"


def port_level_fix(context: Context, sidecar: Sidecar, target: Target, mode: PortMode) -> str:
    """The ``portLevelMtls`` change that makes ``mode.port`` DISABLE for ``target``."""
    port = mode.port
    policy = mode.workload_policy
    if policy is not None:
        current = policy.value.port_level_mtls.get(port)
        if current is not None and current is not MTLSMode.UNSET:
            where = context.where(policy.resource, port_level_path(policy.resource, port))
            return (
                f"in {where} change portLevelMtls {port} from {{mode: {current.value}}} "
                "to {mode: DISABLE}"
            )
        where = context.where(policy.resource, ("spec",))
        return f"add portLevelMtls: {{{port}: {{mode: DISABLE}}}} to the spec of {where}"
    labels = dict(sidecar.workload_selector or {}) or dict(target.workload.labels)
    if not labels:
        return (
            "give the Sidecar a workloadSelector and add a PeerAuthentication with the same "
            f"selector and portLevelMtls: {{{port}: {{mode: DISABLE}}}} (portLevelMtls needs a "
            "selector)"
        )
    return (
        f"add a PeerAuthentication in namespace {sidecar.namespace} with spec: "
        f"{{selector: {{matchLabels: {_flow_map(labels)}}}, "
        f"mtls: {{mode: {mode.workload_mode.value}}}, "
        f"portLevelMtls: {{{port}: {{mode: DISABLE}}}}}}"
    )


def analyze_sidecar_ingress_tls(context: Context) -> list[Message]:
    messages: list[Message] = []
    flag_on = context.mesh.enable_tls_on_sidecar_ingress
    for sourced in context.sidecars:
        sidecar = sourced.value
        for index, listener in enumerate(sidecar.ingress):
            if listener is None or listener.tls is None or listener.port is None:
                continue
            port = listener.port.number
            for target in sidecar_targets(context, sidecar):
                mode = port_mode(context, target.workload, port)
                if flag_on and mode.mode is MTLSMode.DISABLE:
                    continue
                reasons: list[str] = []
                fixes: list[str] = []
                if not flag_on:
                    reasons.append(f"{FLAG} is off")
                    fixes.append(
                        "install with --set values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true"
                    )
                if mode.mode is not MTLSMode.DISABLE:
                    reasons.append(
                        f"the port's mTLS mode is {describe_mode(context, mode)}, and the "
                        "sidecar uses its own tls settings only where the mode is DISABLE"
                    )
                    fixes.append(port_level_fix(context, sidecar, target, mode))
                outcome = outcome_of_tls(inbound_call(context, target, port, CallTLS.PLAIN_TLS))
                text = (
                    f"The tls settings of ingress port {port} are ignored for {target.label}: "
                    f"{'; and '.join(reasons)}. As a result, {outcome}. Fix: {'; and '.join(fixes)}."
                )
                messages.append(
                    SIDECAR_INGRESS_TLS_IGNORED.message(
                        text,
                        sourced.resource.ref,
                        context.location(sourced.resource, ("spec", "ingress", index, "tls")),
                    )
                )
    return messages
