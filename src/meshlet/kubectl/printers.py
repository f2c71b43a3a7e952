"""What ``get`` prints: kubectl's tables, ``-o wide|yaml|json|name|jsonpath=…``.

Theory of operation. ``table_rows`` turns objects (plain dicts, as the store keeps
them) into the cells of kubectl's default columns for their kind: the built-in
printers of Kubernetes for pods, services, deployments, secrets, namespaces,
service accounts and config maps, and the ``additionalPrinterColumns`` of Istio's
CRDs (a CRD without them prints ``NAME AGE``). ``render_table`` lays the cells out
as kubectl's tab writer does (each column as wide as its widest cell plus three
spaces, at least six; the last column unpadded), with ``NAMESPACE`` first for
``-A`` and the wide-only columns for ``-o wide``. ``print_get`` is the whole of
``get``'s output: stdout, and stderr's ``No resources found …`` for an empty table.
For ``yaml``, ``json`` and ``jsonpath`` one object named alone prints as itself;
anything else as a ``v1`` ``List``, as kubectl builds it. Objects print in the
order given: the caller lists them as the API server would (by namespace, then
name) or in the order the user named them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meshlet.kubectl.age import parse_timestamp, translate_timestamp_since
from meshlet.kubectl.encode import to_json, to_yaml
from meshlet.kubectl.jsonpath import (
    JSONPathError,
    find_results,
    format_value,
    parse_template,
    render_jsonpath,
)
from meshlet.kubectl.messages import KubectlError, name_prefix, no_resources_found
from meshlet.resources.kinds import KindInfo

__all__ = [
    "Column",
    "OutputFormat",
    "OutputKind",
    "Printed",
    "list_object",
    "parse_output_format",
    "print_get",
    "render_names",
    "render_table",
    "table_columns",
    "table_rows",
    "tabwrite",
]

Obj = Mapping[str, Any]

_MIN_WIDTH = 6
_PADDING = 3


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # as Kubernetes defines it ("Cluster-IP"); headers print upper-cased
    priority: int = 0  # 1: only with -o wide


# --- helpers -------------------------------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _age(obj: Obj, now: datetime) -> str:
    return translate_timestamp_since(_get(obj, "metadata", "creationTimestamp"), now)


def _format_labels(labels: Any) -> str:
    if not isinstance(labels, Mapping) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _format_label_selector(selector: Any) -> str:
    """``metav1.LabelSelectorAsSelector(s).String()``."""
    if not isinstance(selector, Mapping):
        return "<none>"
    parts: list[tuple[str, str]] = []
    match_labels = selector.get("matchLabels") or {}
    for key in match_labels:
        parts.append((key, f"{key}={match_labels[key]}"))
    for expression in _list(selector.get("matchExpressions")):
        key = str(expression.get("key", ""))
        operator = expression.get("operator")
        values = ",".join(sorted(str(v) for v in _list(expression.get("values"))))
        if operator == "In":
            parts.append((key, f"{key} in ({values})"))
        elif operator == "NotIn":
            parts.append((key, f"{key} notin ({values})"))
        elif operator == "Exists":
            parts.append((key, key))
        elif operator == "DoesNotExist":
            parts.append((key, f"!{key}"))
        else:
            return "<invalid>"
    return ",".join(text for _, text in sorted(parts, key=lambda p: p[0]))


def _containers_cells(containers: Any) -> tuple[str, str]:
    items = _list(containers)
    return (
        ",".join(str(c.get("name", "")) for c in items),
        ",".join(str(c.get("image", "")) for c in items),
    )


def _later(a: str | None, b: Any) -> str | None:
    if not isinstance(b, str) or not b:
        return a
    try:
        if a is None or parse_timestamp(b) > parse_timestamp(a):
            return b
    except ValueError:
        return a
    return a


# --- built-in kinds ------------------------------------------------------------------


def _pod_row(pod: Obj, now: datetime) -> list[str]:
    spec, status = _get(pod, "spec") or {}, _get(pod, "status") or {}
    restarts = 0
    sidecar_restarts = 0
    total = len(_list(spec.get("containers")))
    ready = 0
    last_restart: str | None = None
    last_sidecar_restart: str | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in _list(status.get("conditions")):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.get("name"): c for c in _list(spec.get("initContainers"))}
    restartable = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total += len(restartable)
    init_statuses = _list(status.get("initContainerStatuses"))
    initializing = False
    for index, container in enumerate(init_statuses):
        count = _int(container.get("restartCount"))
        finished = _get(container, "lastState", "terminated", "finishedAt")
        restarts += count
        last_restart = _later(last_restart, finished)
        is_sidecar = container.get("name") in restartable
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        terminated = _get(container, "state", "terminated")
        waiting = _get(container, "state", "waiting")
        if isinstance(terminated, Mapping) and _int(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, Mapping):
            if not terminated.get("reason"):
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Init:Signal:{signal}"
                    if signal
                    else f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
                )
            else:
                reason = f"Init:{terminated['reason']}"
        elif (
            isinstance(waiting, Mapping)
            and waiting.get("reason")
            and waiting.get("reason") != "PodInitializing"
        ):
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(_list(spec.get('initContainers')))}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in _list(status.get("conditions"))
    )
    if not initializing or initialized:
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for container in reversed(_list(status.get("containerStatuses"))):
            restarts += _int(container.get("restartCount"))
            last_restart = _later(
                last_restart, _get(container, "lastState", "terminated", "finishedAt")
            )
            waiting = _get(container, "state", "waiting")
            terminated = _get(container, "state", "terminated")
            if isinstance(waiting, Mapping) and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(terminated, Mapping) and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif isinstance(terminated, Mapping):
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Signal:{signal}" if signal else f"ExitCode:{_int(terminated.get('exitCode'))}"
                )
            elif container.get("ready") is True and isinstance(
                _get(container, "state", "running"), Mapping
            ):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_condition = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in _list(status.get("conditions"))
            )
            reason = "Running" if ready_condition else "NotReady"
    if _get(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({translate_timestamp_since(last_restart, now)} ago)"
    pod_ips = _list(status.get("podIPs"))
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    gates = _list(spec.get("readinessGates"))
    gates_text = "<none>"
    if gates:
        true_count = 0
        for gate in gates:
            for condition in _list(status.get("conditions")):
                if condition.get("type") == gate.get("conditionType"):
                    true_count += condition.get("status") == "True"
                    break
        gates_text = f"{true_count}/{len(gates)}"
    return [
        str(_get(pod, "metadata", "name") or ""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _age(pod, now),
        str(pod_ip),
        str(spec.get("nodeName") or "<none>"),
        str(status.get("nominatedNodeName") or "<none>"),
        gates_text,
    ]


def _service_external_ip(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    kind = spec.get("type") or "ClusterIP"
    external = [str(ip) for ip in _list(spec.get("externalIPs"))]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = _list(_get(status, "loadBalancer", "ingress"))
        seen: list[str] = []
        for entry in ingress:
            value = entry.get("ip") or entry.get("hostname")
            if value and value not in seen:
                seen.append(str(value))
        if external:
            return ",".join(seen + external)
        return ",".join(seen) if seen else "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def _service_row(svc: Obj, now: datetime) -> list[str]:
    spec = _get(svc, "spec") or {}
    status = _get(svc, "status") or {}
    cluster_ips = _list(spec.get("clusterIPs"))
    internal = cluster_ips[0] if cluster_ips else spec.get("clusterIP") or "<none>"
    ports = []
    for port in _list(spec.get("ports")):
        protocol = port.get("protocol") or "TCP"
        if _int(port.get("nodePort")) > 0:
            ports.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            ports.append(f"{port.get('port')}/{protocol}")
    return [
        str(_get(svc, "metadata", "name") or ""),
        str(spec.get("type") or "ClusterIP"),
        str(internal),
        _service_external_ip(spec, status),
        ",".join(ports) or "<none>",
        _age(svc, now),
        _format_labels(spec.get("selector")),
    ]


def _deployment_row(deploy: Obj, now: datetime) -> list[str]:
    spec, status = _get(deploy, "spec") or {}, _get(deploy, "status") or {}
    names, images = _containers_cells(_get(spec, "template", "spec", "containers"))
    return [
        str(_get(deploy, "metadata", "name") or ""),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'), 1)}",
        str(_int(status.get("updatedReplicas"))),
        str(_int(status.get("availableReplicas"))),
        _age(deploy, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


def _replicaset_row(rs: Obj, now: datetime) -> list[str]:
    spec, status = _get(rs, "spec") or {}, _get(rs, "status") or {}
    names, images = _containers_cells(_get(spec, "template", "spec", "containers"))
    return [
        str(_get(rs, "metadata", "name") or ""),
        str(_int(spec.get("replicas"), 1)),
        str(_int(status.get("replicas"))),
        str(_int(status.get("readyReplicas"))),
        _age(rs, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


def _secret_row(secret: Obj, now: datetime) -> list[str]:
    data = secret.get("data")
    return [
        str(_get(secret, "metadata", "name") or ""),
        str(secret.get("type") or "Opaque"),
        str(len(data) if isinstance(data, Mapping) else 0),
        _age(secret, now),
    ]


def _namespace_row(ns: Obj, now: datetime) -> list[str]:
    return [
        str(_get(ns, "metadata", "name") or ""),
        str(_get(ns, "status", "phase") or ""),
        _age(ns, now),
    ]


def _service_account_row(sa: Obj, now: datetime) -> list[str]:
    return [
        str(_get(sa, "metadata", "name") or ""),
        str(len(_list(sa.get("secrets")))),
        _age(sa, now),
    ]


def _config_map_row(cm: Obj, now: datetime) -> list[str]:
    data, binary = cm.get("data"), cm.get("binaryData")
    count = (len(data) if isinstance(data, Mapping) else 0) + (
        len(binary) if isinstance(binary, Mapping) else 0
    )
    return [str(_get(cm, "metadata", "name") or ""), str(count), _age(cm, now)]


_Row = Callable[[Obj, datetime], list[str]]

_BUILTIN: dict[tuple[str, str], tuple[tuple[Column, ...], _Row]] = {
    ("", "Pod"): (
        (
            Column("Name"),
            Column("Ready"),
            Column("Status"),
            Column("Restarts"),
            Column("Age"),
            Column("IP", 1),
            Column("Node", 1),
            Column("Nominated Node", 1),
            Column("Readiness Gates", 1),
        ),
        _pod_row,
    ),
    ("", "Service"): (
        (
            Column("Name"),
            Column("Type"),
            Column("Cluster-IP"),
            Column("External-IP"),
            Column("Port(s)"),
            Column("Age"),
            Column("Selector", 1),
        ),
        _service_row,
    ),
    ("apps", "Deployment"): (
        (
            Column("Name"),
            Column("Ready"),
            Column("Up-to-date"),
            Column("Available"),
            Column("Age"),
            Column("Containers", 1),
            Column("Images", 1),
            Column("Selector", 1),
        ),
        _deployment_row,
    ),
    ("apps", "ReplicaSet"): (
        (
            Column("Name"),
            Column("Desired"),
            Column("Current"),
            Column("Ready"),
            Column("Age"),
            Column("Containers", 1),
            Column("Images", 1),
            Column("Selector", 1),
        ),
        _replicaset_row,
    ),
    ("", "Secret"): (
        (Column("Name"), Column("Type"), Column("Data"), Column("Age")),
        _secret_row,
    ),
    ("", "Namespace"): ((Column("Name"), Column("Status"), Column("Age")), _namespace_row),
    ("", "ServiceAccount"): (
        (Column("Name"), Column("Secrets"), Column("Age")),
        _service_account_row,
    ),
    ("", "ConfigMap"): ((Column("Name"), Column("Data"), Column("Age")), _config_map_row),
}


# --- custom resources: Istio's additionalPrinterColumns ------------------------------


@dataclass(frozen=True, slots=True)
class _PrinterColumn:
    name: str
    json_path: str
    type: str
    priority: int = 0


_AGE = _PrinterColumn("Age", ".metadata.creationTimestamp", "date")

# From the CRDs Istio publishes (every served version has the same columns).
_CRD_COLUMNS: dict[tuple[str, str], tuple[_PrinterColumn, ...]] = {
    ("networking.istio.io", "DestinationRule"): (
        _PrinterColumn("Host", ".spec.host", "string"),
        _AGE,
    ),
    ("security.istio.io", "PeerAuthentication"): (
        _PrinterColumn("Mode", ".spec.mtls.mode", "string"),
        _AGE,
    ),
    ("networking.istio.io", "Sidecar"): (),
}


def _crd_cell(column: _PrinterColumn, obj: Obj, now: datetime) -> str:
    try:
        results = find_results(parse_template("{" + column.json_path + "}"), obj)
    except JSONPathError:
        return ""
    if not results or not results[0]:
        return ""
    value = results[0][0]
    if column.type == "string":
        return format_value(value)
    if column.type == "date":
        if not isinstance(value, str):
            return ""
        try:
            parse_timestamp(value)
        except ValueError:
            return "<invalid>"
        return translate_timestamp_since(value, now)
    if column.type == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if column.type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return format_value(value)
    if column.type == "boolean" and isinstance(value, bool):
        return format_value(value)
    return ""


def _crd_columns(info: KindInfo) -> tuple[_PrinterColumn, ...]:
    columns = _CRD_COLUMNS.get((info.group, info.kind), ())
    return columns or (_AGE,)


def table_columns(info: KindInfo) -> tuple[Column, ...]:
    """Every column of ``info``'s table, wide-only ones included (``priority`` 1)."""
    builtin = _BUILTIN.get((info.group, info.kind))
    if builtin is not None:
        return builtin[0]
    return (Column("Name"), *(Column(c.name, c.priority) for c in _crd_columns(info)))


