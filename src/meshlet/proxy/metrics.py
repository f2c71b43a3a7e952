"""Istio's standard metrics, counted per request with little work, rendered for Prometheus.

Theory of operation
-------------------
Istio's sidecars report ``istio_requests_total``, the histograms
``istio_request_duration_milliseconds``, ``istio_request_bytes`` and
``istio_response_bytes`` (HTTP), and ``istio_tcp_*`` for TCP proxy connections, each
labelled with who called whom (``reporter``, ``source_*``, ``destination_*``), the
request's outcome and ``connection_security_policy``.

Most labels are the same for every request of a connection: the reporter, the proxy's
own workload, the peer's principal, the security policy. They are fixed once per
connection as a ``ConnectionLabels`` value, and ``MetricsRegistry.connection`` returns
the ``ConnectionMetrics`` shared by every connection with those labels. Per request
only what varies is looked up — the destination service, the protocol, the status and
the response flags — in that object's small dictionary, and three histogram buckets
are found by bisection. Nothing is formatted until a scrape.

Each worker process counts on its own. ``MetricsRegistry.snapshot`` turns the counts
into plain lists (JSON for the agent), ``merge_snapshots`` sums the workers' snapshots
series by series, and ``render_istio_metrics`` writes Prometheus' text format with
Envoy's default histogram buckets, series sorted, so the same counts give the same
bytes.

Pure: values in, values and text out.
"""

from __future__ import annotations

import enum
import json
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "HISTOGRAM_BUCKETS",
    "LABEL_NAMES",
    "TCP_LABEL_NAMES",
    "ConnectionLabels",
    "ConnectionMetrics",
    "MetricsRegistry",
    "Reporter",
    "Workload",
    "destination_service",
    "merge_snapshots",
    "render_istio_metrics",
]

#: Envoy's default histogram buckets, which Istio's metrics use unless told otherwise.
HISTOGRAM_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip

UNKNOWN = "unknown"

#: Istio's label order for the HTTP metrics.
LABEL_NAMES: tuple[str, ...] = (
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)

#: The TCP metrics have no response code nor gRPC status.
TCP_LABEL_NAMES: tuple[str, ...] = tuple(
    name for name in LABEL_NAMES if name not in ("response_code", "grpc_response_status")
)

_POD_SUFFIX = re.compile(r"-[a-z0-9]{6,10}-[a-z0-9]{5}$|-[a-z0-9]{5}$")


