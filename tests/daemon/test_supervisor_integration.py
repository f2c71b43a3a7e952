"""The pod supervisor on its own: a crashing container is restarted at once, then
waits in ``CrashLoopBackOff``; SIGTERM stops the pod and records the final state."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from meshlet.daemon.supervisor import read_state
from meshlet.runtime.containerspec import ContainerSpec
from tests.runtime.conftest import integration_skip_reason

pytestmark = pytest.mark.integration


def write_plan(pod_dir: Path, containers: dict[str, list[str]]) -> None:
    entries = []
    for name, argv in containers.items():
        directory = pod_dir / "containers" / name
        (directory / "scratch").mkdir(parents=True)
        spec = ContainerSpec.build(
            argv, netns="/proc/self/ns/net", scratch_dir=str(directory / "scratch")
        )
        (directory / "spec.json").write_text(spec.to_json())
        entries.append(
            {
                "name": name,
                "specFile": str(directory / "spec.json"),
                "logFile": str(pod_dir / f"{name}.log"),
                "sidecar": False,
                "probe": None,
                "waiting": None,
            }
        )
    plan = {"pod": "p_test", "uid": "u", "podIP": "127.0.0.1", "grace": 2, "containers": entries}
    (pod_dir / "plan.json").write_text(json.dumps(plan))


def wait_state(pod_dir: Path, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(pod_dir)
        if state and check(state["containers"]):
            return dict(state["containers"])
        time.sleep(0.05)
    raise AssertionError(f"state never matched: {read_state(pod_dir)}")


def test_crash_loop_back_off_and_stop(tmp_path: Path) -> None:
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)
    write_plan(
        tmp_path, {"crash": ["/bin/sh", "-c", "echo boom; exit 3"], "steady": ["/bin/sleep", "60"]}
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "meshlet.daemon.supervisor", str(tmp_path)]
    )
    try:
        state = wait_state(
            tmp_path,
            lambda c: (
                c["crash"].get("reason") == "CrashLoopBackOff" and c["steady"]["state"] == "running"
            ),
        )
        crash = state["crash"]
        assert crash["restartCount"] == 1  # the first stop restarts at once
        assert crash["message"] == "back-off 10s restarting failed container=crash pod=p_test(u)"
        assert crash["lastState"]["terminated"]["exitCode"] == 3
        assert crash["lastState"]["terminated"]["reason"] == "Error"
        assert state["steady"]["ready"] and state["steady"]["restartCount"] == 0
        assert (tmp_path / "crash.log").read_text() == "boom\nboom\n"
        steady_pid = state["steady"]["pid"]
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=10) == 0
        final = read_state(tmp_path)
        assert final is not None and final["containers"]["steady"]["state"] == "terminated"
        assert not Path(f"/proc/{steady_pid}").exists()  # stopped and reaped
        assert not (tmp_path / "supervisor.pid").exists()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=5)