def table_rows(info: KindInfo, objects: Sequence[Obj], now: datetime) -> list[list[str]]:
    """One row of cells per object, for every column of ``table_columns(info)``."""
    builtin = _BUILTIN.get((info.group, info.kind))
    if builtin is not None:
        return [builtin[1](obj, now) for obj in objects]
    columns = _crd_columns(info)
    return [
        [str(_get(obj, "metadata", "name") or ""), *(_crd_cell(c, obj, now) for c in columns)]
        for obj in objects
    ]


# --- layout --------------------------------------------------------------------------

_BREAK_CHARS = "\f\n\r"


def _cell_text(value: str) -> str:
    cut = min((value.find(c) for c in _BREAK_CHARS if c in value), default=-1)
    if cut >= 0:
        return value[:cut].replace("\x1b", "^[") + "..."
    return value.replace("\x1b", "^[")


def tabwrite(lines: Sequence[Sequence[str]]) -> str:
    """Cells laid out as kubectl's tab writer does (min width 6, padding 3, spaces).

    Every line has the same number of cells; each column but the last is padded
    to its widest cell plus three (at least six); lines end with a newline.
    """
    if not lines:
        return ""
    count = max(len(line) for line in lines)
    widths = [
        max(
            _MIN_WIDTH,
            max((len(line[j]) for line in lines if j < len(line) - 1), default=0) + _PADDING,
        )
        for j in range(count - 1)
    ]
    out: list[str] = []
    for line in lines:
        cells = [
            cell.ljust(widths[j]) if j < len(line) - 1 else cell for j, cell in enumerate(line)
        ]
        out.append("".join(cells) + "\n")
    return "".join(out)