class Reporter(enum.Enum):
    """Which side of the call this proxy is: inbound sidecars report as ``destination``."""

    SOURCE = "source"
    DESTINATION = "destination"


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload as the metrics name it (``unknown`` where nothing is known)."""

    name: str = UNKNOWN
    namespace: str = UNKNOWN
    app: str = UNKNOWN
    version: str = UNKNOWN
    canonical_service: str = UNKNOWN
    canonical_revision: str = UNKNOWN
    cluster: str = UNKNOWN

    @classmethod
    def from_node(cls, node_id: str, metadata: Mapping[str, str]) -> Workload:
        """The proxy's own workload, from its node id (``sidecar~IP~POD.NS~…``) and node
        metadata (``WORKLOAD_NAME``, ``NAMESPACE``, ``LABELS`` as JSON, ``CLUSTER_ID``)."""
        pod, namespace = "", ""
        parts = node_id.split("~")
        if len(parts) == 4:
            pod, _, namespace = parts[2].partition(".")
        namespace = metadata.get("NAMESPACE") or namespace
        name = metadata.get("WORKLOAD_NAME") or _POD_SUFFIX.sub("", pod)
        labels: dict[str, str] = {}
        raw = metadata.get("LABELS")
        if raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = {}
            if isinstance(decoded, dict):
                labels = {str(k): str(v) for k, v in decoded.items()}
        app = labels.get("app.kubernetes.io/name") or labels.get("app") or UNKNOWN
        version = labels.get("app.kubernetes.io/version") or labels.get("version") or UNKNOWN
        name = name or UNKNOWN
        return cls(
            name=name,
            namespace=namespace or UNKNOWN,
            app=app,
            version=version,
            canonical_service=labels.get("service.istio.io/canonical-name")
            or (app if app != UNKNOWN else name),
            canonical_revision=labels.get("service.istio.io/canonical-revision")
            or (version if version != UNKNOWN else "latest"),
            cluster=metadata.get("CLUSTER_ID") or UNKNOWN,
        )


_UNKNOWN_WORKLOAD = Workload()


@dataclass(frozen=True, slots=True)
class ConnectionLabels:
    """The labels every request of one connection shares (computed at its start)."""

    reporter: Reporter
    local: Workload
    peer: Workload = _UNKNOWN_WORKLOAD
    local_principal: str = UNKNOWN
    peer_principal: str = UNKNOWN
    mutual_tls: bool = False

    def values(self) -> tuple[str, ...]:
        """Values of ``LABEL_NAMES`` up to ``destination_workload_namespace``… in order,
        with ``None`` gaps filled per request (see ``_http_labels``)."""
        if self.reporter is Reporter.DESTINATION:
            source, destination = self.peer, self.local
            source_principal, destination_principal = self.peer_principal, self.local_principal
        else:
            source, destination = self.local, self.peer
            source_principal, destination_principal = self.local_principal, self.peer_principal
        return (
            self.reporter.value,
            source.name,
            source.canonical_service,
            source.canonical_revision,
            source.namespace,
            source_principal,
            source.app,
            source.version,
            source.cluster,
            destination.name,
            destination.namespace,
            destination_principal,
            destination.app,
            destination.version,
            destination.canonical_service,
            destination.canonical_revision,
            destination.cluster,
            "mutual_tls"
            if self.mutual_tls and self.reporter is Reporter.DESTINATION
            else ("unknown" if self.reporter is Reporter.SOURCE else "none"),
        )


def destination_service(authority: str, namespace: str) -> tuple[str, str, str]:
    """``(destination_service, _name, _namespace)`` from a request's authority.

    A cluster name (``name.ns.svc.<domain>``) gives its parts; a short name is taken to
    be in the workload's namespace; anything else is its own name.
    """
    host = authority.lower()
    if host.startswith("["):
        host = host.partition("]")[0] + "]"
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    if not host:
        return UNKNOWN, UNKNOWN, UNKNOWN
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return host, parts[0], parts[1]
    if len(parts) == 2:
        return host, parts[0], parts[1]
    if len(parts) == 1 and not host.startswith("["):
        return host, host, namespace
    return host, host, UNKNOWN


class _HttpSeries:
    __slots__ = ("count", "duration", "duration_sum", "request", "request_sum", "response",
                 "response_sum")  # fmt: skip

    def __init__(self) -> None:
        buckets = len(HISTOGRAM_BUCKETS) + 1
        self.count = 0
        self.duration = [0] * buckets
        self.duration_sum = 0.0
        self.request = [0] * buckets
        self.request_sum = 0
        self.response = [0] * buckets
        self.response_sum = 0


class _TcpSeries:
    __slots__ = ("closed", "opened", "received", "sent")

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self.sent = 0
        self.received = 0


class ConnectionMetrics:
    """The counters of every connection with the same ``ConnectionLabels``."""

    __slots__ = ("_http", "_services", "_tcp", "labels", "namespace")

    def __init__(self, labels: ConnectionLabels) -> None:
        self.labels = labels
        self.namespace = labels.local.namespace
        self._http: dict[tuple[str, str, int, str], _HttpSeries] = {}
        self._tcp: dict[tuple[str, str], _TcpSeries] = {}
        self._services: dict[str, tuple[str, str, str]] = {}

    def record_request(  # noqa: PLR0917 - positional on the hot path
        self,
        authority: str,
        protocol: str,
        status: int,
        flags: str,
        duration_ms: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        """Count one finished HTTP request (``protocol``: ``http`` or ``grpc``)."""
        key = (authority, protocol, status, flags)
        series = self._http.get(key)
        if series is None:
            if len(self._http) >= 1000:  # bound the label space a client can make
                key = (UNKNOWN, protocol, status, flags)
                series = self._http.get(key)
            if series is None:
                series = self._http[key] = _HttpSeries()
        series.count += 1
        series.duration[bisect_left(HISTOGRAM_BUCKETS, duration_ms)] += 1
        series.duration_sum += duration_ms
        series.request[bisect_left(HISTOGRAM_BUCKETS, request_bytes)] += 1
        series.request_sum += request_bytes
        series.response[bisect_left(HISTOGRAM_BUCKETS, response_bytes)] += 1
        series.response_sum += response_bytes

    def _service(self, authority: str) -> tuple[str, str, str]:
        found = self._services.get(authority)
        if found is None:
            found = self._services[authority] = (
                (UNKNOWN, UNKNOWN, UNKNOWN)
                if authority == UNKNOWN
                else destination_service(authority, self.namespace)
            )
        return found

    def tcp_opened(self, authority: str = UNKNOWN) -> None:
        self._tcp_series(authority, "-").opened += 1

    def tcp_closed(
        self, sent: int, received: int, flags: str = "-", authority: str = UNKNOWN
    ) -> None:
        """Count a closed TCP proxy connection and its bytes (``flags``: Envoy's)."""
        series = self._tcp_series(authority, flags)
        series.closed += 1
        series.sent += sent
        series.received += received

    def _tcp_series(self, authority: str, flags: str) -> _TcpSeries:
        key = (authority, flags)
        series = self._tcp.get(key)
        if series is None:
            series = self._tcp[key] = _TcpSeries()
        return series


class MetricsRegistry:
    """All of one process's Istio metrics (see the module docstring)."""

    def __init__(self) -> None:
        self._connections: dict[ConnectionLabels, ConnectionMetrics] = {}

    def connection(self, labels: ConnectionLabels) -> ConnectionMetrics:
        found = self._connections.get(labels)
        if found is None:
            found = self._connections[labels] = ConnectionMetrics(labels)
        return found

    def snapshot(self) -> list[dict[str, object]]:
        """Every series as plain values: ``{"kind", "labels", …counts}`` (JSON-ready)."""
        out: list[dict[str, object]] = []
        for metrics in self._connections.values():
            fixed = metrics.labels.values()
            for (authority, protocol, status, flags), series in metrics._http.items():
                service, name, namespace = metrics._service(authority)
                out.append(
                    {
                        "kind": "http",
                        "labels": _http_labels(
                            fixed, service, name, namespace, protocol, status, flags
                        ),
                        "count": series.count,
                        "duration": [*series.duration, series.duration_sum],
                        "request": [*series.request, series.request_sum],
                        "response": [*series.response, series.response_sum],
                    }
                )
            for (authority, flags), tcp in metrics._tcp.items():
                service, name, namespace = metrics._service(authority)
                out.append(
                    {
                        "kind": "tcp",
                        "labels": _tcp_labels(fixed, service, name, namespace, flags),
                        "opened": tcp.opened,
                        "closed": tcp.closed,
                        "sent": tcp.sent,
                        "received": tcp.received,
                    }
                )
        return out


def _http_labels(  # noqa: PLR0917
    fixed: tuple[str, ...], service: str, name: str, namespace: str, protocol: str,
    status: int, flags: str,
) -> list[str]:  # fmt: skip
    grpc_status = "" if protocol != "grpc" else "-"
    return [
        *fixed[:14], service, fixed[14], fixed[15], name, namespace, fixed[16],
        protocol, str(status), grpc_status, flags, fixed[17],
    ]  # fmt: skip


def _tcp_labels(
    fixed: tuple[str, ...], service: str, name: str, namespace: str, flags: str
) -> list[str]:
    return [
        *fixed[:14], service, fixed[14], fixed[15], name, namespace, fixed[16],
        "tcp", flags, fixed[17],
    ]  # fmt: skip


_COUNTERS = ("count", "opened", "closed", "sent", "received")


def merge_snapshots(snapshots: Iterable[Sequence[Mapping[str, object]]]) -> list[dict[str, object]]:
    """The workers' snapshots summed series by series, sorted by kind and labels."""
    merged: dict[tuple[str, tuple[str, ...]], dict[str, object]] = {}
    for snapshot in snapshots:
        for entry in snapshot:
            kind = str(entry.get("kind"))
            labels = tuple(str(v) for v in entry.get("labels") or ())  # type: ignore[attr-defined]
            key = (kind, labels)
            into = merged.get(key)
            if into is None:
                merged[key] = {k: (list(v) if isinstance(v, list) else v) for k, v in entry.items()}
                merged[key]["labels"] = list(labels)
                continue
            for name, value in entry.items():
                if name in _COUNTERS and isinstance(value, int | float):
                    into[name] = into.get(name, 0) + value  # type: ignore[operator]
                elif isinstance(value, list) and name != "labels":
                    total = into[name]
                    assert isinstance(total, list)
                    into[name] = [a + b for a, b in zip(total, value, strict=False)]
    return [merged[key] for key in sorted(merged)]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[object]) -> str:
    return ",".join(f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=False))


