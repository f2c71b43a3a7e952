"""MSH0002 PortLevelMtlsOnServicePort: a port-level PeerAuthentication keyed by the
Service port instead of the container port.

``portLevelMtls`` keys are the workload's own (container) ports — a Sidecar ingress
``port.number`` or a Service's ``targetPort`` — never the port clients dial on the
Service (istio/istio#49098, #27994). A key that is the ``port`` of a Service selecting
the workload, whose ``targetPort`` differs, and that is no port of the workload
itself, matches no traffic: the port it was meant for keeps the workload's mode.
"""

from __future__ import annotations

from meshlet.analyzers._authn import port_level_path, port_mode
from meshlet.analyzers.context import Context, Sourced, WorkloadSource, selects
from meshlet.analyzers.message import PORT_LEVEL_MTLS_ON_SERVICE_PORT, Message
from meshlet.pilot.snapshot import Workload
from meshlet.resources.istio import MTLSMode, PeerAuthentication
from meshlet.resources.k8s import Service

__all__ = ["analyze_port_level_mtls"]


def _workload_ports(context: Context, sources: list[WorkloadSource]) -> set[int]:
    ports: set[int] = set()
    for source in sources:
        workload = context.mesh_workload(source)
        ports.update(workload.container_ports)
        scope = context.snapshot.sidecar_scope(workload)
        for listener in scope.ingress if scope is not None else ():
            if listener is not None and listener.port is not None:
                ports.add(listener.port.number)
    return ports


def _services_for(
    context: Context, policy: PeerAuthentication, sources: list[WorkloadSource]
) -> list[Sourced[Service]]:
    found = []
    for service in context.services:
        value = service.value
        if value.namespace != policy.namespace or not value.selector:
            continue
        if sources:
            if any(selects(value.selector, s.labels) for s in sources):
                found.append(service)
        elif selects(value.selector, policy.selector or {}):
            found.append(service)  # every pod the policy picks is behind this Service
    return found


def analyze_port_level_mtls(context: Context) -> list[Message]:
    messages: list[Message] = []
    for policy in context.peer_authentications:
        value = policy.value
        if not value.selector or not value.port_level_mtls:
            continue
        if value.namespace == context.mesh.root_namespace:
            continue  # Istio ignores selector policies there
        sources = context.selected(value.namespace, value.selector)
        workloads: list[Workload] = [context.mesh_workload(s) for s in sources] or [
            context.hypothetical_workload(value.namespace, value.selector)
        ]
        own_ports = _workload_ports(context, sources)
        services = _services_for(context, value, sources)
        for key, key_mode in value.port_level_mtls.items():
            for service in services:
                own_ports.update(
                    target
                    for port in service.value.ports
                    if (target := workloads[0].resolve_port(port.target_port)) is not None
                )
            if key in own_ports:
                continue
            for service in services:
                for service_port in service.value.ports:
                    if service_port.port != key:
                        continue
                    target = workloads[0].resolve_port(service_port.target_port)
                    if target == key:
                        continue
                    if target is None:
                        meant = f'the container port named "{service_port.target_port}"'
                        fix = f'the number of the container port "{service_port.target_port}"'
                        kept = ""
                    else:
                        mode = port_mode(context, workloads[0], target).mode
                        meant = f"container port {target}"
                        fix = f"portLevelMtls: {{{target}: {{mode: {key_mode.value}}}}}"
                        kept = f" keeps mode {mode.value}"
                    if key_mode is MTLSMode.UNSET:
                        key_word = "this entry"
                    else:
                        key_word = f"mode {key_mode.value}"
                    text = (
                        f"portLevelMtls port {key} is the port of "
                        f"{context.where(service.resource, ('spec', 'ports', service.value.ports.index(service_port)))}"
                        f", whose targetPort is {service_port.target_port}: port-level mTLS is "
                        f"keyed by the workload's container port, so {key_word} applies to no "
                        f"traffic and {meant}{kept}. Fix: key it by the targetPort: {fix}."
                    )
                    messages.append(
                        PORT_LEVEL_MTLS_ON_SERVICE_PORT.message(
                            text,
                            policy.resource.ref,
                            context.location(
                                policy.resource, port_level_path(policy.resource, key)
                            ),
                        )
                    )
    return messages