def render_table(
    info: KindInfo,
    objects: Sequence[Obj],
    *,
    now: datetime,
    wide: bool = False,
    all_namespaces: bool = False,
    no_headers: bool = False,
    with_kind: bool = False,
) -> str:
    """``get``'s table for ``objects`` of one kind ("" when there are none).

    ``all_namespaces`` adds ``NAMESPACE`` first (namespaced kinds only);
    ``with_kind`` prefixes names with the kind (``pod/…``), as kubectl does when
    several types are listed at once.
    """
    if not objects:
        return ""
    columns = table_columns(info)
    visible = [i for i, c in enumerate(columns) if wide or c.priority == 0]
    rows = table_rows(info, objects, now)
    lines: list[list[str]] = []
    prefix = name_prefix(info) + "/" if with_kind else ""
    with_namespace = all_namespaces and info.namespaced
    for obj, row in zip(objects, rows, strict=True):
        cells = [_cell_text(row[i]) for i in visible]
        cells[0] = prefix + cells[0]
        if with_namespace:
            cells.insert(0, str(_get(obj, "metadata", "namespace") or ""))
        lines.append(cells)
    if not no_headers:
        headers = [columns[i].name.upper() for i in visible]
        if with_namespace:
            headers.insert(0, "NAMESPACE")
        # kubectl pads each header but the last to its column's widest cell, in bytes
        for j in range(len(headers) - 1):
            widest = max(len(line[j].encode()) for line in lines)
            headers[j] = headers[j].ljust(widest)
        lines.insert(0, headers)
    return tabwrite(lines)


