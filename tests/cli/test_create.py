"""``create namespace|secret generic|secret tls``: kubectl's lines, objects and errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.cli.certs import make_cert
from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    cert, key, _, _ = make_cert("httpbin.test.svc.cluster.local")
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    return tmp_path / "tls.crt", tmp_path / "tls.key"


def test_create_namespace_then_again(cluster: FakeCluster, meshlet: Run) -> None:
    first = meshlet("create", "ns", "test")
    assert (first.code, first.out, first.err) == (0, "namespace/test created\n", "")
    assert cluster.objects[("/Namespace", "", "test")]["metadata"] == {"name": "test"}
    again = meshlet("create", "namespace", "test")
    assert again.code == 1
    assert again.err == 'Error from server (AlreadyExists): namespaces "test" already exists\n'


def test_create_namespace_dry_run_prints_kubectl_yaml(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("-n", "test", "create", "ns", "test", "--dry-run=client", "-o", "yaml")
    assert (
        result.out
        == "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: test\nspec: {}\nstatus: {}\n"
    )
    assert cluster.calls == []


def test_secret_generic_from_file_with_key(
    cluster: FakeCluster, meshlet: Run, tmp_path: Path
) -> None:
    ca = tmp_path / "example.com.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
    result = meshlet(
        "-n",
        "test",
        "create",
        "secret",
        "generic",
        "httpbin-mtls-termination-cacert",
        f"--from-file=ca.crt={ca}",
        "--from-literal=mode=strict",
    )
    assert (result.code, result.out) == (0, "secret/httpbin-mtls-termination-cacert created\n")
    stored = cluster.objects[("/Secret", "test", "httpbin-mtls-termination-cacert")]
    assert base64.b64decode(stored["data"]["ca.crt"]) == ca.read_bytes()
    assert base64.b64decode(stored["data"]["mode"]) == b"strict"
    assert stored["metadata"]["namespace"] == "test"


def test_secret_generic_missing_file(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("create", "secret", "generic", "x", "--from-file=./nope.crt")
    assert (result.code, result.err) == (
        1,
        "error: error reading ./nope.crt: no such file or directory\n",
    )
    assert cluster.calls == []


def test_secret_generic_directory_source(
    cluster: FakeCluster, meshlet: Run, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "b.txt").write_text("B")
    (tmp_path / "sub").mkdir()
    assert meshlet("create", "secret", "generic", "d", f"--from-file={tmp_path}").code == 0
    assert sorted(cluster.objects[("/Secret", "default", "d")]["data"]) == ["a.txt", "b.txt"]


def test_secret_tls_dry_run_yaml_has_namespace_and_sends_nothing(
    cluster: FakeCluster, meshlet: Run, pair: tuple[Path, Path]
) -> None:
    cert, key = pair
    result = meshlet(
        "-n",
        "test",
        "create",
        "secret",
        "tls",
        "httpbin-mtls-termination",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--dry-run=client",
        "-o",
        "yaml",
    )
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "apiVersion: v1"
    assert lines[1] == "data:"
    assert lines[2].startswith("  tls.crt: ")
    assert lines[3].startswith("  tls.key: ")
    assert lines[4:] == [
        "kind: Secret",
        "metadata:",
        "  name: httpbin-mtls-termination",
        "  namespace: test",
        "type: kubernetes.io/tls",
    ]
    assert base64.b64decode(lines[2].split(": ")[1]) == cert.read_bytes()
    assert cluster.calls == []


def test_secret_tls_without_namespace_flag_has_none(
    cluster: FakeCluster, meshlet: Run, pair: tuple[Path, Path]
) -> None:
    cert, key = pair
    out = meshlet(
        "create",
        "secret",
        "tls",
        "s",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--dry-run=client",
        "-o",
        "json",
    ).out
    assert '"namespace"' not in out
    assert out.startswith('{\n    "apiVersion": "v1",\n    "data": {\n')


def test_secret_tls_mismatched_key(cluster: FakeCluster, meshlet: Run, tmp_path: Path) -> None:
    cert, _, _, _ = make_cert("a")
    _, other_key, _, _ = make_cert("b")
    (tmp_path / "c").write_bytes(cert)
    (tmp_path / "k").write_bytes(other_key)
    result = meshlet(
        "create", "secret", "tls", "s", "--cert", str(tmp_path / "c"), "--key", str(tmp_path / "k")
    )
    assert (result.code, result.err) == (1, "error: tls: private key does not match public key\n")
    assert cluster.calls == []


def test_secret_tls_missing_cert_file(cluster: FakeCluster, meshlet: Run, tmp_path: Path) -> None:
    result = meshlet("create", "secret", "tls", "s", "--cert", "./x.crt", "--key", "./x.key")
    assert result.err == "error: open ./x.crt: no such file or directory\n"


def test_create_dry_run_then_apply_round_trip(
    cluster: FakeCluster, meshlet: Run, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """``create secret tls … --dry-run=client -o yaml | apply -f -``, twice with a new pair."""
    cert, key = pair
    args = (
        "-n",
        "test",
        "create",
        "secret",
        "tls",
        "httpbin-mtls-termination",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--dry-run=client",
        "-o",
        "yaml",
    )
    manifest = meshlet(*args).out
    applied = meshlet("apply", "-f", "-", stdin=manifest)
    assert (applied.code, applied.out) == (0, "secret/httpbin-mtls-termination created\n")
    assert meshlet("apply", "-f", "-", stdin=manifest).out == (
        "secret/httpbin-mtls-termination unchanged\n"
    )
    new_cert, new_key, _, _ = make_cert("httpbin.test.svc.cluster.local", serial=2)
    cert.write_bytes(new_cert)
    key.write_bytes(new_key)
    renewed = meshlet("apply", "-f", "-", stdin=meshlet(*args).out)
    assert renewed.out == "secret/httpbin-mtls-termination configured\n"
    stored = cluster.objects[("/Secret", "test", "httpbin-mtls-termination")]
    assert base64.b64decode(stored["data"]["tls.crt"]) == new_cert
    assert cluster.sent("apply")[0]["sources"] == [{"file": "STDIN", "line": 1}]
