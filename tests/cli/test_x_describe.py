"""``x describe pod``: the scenario's pod on the local cluster (a fake with the same
API), its variants (flag off, STRICT on the TLS port), istioctl's line formats, and
the same verb against recorded Kubernetes API answers with ``--kubeconfig``."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshlet.istioctl.describe import describe_pod, typed_policies
from meshlet.resources.mesh import MeshSettings
from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster
from tests.cli.scenario_objects import scenario_objects
from tests.kube.fake_apiserver import Answer, FakeApiServer, write_kubeconfig

POD = "httpbin-5bbdbd6588-z9vbs"
FLAG = "values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true"

SIDECAR: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "Sidecar",
    "metadata": {"name": "ingress-sidecar", "namespace": "test"},
    "spec": {
        "workloadSelector": {"labels": {"app": "httpbin", "version": "v1"}},
        "ingress": [
            {
                "port": {"number": 9080, "protocol": "HTTPS", "name": "external"},
                "defaultEndpoint": "0.0.0.0:80",
                "tls": {
                    "mode": "MUTUAL",
                    "privateKey": "/etc/istio/tls-certs/tls.key",
                    "serverCertificate": "/etc/istio/tls-certs/tls.crt",
                    "caCertificates": "/etc/istio/tls-ca-certs/ca.crt",
                },
            },
            {
                "port": {"number": 9081, "protocol": "HTTP", "name": "internal"},
                "defaultEndpoint": "0.0.0.0:80",
            },
        ],
    },
}


def _pa(name: str, spec: dict[str, Any], created: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": "test", "creationTimestamp": created},
        "spec": spec,
    }


DEFAULT_PA = _pa("default", {"mtls": {"mode": "STRICT"}}, "2022-10-24T09:00:00Z")
PORT_PA = _pa(
    "disable-peer-auth-for-external-mtls-port",
    {
        "selector": {"matchLabels": {"app": "httpbin"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {"9080": {"mode": "DISABLE"}},
    },
    "2022-10-24T09:00:01Z",
)


def _httpbin_pod() -> dict[str, Any]:
    pod = next(o for o in scenario_objects() if o["metadata"]["name"] == POD)
    pod["metadata"]["labels"]["version"] = "v1"
    pod["metadata"]["annotations"] = {
        "sidecar.istio.io/status": json.dumps({"revision": "default"}),
    }
    proxy = pod["spec"]["containers"][1]
    proxy["ports"] = [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}]
    return pod


@pytest.fixture
def scenario(cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    for obj in scenario_objects():
        if obj["metadata"]["name"] != POD:
            cluster.put(obj)
    for obj in (_httpbin_pod(), SIDECAR, DEFAULT_PA, PORT_PA):
        cluster.put(obj)
    (tmp_path / "settings.json").write_text(json.dumps({"set": ["profile=default", FLAG]}))
    monkeypatch.setenv("MESHLET_HOME", str(tmp_path))
    return cluster


SCENARIO_OUTPUT = """\
Pod: httpbin-5bbdbd6588-z9vbs
   Pod Revision: default
   Pod Ports: 80 (httpbin), 15090 (istio-proxy)
--------------------
Service: httpbin
   Port: https 8443/HTTPS targets pod port 9080
   Port: http 8080/HTTP targets pod port 9081
8443:
8080:
--------------------
Effective PeerAuthentication:
   Workload mTLS mode: STRICT
   Port Level mTLS mode:
      9080: DISABLE
Applied PeerAuthentication:
   default.test, disable-peer-auth-for-external-mtls-port.test
--------------------
Sidecar: ingress-sidecar
Inbound ports:
   9080 (external, HTTPS) -> 0.0.0.0:80: mTLS DISABLE, TLS MUTUAL terminated by the sidecar
   9081 (internal, HTTP) -> 0.0.0.0:80: mTLS STRICT
