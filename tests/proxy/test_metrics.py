"""Istio's standard metrics: counted per request, summed over workers, rendered as Istio's."""

from __future__ import annotations

import ast
import importlib.util
import json

import pytest

from meshlet.proxy.access_log import AccessLogBuffer
from meshlet.proxy.admin import render_prometheus
from meshlet.proxy.metrics import (
    HISTOGRAM_BUCKETS,
    LABEL_NAMES,
    ConnectionLabels,
    MetricsRegistry,
    Reporter,
    Workload,
    destination_service,
    merge_snapshots,
    render_istio_metrics,
)
from tests.proxy.hcm_support import OK_RESPONSE, ScriptedUpstream, canned, exchange, manager_for

HTTPBIN = Workload(
    name="httpbin",
    namespace="test",
    app="httpbin",
    version="v1",
    canonical_service="httpbin",
    canonical_revision="v1",
    cluster="Kubernetes",
)
MUTUAL = ConnectionLabels(
    reporter=Reporter.DESTINATION,
    local=HTTPBIN,
    local_principal="spiffe://cluster.local/ns/test/sa/httpbin",
    mutual_tls=True,
)


def _labels(line: str) -> dict[str, str]:
    inside = line[line.index("{") + 1 : line.rindex("}")]
    out = {}
    for part in inside.split('",'):
        name, _, value = part.partition('="')
        out[name] = value.rstrip('"')
    return out


def test_workload_from_node_id_and_metadata() -> None:
    node = "sidecar~10.244.0.7~httpbin-5d9f8c7b6d-x2x7k.test~test.svc.cluster.local"
    assert Workload.from_node(node, {}) == Workload(
        name="httpbin",
        namespace="test",
        canonical_service="httpbin",
        canonical_revision="latest",
    )
    labels = json.dumps({"app": "httpbin", "version": "v1"})
    workload = Workload.from_node(
        node, {"WORKLOAD_NAME": "httpbin", "LABELS": labels, "CLUSTER_ID": "Kubernetes"}
    )
    assert workload == HTTPBIN


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        (
            "httpbin.test.svc.cluster.local:9080",
            ("httpbin.test.svc.cluster.local", "httpbin", "test"),
        ),
        ("httpbin.test", ("httpbin.test", "httpbin", "test")),
        ("httpbin", ("httpbin", "httpbin", "default")),
        ("10.0.0.1:80", ("10.0.0.1", "10.0.0.1", "unknown")),
        ("", ("unknown", "unknown", "unknown")),
    ],
)
def test_destination_service_from_the_authority(
    authority: str, expected: tuple[str, str, str]
) -> None:
    assert destination_service(authority, "default") == expected


def test_one_request_renders_as_istio_names_it() -> None:
    registry = MetricsRegistry()
    metrics = registry.connection(MUTUAL)
    metrics.record_request("httpbin.test.svc.cluster.local:9080", "http", 200, "-", 3, 120, 400)
    text = render_istio_metrics(merge_snapshots([registry.snapshot()]))
    lines = text.splitlines()
    total = next(line for line in lines if line.startswith("istio_requests_total{"))
    assert total.endswith("} 1")
    labels = _labels(total)
    assert list(labels) == list(LABEL_NAMES)
    assert labels == {
        "reporter": "destination",
        "source_workload": "unknown",
        "source_canonical_service": "unknown",
        "source_canonical_revision": "unknown",
        "source_workload_namespace": "unknown",
        "source_principal": "unknown",
        "source_app": "unknown",
        "source_version": "unknown",
        "source_cluster": "unknown",
        "destination_workload": "httpbin",
        "destination_workload_namespace": "test",
        "destination_principal": "spiffe://cluster.local/ns/test/sa/httpbin",
        "destination_app": "httpbin",
        "destination_version": "v1",
        "destination_service": "httpbin.test.svc.cluster.local",
        "destination_canonical_service": "httpbin",
        "destination_canonical_revision": "v1",
        "destination_service_name": "httpbin",
        "destination_service_namespace": "test",
        "destination_cluster": "Kubernetes",
        "request_protocol": "http",
        "response_code": "200",
        "grpc_response_status": "",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
    }
    assert "# TYPE istio_requests_total counter" in lines
    for family in (
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ):
        assert f"# TYPE {family} histogram" in lines
        buckets = [line for line in lines if line.startswith(f"{family}_bucket")]
        assert len(buckets) == len(HISTOGRAM_BUCKETS) + 1
        assert [_labels(b)["le"] for b in buckets][:3] == ["0.5", "1", "5"]
        assert _labels(buckets[-1])["le"] == "+Inf"
    duration = [line for line in lines if line.startswith("istio_request_duration_milliseconds")]
    # 3 ms: not in the 0.5 and 1 buckets, in every bucket from 5 up (cumulative)
    assert [line.rsplit(" ", 1)[1] for line in duration[:4]] == ["0", "0", "1", "1"]
    assert duration[-2].startswith("istio_request_duration_milliseconds_sum{")
    assert duration[-2].endswith(" 3")
    assert duration[-1].endswith(" 1")
    request_sum = next(line for line in lines if line.startswith("istio_request_bytes_sum"))
    assert request_sum.endswith(" 120")


