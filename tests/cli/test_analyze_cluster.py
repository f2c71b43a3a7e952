"""``meshlet analyze`` against a running cluster: with no ``-f`` it reads the cluster's
objects and mesh settings; with ``-f`` the files are merged over them (the files
winning); ``-n``/``-A`` choose which namespaces are reported."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlet.cli import analyze as analyze_verb
from meshlet.cli.main import main
from meshlet.cluster.client import NOT_RUNNING
from meshlet.cluster.protocol import ApiError
from meshlet.errors import ExitCode
from tests.analyzers import fixtures as f

FLAG = "values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS"


class FakeCluster:
    """The ``get`` of the API client over a list of stored objects."""

    def __init__(self, text: str | None) -> None:
        self.objects: list[dict[str, Any]] | None = None
        if text is not None:
            self.objects = [body for body in yaml.safe_load_all(text) if body]
            for body in self.objects:
                if body["kind"] != "Namespace":
                    body["metadata"].setdefault("namespace", "test")
        self.calls = 0

    def get(
        self,
        kind: str,
        *,
        namespace: str | None,
        names: Sequence[str] = (),
        selector: str | None = None,
    ) -> list[dict[str, Any]]:
        self.calls += 1
        if self.objects is None:
            raise ApiError("Unavailable", NOT_RUNNING, exit_code=ExitCode.UNAVAILABLE)
        group, _, name = kind.partition("/")
        found = []
        for body in self.objects:
            api_group = body["apiVersion"].rpartition("/")[0]
            if body["kind"] == name and api_group == group:
                found.append(json.loads(json.dumps(body)))
        return found


UNLABELLED_DEFAULT = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n"
CLUSTER = f.join(f.NAMESPACE, UNLABELLED_DEFAULT, f.SCENARIO, f.SECRETS)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHLET_HOME", str(tmp_path))
    (tmp_path / "settings.json").write_text(json.dumps({"set": [f"{FLAG}=true"]}))
    return tmp_path


def _use(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster) -> FakeCluster:
    monkeypatch.setattr(analyze_verb, "open_client", lambda: cluster)
    return cluster


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["analyze", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_the_running_scenario_has_no_issue_in_its_namespace(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, FakeCluster(CLUSTER))
    code, out, err = _run(capsys, "-n", "test")
    assert (code, err) == (0, "")
    assert out == ["\u2714 No validation issues found when analyzing namespace: test."]


def test_the_mesh_settings_come_from_the_cluster(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, FakeCluster(CLUSTER))
    (home / "settings.json").write_text(json.dumps({"set": []}))
    code, out, _ = _run(capsys, "-n", "test")
    assert code == 0
    assert [line.split(" ", 2)[1] for line in out] == ["[MSH0001]"]
    assert out[0].startswith("Warning [MSH0001] (Sidecar test/ingress-sidecar) ")
    assert "ENABLE_TLS_ON_SIDECAR_INGRESS is off" in out[0]


def test_set_changes_the_clusters_settings_for_this_analysis(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, FakeCluster(CLUSTER))
    code, out, _ = _run(capsys, "-n", "test", "--set", f"{FLAG}=false")
    assert code == 0
    assert any("ENABLE_TLS_ON_SIDECAR_INGRESS is off" in line for line in out)


def test_the_default_namespace_and_all_namespaces(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, FakeCluster(CLUSTER))
    not_injected = (
        "Info [IST0102] (Namespace default) The namespace is not enabled for Istio injection. "
        "Run 'kubectl label namespace default istio-injection=enabled' to enable it, or "
        "'kubectl label namespace default istio-injection=disabled' to explicitly mark it as "
        "not needing injection."
    )
    assert _run(
        capsys,
    )[:2] == (0, [not_injected])
    assert _run(capsys, "-A")[:2] == (0, [not_injected])


def test_a_missing_secret_in_the_cluster_is_an_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = f.SECRETS.replace("name: httpbin-mtls-termination-cacert", "name: other")
    _use(monkeypatch, FakeCluster(f.join(f.NAMESPACE, f.SCENARIO, secrets)))
    code, out, err = _run(capsys, "-n", "test")
    assert code == 1
    assert out[0].startswith("Error [MSH0004] (Deployment test/httpbin) The user volume")
    assert err == (
        "Error: Analyzers found issues when analyzing namespace: test.\n"
        "See https://istio.io/latest/docs/reference/config/analysis for more information "
        "about causes and resolutions.\n"
    )


def test_files_are_merged_over_the_cluster(
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use(monkeypatch, FakeCluster(CLUSTER))
    changed = f.PORT_DISABLE.replace("      mode: DISABLE", "      mode: STRICT")
    path = tmp_path / "pa.yaml"
    path.write_text(changed)
    code, out, _ = _run(capsys, "-n", "test", "-f", str(path))
    assert code == 0
    (line,) = out
    key_line = changed.splitlines().index("    9080:") + 1
    assert line.startswith("Warning [MSH0001] (Sidecar test/ingress-sidecar) ")
    assert (
        "set by the portLevelMtls 9080 of PeerAuthentication "
        f"test/disable-peer-auth-for-external-mtls-port ({path}:{key_line})"
    ) in line


def test_no_cluster_and_no_files(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, FakeCluster(None))
    code, out, err = _run(capsys)
    assert code == ExitCode.UNAVAILABLE
    assert out == []
    assert err == f"{NOT_RUNNING}\n"


def test_use_kube_false_reads_the_files_alone(
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = _use(monkeypatch, FakeCluster(CLUSTER))
    path = tmp_path / "sidecar.yaml"
    path.write_text(f.SIDECAR)
    code, out, _ = _run(capsys, "-n", "test", "--use-kube=false", "-f", str(path))
    assert cluster.calls == 0
    assert code == 0
    assert [line.split(" ", 2)[1] for line in out] == ["[IST0127]", "[MSH0001]"]


def test_use_kube_false_needs_files(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, FakeCluster(CLUSTER))
    code, _, err = _run(capsys, "--use-kube=false")
    assert code == ExitCode.USAGE
    assert "nothing to analyze" in err


class StoredCluster:
    """The daemon's own API over an in-memory store: objects as the cluster keeps them
    (defaults filled in, pods injected)."""

    def __init__(self) -> None:
        from meshlet.daemon.api import Api
        from meshlet.daemon.injection import InjectionSettings
        from meshlet.runtime.config import NodeConfig
        from meshlet.store import Store

        self.api = Api(
            Store(":memory:"), NodeConfig(), injection=InjectionSettings, on_write=lambda: None
        )

    def apply(self, text: str, namespace: str = "test") -> None:
        self.api.apply([body for body in yaml.safe_load_all(text) if body], namespace)

    def get(
        self,
        kind: str,
        *,
        namespace: str | None,
        names: Sequence[str] = (),
        selector: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.api.get(kind, namespace, names, selector)


RUNNING_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: httpbin-0
  labels:
    app: httpbin
    version: v1
  annotations:
    sidecar.istio.io/userVolume: '{"tls-secret":{"secret":{"secretName":"httpbin-mtls-termination","optional":true}},"tls-ca-secret":{"secret":{"secretName":"httpbin-mtls-termination-cacert"}}}'
    sidecar.istio.io/userVolumeMount: '{"tls-secret":{"mountPath":"/etc/istio/tls-certs/","readOnly":true},"tls-ca-secret":{"mountPath":"/etc/istio/tls-ca-certs/","readOnly":true}}'
spec:
  containers:
  - name: httpbin
    image: docker.io/kennethreitz/httpbin
    ports:
    - containerPort: 80
"""


