"""``wait``, ``rollout restart``, ``describe``, and the cluster not running."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshlet.cli import wait as wait_verb
from meshlet.cli.describers import smart_label
from meshlet.cli.main import main
from meshlet.cli.rollout import RESTARTED_AT
from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster
from tests.cli.scenario_objects import pod, scenario_objects

SLEEP = "sleep-557747455f-brzf6"


@pytest.fixture
def scenario(cluster: FakeCluster) -> FakeCluster:
    for obj in scenario_objects():
        cluster.put(obj)
    return cluster


def test_wait_condition_met(scenario: FakeCluster, meshlet: Run) -> None:
    result = meshlet("-n", "test", "wait", "--for=condition=Ready", f"pod/{SLEEP}", "--timeout=5s")
    assert (result.code, result.out) == (0, f"pod/{SLEEP} condition met\n")
    by_label = meshlet("-n", "test", "wait", "--for=condition=ready", "pods", "-l", "app=sleep")
    assert by_label.out == f"pod/{SLEEP} condition met\n"


def test_wait_times_out(
    cluster: FakeCluster, meshlet: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wait_verb, "POLL_SECONDS", 0.01)
    cluster.put(
        pod("stuck-1-abcde", "default", "2022-10-24T09:00:00Z", waiting=("ErrImagePull", "x"))
    )
    result = meshlet("wait", "--for=condition=Ready", "pod/stuck-1-abcde", "--timeout=50ms")
    assert (result.code, result.err) == (
        1,
        "error: timed out waiting for the condition on pods/stuck-1-abcde\n",
    )
    none = meshlet("wait", "--for=condition=Ready", "pods", "-l", "app=nothing")
    assert none.err == "error: no matching resources found\n"


def test_parse_duration() -> None:
    assert wait_verb.parse_duration("60s") == 60
    assert wait_verb.parse_duration("1m30s") == 90
    assert wait_verb.parse_duration("500ms") == 0.5
    with pytest.raises(Exception, match="invalid duration"):
        wait_verb.parse_duration("soon")


def test_rollout_restart(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "httpbin", "namespace": "test", "uid": "u-1"},
            "spec": {"template": {"metadata": {"labels": {"app": "httpbin"}}}},
            "status": {"replicas": 1},
        }
    )
    result = meshlet("-n", "test", "rollout", "restart", "deployment/httpbin")
    assert (result.code, result.out) == (0, "deployment.apps/httpbin restarted\n")
    sent = cluster.sent("apply")[0]["objects"][0]
    assert sent["spec"]["template"]["metadata"]["annotations"] == {
        RESTARTED_AT: "2022-10-24T09:14:00Z"
    }
    assert "status" not in sent and "uid" not in sent["metadata"]
    missing = meshlet("-n", "test", "rollout", "restart", "deployment/nope")
    assert missing.err == 'Error from server (NotFound): deployments.apps "nope" not found\n'


def test_describe_pod_layout(scenario: FakeCluster, meshlet: Run) -> None:
    out = meshlet("-n", "test", "describe", "pod", SLEEP).out
    lines = out.splitlines()
    assert lines[:4] == [
        f"Name:             {SLEEP}",
        "Namespace:        test",
        "Service Account:  sleep",
        "Node:             meshlet/10.244.0.1",
    ]
    assert "Labels:           app=sleep" in lines
    assert "                  pod-template-hash=557747455f" in lines
    assert "Controlled By:  ReplicaSet/sleep-557747455f" in lines
    assert "  sleep:" in lines and "  istio-proxy:" in lines
    assert "    State:          Running" in lines
    assert "    Command:" in lines and "      /bin/sleep" in lines
    assert "  ContainersReady   True " in lines
    qos = next(line for line in lines if line.startswith("QoS Class:"))
    assert qos.index("BestEffort") == lines[-1].index("<none>")
    assert lines[-1].startswith("Events:   ") and lines[-1].endswith(" <none>")


def test_describe_shows_image_error(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(
        pod(
            "web-1-abcde",
            "default",
            "2022-10-24T09:00:00Z",
            image="example.com/unknown:1",
            waiting=("ErrImagePull", 'image "example.com/unknown:1" is not in the image catalog'),
        )
    )
    lines = meshlet("describe", "pod/web-1-abcde").out.splitlines()
    assert "    State:          Waiting" in lines
    assert "      Reason:       ErrImagePull" in lines
    assert any("not in the image catalog" in line for line in lines)
    table = meshlet("get", "pods").out.splitlines()
    assert table[1].split()[:3] == ["web-1-abcde", "0/1", "ErrImagePull"]


def test_describe_service_endpoints(scenario: FakeCluster, meshlet: Run) -> None:
    lines = meshlet("-n", "test", "describe", "svc", "httpbin").out.splitlines()
    assert "Selector:          app=httpbin" in lines
    assert "Port:              https  8443/TCP" in lines
    assert "TargetPort:        9080/TCP" in lines
    assert "Endpoints:         10.244.0.7:9080" in lines
    assert "IP:                10.100.78.113" in lines


def test_describe_secret_and_sidecar(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "test"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "QUJD", "tls.key": "QUJDRA=="},
        }
    )
    assert meshlet("-n", "test", "describe", "secret", "s").out == (
        "Name:         s\nNamespace:    test\nLabels:       <none>\nAnnotations:  <none>\n\n"
        "Type:  kubernetes.io/tls\n\nData\n====\ntls.crt:  3 bytes\ntls.key:  4 bytes\n"
    )
    cluster.put(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "ingress-sidecar", "namespace": "test"},
            "spec": {
                "workloadSelector": {"labels": {"app": "httpbin"}},
                "ingress": [{"port": {"number": 9080}}],
            },
        }
    )
    lines = meshlet("-n", "test", "describe", "sidecars", "ingress-sidecar").out.splitlines()
    assert "API Version:  networking.istio.io/v1" in lines
    assert "  Workload Selector:" in lines
    assert "      Number:  9080" in lines


def test_smart_label() -> None:
    assert smart_label("apiVersion") == "API Version"
    assert smart_label("workloadSelector") == "Workload Selector"
    assert smart_label("uid") == "UID"
    assert smart_label("9080") == "9080"
    assert smart_label("portLevelMtls") == "Port Level Mtls"


def test_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real client, with no daemon under MESHLET_HOME: one line, exit 3."""
    monkeypatch.setenv("MESHLET_HOME", str(tmp_path))
    for argv in (["get", "pods"], ["create", "ns", "test"], ["label", "ns", "test", "a=b"]):
        assert main(argv) == 3
        captured = capsys.readouterr()
        assert captured.err == 'meshlet is not running: run "meshlet install" first\n'
        assert captured.out == ""
