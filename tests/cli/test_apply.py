"""``apply``: kubectl's lines per object, and refusals that name file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import manifests
from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster

HTTPBIN = manifests.HTTPBIN
PEER_AUTHENTICATION = manifests.NAMESPACE_STRICT


def sidecar_tls(mode: str) -> str:
    """The scenario's Sidecar with its port 9080 TLS in ``mode``."""
    assert "      mode: MUTUAL\n" in manifests.SIDECAR
    return manifests.SIDECAR.replace("      mode: MUTUAL\n", f"      mode: {mode}\n")


def test_apply_prints_kubectl_lines(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("-n", "test", "apply", "-f", "-", stdin=HTTPBIN)
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        "serviceaccount/httpbin created\nservice/httpbin created\ndeployment.apps/httpbin created\n"
    )
    request = cluster.sent("apply")[0]
    assert request["namespace"] == "test"
    lines = HTTPBIN.splitlines()
    starts = [1] + [number + 1 for number, line in enumerate(lines, start=1) if line == "---"]
    assert request["sources"] == [{"file": "STDIN", "line": line} for line in starts]
    assert len(starts) == 3
    assert meshlet("-n", "test", "apply", "-f", "-", stdin=HTTPBIN).out.count("unchanged") == 3


def test_apply_istio_kinds(cluster: FakeCluster, meshlet: Run) -> None:
    sidecar = meshlet("-n", "test", "apply", "-f", "-", stdin=sidecar_tls("MUTUAL"))
    assert sidecar.out == "sidecar.networking.istio.io/ingress-sidecar created\n"
    pa = meshlet("-n", "test", "apply", "-f", "-", stdin=PEER_AUTHENTICATION)
    assert pa.out == "peerauthentication.security.istio.io/default created\n"
    changed = meshlet("-n", "test", "apply", "-f", "-", stdin=sidecar_tls("SIMPLE"))
    assert changed.out == "sidecar.networking.istio.io/ingress-sidecar configured\n"


def test_invalid_sidecar_refuses_everything(cluster: FakeCluster, meshlet: Run) -> None:
    text = PEER_AUTHENTICATION + "---\n" + sidecar_tls("ISTIO_MUTUAL")
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
    line = manifests.line_of(HTTPBIN, "  replicas: 1")
    assert result.err == (
        f'error: {bad}:{line} Deployment httpbin: invalid type for "spec.replicas": '
        "expected integer, got string\n"
    )
    assert cluster.calls == []


def test_missing_file(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("apply", "-f", "nowhere.yaml")
    assert (result.code, result.err) == (1, 'error: the path "nowhere.yaml" does not exist\n')


def test_namespace_mismatch(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("-n", "other", "apply", "-f", "-", stdin=sidecar_tls("MUTUAL"))
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