Skipping Gateway information (no ingress gateway pods)
"""


def test_the_scenarios_httpbin_pod(scenario: FakeCluster, meshlet: Run) -> None:
    result = meshlet("x", "describe", "pod", POD, "-n", "test")
    assert result.code == 0, result.err
    assert result.out == SCENARIO_OUTPUT


def test_names_outside_the_command_namespace_carry_theirs(
    scenario: FakeCluster, meshlet: Run
) -> None:
    result = meshlet("experimental", "des", "po", f"{POD}.test")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == f"Pod: {POD}.test"
    assert "Service: httpbin.test" in result.out
    assert "Sidecar: ingress-sidecar.test" in result.out


def test_without_the_flag_the_tls_block_is_not_applied(
    scenario: FakeCluster, meshlet: Run, tmp_path: Path
) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({"set": ["profile=default"]}))
    out = meshlet("x", "describe", "pod", POD, "-n", "test").out
    assert (
        "   9080 (external, HTTPS) -> 0.0.0.0:80: mTLS DISABLE, "
        "TLS MUTUAL not applied (ENABLE_TLS_ON_SIDECAR_INGRESS is off)\n"
    ) in out


def test_strict_on_the_tls_port_keeps_mesh_mtls(scenario: FakeCluster, meshlet: Run) -> None:
    scenario.delete(
        "security.istio.io/PeerAuthentication",
        namespace="test",
        names=["disable-peer-auth-for-external-mtls-port"],
    )
    out = meshlet("x", "describe", "pod", POD, "-n", "test").out
    assert "   Port Level mTLS mode:" not in out
    assert "Applied PeerAuthentication:\n   default.test\n" in out
    assert (
        "   9080 (external, HTTPS) -> 0.0.0.0:80: mTLS STRICT, "
        "TLS MUTUAL not applied (the port's mTLS mode is STRICT, not DISABLE)\n"
    ) in out


def test_without_a_sidecar_the_service_target_ports_are_inbound(
    scenario: FakeCluster, meshlet: Run
) -> None:
    scenario.delete("networking.istio.io/Sidecar", namespace="test", names=["ingress-sidecar"])
    out = meshlet("x", "describe", "pod", POD, "-n", "test").out
    assert out.endswith(
        "No Sidecar applies to this pod\n"
        "Inbound ports:\n"
        "   9080: mTLS DISABLE\n"
        "   9081: mTLS STRICT\n"
        "Skipping Gateway information (no ingress gateway pods)\n"
    )


def test_a_pod_without_a_sidecar_is_warned_about(scenario: FakeCluster, meshlet: Run) -> None:
    out = meshlet("x", "describe", "pod", "sleep-557747455f-xx88g").out
    assert out.startswith(
        "Pod: sleep-557747455f-xx88g\n"
        "   Pod Revision: \n"
        "   Pod does not expose ports\n"
        "WARNING: sleep-557747455f-xx88g is not part of mesh; no Istio sidecar\n"
        "Warning: No Kubernetes Services select pod sleep-557747455f-xx88g "
        "(see https://istio.io/docs/setup/kubernetes/additional-setup/requirements/ )\n"
    )


def test_a_missing_pod_is_kubectls_not_found(scenario: FakeCluster, meshlet: Run) -> None:
    result = meshlet("x", "describe", "pod", "nope", "-n", "test")
    assert result.code == 4
    assert result.err.strip() == 'Error from server (NotFound): pods "nope" not found'


# istioctl's format strings (istioctl/pkg/describe), as patterns for every line it owns.
ISTIOCTL_LINES = [
    r"Pod: [a-z0-9.-]+",
    r"   Pod Revision: .*",
    r"   Pod Ports: \d+(/[A-Z]+)? \([a-z-]+\)(, \d+(/[A-Z]+)? \([a-z-]+\))*",
    r"--------------------",
    r"Service: [a-z0-9.-]+",
    r"   Port: [a-z0-9-]* \d+/[A-Za-z0-9-]+ targets pod port \d+",
    r"\d+:",
    r"Effective PeerAuthentication:",
    r"   Workload mTLS mode: (STRICT|PERMISSIVE|DISABLE)",
    r"   Port Level mTLS mode:",
    r"      \d+: (STRICT|PERMISSIVE|DISABLE)",
    r"Applied PeerAuthentication:",
    r"   [a-z0-9.-]+(, [a-z0-9.-]+)*",
    r"Skipping Gateway information \(no ingress gateway pods\)",
]


def test_istioctls_sections_keep_istioctls_line_formats() -> None:
    istio_part, meshlet_part = SCENARIO_OUTPUT.split("--------------------\nSidecar:")
    for line in istio_part.splitlines():
        assert any(re.fullmatch(p, line) for p in ISTIOCTL_LINES), line
    assert re.fullmatch(ISTIOCTL_LINES[-1], meshlet_part.splitlines()[-1])
    # The order of istioctl's sections.
    heads = [h for h in ("Pod: ", "Service: ", "Effective PeerAuthentication:") if h in istio_part]
    assert [istio_part.index(h) for h in heads] == sorted(istio_part.index(h) for h in heads)


def test_the_pure_printer_is_deterministic() -> None:
    sidecars, policies = typed_policies([SIDECAR, PORT_PA, DEFAULT_PA])
    services = [o for o in scenario_objects() if o["kind"] == "Service"]
    mesh = MeshSettings().with_set_flags([FLAG])
    args: dict[str, Any] = {
        "services": services,
        "sidecars": sidecars,
        "mesh": mesh,
        "namespace": "test",
    }
    first = describe_pod(_httpbin_pod(), peer_authentications=policies, **args)
    again = describe_pod(_httpbin_pod(), peer_authentications=policies[::-1], **args)
    assert first == again == SCENARIO_OUTPUT


# --- with --kubeconfig, from a real API server's recorded answers --------------------------


def _compact(path: Path) -> bytes:
    return json.dumps(json.loads(path.read_bytes()), separators=(",", ":")).encode()


@pytest.fixture
def apiserver(api_schemas: Path, tmp_path: Path) -> Iterator[tuple[FakeApiServer, Path]]:
    recorded = api_schemas / "kubernetes-api"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = FakeApiServer()
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
    pods = json.loads(recorded.joinpath("list-pods-test.json").read_bytes())
    pod = next(p for p in pods["items"] if p["metadata"]["name"] == "httpbin")
    server.add("GET", "/api/v1/namespaces/test/pods/httpbin", Answer(body=json.dumps(pod).encode()))
    server.add(
        "GET",
        "/api/v1/namespaces/test/services",
        Answer(body=_compact(recorded / "list-services-test.json")),
    )
    server.add(
        "GET",
        "/apis/networking.istio.io/v1alpha3/namespaces/test/sidecars",
        Answer(body=_compact(recorded / "list-sidecars-test.json")),
    )
    server.add(
        "GET",
        "/apis/security.istio.io/v1/namespaces/test/peerauthentications",
        Answer(body=_compact(recorded / "list-peerauthentications-test.json")),
    )
    empty = b'{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"248"},"items":[]}'
    for path in (
        "/apis/networking.istio.io/v1alpha3/namespaces/istio-system/sidecars",
        "/apis/security.istio.io/v1/namespaces/istio-system/peerauthentications",
        "/api/v1/pods",
    ):
        server.add("GET", path, Answer(body=empty))
    deployment = {
        "spec": {"template": {"spec": {"containers": [{"args": ["--in-cluster", "--set", FLAG]}]}}}
    }
    server.add(
        "GET",
        "/apis/apps/v1/namespaces/istio-system/deployments/istiod",
        Answer(body=json.dumps(deployment).encode()),
    )
    try:
        yield server, write_kubeconfig(tmp_path / "kubeconfig", url)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_with_kubeconfig_from_recorded_answers(apiserver, meshlet: Run) -> None:  # type: ignore[no-untyped-def]
    server, kubeconfig = apiserver
    result = meshlet(
        "x", "describe", "pod", "httpbin", "-n", "test", "--kubeconfig", str(kubeconfig)
    )
    assert result.code == 0, result.err
    # The recorded pod was never scheduled and the recording's webhook did not inject it.
    assert result.out == (
        "Pod: httpbin\n"
        "   Pod Revision: \n"
        "   Pod Ports: 80 (httpbin)\n"
        "   Pod is not Running (Pending)\n"
        "--------------------\n"
        "Service: httpbin\n"
        "   Port: https 8443/HTTPS targets pod port 9080\n"
        "   Port: http 8080/HTTP targets pod port 9081\n"
        "8443:\n"
        "8080:\n"
        "--------------------\n"
        "Effective PeerAuthentication:\n"
        "   Workload mTLS mode: STRICT\n"
        "   Port Level mTLS mode:\n"
        "      9080: DISABLE\n"
        "Applied PeerAuthentication:\n"
        "   default.test, disable-peer-auth-for-external-mtls-port.test\n"
        "--------------------\n"
        "Sidecar: ingress-sidecar\n"
        "Inbound ports:\n"
        "   9080 (external, HTTPS) -> 0.0.0.0:80: mTLS DISABLE, TLS MUTUAL terminated by the sidecar\n"
        "   9081 (internal, HTTP) -> 0.0.0.0:80: mTLS STRICT\n"
        "Skipping Gateway information (no ingress gateway pods)\n"
    )
    (gateways,) = server.seen("GET", "/api/v1/pods")
    assert gateways.query["labelSelector"] == "istio=ingressgateway"
    assert all(r.headers.get("Authorization") == "Bearer test-token" for r in server.requests)