def _number(value: object) -> str:
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _histogram(name: str, labels: str, values: Sequence[object], count: object) -> list[str]:
    lines = []
    running = 0
    for bound, bucket in zip(HISTOGRAM_BUCKETS, values, strict=False):
        running += int(bucket)  # type: ignore[call-overload]
        lines.append(f'{name}_bucket{{{labels},le="{_number(float(bound))}"}} {running}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {count}')
    lines.append(f"{name}_sum{{{labels}}} {_number(values[-1])}")
    lines.append(f"{name}_count{{{labels}}} {count}")
    return lines


def render_istio_metrics(series: Sequence[Mapping[str, object]]) -> str:
    """Prometheus text for merged series (``merge_snapshots``); empty families left out."""
    http = [s for s in series if s.get("kind") == "http"]
    tcp = [s for s in series if s.get("kind") == "tcp"]
    lines: list[str] = []
    if http:
        texts = [_label_text(LABEL_NAMES, s["labels"]) for s in http]  # type: ignore[arg-type]
        lines.append("# TYPE istio_requests_total counter")
        lines.extend(
            f"istio_requests_total{{{t}}} {s['count']}" for t, s in zip(texts, http, strict=True)
        )
        for family, field in (
            ("istio_request_duration_milliseconds", "duration"),
            ("istio_request_bytes", "request"),
            ("istio_response_bytes", "response"),
        ):
            lines.append(f"# TYPE {family} histogram")
            for text, entry in zip(texts, http, strict=True):
                lines.extend(_histogram(family, text, entry[field], entry["count"]))  # type: ignore[arg-type]
    if tcp:
        texts = [_label_text(TCP_LABEL_NAMES, s["labels"]) for s in tcp]  # type: ignore[arg-type]
        for family, field in (
            ("istio_tcp_connections_opened_total", "opened"),
            ("istio_tcp_connections_closed_total", "closed"),
            ("istio_tcp_received_bytes_total", "received"),
            ("istio_tcp_sent_bytes_total", "sent"),
        ):
            lines.append(f"# TYPE {family} counter")
            lines.extend(f"{family}{{{t}}} {s[field]}" for t, s in zip(texts, tcp, strict=True))
    return "".join(line + "\n" for line in lines)
