"""``delete`` and ``label``: kubectl's lines, missing objects, conflicts."""

from __future__ import annotations

from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster


def _secret(name: str, namespace: str = "test") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
    }


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }


def test_delete_secrets_by_name(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(_secret("httpbin-mtls-termination"))
    cluster.put(_secret("httpbin-mtls-termination-cacert"))
    result = meshlet(
        "delete",
        "secret",
        "httpbin-mtls-termination",
        "httpbin-mtls-termination-cacert",
        "-n",
        "test",
    )
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        'secret "httpbin-mtls-termination" deleted from test namespace\n'
        'secret "httpbin-mtls-termination-cacert" deleted from test namespace\n'
    )
    assert cluster.objects == {}


def test_delete_missing_one(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(_secret("a"))
    result = meshlet("-n", "test", "delete", "secret", "a", "b")
    assert result.out == 'secret "a" deleted from test namespace\n'
    assert result.err == 'Error from server (NotFound): secrets "b" not found\n'
    assert result.code == 4
    none = meshlet("-n", "test", "delete", "secret", "b")
    assert (none.code, none.err) == (4, 'Error from server (NotFound): secrets "b" not found\n')
    quiet = meshlet("-n", "test", "delete", "secret", "b", "--ignore-not-found")
    assert (quiet.code, quiet.err) == (0, "")


def test_delete_namespace_with_contents(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(_namespace("test"))
    cluster.put(_secret("a"))
    result = meshlet("delete", "namespace", "test")
    assert result.out == 'namespace "test" deleted\n'
    assert cluster.objects == {}


def test_delete_from_file_and_by_type_slash_name(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(_secret("a"))
    cluster.put(_secret("b"))
    manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n"
    assert meshlet("-n", "test", "delete", "-f", "-", stdin=manifest).out == (
        'secret "a" deleted from test namespace\n'
    )
    assert (
        meshlet("-n", "test", "delete", "secret/b").out
        == 'secret "b" deleted from test namespace\n'
    )


def test_delete_needs_names(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("delete", "secret")
    assert result.err == "error: resource(s) were provided, but no name was specified\n"


def test_label_namespace(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.put(_namespace("test"))
    result = meshlet("label", "namespace", "test", "istio-injection=enabled")
    assert (result.code, result.out) == (0, "namespace/test labeled\n")
    assert cluster.objects[("/Namespace", "", "test")]["metadata"]["labels"] == {
        "istio-injection": "enabled"
    }
    conflict = meshlet("label", "namespace", "test", "istio-injection=disabled")
    assert conflict.code == 2  # the API answers BadRequest: a usage error
    assert conflict.err == (
        "error: 'istio-injection' already has a value (enabled), and --overwrite is false\n"
    )
    assert meshlet("label", "ns/test", "istio-injection=disabled", "--overwrite").out == (
        "namespace/test labeled\n"
    )
    assert meshlet("label", "ns", "test", "istio-injection-").out == "namespace/test labeled\n"
    assert cluster.objects[("/Namespace", "", "test")]["metadata"]["labels"] == {}
    assert meshlet("label", "ns", "test", "istio-injection-").out == "namespace/test not labeled\n"


def test_label_missing_object_and_no_labels(cluster: FakeCluster, meshlet: Run) -> None:
    missing = meshlet("label", "namespace", "nope", "a=b")
    assert missing.err == 'Error from server (NotFound): namespaces "nope" not found\n'
    none = meshlet("label", "namespace", "nope")
    assert none.err == "error: at least one label update is required\n"
