"""The local cluster end to end: ``meshlet install``, pods, Services and DNS, faults,
a daemon killed and started again, and ``meshlet uninstall --purge`` leaving nothing.

Each test installs a cluster of its own: a fresh ``MESHLET_HOME``, a random node prefix
and address ranges no other route uses, so nothing collides with a real install. The
cluster is removed even when a test fails. Timings (install, apply to Running) are
printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlet.cluster.client import ClusterClient
from meshlet.runtime.config import NodeConfig
from meshlet.runtime.iptables import save_tables
from tests import manifests
from tests.runtime.conftest import (
    EMPTY,
    fresh_config,
    host_iptables,
    host_state,
    integration_skip_reason,
)

pytestmark = pytest.mark.integration

SLEEP = manifests.SAMPLE_SLEEP_PATH
PLACEHOLDER = Path(__file__).with_name("placeholder_sidecar.py")
INSTALL_LINES = ["✔ Istio core installed ⛵️", "✔ Istiod installed 🧠", "✔ Installation complete"]


@dataclass
class Cluster:
    home: Path
    config: NodeConfig
    env: dict[str, str]
    install_seconds: float = 0.0

    @property
    def client(self) -> ClusterClient:
        return ClusterClient(self.home)

    def meshlet(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshlet", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def install(self) -> float:
        started = time.monotonic()
        done = self.meshlet(
            "install",
            "--set",
            "values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true",
            "--node-prefix",
            self.config.prefix,
            "--pod-cidr",
            str(self.config.pod_cidr),
            "--service-cidr",
            str(self.config.service_cidr),
        )
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr + self.log()
        assert done.stdout.splitlines() == INSTALL_LINES
        return elapsed

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "daemon.log").read_text()[-4000:]
        return ""

    def apply(
        self, path: Path | str, namespace: str, text: str | None = None
    ) -> list[dict[str, Any]]:
        docs = [
            d for d in yaml.safe_load_all(text if text is not None else Path(path).read_text()) if d
        ]
        return self.client.apply(
            docs, namespace=namespace, sources=[{"file": str(path)}] * len(docs)
        )

    def pods(self, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        return self.client.get("/Pod", namespace=namespace, selector=selector)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.log()}")


def ready_pods(
    cluster: Cluster, namespace: str, selector: str, containers: int
) -> list[dict[str, Any]] | None:
    pods = cluster.pods(namespace, selector)
    for pod in pods:
        status = pod.get("status") or {}
        statuses = status.get("containerStatuses") or []
        if status.get("phase") != "Running" or len(statuses) != containers:
            return None
        if not all(s["ready"] for s in statuses):
            return None
    return pods or None


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


def gone(pid: int) -> bool:
    """The process has exited (it may still be a zombie waiting for its parent)."""
    try:
        return not Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def exec_in(pid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--target={pid}", "--net", "--mount", "--", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)
    config = fresh_config()
    home = tmp_path / "meshlet-home"
    env = {**os.environ, "MESHLET_HOME": str(home), "PYTHONPATH": str(manifests.REPO / "src")}
    rules_before = host_iptables()
    cluster = Cluster(home, config, env)
    try:
        yield cluster
    finally:
        done = cluster.meshlet("uninstall", "--purge", "-y")
        assert done.returncode == 0, done.stderr
        assert host_state(config) == EMPTY
        assert meshlet_processes(home, config.prefix) == []
        assert not home.exists()
        assert host_iptables() == rules_before


def test_install_pods_dns_restarts_daemon_kill_and_uninstall(cluster: Cluster) -> None:
    hosts_before = {p: Path(p).read_bytes() for p in ("/etc/hosts", "/etc/resolv.conf")}
    cluster.install_seconds = cluster.install()
    assert cluster.client.ping() == {"ready": True, "version": cluster.client.ping()["version"]}
    assert oct((cluster.home / "meshlet.sock").stat().st_mode & 0o777) == "0o600"
    namespaces = [n["metadata"]["name"] for n in cluster.client.get("/Namespace", namespace=None)]
    assert namespaces == ["default", "istio-system"]
    for namespace in namespaces:
        (root,) = cluster.client.get(
            "/ConfigMap", namespace=namespace, names=["istio-ca-root-cert"]
        )
        assert root["data"]["root-cert.pem"].startswith("-----BEGIN CERTIFICATE-----")
    (istiod,) = cluster.client.get("/Service", namespace="istio-system", names=["istiod"])
    assert [p["port"] for p in istiod["spec"]["ports"]] == [15010, 15012, 443, 15014]

    started = time.monotonic()
    results = cluster.apply(SLEEP, "default")
    assert [r["action"] for r in results] == ["created"] * 3
    (pod,) = cluster.wait_for(
        "sleep Running", lambda: ready_pods(cluster, "default", "app=sleep", 1)
    )
    apply_to_running = time.monotonic() - started
    name = pod["metadata"]["name"]
    assert name.startswith("sleep-") and len(name.split("-")[-1]) == 5
    assert IPv4Address(pod["status"]["podIP"]) in cluster.config.pod_cidr
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert cluster.wait_for(
        "deployment ready",
        lambda: (
            cluster.client.get("apps/Deployment", namespace="default", names=["sleep"])[0]
            .get("status", {})
            .get("readyReplicas")
            == 1
        ),
    )

    (service,) = cluster.client.get("/Service", namespace="default", names=["sleep"])
    cluster_ip = service["spec"]["clusterIP"]
    assert IPv4Address(cluster_ip) in cluster.config.service_cidr
    app_pid = cluster.client.locate("default", name)["pid"]
    for query in ("sleep", "sleep.default", "sleep.default.svc.cluster.local"):
        found = exec_in(app_pid, "getent", "hosts", query)
        assert found.returncode == 0 and found.stdout.split()[0] == cluster_ip, (query, found)
    missing = exec_in(app_pid, "getent", "hosts", "nothing-here.default.svc.cluster.local")
    assert missing.returncode == 2
    resolv = exec_in(app_pid, "cat", "/etc/resolv.conf").stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv

    # Killing the app restarts it, as the kubelet does.
    os.kill(app_pid, signal.SIGKILL)

    def restarted() -> Any:
        (current,) = cluster.pods("default", "app=sleep")
        (status,) = current["status"]["containerStatuses"]
        return status["restartCount"] == 1 and status["ready"] and current

    after_crash = cluster.wait_for("the restart", restarted)
    assert after_crash["metadata"]["name"] == name
    (last,) = after_crash["status"]["containerStatuses"]
    assert last["lastState"]["terminated"]["exitCode"] == 137
    new_pid = cluster.client.locate("default", name)["pid"]
    assert new_pid != app_pid

    # The daemon killed with SIGKILL, then started again: the same pods, nothing lost.
    daemon_pid = int((cluster.home / "daemon.pid").read_text())
    os.kill(daemon_pid, signal.SIGKILL)
    cluster.wait_for("the daemon's death", lambda: gone(daemon_pid))
    cluster.install()
    (again,) = cluster.wait_for(
        "sleep after the restart", lambda: ready_pods(cluster, "default", "app=sleep", 1)
    )
    assert again["metadata"]["uid"] == pod["metadata"]["uid"]
    assert again["status"]["podIP"] == pod["status"]["podIP"]
    assert again["status"]["containerStatuses"][0]["restartCount"] == 1
    assert cluster.client.locate("default", name)["pid"] == new_pid
    assert [r["action"] for r in cluster.apply(SLEEP, "default")] == ["unchanged"] * 3

    # A supervisor that dies is started again, and its pod runs again.
    pod_dir = cluster.home / "pods" / pod["metadata"]["uid"]
    os.kill(int((pod_dir / "supervisor.pid").read_text()), signal.SIGKILL)

    def running_again() -> bool:
        with contextlib.suppress(Exception):
            return cluster.client.locate("default", name)["pid"] != new_pid
        return False

    cluster.wait_for("a new supervisor", running_again)
    assert exec_in(cluster.client.locate("default", name)["pid"], "true").returncode == 0

    assert {p: Path(p).read_bytes() for p in hosts_before} == hosts_before
    print(
        f"\ninstall: {cluster.install_seconds:.2f}s; apply to Running (sleep sample): "
        f"{apply_to_running:.2f}s"
    )
    done = cluster.meshlet("uninstall", "--purge", "-y")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("✔ Uninstall complete")


def test_injected_pod_with_user_volumes_capture_and_secret_renewal(cluster: Cluster) -> None:
    cluster.install()
    (cluster.home / "images.yaml").write_text(
        f"images:\n  docker.io/istio/proxyv2:\n    entrypoint: [{sys.executable}, {PLACEHOLDER}]\n"
    )
    cluster.apply("-", "default", manifests.TEST_NAMESPACE)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "httpbin-mtls-termination", "namespace": "test"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(b"cert-1").decode(),
            "tls.key": base64.b64encode(b"key").decode(),
        },
    }
    cacert = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "httpbin-mtls-termination-cacert", "namespace": "test"},
        "data": {"ca.crt": base64.b64encode(b"ca").decode()},
    }
    cluster.client.apply([secret, cacert], namespace="test")
    started = time.monotonic()
    cluster.apply(manifests.HTTPBIN_PATH, "test")
    (pod,) = cluster.wait_for(
        "httpbin 2/2", lambda: ready_pods(cluster, "test", "app=httpbin", 2), 60
    )
    print(f"\napply to Running (httpbin with its sidecar): {time.monotonic() - started:.2f}s")
    name = pod["metadata"]["name"]
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert names == ["httpbin", "istio-proxy"]

    proxy = cluster.client.locate("test", name, "istio-proxy")
    app = cluster.client.locate("test", name)
    assert app["container"] == "httpbin"
    proxy_root, app_root = Path(proxy["root"]), Path(app["root"])
    assert (proxy_root / "etc/istio/tls-certs/tls.crt").read_bytes() == b"cert-1"
    assert (proxy_root / "etc/istio/tls-ca-certs/ca.crt").read_bytes() == b"ca"
    assert (proxy_root / "run/secrets/tokens/istio-token").read_text().count(".") == 2
    assert (proxy_root / "run/secrets/istio/root-cert.pem").read_text().startswith("-----BEGIN")
    assert not (app_root / "etc/istio").exists()
    assert not Path("/etc/istio").exists()
    gid_line = next(
        line
        for line in Path(f"/proc/{proxy['pid']}/status").read_text().splitlines()
        if line.startswith("Gid:")
    )
    assert gid_line.split()[1] == "1337"

    netns = f"/run/netns/{cluster.config.pod_netns(pod['metadata']['uid'])}"
    nat = save_tables(netns, "nat")
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in nat
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in nat

    answer = exec_in(
        app["pid"],
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://127.0.0.1:80/status/200",
    )
    assert answer.stdout == "200", answer

    # A renewed Secret reaches the running sidecar's files, without a restart.
    secret["data"]["tls.crt"] = base64.b64encode(b"cert-2").decode()
    assert cluster.client.apply([secret], namespace="test")[0]["action"] == "configured"
    cluster.wait_for(
        "the renewed certificate",
        lambda: (proxy_root / "etc/istio/tls-certs/tls.crt").read_bytes() == b"cert-2",
        10,
    )

    # Killing the sidecar restarts the sidecar.
    os.kill(proxy["pid"], signal.SIGKILL)

    def proxy_restarted() -> bool:
        (current,) = cluster.pods("test", "app=httpbin")
        statuses = {s["name"]: s for s in current["status"]["containerStatuses"]}
        return statuses["istio-proxy"]["restartCount"] == 1 and statuses["istio-proxy"]["ready"]

    cluster.wait_for("the sidecar's restart", proxy_restarted)

    # A pod in a namespace without injection has no sidecar.
    cluster.apply(SLEEP, "default")
    (sleep,) = cluster.wait_for("sleep", lambda: ready_pods(cluster, "default", "app=sleep", 1))
    assert [c["name"] for c in sleep["spec"]["containers"]] == ["sleep"]

    # Deleting the namespace stops its pods and removes their network namespaces.
    cluster.client.delete("/Namespace", namespace=None, names=["test"])
    cluster.wait_for("the pod's network to go", lambda: not Path(netns).exists())