def test_workers_are_summed_series_by_series() -> None:
    first, second = MetricsRegistry(), MetricsRegistry()
    for registry, codes in ((first, [200, 200, 503]), (second, [200])):
        metrics = registry.connection(MUTUAL)
        for code in codes:
            flags = "UF" if code == 503 else "-"
            metrics.record_request("httpbin:9080", "http", code, flags, 1, 10, 10)
    merged = merge_snapshots([first.snapshot(), second.snapshot()])
    totals = {
        (entry["labels"][21], entry["labels"][23]): entry["count"]  # type: ignore[index]
        for entry in merged
    }
    assert totals == {("200", "-"): 3, ("503", "UF"): 1}
    text = render_istio_metrics(merged)
    assert text == render_istio_metrics(merge_snapshots([second.snapshot(), first.snapshot()]))


def test_tcp_connections_are_counted_with_their_bytes() -> None:
    registry = MetricsRegistry()
    metrics = registry.connection(ConnectionLabels(reporter=Reporter.DESTINATION, local=HTTPBIN))
    metrics.tcp_opened()
    metrics.tcp_closed(sent=1000, received=20)
    metrics.tcp_opened()
    text = render_istio_metrics(merge_snapshots([registry.snapshot()]))
    values = {
        line.split("{", 1)[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if not line.startswith("#")
    }
    assert values == {
        "istio_tcp_connections_opened_total": "2",
        "istio_tcp_connections_closed_total": "1",
        "istio_tcp_received_bytes_total": "20",
        "istio_tcp_sent_bytes_total": "1000",
    }
    line = next(line for line in text.splitlines() if line.startswith("istio_tcp_sent"))
    labels = _labels(line)
    assert labels["request_protocol"] == "tcp"
    assert labels["connection_security_policy"] == "none"
    assert "response_code" not in labels


def test_a_client_cannot_grow_the_label_space_without_bound() -> None:
    registry = MetricsRegistry()
    metrics = registry.connection(MUTUAL)
    for index in range(5000):
        metrics.record_request(f"host-{index}", "http", 200, "-", 1, 1, 1)
    snapshot = registry.snapshot()
    assert len(snapshot) <= 1001
    assert sum(int(entry["count"]) for entry in snapshot) == 5000  # type: ignore[call-overload]


def test_prometheus_port_shows_istio_metrics_before_envoy_counters() -> None:
    registry = MetricsRegistry()
    registry.connection(MUTUAL).record_request("httpbin", "http", 200, "-", 1, 1, 1)
    body = render_istio_metrics(merge_snapshots([registry.snapshot()])).encode()
    body += render_prometheus({"server.live": 1})
    text = body.decode()
    assert text.index("istio_requests_total") < text.index("envoy_server_live")


async def test_the_connection_manager_counts_each_request_once() -> None:
    registry = MetricsRegistry()
    lines: list[bytes] = []
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager = manager_for(upstream)
    manager.metrics = registry.connection(MUTUAL)
    manager.access_log = AccessLogBuffer(lines.append)
    request = b"GET /status/200 HTTP/1.1\r\nHost: httpbin.test.svc.cluster.local\r\n\r\n"
    await exchange(
        manager, request * 2 + b"GET /x HTTP/1.1\r\nHost: nowhere\r\nContent-Length: 0\r\n\r\n"
    )
    counts = {
        (entry["labels"][14], entry["labels"][21]): entry["count"]  # type: ignore[index]
        for entry in registry.snapshot()
    }
    assert counts == {("httpbin.test.svc.cluster.local", "200"): 2, ("nowhere", "200"): 1}
    manager.access_log.flush()
    assert b"".join(lines).count(b"\n") == 3


def _imports(module: str) -> set[str]:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "module", ["meshlet.proxy.metrics", "meshlet.proxy.access_log", "meshlet.proxy.limits"]
)
def test_telemetry_and_limits_modules_are_pure(module: str) -> None:
    impure = {"asyncio", "socket", "ssl", "os", "io", "time", "datetime", "threading", "uuid"}
    assert not _imports(module) & impure
