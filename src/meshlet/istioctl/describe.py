"""``x describe pod``: a pod and the mesh configuration that applies to it, as istioctl
prints it, plus what istioctl leaves out for this feature (pure).

Theory of operation. ``describe_pod`` takes the pod and the objects around it as the
API returns them (JSON values) and the typed Istio policies, and returns the text:

1. istioctl's pod block: ``Pod: NAME[.NS]``, ``Pod Revision``, ``Pod Ports`` (``/TCP``
   left out), then its warnings (not Running, a container not ready, no
   ``istio-proxy`` container) and its suggestions (the canonical service name and
   revision labels);
2. istioctl's Services block: every Service of the pod's namespace whose selector
   picks the pod, each TCP port as ``Port: NAME PORT/PROTOCOL targets pod port N``
   (the protocol from ``appProtocol``, else the name's prefix, ``auto-detect`` for a
   nameless port), then, when a Service has several ports, one ``PORT:`` line each,
   where istioctl would list the port's DestinationRule and VirtualService (meshlet
   serves neither to this verb: the lines stay bare, as istioctl leaves them when
   none applies);
3. istioctl's PeerAuthentication block: the composed mode
   (``meshlet.pilot.authn.compose_peer_authentication``: workload mode and port-level
   modes, sorted by port) and the policies that select the pod (root namespace first,
   then the pod's, each by name);
4. meshlet's Sidecar block (istioctl has none yet): the Sidecar that applies
   (``Snapshot.sidecar_scope``'s choice) and every inbound port — the Sidecar's
   ingress ports if it has any, else the Services' target ports — with its composed
   mTLS mode and, for an ingress port with ``tls``, whether the sidecar terminates
   that TLS: only with ``ENABLE_TLS_ON_SIDECAR_INGRESS`` on and the port's mode
   DISABLE, as Istio's listener builder decides;
5. istioctl's closing line about ingress gateways (meshlet runs none).

Names are printed as istioctl's ``kname`` does: bare in the namespace the command was
given (``-n``, default ``default``), else ``NAME.NS``. Same input, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshlet.pilot.authn import ComposedMTLS, compose_peer_authentication
from meshlet.pilot.snapshot import Protocol, Snapshot, Workload, parse_protocol
from meshlet.resources.analysis import cluster_resources
from meshlet.resources.istio import MTLSMode, PeerAuthentication, Sidecar
from meshlet.resources.mesh import MeshSettings

__all__ = [
    "SEPARATOR",
    "InboundPort",
    "TLSVerdict",
    "describe_pod",
    "inbound_ports",
    "typed_policies",
]

SEPARATOR = "--------------------"
PROXY_CONTAINER = "istio-proxy"
REQUIREMENTS_URL = "https://istio.io/latest/docs/ops/deployment/application-requirements/"
SERVICE_REQUIREMENTS_URL = "https://istio.io/docs/setup/kubernetes/additional-setup/requirements/"
_NAME_LABELS = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
_REVISION_LABELS = ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")
_L1 = " " * 3
_L2 = " " * 6


@dataclass(frozen=True, slots=True)
class TLSVerdict:
    """What becomes of an ingress port's ``tls`` block: terminated, or why not."""

    mode: str
    terminated: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class InboundPort:
    """One inbound (container) port of the pod and how the sidecar treats it."""

    number: int
    mtls: MTLSMode
    name: str = ""
    protocol: str = ""
    default_endpoint: str = ""
    tls: TLSVerdict | None = None


def typed_policies(
    bodies: Iterable[Mapping[str, Any]],
) -> tuple[list[Sidecar], list[PeerAuthentication]]:
    """The Sidecars and PeerAuthentications among API objects (others are skipped)."""
    sidecars: list[Sidecar] = []
    policies: list[PeerAuthentication] = []
    for resource in cluster_resources(bodies):
        if resource.info.group == "networking.istio.io" and resource.kind == "Sidecar":
            sidecars.append(Sidecar.from_resource(resource))
        elif resource.info.group == "security.istio.io" and resource.kind == "PeerAuthentication":
            policies.append(PeerAuthentication.from_resource(resource))
    return sidecars, policies


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _kname(obj: Mapping[str, Any], namespace: str) -> str:
    meta = _meta(obj)
    name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    return name if ns == namespace else f"{name}.{ns}"


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((pod.get("spec") or {}).get("containers") or [])


