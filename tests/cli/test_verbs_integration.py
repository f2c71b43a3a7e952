"""The verbs against a real local cluster: install, create ns, label, apply, get,
wait, exec, cp, logs, describe, delete, uninstall.

Root only. The cluster has a ``MESHLET_HOME``, node prefix and address ranges of its
own, and is uninstalled even when the test fails. The pods run without a sidecar
(the ``default`` namespace), so this checks the verbs, not the proxy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.conftest import fresh_config, integration_skip_reason

pytestmark = pytest.mark.integration


def test_verbs_end_to_end(tmp_path: Path) -> None:
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)
    config = fresh_config()
    home = tmp_path / "home"
    env = {**os.environ, "MESHLET_HOME": str(home)}

    def meshlet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshlet", *args],
            env=env,
            cwd=tmp_path,  # samples/… must be found from anywhere
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    try:
        installed = meshlet(
            "install",
            "--node-prefix",
            config.prefix,
            "--pod-cidr",
            str(config.pod_cidr),
            "--service-cidr",
            str(config.service_cidr),
            timeout=120,
        )
        assert installed.returncode == 0, installed.stderr
        assert meshlet("create", "ns", "test").stdout == "namespace/test created\n"
        labeled = meshlet("label", "namespace", "test", "istio-injection=enabled")
        assert labeled.stdout == "namespace/test labeled\n"
        applied = meshlet("apply", "-f", "samples/sleep/sleep.yaml")
        assert applied.stdout == (
            "serviceaccount/sleep created\nservice/sleep created\ndeployment.apps/sleep created\n"
        ), applied.stderr
        waited = meshlet(
            "wait", "--for=condition=Ready", "pods", "-l", "app=sleep", "--timeout=60s", timeout=90
        )
        assert waited.returncode == 0, waited.stderr
        assert waited.stdout.endswith("condition met\n")
        name = meshlet(
            "get", "pod", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}"
        ).stdout
        assert name.startswith("sleep-")
        table = meshlet("get", "pods").stdout.splitlines()
        assert table[0] == "NAME                     READY   STATUS    RESTARTS   AGE"
        assert table[1].split()[:4] == [name, "1/1", "Running", "0"]
        failed = meshlet(
            "exec", name, "-c", "sleep", "--", "sh", "-c", "echo out; echo err >&2; exit 7"
        )
        assert (failed.returncode, failed.stdout) == (7, "out\n")
        assert failed.stderr == "err\ncommand terminated with exit code 7\n"
        local = tmp_path / "ca.crt"
        local.write_text("a certificate\n")
        copied = meshlet("cp", str(local), f"default/{name}:/tmp/ca.crt")
        assert copied.returncode == 0, copied.stderr
        assert meshlet("exec", name, "--", "cat", "/tmp/ca.crt").stdout == "a certificate\n"
        assert (
            not Path("/tmp/ca.crt").exists() or Path("/tmp/ca.crt").read_text() != "a certificate\n"
        )
        described = meshlet("describe", "pod", name).stdout
        assert "Controlled By:  ReplicaSet/sleep-" in described
        assert meshlet("logs", name).returncode == 0
        missing = meshlet("get", "pod", "nope")
        assert (missing.returncode, missing.stderr) == (
            4,
            'Error from server (NotFound): pods "nope" not found\n',
        )
        assert meshlet("delete", "deployment", "sleep").stdout == (
            'deployment.apps "sleep" deleted from default namespace\n'
        )
        assert meshlet("delete", "namespace", "test").stdout == 'namespace "test" deleted\n'
    finally:
        meshlet("uninstall", "--purge", "-y", timeout=120)
    gone = meshlet("get", "pods")
    assert (gone.returncode, gone.stderr) == (
        3,
        'meshlet is not running: run "meshlet install" first\n',
    )
