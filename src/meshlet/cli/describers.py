"""What ``describe`` prints for each kind, laid out as kubectl lays it out.

Theory of operation. kubectl's describers write ``Label:\\tvalue`` lines, indented
two spaces per level, through Go's tabwriter (minimum width 0, padding 2), so a run
of consecutive lines with a cell at the same place aligns together and a line
without one (``Containers:``) starts a new alignment. The functions here write the
same lines with ``_Writer`` and lay them out with ``meshlet.istioctl.tabwriter``.

Pods (kubectl's pod describer: identity, status, containers with their state and
mounts, conditions, volumes), Services (with the endpoints of their ready pods),
Deployments, Secrets (sizes, never values), Namespaces, ServiceAccounts and
ConfigMaps have kubectl's own layouts; Istio's kinds use kubectl's generic layout
for custom resources (every field, names split into words: ``Workload Selector``).
The local cluster records no events: kinds whose describer shows events print
``Events: <none>``. A container that cannot start shows its reason and message
(``ErrImagePull`` and what the image catalog said).

Pure: objects and ``now`` in, text out.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from meshlet.istioctl.tabwriter import tabwrite
from meshlet.kubectl.age import parse_timestamp, translate_timestamp_since
from meshlet.resources.kinds import KindInfo

__all__ = ["describe", "smart_label"]

Obj = Mapping[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION = 140


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def line(self, level: int, text: str) -> None:
        self.parts.append("  " * level + text)

    def text(self) -> str:
        return tabwrite("".join(self.parts), padding=2)


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _time(value: Any) -> str:
    """A timestamp as kubectl's describe prints it (Go's RFC 1123 with a numeric zone)."""
    if not isinstance(value, str) or not value:
        return "<unknown>"
    try:
        return parse_timestamp(value).strftime("%a, %d %b %Y %H:%M:%S %z")
    except ValueError:
        return value


def _labels(w: _Writer, title: str, labels: Any, level: int = 0) -> None:
    if not isinstance(labels, Mapping) or not labels:
        w.line(level, f"{title}:\t<none>\n")
        return
    for index, key in enumerate(sorted(labels)):
        head = f"{title}:" if index == 0 else ""
        w.line(level, f"{head}\t{key}={labels[key]}\n")


def _annotations(w: _Writer, title: str, annotations: Any, level: int = 0) -> None:
    shown = (
        {k: v for k, v in (annotations or {}).items() if k != LAST_APPLIED}
        if isinstance(annotations, Mapping)
        else {}
    )
    if not shown:
        w.line(level, f"{title}:\t<none>\n")
        return
    for index, key in enumerate(sorted(shown)):
        value = str(shown[key]).strip()
        if "\n" in value or len(value) > MAX_ANNOTATION:
            value = value.replace("\n", " ")[:MAX_ANNOTATION] + "..."
        head = f"{title}:" if index == 0 else ""
        w.line(level, f"{head}\t{key}: {value}\n")


def _identity(w: _Writer, meta: Obj, *, namespaced: bool = True) -> None:
    """The lines every describe of a simple kind starts with: name, namespace, labels
    and annotations."""
    w.line(0, f"Name:\t{meta.get('name', '')}\n")
    if namespaced:
        w.line(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))


def _events(w: _Writer) -> None:
    w.line(0, "Events:\t<none>\n")


# --- pods ----------------------------------------------------------------------------------


def _ports(ports: Sequence[Any], field: str) -> str:
    texts = []
    for port in ports:
        number = port.get(field) or 0
        texts.append(f"{number}/{port.get('protocol') or 'TCP'}")
    return ", ".join(texts) if texts else "<none>"


def _state(w: _Writer, title: str, state: Mapping[str, Any]) -> None:
    if "running" in state:
        w.line(2, f"{title}:\tRunning\n")
        w.line(3, f"Started:\t{_time((state['running'] or {}).get('startedAt'))}\n")
    elif "terminated" in state:
        done = state["terminated"] or {}
        w.line(2, f"{title}:\tTerminated\n")
        if done.get("reason"):
            w.line(3, f"Reason:\t{done['reason']}\n")
        if done.get("message"):
            w.line(3, f"Message:\t{done['message']}\n")
        w.line(3, f"Exit Code:\t{done.get('exitCode', 0)}\n")
        if done.get("signal"):
            w.line(3, f"Signal:\t{done['signal']}\n")
        w.line(3, f"Started:\t{_time(done.get('startedAt'))}\n")
        w.line(3, f"Finished:\t{_time(done.get('finishedAt'))}\n")
    else:
        waiting = state.get("waiting") or {}
        w.line(2, f"{title}:\tWaiting\n")
        if waiting.get("reason"):
            w.line(3, f"Reason:\t{waiting['reason']}\n")
        if waiting.get("message"):
            w.line(3, f"Message:\t{waiting['message']}\n")


def _env_value(item: Mapping[str, Any]) -> str:
    if "value" in item:
        return str(item["value"])
    source = item.get("valueFrom") or {}
    if "fieldRef" in source:
        ref = source["fieldRef"] or {}
        return f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})"
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"] or {}
        return f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>"
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"] or {}
        return f"<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>"
    if "resourceFieldRef" in source:
        ref = source["resourceFieldRef"] or {}
        return f"{ref.get('resource')}"
    return ""


def _container(
    w: _Writer, container: Mapping[str, Any], status: Mapping[str, Any] | None, indent: str = ""
) -> None:
    w.line(1, f"{indent}{container.get('name')}:\n")
    if status is not None:
        w.line(2, f"Container ID:\t{status.get('containerID', '')}\n")
    w.line(2, f"Image:\t{container.get('image', '')}\n")
    if status is not None:
        w.line(2, f"Image ID:\t{status.get('imageID', '')}\n")
    ports = _list(container.get("ports"))
    label = "Ports" if len(ports) > 1 else "Port"
    w.line(2, f"{label}:\t{_ports(ports, 'containerPort')}\n")
    host = "Host Ports" if len(ports) > 1 else "Host Port"
    w.line(2, f"{host}:\t{_ports(ports, 'hostPort')}\n")
    for title, key in (("Command", "command"), ("Args", "args")):
        values = _list(container.get(key))
        if values:
            w.line(2, f"{title}:\n")
            for value in values:
                for part in str(value).split("\n"):
                    w.line(3, f"{part}\n")
    if status is not None:
        _state(w, "State", status.get("state") or {})
        last = status.get("lastState") or {}
        if last.get("terminated"):
            _state(w, "Last State", last)
        w.line(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
        w.line(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
    for probe_title, key in (
        ("Liveness", "livenessProbe"),
        ("Readiness", "readinessProbe"),
        ("Startup", "startupProbe"),
    ):
        probe = container.get(key)
        if isinstance(probe, Mapping):
            w.line(2, f"{probe_title}:\t{_probe(probe)}\n")
    env = _list(container.get("env"))
    if not env:
        w.line(2, "Environment:\t<none>\n")
    else:
        w.line(2, "Environment:\n")
        for item in env:
            w.line(3, f"{item.get('name')}:\t{_env_value(item)}\n")
    mounts = sorted(_list(container.get("volumeMounts")), key=lambda m: str(m.get("mountPath")))
    if not mounts:
        w.line(2, "Mounts:\t<none>\n")
    else:
        w.line(2, "Mounts:\n")
        for mount in mounts:
            flags = ["ro" if mount.get("readOnly") else "rw"]
            if mount.get("subPath"):
                flags.append(f'path="{mount["subPath"]}"')
            w.line(3, f"{mount.get('mountPath')} from {mount.get('name')} ({','.join(flags)})\n")


def _probe(probe: Mapping[str, Any]) -> str:
    if "httpGet" in probe:
        get = probe["httpGet"] or {}
        host = get.get("host") or ""
        target = (
            f"{get.get('scheme', 'HTTP').lower()}://{host}:{get.get('port')}{get.get('path', '')}"
        )
        kind = f"http-get {target}"
    elif "tcpSocket" in probe:
        kind = f"tcp-socket :{(probe['tcpSocket'] or {}).get('port')}"
    elif "exec" in probe:
        kind = f"exec [{' '.join(str(c) for c in (probe['exec'] or {}).get('command') or [])}]"
    else:
        kind = "unknown"
    return (
        f"{kind} delay={probe.get('initialDelaySeconds', 0)}s "
        f"timeout={probe.get('timeoutSeconds', 1)}s period={probe.get('periodSeconds', 10)}s "
        f"#success={probe.get('successThreshold', 1)} #failure={probe.get('failureThreshold', 3)}"
    )


def _volumes(w: _Writer, volumes: Sequence[Any], *, indent: str = "") -> None:
    level = 0
    if not volumes:
        w.line(level, f"{indent}Volumes:\t<none>\n")
        return
    w.line(level, f"{indent}Volumes:\n")
    name_indent = " " if indent else ""
    for volume in volumes:
        w.line(level + 1, f"{name_indent}{volume.get('name')}:\n")
        inner = level + 2
        if "secret" in volume:
            source = volume["secret"] or {}
            w.line(inner, "Type:\tSecret (a volume populated by a Secret)\n")
            w.line(inner, f"SecretName:\t{source.get('secretName', '')}\n")
            w.line(inner, f"Optional:\t{'true' if source.get('optional') else 'false'}\n")
        elif "configMap" in volume:
            source = volume["configMap"] or {}
            w.line(inner, "Type:\tConfigMap (a volume populated by a ConfigMap)\n")
            w.line(inner, f"Name:\t{source.get('name', '')}\n")
            w.line(inner, f"Optional:\t{'true' if source.get('optional') else 'false'}\n")
        elif "emptyDir" in volume:
            source = volume["emptyDir"] or {}
            w.line(inner, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n")
            w.line(inner, f"Medium:\t{source.get('medium', '')}\n")
            w.line(inner, f"SizeLimit:\t{source.get('sizeLimit', '<unset>')}\n")
        elif "downwardAPI" in volume:
            w.line(inner, "Type:\tDownwardAPI (a volume populated by information about the pod)\n")
            w.line(inner, "Items:\n")
            for item in _list((volume["downwardAPI"] or {}).get("items")):
                field = (item.get("fieldRef") or {}).get("fieldPath", "")
                w.line(inner + 1, f"{field} -> {item.get('path')}\n")
        elif "projected" in volume:
            w.line(
                inner,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            )
            for source in _list((volume["projected"] or {}).get("sources")):
                token = source.get("serviceAccountToken")
                if isinstance(token, Mapping):
                    w.line(
                        inner, f"TokenExpirationSeconds:\t{token.get('expirationSeconds', 3600)}\n"
                    )
                cm = source.get("configMap")
                if isinstance(cm, Mapping):
                    w.line(inner, f"ConfigMapName:\t{cm.get('name')}\n")
                    w.line(inner, f"Optional:\t{'true' if cm.get('optional') else 'false'}\n")
        elif "hostPath" in volume:
            source = volume["hostPath"] or {}
            w.line(inner, "Type:\tHostPath (bare host directory volume)\n")
            w.line(inner, f"Path:\t{source.get('path', '')}\n")
            w.line(inner, f"HostPathType:\t{source.get('type', '')}\n")
        else:
            w.line(level + 1, "<unknown>\n")


def _controller(pod: Obj) -> str:
    for ref in _list(_meta(pod).get("ownerReferences")):
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


def describe_pod(pod: Obj, now: datetime) -> str:
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    w = _Writer()
    w.line(0, f"Name:\t{meta.get('name', '')}\n")
    w.line(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.line(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("serviceAccountName"):
        w.line(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    node = spec.get("nodeName")
    w.line(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else "Node:\t<none>\n")
    if status.get("startTime"):
        w.line(0, f"Start Time:\t{_time(status['startTime'])}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    if meta.get("deletionTimestamp"):
        since = translate_timestamp_since(meta["deletionTimestamp"], now)
        w.line(0, f"Status:\tTerminating (lasts {since})\n")
    else:
        w.line(0, f"Status:\t{status.get('phase', '')}\n")
    if status.get("reason"):
        w.line(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.line(0, f"Message:\t{status['message']}\n")
    w.line(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = _list(status.get("podIPs"))
    if not ips:
        w.line(0, "IPs:\t<none>\n")
    else:
        w.line(0, "IPs:\n")
        for ip in ips:
            w.line(1, f"IP:\t{ip.get('ip')}\n")
    controller = _controller(pod)
    if controller:
        w.line(0, f"Controlled By:\t{controller}\n")
    statuses = {s.get("name"): s for s in _list(status.get("containerStatuses"))}
    init_statuses = {s.get("name"): s for s in _list(status.get("initContainerStatuses"))}
    if _list(spec.get("initContainers")):
        w.line(0, "Init Containers:\n")
        for container in spec["initContainers"]:
            _container(w, container, init_statuses.get(container.get("name")))
    w.line(0, "Containers:\n")
    for container in _list(spec.get("containers")):
        _container(w, container, statuses.get(container.get("name")))
    conditions = _list(status.get("conditions"))
    if conditions:
        w.line(0, "Conditions:\n")
        w.line(1, "Type\tStatus\n")
        for condition in conditions:
            w.line(1, f"{condition.get('type')} \t{condition.get('status')} \n")
    _volumes(w, _list(spec.get("volumes")))
    w.line(0, f"QoS Class:\t{status.get('qosClass', 'BestEffort')}\n")
    _labels(w, "Node-Selectors", spec.get("nodeSelector"))
    tolerations = _list(spec.get("tolerations"))
    if not tolerations:
        w.line(0, "Tolerations:\t<none>\n")
    else:
        for index, toleration in enumerate(tolerations):
            head = "Tolerations:" if index == 0 else ""
            w.line(0, f"{head}\t{_toleration(toleration)}\n")
    _events(w)
    return w.text()


def _toleration(toleration: Mapping[str, Any]) -> str:
    text = str(toleration.get("key") or "")
    if toleration.get("value"):
        text += f"={toleration['value']}"
    if toleration.get("effect"):
        text += f":{toleration['effect']}"
    if toleration.get("operator") == "Exists" and not toleration.get("value"):
        text += " op=Exists"
    if toleration.get("tolerationSeconds") is not None:
        text += f" for {toleration['tolerationSeconds']}s"
    return text


# --- services ------------------------------------------------------------------------------


def _pod_ready(pod: Obj) -> bool:
    for condition in _list((pod.get("status") or {}).get("conditions")):
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _target_port(pod: Obj, target: Any) -> Any:
    if isinstance(target, int):
        return target
    for container in _list((pod.get("spec") or {}).get("containers")):
        for port in _list(container.get("ports")):
            if port.get("name") == target:
                return port.get("containerPort")
    return None


def _endpoints(service: Obj, port: Mapping[str, Any], pods: Sequence[Obj]) -> str:
    target = port.get("targetPort", port.get("port"))
    found = []
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        number = _target_port(pod, target)
        if ip and number is not None and _pod_ready(pod):
            found.append(f"{ip}:{number}")
    if not found:
        return "<none>"
    if len(found) > 3:
        return ",".join(found[:3]) + f" + {len(found) - 3} more..."
    return ",".join(found)


def describe_service(service: Obj, pods: Sequence[Obj]) -> str:
    meta, spec = _meta(service), service.get("spec") or {}
    w = _Writer()
    _identity(w, meta)
    selector = spec.get("selector") or {}
    selector_text = ",".join(f"{k}={selector[k]}" for k in sorted(selector)) or "<none>"
    w.line(0, f"Selector:\t{selector_text}\n")
    w.line(0, f"Type:\t{spec.get('type', 'ClusterIP')}\n")
    if spec.get("ipFamilyPolicy"):
        w.line(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    if _list(spec.get("ipFamilies")):
        w.line(0, f"IP Families:\t{','.join(spec['ipFamilies'])}\n")
    w.line(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    ips = _list(spec.get("clusterIPs")) or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    if ips:
        w.line(0, f"IPs:\t{','.join(ips)}\n")
    for port in _list(spec.get("ports")):
        protocol = port.get("protocol") or "TCP"
        w.line(0, f"Port:\t{port.get('name') or '<unset>'}\t{port.get('port')}/{protocol}\n")
        target = port.get("targetPort", port.get("port"))
        w.line(0, f"TargetPort:\t{target}/{protocol}\n")
        if port.get("nodePort"):
            w.line(
                0, f"NodePort:\t{port.get('name') or '<unset>'}\t{port['nodePort']}/{protocol}\n"
            )
        w.line(0, f"Endpoints:\t{_endpoints(service, port, pods)}\n")
    w.line(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("internalTrafficPolicy"):
        w.line(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    _events(w)
    return w.text()


# --- deployments ---------------------------------------------------------------------------


def describe_deployment(deployment: Obj, pods: Sequence[Obj]) -> str:
    meta, spec = _meta(deployment), deployment.get("spec") or {}
    status = deployment.get("status") or {}
    w = _Writer()
    w.line(0, f"Name:\t{meta.get('name', '')}\n")
    w.line(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.line(0, f"CreationTimestamp:\t{_time(meta.get('creationTimestamp'))}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    w.line(0, f"Selector:\t{','.join(f'{k}={match[k]}' for k in sorted(match)) or '<none>'}\n")
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    unavailable = status.get("unavailableReplicas", 0)
    w.line(
        0,
        f"Replicas:\t{replicas} desired | {updated} updated | {total} total | "
        f"{available} available | {unavailable} unavailable\n",
    )
    strategy = spec.get("strategy") or {}
    w.line(0, f"StrategyType:\t{strategy.get('type', 'RollingUpdate')}\n")
    w.line(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    rolling = strategy.get("rollingUpdate")
    if isinstance(rolling, Mapping):
        w.line(
            0,
            f"RollingUpdateStrategy:\t{rolling.get('maxUnavailable', '25%')} max unavailable, "
            f"{rolling.get('maxSurge', '25%')} max surge\n",
        )
    template = spec.get("template") or {}
    template_meta = template.get("metadata") or {}
    template_spec = template.get("spec") or {}
    w.line(0, "Pod Template:\n")
    _labels(w, "Labels", template_meta.get("labels"), 1)
    _annotations(w, "Annotations", template_meta.get("annotations"), 1)
    if template_spec.get("serviceAccountName"):
        w.line(1, f"Service Account:\t{template_spec['serviceAccountName']}\n")
    w.line(1, "Containers:\n")
    for container in _list(template_spec.get("containers")):
        _container(w, container, None, indent=" ")
    _volumes(w, _list(template_spec.get("volumes")), indent="  ")
    _labels(w, "Node-Selectors", template_spec.get("nodeSelector"), 1)
    w.line(1, "Tolerations:\t<none>\n")
    conditions = _list(status.get("conditions"))
    if conditions:
        w.line(0, "Conditions:\n")
        w.line(1, "Type\tStatus\tReason\n")
        w.line(1, "----\t------\t------\n")
        for condition in conditions:
            w.line(
                1,
                f"{condition.get('type')} \t{condition.get('status')}\t{condition.get('reason', '')}\n",
            )
    names = sorted(
        {
            str(ref.get("name"))
            for pod in pods
            for ref in _list(_meta(pod).get("ownerReferences"))
            if ref.get("kind") == "ReplicaSet"
        }
    )
    w.line(0, "OldReplicaSets:\t<none>\n")
    if names:
        w.line(0, f"NewReplicaSet:\t{names[-1]} ({len(pods)}/{replicas} replicas created)\n")
    else:
        w.line(0, "NewReplicaSet:\t<none>\n")
    _events(w)
    return w.text()


# --- secrets, namespaces, service accounts, config maps ------------------------------------


def describe_secret(secret: Obj) -> str:
    meta = _meta(secret)
    w = _Writer()
    _identity(w, meta)
    w.line(0, f"\nType:\t{secret.get('type', 'Opaque')}\n")
    w.line(0, "\nData\n====\n")
    data = secret.get("data") or {}
    for key in sorted(data):
        try:
            size = len(base64.b64decode(str(data[key])))
        except (binascii.Error, ValueError):
            size = len(str(data[key]))
        w.line(0, f"{key}:\t{size} bytes\n")
    return w.text()


def describe_namespace(namespace: Obj) -> str:
    meta = _meta(namespace)
    w = _Writer()
    _identity(w, meta, namespaced=False)
    w.line(0, f"Status:\t{(namespace.get('status') or {}).get('phase', 'Active')}\n")
    w.line(0, "\nNo resource quota.\n")
    w.line(0, "\nNo LimitRange resource.\n")
    return w.text()


def describe_service_account(account: Obj) -> str:
    meta = _meta(account)
    w = _Writer()
    _identity(w, meta)
    pulls = [str(s.get("name")) for s in _list(account.get("imagePullSecrets"))]
    w.line(0, f"Image pull secrets:\t{', '.join(pulls) or '<none>'}\n")
    mountable = [str(s.get("name")) for s in _list(account.get("secrets"))]
    w.line(0, f"Mountable secrets:\t{', '.join(mountable) or '<none>'}\n")
    w.line(0, "Tokens:\t<none>\n")
    _events(w)
    return w.text()


def describe_config_map(config_map: Obj) -> str:
    meta = _meta(config_map)
    w = _Writer()
    _identity(w, meta)
    w.line(0, "\nData\n====\n")
    data = config_map.get("data") or {}
    for key in sorted(data):
        w.line(0, f"{key}:\n----\n{data[key]}\n\n")
    w.line(0, "\nBinaryData\n====\n")
    for key in sorted(config_map.get("binaryData") or {}):
        w.line(0, f"{key}: {len(str(config_map['binaryData'][key]))} bytes\n")
    w.line(0, "\n")
    _events(w)
    return w.text()


# --- custom resources: kubectl's generic describer ---------------------------------------

_ACRONYMS = {"API", "URL", "UID", "OSB", "GUID"}
_CAMEL_RUN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^A-Za-z0-9]+")


def smart_label(field: str) -> str:
    """A field name as kubectl's generic describer shows it: ``apiVersion`` →
    ``API Version``, ``workloadSelector`` → ``Workload Selector``."""
    if any(not (c.isalpha() or c == "-") for c in field):
        return field
    words = []
    for part in _CAMEL_RUN.findall(field):
        if part == "-":
            continue
        words.append(part.upper() if part.upper() in _ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(words)


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "<nil>"
    return str(value)


def _unstructured(w: _Writer, level: int, content: Mapping[str, Any], path: str) -> None:
    skipped = {".metadata.name", ".metadata.namespace", ".metadata.labels", ".metadata.annotations"}
    for field in sorted(content):
        value = content[field]
        here = f"{path}.{field}"
        if here in skipped:
            continue
        if isinstance(value, Mapping):
            w.line(level, f"{smart_label(field)}:\n")
            _unstructured(w, level + 1, value, here)
        elif isinstance(value, list):
            w.line(level, f"{smart_label(field)}:\n")
            for item in value:
                if isinstance(item, Mapping):
                    _unstructured(w, level + 1, item, here)
                else:
                    w.line(level + 1, f"{_scalar(item)}\n")
        else:
            w.line(level, f"{smart_label(field)}:\t{_scalar(value)}\n")


def describe_generic(obj: Obj) -> str:
    meta = _meta(obj)
    w = _Writer()
    _identity(w, meta)
    _unstructured(w, 0, obj, "")
    _events(w)
    return w.text()


def describe(info: KindInfo, obj: Obj, *, now: datetime, pods: Sequence[Obj] = ()) -> str:
    """``describe``'s text for one object (``pods``: those a Service or Deployment selects)."""
    match (info.group, info.kind):
        case ("", "Pod"):
            return describe_pod(obj, now)
        case ("", "Service"):
            return describe_service(obj, pods)
        case ("apps", "Deployment"):
            return describe_deployment(obj, pods)
        case ("", "Secret"):
            return describe_secret(obj)
        case ("", "Namespace"):
            return describe_namespace(obj)
        case ("", "ServiceAccount"):
            return describe_service_account(obj)
        case ("", "ConfigMap"):
            return describe_config_map(obj)
    return describe_generic(obj)
