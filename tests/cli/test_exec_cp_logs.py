"""``exec``, ``cp`` and ``logs``: the pod and container found through the cluster,
the command's exit code passed through, files into the container's own view."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from meshlet.cli import execute
from meshlet.cli.cp import FileSpec, parse_file_spec
from meshlet.cli.execute import parse_exec_args
from meshlet.kubectl.messages import KubectlError
from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster
from tests.cli.scenario_objects import scenario_objects

SLEEP = "sleep-557747455f-brzf6"
EXTERNAL = "sleep-557747455f-xx88g"


@pytest.fixture
def scenario(cluster: FakeCluster) -> FakeCluster:
    for obj in scenario_objects():
        cluster.put(obj)
    cluster.pids[("test", SLEEP, "sleep")] = 4242
    cluster.pids[("default", EXTERNAL, "sleep")] = os.getpid()
    return cluster


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_exec(pid: int, argv: Sequence[str], **kwargs: Any) -> int:
        calls.append({"pid": pid, "argv": list(argv), **kwargs})
        return int(calls[-1].get("code", 56 if "8080" in " ".join(argv) else 0))

    monkeypatch.setattr(execute.runtime, "exec_in_container", fake_exec)
    return calls


def test_parse_exec_args_forms() -> None:
    parsed = parse_exec_args(["pod-1", "-c", "sleep", "--", "curl", "-IsS", "-c", "x"])
    assert (parsed.pod, parsed.container, parsed.command) == (
        "pod-1",
        "sleep",
        ("curl", "-IsS", "-c", "x"),
    )
    it = parse_exec_args(["-it", "pod-1", "--container=app", "--", "sh"])
    assert (it.stdin, it.tty, it.container, it.command) == (True, True, "app", ("sh",))
    assert parse_exec_args(["pod-1", "ls", "-l"]).command == ("ls", "-l")
    with pytest.raises(KubectlError, match="at least one command"):
        parse_exec_args(["pod-1", "--"])


def test_exec_passes_exit_code_through(
    scenario: FakeCluster, meshlet: Run, executed: list[dict[str, Any]]
) -> None:
    result = meshlet(
        "-n",
        "test",
        "exec",
        SLEEP,
        "-c",
        "sleep",
        "--",
        "curl",
        "-IsS",
        "http://httpbin:8080/status/200",
    )
    assert result.code == 56
    assert result.err == "command terminated with exit code 56\n"
    assert executed[0]["pid"] == 4242
    assert executed[0]["argv"] == ["curl", "-IsS", "http://httpbin:8080/status/200"]
    assert scenario.sent("locate") == [{"namespace": "test", "pod": SLEEP, "container": "sleep"}]


def test_exec_success_and_default_container(
    scenario: FakeCluster, meshlet: Run, executed: list[dict[str, Any]]
) -> None:
    result = meshlet("-n", "test", "exec", SLEEP, "--", "true")
    assert (result.code, result.out) == (0, "")
    assert result.err == 'Defaulted container "sleep" out of: sleep, istio-proxy\n'
    assert executed[0]["stdin"] is not None  # no -i: stdin is not passed


def test_exec_by_deployment(
    scenario: FakeCluster, meshlet: Run, executed: list[dict[str, Any]]
) -> None:
    scenario.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sleep", "namespace": "test"},
            "spec": {"selector": {"matchLabels": {"app": "sleep"}}},
        }
    )
    assert meshlet("-n", "test", "exec", "deploy/sleep", "-c", "sleep", "--", "true").code == 0
    assert scenario.sent("locate")[0]["pod"] == SLEEP


def test_exec_missing_pod_and_container(
    scenario: FakeCluster, meshlet: Run, executed: list[dict[str, Any]]
) -> None:
    missing = meshlet("exec", "nope", "--", "true")
    assert (missing.code, missing.err) == (
        4,
        'Error from server (NotFound): pods "nope" not found\n',
    )
    bad = meshlet("-n", "test", "exec", SLEEP, "-c", "nginx", "--", "true")
    assert bad.err == f"error: container nginx is not valid for pod {SLEEP}\n"
    assert executed == []


def test_parse_file_spec() -> None:
    assert parse_file_spec("default/pod-1:/tmp/") == FileSpec("/tmp/", "pod-1", "default")
    assert parse_file_spec("pod-1:/tmp/ca.crt") == FileSpec("/tmp/ca.crt", "pod-1")
    assert parse_file_spec("./example.com.crt") == FileSpec("./example.com.crt")
    with pytest.raises(KubectlError):
        parse_file_spec("a/b/c:/tmp")


def test_cp_into_and_out_of_container(scenario: FakeCluster, meshlet: Run, tmp_path: Path) -> None:
    # The fake pod's main process is this one, so /proc/PID/root is the host's root here.
    source = tmp_path / "example.com.crt"
    source.write_text("certificate")
    inside = tmp_path / "inside"
    inside.mkdir()
    result = meshlet("cp", str(source), f"default/{EXTERNAL}:{inside}/ca.crt")
    assert (result.code, result.err) == (0, "")
    assert (inside / "ca.crt").read_text() == "certificate"
    into_dir = meshlet("cp", str(source), f"{EXTERNAL}:{inside}/")
    assert into_dir.code == 0
    assert (inside / "example.com.crt").exists()
    back = tmp_path / "back.crt"
    assert meshlet("cp", f"{EXTERNAL}:{inside}/ca.crt", str(back)).code == 0
    assert back.read_text() == "certificate"


def test_cp_errors(scenario: FakeCluster, meshlet: Run, tmp_path: Path) -> None:
    both_local = meshlet("cp", "a", "b")
    assert both_local.err == "error: one of src or dest must be a remote file specification\n"
    missing = meshlet("cp", str(tmp_path / "nope"), f"{EXTERNAL}:/tmp/")
    assert missing.err == f"error: {tmp_path / 'nope'} doesn't exist in local filesystem\n"


def test_logs_and_tail(scenario: FakeCluster, meshlet: Run, tmp_path: Path) -> None:
    log = tmp_path / "sleep.log"
    log.write_text("one\ntwo\nthree\n")
    scenario.logs[("test", SLEEP, "sleep")] = str(log)
    assert meshlet("-n", "test", "logs", SLEEP, "-c", "sleep").out == "one\ntwo\nthree\n"
    assert meshlet("-n", "test", "logs", SLEEP, "-c", "sleep", "--tail", "1").out == "three\n"
    scenario.logs[("test", SLEEP, "istio-proxy")] = str(tmp_path / "absent.log")
    waiting = meshlet("-n", "test", "logs", SLEEP, "-c", "istio-proxy")
    assert waiting.err == (
        f'Error from server (BadRequest): container "istio-proxy" in pod "{SLEEP}" '
        "is waiting to start: ContainerCreating\n"
    )
