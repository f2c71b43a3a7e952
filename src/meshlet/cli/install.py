"""``meshlet install`` and ``meshlet uninstall --purge``: the local cluster's life.

``install [--set NAME=VALUE …]`` needs root. It makes ``MESHLET_HOME`` (default
``/var/lib/meshlet``, mode 0700), saves the node's ranges (``node.json``) and the
mesh settings (``settings.json``, read by pilot: ``ENABLE_TLS_ON_SIDECAR_INGRESS``),
sets up the node network (the node namespace and the host's blackhole routes), starts
the daemon inside the node namespace in a session of its own
(``nsenter --net=… python -m meshlet.daemon``, output to ``daemon.log``), and returns
once the daemon answers ``ping`` as ready, printing istioctl's lines. Installing again
while the daemon runs only saves new settings and restarts it.

``uninstall --purge`` asks the daemon to stop every pod and exit, then removes what is
left even when the daemon is dead: supervisors and containers (checked by pid), pod
and node namespaces (and with them their iptables rules), the blackhole routes, and
``MESHLET_HOME``. Without ``-y`` it asks first, and refuses when no terminal can
answer.

The node's prefix and ranges can be chosen with ``--node-prefix``, ``--pod-cidr`` and
``--service-cidr`` (two clusters, or tests, side by side).

With ``--kubeconfig FILE`` both verbs work on that Kubernetes cluster instead
(``meshlet.kube.cli``): no root, nothing local.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

from meshlet.cluster.client import ClusterClient
from meshlet.cluster.home import ClusterHome
from meshlet.errors import ExitCode, MeshletError, UsageError

__all__ = ["register"]

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0


class _NeedsRoot(MeshletError):
    exit_code = ExitCode.UNAVAILABLE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    install = subparsers.add_parser("install", help="start the local cluster and the control plane")
    install.add_argument(
        "--set", dest="set_flags", action="append", default=[], metavar="NAME=VALUE"
    )
    install.add_argument(
        "-y", "--skip-confirmation", action="store_true", help="accepted for istioctl's sake"
    )
    install.add_argument("--node-prefix", default="meshlet", help=argparse.SUPPRESS)
    install.add_argument("--pod-cidr", default=None, help=argparse.SUPPRESS)
    install.add_argument("--service-cidr", default=None, help=argparse.SUPPRESS)
    from meshlet.kube.cli import add_cluster_flags

    add_cluster_flags(install, install=True)
    install.set_defaults(run=run_install)
    uninstall = subparsers.add_parser(
        "uninstall", help="stop the local cluster and remove everything of it"
    )
    uninstall.add_argument("--purge", action="store_true", help="remove every resource of meshlet")
    uninstall.add_argument("-y", "--skip-confirmation", action="store_true", help="do not ask")
    add_cluster_flags(uninstall, install=False)
    uninstall.set_defaults(run=run_uninstall)


def _require_root(verb: str) -> None:
    if os.geteuid() != 0:
        raise _NeedsRoot(
            f"meshlet {verb} needs root (network namespaces, iptables and mounts); run it with sudo"
        )


def _home() -> ClusterHome:
    return ClusterHome.from_environment(os.environ)


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r- {message}...\x1b[K")
        sys.stderr.flush()


def _progress_done() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def run_install(args: argparse.Namespace) -> int:
    from meshlet.cluster.home import node_config_from_json, node_config_to_json
    from meshlet.resources.mesh import MeshSettings
    from meshlet.runtime.config import NodeConfig
    from meshlet.runtime.network import NodeNetwork

    if getattr(args, "kubeconfig", None):
        from meshlet.kube.cli import run_cluster_install

        return run_cluster_install(args)
    _require_root("install")
    MeshSettings().with_set_flags(args.set_flags)  # refuse a bad --set before anything
    home = _home()
    home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.root.chmod(0o700)
    if home.node_file.exists():
        config = node_config_from_json(home.node_file.read_text())
    else:
        try:
            defaults = NodeConfig()
            config = NodeConfig(
                prefix=args.node_prefix,
                pod_cidr=IPv4Network(args.pod_cidr) if args.pod_cidr else defaults.pod_cidr,
                service_cidr=IPv4Network(args.service_cidr)
                if args.service_cidr
                else defaults.service_cidr,
            )
        except ValueError as error:
            raise UsageError(str(error)) from None
        home.node_file.write_text(node_config_to_json(config))
    home.settings_file.write_text(json.dumps({"set": list(args.set_flags)}, indent=2))
    client = ClusterClient(home, timeout=10)
    _progress("Processing resources for Istio core")
    if _daemon_pid(home) is not None:
        _stop_daemon(home, client, purge=False)
    network = NodeNetwork(config)
    network.setup_node()
    _progress("Processing resources for Istiod")
    _start_daemon(home, str(network.node_netns_path))
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        with contextlib.suppress(MeshletError):
            if client.ping().get("ready"):
                break
        if _daemon_pid(home) is None and time.monotonic() > deadline - READY_TIMEOUT + 5:
            _progress_done()
            raise MeshletError(f"the meshlet daemon stopped while starting; see {home.log_file}")
        if time.monotonic() > deadline:
            _progress_done()
            raise MeshletError(
                f"meshlet did not become ready within {READY_TIMEOUT:g}s; see {home.log_file}"
            )
        time.sleep(0.05)
    _progress_done()
    print("✔ Istio core installed ⛵️")
    print("✔ Istiod installed 🧠")
    print("✔ Installation complete")
    return 0


def _start_daemon(home: ClusterHome, node_netns: str) -> None:
    from meshlet.runtime._commands import which

    nsenter = which("nsenter") or "nsenter"
    env = dict(os.environ)
    with open(home.log_file, "ab") as log:
        process = subprocess.Popen(
            [
                nsenter,
                f"--net={node_netns}",
                sys.executable,
                "-m",
                "meshlet.daemon",
                "--home",
                str(home.root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            env=env,
            close_fds=True,
            start_new_session=True,
        )
    home.pid_file.write_text(f"{process.pid}\n")


def _daemon_pid(home: ClusterHome) -> int | None:
    """The daemon's pid when it runs (checked by its command line)."""
    try:
        pid = int(home.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError):
        return None
    if state == "Z" or b"meshlet.daemon" not in cmdline or str(home.root).encode() not in cmdline:
        return None
    return pid