def render_names(info: KindInfo, objects: Sequence[Obj]) -> str:
    """``-o name``: ``pod/sleep-557747455f-brzf6``, one per line."""
    prefix = name_prefix(info)
    return "".join(f"{prefix}/{_get(obj, 'metadata', 'name') or '<unknown>'}\n" for obj in objects)


def list_object(objects: Sequence[Obj]) -> dict[str, Any]:
    """The ``v1`` ``List`` kubectl prints several objects as."""
    return {
        "apiVersion": "v1",
        "items": [dict(obj) for obj in objects],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


# --- the whole of get's output -------------------------------------------------------


class OutputKind(enum.Enum):
    TABLE = ""
    WIDE = "wide"
    YAML = "yaml"
    JSON = "json"
    NAME = "name"
    JSONPATH = "jsonpath"


@dataclass(frozen=True, slots=True)
class OutputFormat:
    kind: OutputKind = OutputKind.TABLE
    template: str = ""  # for jsonpath

    @property
    def human_readable(self) -> bool:
        return self.kind in (OutputKind.TABLE, OutputKind.WIDE)


_ALLOWED = "json,jsonpath,name,wide,yaml"


def parse_output_format(spec: str | None) -> OutputFormat:
    """``-o`` as given: ``wide``, ``yaml``, ``json``, ``name``, ``jsonpath=TEMPLATE``."""
    if not spec:
        return OutputFormat()
    kind_text, has_template, template = spec.partition("=")
    if kind_text == "jsonpath":
        if not has_template or not template:
            raise KubectlError("template format specified but no template given")
        try:
            parse_template(template)
        except JSONPathError as exc:
            raise KubectlError(f"error parsing jsonpath {template}, {exc}") from None
        return OutputFormat(OutputKind.JSONPATH, template)
    for kind in OutputKind:
        if kind.value and kind.value == spec:
            return OutputFormat(kind)
    raise KubectlError(
        f'unable to match a printer suitable for the output format "{spec}", '
        f"allowed formats are: {_ALLOWED}"
    )


@dataclass(frozen=True, slots=True)
class Printed:
    stdout: str = ""
    stderr: str = ""


def print_get(
    info: KindInfo,
    objects: Sequence[Obj],
    *,
    output: OutputFormat,
    now: datetime,
    namespace: str | None,
    all_namespaces: bool = False,
    single_item: bool = False,
) -> Printed:
    """Everything ``get`` writes for one kind.

    ``single_item``: the user named exactly one object (``get pod x``, ``get pod/x``),
    so ``yaml``/``json``/``jsonpath`` print it alone rather than in a ``List``.
    """
    if output.human_readable:
        if not objects:
            where = None if all_namespaces or not info.namespaced else namespace
            return Printed(stderr=no_resources_found(where) + "\n")
        text = render_table(
            info,
            objects,
            now=now,
            wide=output.kind is OutputKind.WIDE,
            all_namespaces=all_namespaces,
        )
        return Printed(stdout=text)
    if output.kind is OutputKind.NAME:
        return Printed(stdout=render_names(info, objects))
    data: Any = dict(objects[0]) if single_item and len(objects) == 1 else list_object(objects)
    if output.kind is OutputKind.YAML:
        return Printed(stdout=to_yaml(data))
    if output.kind is OutputKind.JSON:
        return Printed(stdout=to_json(data))
    return Printed(stdout=render_jsonpath(output.template, data))