def test_objects_as_the_daemon_stores_them(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = StoredCluster()
    cluster.apply(f.join(UNLABELLED_DEFAULT, f.NAMESPACE))
    cluster.apply(f.join(f.SCENARIO, f.SECRETS, RUNNING_POD))
    pod = cluster.get("/Pod", namespace="test", names=["httpbin-0"])[0]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["httpbin", "istio-proxy"]
    _use(monkeypatch, cluster)
    assert _run(capsys, "-n", "test")[:2] == (
        0,
        ["\u2714 No validation issues found when analyzing namespace: test."],
    )


def test_a_pod_created_before_injection_was_enabled(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = StoredCluster()
    cluster.apply(f.join(UNLABELLED_DEFAULT, f.NAMESPACE.replace("enabled", "disabled")))
    cluster.apply(f.join(f.SCENARIO, f.SECRETS, RUNNING_POD))
    cluster.apply(f.NAMESPACE)  # injection enabled after the pod was made
    _use(monkeypatch, cluster)
    code, out, _ = _run(capsys, "-n", "test")
    assert code == 0
    assert any(
        line.startswith(
            "Warning [MSH0009] (Sidecar test/ingress-sidecar) This Sidecar applies "
            "to Deployment test/httpbin, Pod test/httpbin-0"
        )
        or "Pod test/httpbin-0, whose pods run without a sidecar because the pod was created "
        "before injection was enabled"
        in line
        for line in out
    ), out
