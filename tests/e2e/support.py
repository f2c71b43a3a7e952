"""A local cluster for end-to-end tests, driven through the real ``meshlet`` command.

Each cluster has a ``MESHLET_HOME`` of its own, a random node prefix and address ranges
no other route uses (as ``tests/daemon/test_cluster_integration.py``), so it never
collides with a real install or another test run. ``e2e_cluster`` removes it with
``meshlet uninstall --purge -y`` even when a test fails, then checks that nothing of it
is left: no namespace, route, veth or mount, no process, no state, the host's iptables
as they were.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meshlet.runtime.config import NodeConfig
from meshlet.scenario.compare import Verdict
from meshlet.scenario.demo import prepare_workdir
from meshlet.scenario.runner import Outcome, ScenarioRunner, step_verdicts
from meshlet.scenario.steps import Command, Step
from tests.runtime.conftest import (
    EMPTY,
    fresh_config,
    host_iptables,
    host_state,
    integration_skip_reason,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
EXAMPLES = REPO / "examples" / "sidecar-tls-termination"


@dataclass
class E2ECluster:
    """A scratch directory and a cluster home; commands run as a user types them."""

    workdir: Path
    home: Path
    config: NodeConfig
    log: io.StringIO = field(default_factory=io.StringIO)
    runner: ScenarioRunner = field(init=False)

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env["MESHLET_HOME"] = str(self.home)
        self.runner = ScenarioRunner(
            self.workdir,
            out=self.log,
            env=env,
            install_flags=(
                "--node-prefix",
                self.config.prefix,
                "--pod-cidr",
                str(self.config.pod_cidr),
                "--service-cidr",
                str(self.config.service_cidr),
            ),
        )

    def run_steps(self, steps: tuple[Step, ...]) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for step in steps:
            self.runner.run_step(step)
            verdicts.extend(step_verdicts(step, self.runner.outcomes))
        return verdicts

    def sh(self, text: str) -> Outcome:
        """Run a shell command in the scratch directory (``meshlet`` is on the PATH)."""
        return self.runner.run(Command(text))

    def meshlet(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        binary = shutil.which("meshlet", path=self.runner.env["PATH"])
        assert binary is not None
        return subprocess.run(
            [binary, *args],
            cwd=self.workdir,
            env=self.runner.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def pod(self, namespace: str, selector: str) -> str:
        done = self.meshlet(
            "-n", namespace, "get", "pod", "-l", selector, "-o", "jsonpath={.items..metadata.name}"
        )
        assert done.returncode == 0 and done.stdout.strip(), done
        return done.stdout.split()[0]

    def daemon_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "daemon.log").read_text()[-3000:]
        return ""

    def transcript(self) -> str:
        return self.log.getvalue()[-6000:]


def meshlet_processes(home: Path, prefix: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(home) in cmdline or f"/{prefix}-" in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


@contextlib.contextmanager
def e2e_cluster(scratch: Path) -> Iterator[E2ECluster]:
    """A cluster (not yet installed) that is removed, and checked gone, at the end."""
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)
    for tool in ("curl", "openssl", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (scripts/bootstrap.sh installs it)")
    config = fresh_config()
    # The state directory lives where the default one does (under /var/lib), not under
    # the test's /tmp: a container's overlays and private /tmp treat the two differently.
    home = Path("/var/lib") / f"meshlet-e2e-{config.prefix}"
    workdir = scratch / "work"
    prepare_workdir(workdir, SAMPLES, home)
    cluster = E2ECluster(workdir, home, config)
    rules_before = host_iptables()
    try:
        yield cluster
    finally:
        done = cluster.meshlet("uninstall", "--purge", "-y")
        assert done.returncode == 0, done.stderr
        assert host_state(config) == EMPTY
        assert meshlet_processes(home, config.prefix) == []
        assert not home.exists()
        assert host_iptables() == rules_before


def failed(verdicts: list[Verdict]) -> list[str]:
    return [f"{v.check}: {v.reason}" for v in verdicts if not v.passed]