def _stop_daemon(home: ClusterHome, client: ClusterClient, *, purge: bool) -> None:
    pid = _daemon_pid(home)
    if pid is None:
        return
    with contextlib.suppress(MeshletError):
        client.shutdown(purge=purge)
    if not purge:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _daemon_pid(home) == pid:
        time.sleep(0.05)
    if _daemon_pid(home) == pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _confirm(args: argparse.Namespace) -> None:
    if args.skip_confirmation:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            "uninstall --purge asks for confirmation and no terminal can answer: add -y"
        )
    print("All Istio resources will be pruned from the cluster")
    answer = input("Proceed? (y/N) ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("uninstall aborted")


def run_uninstall(args: argparse.Namespace) -> int:
    from meshlet.cluster.home import node_config_from_json
    from meshlet.daemon.kubelet import kill_leftovers, supervisor_pid
    from meshlet.runtime.network import NodeNetwork

    if not args.purge:
        raise UsageError(
            "meshlet uninstall needs --purge (meshlet has one revision: all of it goes)"
        )
    if getattr(args, "kubeconfig", None):
        _confirm(args)
        from meshlet.kube.cli import run_cluster_uninstall

        return run_cluster_uninstall(args)
    _require_root("uninstall")
    _confirm(args)
    home = _home()
    if not home.root.exists():
        print("✔ Uninstall complete")
        return 0
    _progress("Removing the local cluster")
    _stop_daemon(home, ClusterClient(home, timeout=STOP_TIMEOUT), purge=True)
    if home.pods_dir.is_dir():
        for pod_dir in sorted(home.pods_dir.iterdir()):
            pid = supervisor_pid(pod_dir)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            kill_leftovers(pod_dir)
    if home.node_file.exists():
        try:
            config = node_config_from_json(home.node_file.read_text())
        except (ValueError, KeyError) as error:
            raise MeshletError(
                f"{home.node_file} is unreadable ({error}); remove the node by hand"
            ) from None
        NodeNetwork(config).teardown()
    shutil.rmtree(home.root, ignore_errors=True)
    _progress_done()
    print("✔ Uninstall complete")
    return 0
