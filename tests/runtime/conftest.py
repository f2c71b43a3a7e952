"""Fixtures for the node runtime's integration tests.

Every test run works in a node of its own: a random name prefix (``mlt`` and six hex
digits) and address ranges no other route on the machine uses, so parallel runs and
leftovers of an interrupted run never collide. Teardown is idempotent and runs even
when a test fails; processes a test starts are stopped by their PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from meshlet.runtime._commands import which
from meshlet.runtime.config import NodeConfig
from meshlet.runtime.network import NodeNetwork

TOOLS = ("ip", "iptables", "iptables-restore", "iptables-save", "nsenter", "getent")


def integration_skip_reason() -> str | None:
    if sys.platform != "linux":
        return "the node runtime needs Linux"
    if os.geteuid() != 0:
        return "needs root: network namespaces, iptables and mounts"
    missing = [tool for tool in TOOLS if which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (scripts/bootstrap.sh installs them)"
    return None


def _routed(cidr: IPv4Network) -> bool:
    shown = subprocess.run(
        ["ip", "-j", "route", "show", "exact", str(cidr)],
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(json.loads(shown.stdout or "[]"))


def fresh_config() -> NodeConfig:
    """A node config no other node on this machine uses."""
    prefix = f"mlt{secrets.token_hex(3)}"
    for third in random.sample(range(256), 256):
        pods = IPv4Network(f"10.244.{third}.0/24")
        services = IPv4Network(f"10.97.{third}.0/24")
        if not _routed(pods) and not _routed(services):
            return NodeConfig(prefix=prefix, pod_cidr=pods, service_cidr=services)
    raise RuntimeError("no free test address range")


def host_state(config: NodeConfig) -> dict[str, object]:
    """What of ``config``'s node is visible from the host (should be nothing)."""
    netns = sorted(p.name for p in Path("/run/netns").glob(f"{config.prefix}-*"))
    routes = [str(c) for c in (config.pod_cidr, config.service_cidr) if _routed(c)]
    links = json.loads(
        subprocess.run(
            ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True
        ).stdout
    )
    veths = sorted(link["ifname"] for link in links if link["ifname"].startswith("mlv"))
    mounts = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if f"/{config.prefix}-" in line
    ]
    return {"netns": netns, "routes": routes, "veths": veths, "mounts": mounts}


EMPTY = {"netns": [], "routes": [], "veths": [], "mounts": []}


def host_iptables() -> list[str]:
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line.split(" [")[0] for line in saved.splitlines() if not line.startswith("#")]


@pytest.fixture(scope="module")
def node() -> Iterator[NodeNetwork]:
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)
    network = NodeNetwork(fresh_config())
    rules_before = host_iptables()
    try:
        network.setup_node()
        yield network
    finally:
        network.teardown()
    assert host_state(network.config) == EMPTY
    assert host_iptables() == rules_before


class Processes:
    """Processes a test started; all stopped (by PID) when the test ends."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def add(self, process: subprocess.Popen[str]) -> subprocess.Popen[str]:
        self.started.append(process)
        return process

    def in_netns(self, netns: Path, code: str, *, gid: int | None = None) -> subprocess.Popen[str]:
        """A Python program inside a network namespace (and nothing else)."""
        prelude = f"import os; os.setgroups([]); os.setgid({gid}); " if gid is not None else ""
        return self.add(
            subprocess.Popen(
                ["nsenter", f"--net={netns}", sys.executable, "-c", prelude + code],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                process.communicate(timeout=5)


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracker = Processes()
    try:
        yield tracker
    finally:
        tracker.stop_all()


def wait_ready(process: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The first line a helper prints (``ready …``) once it listens."""
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"helper not ready within {timeout}s")
    line = process.stdout.readline().strip()
    if not line:
        assert process.stderr is not None
        raise AssertionError(f"helper exited: {process.stderr.read()}")
    return line
