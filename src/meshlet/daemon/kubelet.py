"""The node's pods on the machine: what the kubelet and a CNI plugin do for one host.

Theory of operation: ``sync_pod`` makes a pod exist and keeps it up to date, and can
run again at any time (after a daemon restart it re-adopts what it finds):

1. the pod's network namespace and address (``NodeNetwork.add_pod``, keyed by the
   pod's uid);
2. its directory ``pods/<uid>/``: ``resolv.conf`` and ``hosts``, each volume's files in
   the kubelet's layout (a Secret's new content swaps ``..data``, which is how a
   renewed certificate reaches a running sidecar), the pod's token for the mesh CA;
3. for a pod with a sidecar, istio-init's capture rules, before any container starts;
4. one container spec per container (``meshlet.runtime.enter``) and the supervisor's
   plan (``plan.json``);
5. the supervisor (``python -m meshlet.daemon.supervisor``), started as a new process
   in its own session when none runs for the pod.

A pod whose volumes cannot be made yet (a Secret that does not exist) waits in
``ContainerCreating`` and is tried again. ``observe`` reads what the supervisor
reports; ``stop_pod`` stops the supervisor (it stops the containers within the pod's
grace period), removes the network namespace and the pod's directory.

Everything here blocks (commands, files): the daemon calls it from worker threads and
keeps the store on its own thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meshlet.ca.tokens import issue_token
from meshlet.cluster.home import ClusterHome
from meshlet.daemon.controllers.podstatus import PodObservation
from meshlet.daemon.images import ImageEntry
from meshlet.daemon.injection import PROXY_CONTAINER
from meshlet.daemon.podplan import PodContext, PodPlan, plan_pod
from meshlet.daemon.supervisor import process_start_time, read_state
from meshlet.runtime.capture import capture_config_from_annotations
from meshlet.runtime.container import container_mounts, write_secret_volume
from meshlet.runtime.containerspec import ContainerSpec
from meshlet.runtime.iptables import apply_capture_rules
from meshlet.runtime.network import NodeNetwork
from meshlet.runtime.podfiles import render_hosts, render_resolv_conf

__all__ = ["Kubelet", "PodSetupResult", "supervisor_pid"]

log = logging.getLogger("meshlet.kubelet")

TOKEN_LIFETIME = timedelta(hours=12)
TOKEN_REFRESH = timedelta(hours=6)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return True


def supervisor_pid(pod_dir: Path) -> int | None:
    """The pid of the pod's running supervisor, or ``None`` (checked against its
    command line, so a reused pid is never taken for it)."""
    try:
        pid = int((pod_dir / "supervisor.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if b"meshlet.daemon.supervisor" in cmdline and str(pod_dir).encode() in cmdline:
        return pid
    return None


@dataclass(frozen=True, slots=True)
class PodSetupResult:
    pod_ip: str
    volume_errors: tuple[str, ...]


class Kubelet:
    """Pods of one node, on the machine."""

    def __init__(
        self,
        home: ClusterHome,
        network: NodeNetwork,
        *,
        token_key: bytes,
        catalog: Callable[[], Mapping[str, ImageEntry]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        trust_domain: str = "cluster.local",
    ) -> None:
        self.home = home
        self.network = network
        self.token_key = token_key
        self.catalog = catalog
        self.now = now
        self.trust_domain = trust_domain
        self.host_ip = str(network.config.node_ip)

    # -- paths ---------------------------------------------------------------------------

    def pod_dir(self, uid: str) -> Path:
        return self.home.pod_dir(uid)

    def known_pods(self) -> dict[str, dict[str, Any]]:
        """uid → the pod's record (``pod.json``) of every pod directory on disk."""
        found: dict[str, dict[str, Any]] = {}
        if not self.home.pods_dir.is_dir():
            return found
        for entry in sorted(self.home.pods_dir.iterdir()):
            try:
                record = json.loads((entry / "pod.json").read_text())
            except (OSError, ValueError):
                record = {}
            found[entry.name] = record if isinstance(record, dict) else {}
        return found

    # -- setting a pod up -------------------------------------------------------------------

    def sync_pod(
        self,
        pod: Mapping[str, Any],
        secrets: Mapping[str, Mapping[str, Any]],
        configmaps: Mapping[str, Mapping[str, Any]],
    ) -> PodSetupResult:
        meta = pod.get("metadata") or {}
        uid = str(meta["uid"])
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        pod_dir = self.pod_dir(uid)
        pod_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        record_file = pod_dir / "pod.json"
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            record = {}
        if not record.get("startTime"):
            record = {
                "namespace": namespace,
                "name": name,
                "uid": uid,
                "startTime": _stamp(self.now()),
            }
            _write_if_changed(record_file, json.dumps(record, indent=2, sort_keys=True))

        network = self.network.add_pod(uid)
        pod_ip = str(network.ip)
        netns = str(network.netns_path)
        if record.get("podIP") != pod_ip:
            record["podIP"] = pod_ip
            record["netns"] = netns
            _write_if_changed(record_file, json.dumps(record, indent=2, sort_keys=True))

        etc = pod_dir / "etc"
        etc.mkdir(exist_ok=True)
        resolv, hosts = etc / "resolv.conf", etc / "hosts"
        _write_if_changed(
            resolv,
            render_resolv_conf(
                namespace, self.network.config.dns_ip, self.network.config.cluster_domain
            ),
        )
        _write_if_changed(hosts, render_hosts(network.ip, name))

        plan = plan_pod(
            pod,
            PodContext(
                pod_dir=str(pod_dir),
                pod_ip=pod_ip,
                host_ip=self.host_ip,
                catalog=self.catalog(),
                secrets=secrets,
                configmaps=configmaps,
                token=self._token(pod, pod_dir),
            ),
        )
        self._write_volumes(pod_dir, plan)
        if plan.volume_errors:
            return PodSetupResult(pod_ip, plan.volume_errors)

        spec = pod.get("spec") or {}
        containers = [c.get("name") for c in spec.get("containers") or []]
        if PROXY_CONTAINER in containers and not (pod_dir / "capture.rules").exists():
            annotations = meta.get("annotations") or {}
            rules = apply_capture_rules(netns, capture_config_from_annotations(annotations))
            (pod_dir / "capture.rules").write_text(rules)

        entries = []
        (pod_dir / "logs").mkdir(exist_ok=True)
        for container in plan.containers:
            container_dir = pod_dir / "containers" / container.name
            scratch, mounts = container_mounts(
                container_dir, resolv_conf=resolv, hosts=hosts, volumes=list(container.mounts)
            )
            spec_file = container_dir / "spec.json"
            waiting = list(container.waiting) if container.waiting else None
            if container.argv is not None and container.waiting is None:
                container_spec = ContainerSpec.build(
                    list(container.argv),
                    netns=netns,
                    scratch_dir=str(scratch),
                    env=dict(container.env),
                    gid=container.gid,
                    workdir=container.workdir,
                    mounts=mounts,
                )
                _write_if_changed(spec_file, container_spec.to_json())
            probe = None
            if container.probe is not None:
                probe = {
                    "kind": container.probe.kind,
                    "port": container.probe.port,
                    "path": container.probe.path,
                    "period": container.probe.period,
                    "initialDelay": container.probe.initial_delay,
                }
            entries.append(
                {
                    "name": container.name,
                    "specFile": str(spec_file),
                    "logFile": str(pod_dir / "logs" / f"{container.name}.log"),
                    "sidecar": container.sidecar,
                    "probe": probe,
                    "waiting": waiting,
                }
            )
        supervisor_plan = {
            "pod": f"{name}_{namespace}",
            "uid": uid,
            "podIP": pod_ip,
            "netns": netns,
            "grace": spec.get("terminationGracePeriodSeconds", 30),
            "restartPolicy": spec.get("restartPolicy") or "Always",
            "containers": entries,
        }
        _write_if_changed(
            pod_dir / "plan.json", json.dumps(supervisor_plan, indent=2, sort_keys=True)
        )
        if supervisor_pid(pod_dir) is None:
            self._start_supervisor(pod_dir)
        return PodSetupResult(pod_ip, ())

    def refresh_volumes(
        self,
        pod: Mapping[str, Any],
        secrets: Mapping[str, Mapping[str, Any]],
        configmaps: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Rewrite the volumes of a running pod (a Secret or ConfigMap changed)."""
        uid = str((pod.get("metadata") or {}).get("uid"))
        pod_dir = self.pod_dir(uid)
        try:
            record = json.loads((pod_dir / "pod.json").read_text())
        except (OSError, ValueError):
            return
        plan = plan_pod(
            pod,
            PodContext(
                pod_dir=str(pod_dir),
                pod_ip=str(record.get("podIP") or ""),
                host_ip=self.host_ip,
                catalog=self.catalog(),
                secrets=secrets,
                configmaps=configmaps,
                token=self._token(pod, pod_dir),
            ),
        )
        self._write_volumes(pod_dir, plan, only_existing=True)

    def _token(self, pod: Mapping[str, Any], pod_dir: Path) -> str | None:
        """The pod's token for the mesh CA, issued anew when half its life is over."""
        volumes = (pod.get("spec") or {}).get("volumes") or []
        wanted = any(
            source.get("serviceAccountToken") is not None
            for volume in volumes
            for source in ((volume.get("projected") or {}).get("sources") or [])
        )
        if not wanted:
            return None
        token_file = pod_dir / "token.json"
        now = self.now()
        try:
            saved = json.loads(token_file.read_text())
            expires = datetime.fromisoformat(saved["expires"])
            if expires - now > TOKEN_LIFETIME - TOKEN_REFRESH:
                return str(saved["token"])
        except (OSError, ValueError, KeyError):
            pass
        meta = pod.get("metadata") or {}
        expires = now + TOKEN_LIFETIME
        token = issue_token(
            self.token_key,
            namespace=str(meta.get("namespace")),
            service_account=str((pod.get("spec") or {}).get("serviceAccountName") or "default"),
            pod=str(meta.get("name")),
            expires=expires,
        )
        token_file.write_text(json.dumps({"token": token, "expires": expires.isoformat()}))
        token_file.chmod(0o600)
        return token

    def _write_volumes(self, pod_dir: Path, plan: PodPlan, *, only_existing: bool = False) -> None:
        root = pod_dir / "volumes"
        root.mkdir(exist_ok=True)
        for volume in plan.volumes:
            directory = root / volume.name
            if only_existing and not directory.exists():
                continue
            if volume.files is None:
                directory.mkdir(exist_ok=True)
                directory.chmod(0o777)
            else:
                write_secret_volume(directory, volume.files, now=self.now())

    def _start_supervisor(self, pod_dir: Path) -> None:
        with open(pod_dir / "supervisor.log", "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "meshlet.daemon.supervisor", str(pod_dir)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd="/",
                close_fds=True,
                start_new_session=True,
            )
        # The supervisor writes its own pid file; write it here too so that a daemon
        # killed right now still finds it.
        (pod_dir / "supervisor.pid").write_text(f"{process.pid}\n")
        log.info("started the supervisor of %s (pid %d)", pod_dir.name, process.pid)

    # -- observing ---------------------------------------------------------------------------

    def observe(
        self, pod: Mapping[str, Any], *, waiting_reason: tuple[str, str] | None = None
    ) -> PodObservation:
        uid = str((pod.get("metadata") or {}).get("uid"))
        pod_dir = self.pod_dir(uid)
        try:
            record = json.loads((pod_dir / "pod.json").read_text())
        except (OSError, ValueError):
            record = {}
        state = read_state(pod_dir) or {}
        containers = state.get("containers") or {}
        waiting: dict[str, tuple[str, str]] = {}
        if waiting_reason is not None:
            for container in (pod.get("spec") or {}).get("containers") or []:
                waiting[str(container.get("name"))] = waiting_reason
        return PodObservation(
            host_ip=self.host_ip,
            pod_ip=record.get("podIP"),
            start_time=record.get("startTime"),
            sandbox_ready=bool(record.get("podIP")),
            containers=containers,
            waiting=waiting,
        )

    def container_pid(self, uid: str, container: str) -> int | None:
        state = read_state(self.pod_dir(uid)) or {}
        observed = (state.get("containers") or {}).get(container) or {}
        pid, ticks = observed.get("pid"), observed.get("startTicks")
        if observed.get("state") == "running" and pid and process_start_time(int(pid)) == ticks:
            return int(pid)
        return None

    # -- stopping ----------------------------------------------------------------------------

    def stop_pod(self, uid: str, *, grace: float = 30.0) -> None:
        """Stop the pod's processes, remove its network and its directory."""
        pod_dir = self.pod_dir(uid)
        pid = supervisor_pid(pod_dir)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace + 5
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        kill_leftovers(pod_dir)
        self.network.remove_pod(uid)
        shutil.rmtree(pod_dir, ignore_errors=True)


def kill_leftovers(pod_dir: Path) -> None:
    """SIGKILL the process groups of containers a pod's state still names (when its
    supervisor is gone), each checked by pid and start time."""
    state = read_state(pod_dir) or {}
    for observed in (state.get("containers") or {}).values():
        pid, ticks = observed.get("pid"), observed.get("startTicks")
        if pid and ticks and process_start_time(int(pid)) == ticks:
            with contextlib.suppress(OSError):
                os.killpg(int(pid), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
