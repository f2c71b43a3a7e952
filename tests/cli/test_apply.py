"""``apply``: kubectl's lines per object, and refusals that name file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster

HTTPBIN = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: httpbin
---
apiVersion: v1
kind: Service
metadata:
  name: httpbin
  labels:
    app: httpbin
spec:
  ports:
  - port: 8443
    name: https
    targetPort: 9080
  selector:
    app: httpbin
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpbin
spec:
  replicas: 1
  selector:
    matchLabels:
      app: httpbin
  template:
    metadata:
      labels:
        app: httpbin
    spec:
      serviceAccountName: httpbin
      containers:
      - image: docker.io/kennethreitz/httpbin
        name: httpbin
        ports:
        - containerPort: 80
"""

SIDECAR = """\
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
  workloadSelector:
    labels:
      app: httpbin
  ingress:
  - port:
      number: 9080
      protocol: HTTPS
      name: external
    defaultEndpoint: 0.0.0.0:80
    tls:
      mode: {mode}
      privateKey: "/etc/istio/tls-certs/tls.key"
      serverCertificate: "/etc/istio/tls-certs/tls.crt"
      caCertificates: "/etc/istio/tls-ca-certs/ca.crt"
"""

PEER_AUTHENTICATION = """\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
"""


def test_apply_prints_kubectl_lines(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("-n", "test", "apply", "-f", "-", stdin=HTTPBIN)
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        "serviceaccount/httpbin created\nservice/httpbin created\ndeployment.apps/httpbin created\n"
    )
    request = cluster.sent("apply")[0]
    assert request["namespace"] == "test"
    assert request["sources"] == [
        {"file": "STDIN", "line": 1},
        {"file": "STDIN", "line": 6},
        {"file": "STDIN", "line": 20},
    ]
    assert meshlet("-n", "test", "apply", "-f", "-", stdin=HTTPBIN).out.count("unchanged") == 3


def test_apply_istio_kinds(cluster: FakeCluster, meshlet: Run) -> None:
    sidecar = meshlet("-n", "test", "apply", "-f", "-", stdin=SIDECAR.format(mode="MUTUAL"))
    assert sidecar.out == "sidecar.networking.istio.io/ingress-sidecar created\n"
    pa = meshlet("-n", "test", "apply", "-f", "-", stdin=PEER_AUTHENTICATION)
    assert pa.out == "peerauthentication.security.istio.io/default created\n"
    changed = meshlet("-n", "test", "apply", "-f", "-", stdin=SIDECAR.format(mode="SIMPLE"))
    assert changed.out == "sidecar.networking.istio.io/ingress-sidecar configured\n"


def test_invalid_sidecar_refuses_everything(cluster: FakeCluster, meshlet: Run) -> None:
    text = PEER_AUTHENTICATION + "---\n" + SIDECAR.format(mode="ISTIO_MUTUAL")
    result = meshlet("-n", "test", "apply", "-f", "-", stdin=text)
    assert result.code == 1
    assert result.out == ""
    lines = result.err.splitlines()
    assert lines
    for line in lines:
        assert line.startswith("error: -:"), line
        assert "Sidecar test/ingress-sidecar" in line
    assert cluster.calls == []


def test_load_error_names_file_and_line(cluster: FakeCluster, meshlet: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HTTPBIN.replace("  replicas: 1", "  replicas: one"))
    result = meshlet("apply", "-f", str(bad))
    assert result.code == 1
    assert result.err == (
        f'error: {bad}:25 Deployment httpbin: invalid type for "spec.replicas": '
        "expected integer, got string\n"
    )
    assert cluster.calls == []


def test_missing_file(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("apply", "-f", "nowhere.yaml")
    assert (result.code, result.err) == (1, 'error: the path "nowhere.yaml" does not exist\n')


def test_namespace_mismatch(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("-n", "other", "apply", "-f", "-", stdin=SIDECAR.format(mode="MUTUAL"))
    assert result.code == 1
    assert result.err.startswith(
        'error: the namespace from the provided object "test" does not match'
    )


def test_dry_run_suffixes(cluster: FakeCluster, meshlet: Run) -> None:
    client = meshlet("apply", "-f", "-", "--dry-run=client", stdin=PEER_AUTHENTICATION)
    assert client.out == "peerauthentication.security.istio.io/default created (dry run)\n"
    server = meshlet("apply", "-f", "-", "--dry-run=server", stdin=PEER_AUTHENTICATION)
    assert server.out == "peerauthentication.security.istio.io/default created (server dry run)\n"
    assert cluster.objects == {}


def test_samples_found_from_any_directory(
    cluster: FakeCluster, meshlet: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert not os.path.exists("samples")
    result = meshlet("apply", "-f", "samples/sleep/sleep.yaml")
    assert result.out == (
        "serviceaccount/sleep created\nservice/sleep created\ndeployment.apps/sleep created\n"
    )
    httpbin = meshlet("-n", "test", "apply", "-f", "samples/httpbin/httpbin.yaml")
    assert httpbin.out.endswith("deployment.apps/httpbin created\n")
    deployment = cluster.objects[("apps/Deployment", "test", "httpbin")]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "docker.io/kennethreitz/httpbin"
