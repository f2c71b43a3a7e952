"""One pod's supervisor: ``python -m meshlet.daemon.supervisor POD_DIR``.

Theory of operation: the daemon starts one supervisor per pod as a new process in a
session of its own, so the supervisor (and the pod) outlive a daemon that is killed;
a restarted daemon finds it again through ``POD_DIR/supervisor.pid`` and reads what
it reports. The supervisor joins the pod's network namespace (its readiness probes
then reach the pod's own address) and reads ``POD_DIR/plan.json``, written by the
daemon: the pod's containers in order, each with its container spec file
(``meshlet.runtime.enter``), its log file, its readiness probe, whether it is the
sidecar, or why it cannot start (``ErrImagePull`` …). It reads the plan again when the
file changes (a Secret that appeared, an image mapped since).

It starts the sidecar first and every other container once the sidecar is ready
(Istio's ``holdApplicationUntilProxyStarts``). A container that stops is started again
with the kubelet's back-off (``meshlet.daemon.backoff``): at once the first time, then
after 10 s, 20 s … up to 5 minutes, showing ``CrashLoopBackOff`` while it waits.
Everything it observes goes to ``POD_DIR/state.json`` (replaced atomically): each
container's state, pid, restart count, readiness, last state and exit reason.

SIGTERM stops the pod: every container's process group gets SIGTERM, and SIGKILL
after the pod's grace period; then the supervisor records the final state and exits.
A supervisor started where a previous one died first stops the containers that one
left running (checked by pid and process start time), then starts them afresh.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meshlet.daemon.backoff import restart_delay
from meshlet.runtime.container import start_container
from meshlet.runtime.containerspec import ContainerSpec
from meshlet.runtime.netns import CLONE_NEWNET, setns

__all__ = ["main", "process_start_time", "read_state"]

TICK = 0.1
STARTUP_PROBE_PERIOD = 0.25
PROBE_TIMEOUT = 1.0
FAILURE_THRESHOLD = 3


def _stamp(moment: float | None = None) -> str:
    when = datetime.fromtimestamp(moment if moment is not None else time.time(), UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field
    22), to tell a process from a later one that reuses its pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def read_state(pod_dir: Path) -> dict[str, Any] | None:
    try:
        value: Any = json.loads((pod_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True))
    os.replace(temporary, path)


@dataclass
class _Container:
    name: str
    spec_file: str
    log_file: str
    sidecar: bool
    probe: dict[str, Any] | None
    waiting: tuple[str, str] | None
    process: subprocess.Popen[bytes] | None = None
    started_at: float | None = None
    restart_count: int = 0
    backoff: float | None = None
    waiting_for: float = 0.0  # the back-off of the restart being waited for
    next_start: float = 0.0
    ready: bool = False
    probe_failures: int = 0
    next_probe: float = 0.0
    last_state: dict[str, Any] = field(default_factory=dict)
    stopped: dict[str, Any] | None = None  # the terminated state while waiting to restart
    start_ticks: int | None = None

    def report(self, pod: str, uid: str) -> dict[str, Any]:
        base: dict[str, Any] = {
            "restartCount": self.restart_count,
            "lastState": self.last_state,
            "ready": False,
        }
        if self.process is not None and self.process.poll() is None:
            return {
                **base,
                "state": "running",
                "pid": self.process.pid,
                "startTicks": self.start_ticks,
                "startedAt": _stamp(self.started_at),
                "ready": self.ready,
            }
        if self.waiting is not None:
            return {
                **base,
                "state": "waiting",
                "reason": self.waiting[0],
                "message": self.waiting[1],
            }
        if self.stopped is not None and self.waiting_for > 0:
            delay = self.waiting_for
            return {
                **base,
                "state": "waiting",
                "reason": "CrashLoopBackOff",
                "message": f"back-off {int(delay)}s restarting failed container={self.name} "
                f"pod={pod}({uid})",
            }
        if self.stopped is not None:
            return {**base, **self.stopped, "state": "terminated"}
        return {**base, "state": None}


class Supervisor:
    def __init__(self, pod_dir: Path) -> None:
        self.pod_dir = pod_dir
        self.plan_file = pod_dir / "plan.json"
        self.plan_mtime = 0.0
        self.plan: dict[str, Any] = {}
        self.containers: dict[str, _Container] = {}
        self.stopping = False
        self.last_report: Any = None

    # -- plan ------------------------------------------------------------------------

    def load_plan(self) -> None:
        try:
            mtime = self.plan_file.stat().st_mtime
        except OSError:
            return
        if mtime == self.plan_mtime:
            return
        self.plan_mtime = mtime
        self.plan = json.loads(self.plan_file.read_text())
        for raw in self.plan.get("containers") or []:
            waiting = (
                (str(raw["waiting"][0]), str(raw["waiting"][1])) if raw.get("waiting") else None
            )
            known = self.containers.get(raw["name"])
            if known is None:
                self.containers[raw["name"]] = _Container(
                    name=raw["name"],
                    spec_file=raw["specFile"],
                    log_file=raw["logFile"],
                    sidecar=bool(raw.get("sidecar")),
                    probe=raw.get("probe"),
                    waiting=waiting,
                )
            else:
                known.waiting = waiting
                known.probe = raw.get("probe")

    # -- processes -------------------------------------------------------------------

    def stop_leftovers(self) -> None:
        """Stop the containers a previous supervisor of this pod left running."""
        state = read_state(self.pod_dir) or {}
        for observed in (state.get("containers") or {}).values():
            pid, ticks = observed.get("pid"), observed.get("startTicks")
            if pid and ticks and process_start_time(int(pid)) == ticks:
                with contextlib.suppress(OSError):
                    os.killpg(int(pid), signal.SIGKILL)

    def start(self, container: _Container, now: float) -> None:
        spec = ContainerSpec.from_json(Path(container.spec_file).read_text())
        log = open(container.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            container.process = start_container(
                spec, Path(container.spec_file), stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        container.started_at = time.time()
        container.start_ticks = process_start_time(container.process.pid)
        container.ready = False
        container.probe_failures = 0
        container.next_probe = now + float((container.probe or {}).get("initialDelay") or 0)
        container.stopped = None

    def probe(self, container: _Container) -> bool:
        probe = container.probe
        if probe is None:
            return True
        address = str(self.plan.get("podIP") or "127.0.0.1")
        port = int(probe["port"])
        try:
            if probe.get("kind") == "tcp":
                with socket.create_connection((address, port), timeout=PROBE_TIMEOUT):
                    return True
            connection = http.client.HTTPConnection(address, port, timeout=PROBE_TIMEOUT)
            try:
                connection.request(
                    "GET", str(probe.get("path") or "/"), headers={"User-Agent": "kube-probe/1.36"}
                )
                status = connection.getresponse().status
            finally:
                connection.close()
            return 200 <= status < 400
        except (OSError, http.client.HTTPException):
            return False

    def step(self, now: float) -> None:
        sidecars_ready = all(c.ready for c in self.containers.values() if c.sidecar)
        for container in self.containers.values():
            process = container.process
            if process is not None:
                code = process.poll()
                if code is None:
                    if now >= container.next_probe:
                        ok = self.probe(container)
                        if ok:
                            container.probe_failures = 0
                            container.ready = True
                        else:
                            container.probe_failures += 1
                            if not container.ready or container.probe_failures >= FAILURE_THRESHOLD:
                                container.ready = False
                        period = float((container.probe or {}).get("period") or 10)
                        container.next_probe = now + (
                            period if container.ready else STARTUP_PROBE_PERIOD
                        )
                    continue
                self.record_exit(container, code, now)
                continue
            if self.stopping or container.waiting is not None:
                continue
            if not container.sidecar and not sidecars_ready and container.restart_count == 0:
                continue
            if container.stopped is not None and now < container.next_start:
                continue
            if container.stopped is not None:
                container.restart_count += 1
            try:
                self.start(container, now)
            except (OSError, ValueError) as error:
                container.waiting = ("RunContainerError", str(error))

    def record_exit(self, container: _Container, code: int, now: float) -> None:
        finished = time.time()
        started = container.started_at or finished
        exit_code = code if code >= 0 else 128 - code
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": _stamp(started),
            "finishedAt": _stamp(finished),
        }
        container.last_state = {"terminated": terminated}
        container.stopped = terminated
        container.process = None
        container.ready = False
        policy = self.plan.get("restartPolicy") or "Always"
        if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
            container.waiting = None
            container.next_start = float("inf")
            return
        delay, container.backoff = restart_delay(container.backoff, finished - started)
        container.waiting_for = delay
        container.next_start = now + delay

    def report(self) -> None:
        pod = str(self.plan.get("pod") or "")
        uid = str(self.plan.get("uid") or "")
        state = {
            "supervisorPid": os.getpid(),
            "containers": {name: c.report(pod, uid) for name, c in sorted(self.containers.items())},
        }
        if state != self.last_report:
            _write_json(self.pod_dir / "state.json", state)
            self.last_report = state

    def stop_all(self) -> None:
        raw_grace = self.plan.get("grace")
        grace = float(raw_grace) if isinstance(raw_grace, int | float) else 30.0
        running = [
            c
            for c in self.containers.values()
            if c.process is not None and c.process.poll() is None
        ]
        for container in running:
            with contextlib.suppress(OSError):
                os.killpg(container.process.pid, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.process.poll() is None for c in running):  # type: ignore[union-attr]
            time.sleep(TICK)
        for container in running:
            assert container.process is not None
            with contextlib.suppress(OSError):
                os.killpg(container.process.pid, signal.SIGKILL)
            container.process.wait()
            self.record_exit(container, container.process.returncode, time.monotonic())
            container.next_start = float("inf")

    def run(self) -> int:
        (self.pod_dir / "supervisor.pid").write_text(f"{os.getpid()}\n")
        self.load_plan()
        netns = self.plan.get("netns")
        if netns:
            fd = os.open(str(netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
        self.stop_leftovers()

        def on_term(signum: int, frame: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        while not self.stopping:
            now = time.monotonic()
            self.load_plan()
            self.step(now)
            self.report()
            time.sleep(TICK)
        self.stop_all()
        self.last_report = None
        for container in self.containers.values():
            container.stopped = container.stopped or None
        state = {
            "supervisorPid": None,
            "containers": {
                name: {**c.report("", ""), "state": "terminated", **(c.stopped or {})}
                for name, c in sorted(self.containers.items())
            },
        }
        _write_json(self.pod_dir / "state.json", state)
        with contextlib.suppress(OSError):
            (self.pod_dir / "supervisor.pid").unlink()
        return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m meshlet.daemon.supervisor POD_DIR", file=sys.stderr)
        return 2
    return Supervisor(Path(args[0])).run()


if __name__ == "__main__":
    sys.exit(main())
