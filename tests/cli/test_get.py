"""``get``: the scenario's tables, jsonpath, several kinds, and kubectl's errors."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster
from tests.cli.scenario_objects import scenario_objects


@pytest.fixture
def scenario(cluster: FakeCluster) -> FakeCluster:
    for obj in scenario_objects():
        cluster.put(obj)
    return cluster


def test_get_pods_default_namespace(scenario: FakeCluster, meshlet: Run) -> None:
    result = meshlet("get", "pods")
    assert result.code == 0
    assert result.out == (
        "NAME                     READY   STATUS    RESTARTS   AGE\n"
        "sleep-557747455f-xx88g   1/1     Running   0          4m14s\n"
    )


def test_get_pods_in_test(scenario: FakeCluster, meshlet: Run) -> None:
    assert meshlet("get", "pods", "-n", "test").out == (
        "NAME                       READY   STATUS    RESTARTS   AGE\n"
        "httpbin-5bbdbd6588-z9vbs   2/2     Running   0          8m44s\n"
        "sleep-557747455f-brzf6     2/2     Running   0          6m57s\n"
    )


def test_get_svc_in_test(scenario: FakeCluster, meshlet: Run) -> None:
    assert meshlet("get", "svc", "-n", "test").out == (
        "NAME      TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)             AGE\n"
        "httpbin   ClusterIP   10.100.78.113   <none>        8443/TCP,8080/TCP   10m\n"
        "sleep     ClusterIP   10.110.35.153   <none>        80/TCP              8m49s\n"
    )


def test_jsonpath_items_names_with_selector(scenario: FakeCluster, meshlet: Run) -> None:
    result = meshlet(
        "-n", "test", "get", "pod", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}"
    )
    assert (result.code, result.out) == (0, "sleep-557747455f-brzf6")
    assert scenario.sent("get")[-1]["selector"] == "app=sleep"
    default = meshlet("get", "pod", "-l", "app=sleep", "-o=jsonpath={.items..metadata.name}")
    assert default.out == "sleep-557747455f-xx88g"


def test_get_several_kinds(scenario: FakeCluster, meshlet: Run) -> None:
    out = meshlet("get", "svc,pods", "-n", "test").out
    tables = out.split("\n\n")
    assert len(tables) == 2
    assert tables[0].splitlines()[1].startswith("service/httpbin   ClusterIP")
    assert tables[1].splitlines()[1].startswith("pod/httpbin-5bbdbd6588-z9vbs   2/2")


def test_get_all_namespaces(scenario: FakeCluster, meshlet: Run) -> None:
    lines = meshlet("get", "pods", "-A").out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["default", "test", "test"]
    assert scenario.sent("get")[-1]["namespace"] is None


def test_get_named_missing_and_found(scenario: FakeCluster, meshlet: Run) -> None:
    result = meshlet("get", "pod", "sleep-557747455f-xx88g", "x")
    assert result.out.splitlines()[1].startswith("sleep-557747455f-xx88g")
    assert result.err == 'Error from server (NotFound): pods "x" not found\n'
    assert result.code == 4


def test_get_one_as_yaml_and_json(scenario: FakeCluster, meshlet: Run) -> None:
    out = meshlet("get", "svc/sleep", "-n", "test", "-o", "json").out
    assert json.loads(out)["metadata"]["name"] == "sleep"
    listed = meshlet("get", "svc", "-n", "test", "-o", "yaml").out
    assert listed.startswith("apiVersion: v1\nitems:\n- apiVersion: v1\n")
    assert listed.endswith('kind: List\nmetadata:\n  resourceVersion: ""\n')


def test_get_names(scenario: FakeCluster, meshlet: Run) -> None:
    assert meshlet("get", "pods", "-n", "test", "-o", "name").out == (
        "pod/httpbin-5bbdbd6588-z9vbs\npod/sleep-557747455f-brzf6\n"
    )


def test_no_resources(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("get", "secrets", "-n", "test")
    assert (result.code, result.out, result.err) == (
        0,
        "",
        "No resources found in test namespace.\n",
    )


def test_unknown_type_and_bad_output(cluster: FakeCluster, meshlet: Run) -> None:
    unknown = meshlet("get", "gadgets")
    assert (unknown.code, unknown.err) == (
        1,
        'error: the server doesn\'t have a resource type "gadgets"\n',
    )
    bad = meshlet("get", "pods", "-o", "table")
    assert bad.err.startswith(
        'error: unable to match a printer suitable for the output format "table"'
    )
    assert cluster.calls == []


def test_selector_with_name_is_refused(cluster: FakeCluster, meshlet: Run) -> None:
    result = meshlet("get", "pod", "x", "-l", "app=sleep")
    assert result.err == "error: name cannot be provided when a selector is specified\n"


def test_show_labels(scenario: FakeCluster, meshlet: Run) -> None:
    lines = meshlet("get", "pods", "--show-labels").out.splitlines()
    assert lines[0].endswith("AGE     LABELS")
    assert lines[1].endswith("4m14s   app=sleep,pod-template-hash=557747455f")