def _is_meshed(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    every = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    return any(c.get("name") == PROXY_CONTAINER for c in every)


def _revision(pod: Mapping[str, Any]) -> str:
    annotations = _meta(pod).get("annotations") or {}
    if "istio.io/rev" in annotations:
        return str(annotations["istio.io/rev"])
    try:
        status = json.loads(annotations.get("sidecar.istio.io/status") or "")
    except ValueError:
        return ""
    return str(status.get("revision") or "") if isinstance(status, dict) else ""


def _pod_block(pod: Mapping[str, Any], namespace: str) -> list[str]:
    ports = []
    lines: list[str] = []
    for container in _containers(pod):
        for port in container.get("ports") or []:
            protocol = str(port.get("protocol") or "TCP")
            suffix = "" if protocol == "TCP" else f"/{protocol}"
            ports.append(f"{port.get('containerPort')}{suffix} ({container.get('name')})")
        user = (container.get("securityContext") or {}).get("runAsUser")
        if container.get("name") not in (PROXY_CONTAINER, "istio-operator") and user == 1337:
            lines.append("WARNING: User ID (UID) 1337 is reserved for the sidecar proxy.")
    name = _kname(pod, namespace)
    lines.append(f"Pod: {name}")
    lines.append(f"{_L1}Pod Revision: {_revision(pod)}")
    if ports:
        lines.append(f"{_L1}Pod Ports: {', '.join(ports)}")
    else:
        lines.append(f"{_L1}Pod does not expose ports")
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    if phase != "Running":
        lines.append(f"{_L1}Pod is not Running ({phase})")
        return lines
    for key, what in (
        ("containerStatuses", "Container"),
        ("initContainerStatuses", "Init Container"),
    ):
        for item in status.get(key) or []:
            if not item.get("ready"):
                lines.append(f"WARNING: Pod {name} {what} {item.get('name')} NOT READY")
    if not _is_meshed(pod):
        lines.append(f"WARNING: {name} is not part of mesh; no Istio sidecar")
        return lines
    if ((pod.get("spec") or {}).get("securityContext") or {}).get("runAsUser") == 1337:
        lines.append(f"{_L1}WARNING: User ID (UID) 1337 is reserved for the sidecar proxy.")
    labels = _meta(pod).get("labels") or {}
    if not any(labels.get(k) for k in _NAME_LABELS):
        lines.append(
            "Suggestion: add required service name label for Istio telemetry. "
            f"See {REQUIREMENTS_URL}."
        )
    if not any(labels.get(k) for k in _REVISION_LABELS):
        lines.append(
            "Suggestion: add required service revision label for Istio telemetry. "
            f"See {REQUIREMENTS_URL}."
        )
    return lines


def _selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = _meta(pod).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _target(pod: Mapping[str, Any], port: Mapping[str, Any]) -> int | None:
    """istio's ``FindPort``: a number as it is, a name among the containers' ports."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    protocol = port.get("protocol") or "TCP"
    for container in _containers(pod):
        for declared in container.get("ports") or []:
            if declared.get("name") == target and (declared.get("protocol") or "TCP") == protocol:
                return int(declared["containerPort"])
    return None


def _port_protocol(port: Mapping[str, Any]) -> str:
    name, app_protocol = str(port.get("name") or ""), port.get("appProtocol")
    if not name and not app_protocol:
        return "auto-detect"
    if port.get("protocol") == "UDP":
        return "UDP"
    if app_protocol:
        parsed = parse_protocol(str(app_protocol))
        if parsed is not Protocol.UNSUPPORTED:
            return str(parsed.value)
    return str(parse_protocol(name.split("-", 1)[0]).value)


def _service_block(service: Mapping[str, Any], pod: Mapping[str, Any], namespace: str) -> list[str]:
    lines = [f"Service: {_kname(service, namespace)}"]
    ports = list((service.get("spec") or {}).get("ports") or [])
    for port in ports:
        if (port.get("protocol") or "TCP") != "TCP":
            continue
        target = _target(pod, port)
        if target is None:
            uid = _meta(pod).get("uid") or ""
            lines.append(f"{_L1}no suitable port for manifest: {uid}")
            continue
        lines.append(
            f"{_L1}Port: {port.get('name') or ''} {port.get('port')}/{_port_protocol(port)} "
            f"targets pod port {target}"
        )
    if len(ports) > 1:
        lines.extend(f"{port.get('port')}:" for port in ports)
    return lines


def _workload(pod: Mapping[str, Any]) -> Workload:
    meta = _meta(pod)
    return Workload(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        ip=str((pod.get("status") or {}).get("podIP") or ""),
        labels=dict(meta.get("labels") or {}),
    )


def _selecting_policies(
    policies: Sequence[PeerAuthentication], workload: Workload, root_namespace: str
) -> list[PeerAuthentication]:
    """istioctl's ``findMatchedConfigs``: root namespace's, then the pod's, by name."""
    chosen = [
        p
        for p in policies
        if p.namespace in (root_namespace, workload.namespace)
        and all(workload.labels.get(k) == v for k, v in (p.selector or {}).items())
    ]
    return sorted(chosen, key=lambda p: (p.namespace != root_namespace, p.namespace, p.name))


def _authn_block(composed: ComposedMTLS, applied: Sequence[PeerAuthentication]) -> list[str]:
    lines = ["Effective PeerAuthentication:", f"{_L1}Workload mTLS mode: {composed.mode.value}"]
    if composed.per_port:
        lines.append(f"{_L1}Port Level mTLS mode:")
        lines.extend(
            f"{_L2}{port}: {mode.value}" for port, mode in sorted(composed.per_port.items())
        )
    if applied:
        lines.append("Applied PeerAuthentication:")
        lines.append(_L1 + ", ".join(f"{p.name}.{p.namespace}" for p in applied))
    return lines


def _tls_verdict(mode: str, mtls: MTLSMode, mesh: MeshSettings) -> TLSVerdict:
    if not mesh.enable_tls_on_sidecar_ingress:
        return TLSVerdict(mode, False, "ENABLE_TLS_ON_SIDECAR_INGRESS is off")
    if mtls is not MTLSMode.DISABLE:
        return TLSVerdict(mode, False, f"the port's mTLS mode is {mtls.value}, not DISABLE")
    return TLSVerdict(mode, True)


def inbound_ports(
    sidecar: Sidecar | None,
    services: Sequence[Mapping[str, Any]],
    pod: Mapping[str, Any],
    composed: ComposedMTLS,
    mesh: MeshSettings,
) -> list[InboundPort]:
    """The pod's inbound ports, sorted: the Sidecar's ingress ports if it has any, else
    the target ports of the Services that select the pod."""
    listeners = [item for item in (sidecar.ingress if sidecar else ()) if item and item.port]
    found: dict[int, InboundPort] = {}
    if listeners:
        for item in listeners:
            assert item.port is not None
            number = item.port.number
            mtls = composed.for_port(number)
            tls = None if item.tls is None else _tls_verdict(item.tls.mode.name, mtls, mesh)
            found.setdefault(
                number,
                InboundPort(
                    number,
                    mtls,
                    name=item.port.name,
                    protocol=item.port.protocol,
                    default_endpoint=item.default_endpoint,
                    tls=tls,
                ),
            )
    else:
        for service in services:
            for port in (service.get("spec") or {}).get("ports") or []:
                target = _target(pod, port)
                if target is not None and (port.get("protocol") or "TCP") == "TCP":
                    found.setdefault(target, InboundPort(target, composed.for_port(target)))
    return [found[number] for number in sorted(found)]


def _inbound_line(port: InboundPort) -> str:
    about = ", ".join(part for part in (port.name, port.protocol.upper()) if part)
    head = f"{_L1}{port.number}" + (f" ({about})" if about else "")
    if port.default_endpoint:
        head += f" -> {port.default_endpoint}"
    text = f"{head}: mTLS {port.mtls.value}"
    if port.tls is not None:
        if port.tls.terminated:
            text += f", TLS {port.tls.mode} terminated by the sidecar"
        else:
            text += f", TLS {port.tls.mode} not applied ({port.tls.reason})"
    return text


def _sidecar_block(
    sidecar: Sidecar | None, ports: Sequence[InboundPort], namespace: str
) -> list[str]:
    if sidecar is None:
        lines = ["No Sidecar applies to this pod"]
    else:
        name = (
            sidecar.name
            if sidecar.namespace == namespace
            else f"{sidecar.name}.{sidecar.namespace}"
        )
        lines = [f"Sidecar: {name}"]
    lines.append("Inbound ports:" if ports else "No inbound ports")
    lines.extend(_inbound_line(port) for port in ports)
    return lines


def describe_pod(
    pod: Mapping[str, Any],
    *,
    services: Sequence[Mapping[str, Any]],
    sidecars: Sequence[Sidecar],
    peer_authentications: Sequence[PeerAuthentication],
    mesh: MeshSettings,
    namespace: str,
    ingress_gateway_pods: int = 0,
) -> str:
    """What ``meshlet x describe pod`` prints (the sections in the module docstring).

    ``services`` are the Services of the pod's namespace; ``sidecars`` and
    ``peer_authentications`` those of the pod's namespace and the root namespace;
    ``namespace`` is the namespace the command was given (for names).
    """
    lines = _pod_block(pod, namespace)
    matching = sorted(
        (s for s in services if _selects(s, pod)), key=lambda s: str(_meta(s).get("name"))
    )
    if not matching:
        lines.append(
            f"Warning: No Kubernetes Services select pod {_kname(pod, namespace)} "
            f"(see {SERVICE_REQUIREMENTS_URL} )"
        )
    lines.append(SEPARATOR)
    for row, service in enumerate(matching):
        if row:
            lines.append(SEPARATOR)
        lines.extend(_service_block(service, pod, namespace))
    workload = _workload(pod)
    composed = compose_peer_authentication(
        peer_authentications,
        namespace=workload.namespace,
        workload_labels=workload.labels,
        root_namespace=mesh.root_namespace,
    )
    lines.append(SEPARATOR)
    applied = _selecting_policies(peer_authentications, workload, mesh.root_namespace)
    lines.extend(_authn_block(composed, applied))
    sidecar = Snapshot(sidecars=tuple(sidecars), mesh=mesh).sidecar_scope(workload)
    lines.append(SEPARATOR)
    ports = inbound_ports(sidecar, matching, pod, composed, mesh)
    lines.extend(_sidecar_block(sidecar, ports, namespace))
    if ingress_gateway_pods:
        lines.append("Skipping Gateway information (meshlet serves no Gateway resources)")
    else:
        lines.append("Skipping Gateway information (no ingress gateway pods)")
    return "".join(line + "\n" for line in lines)
