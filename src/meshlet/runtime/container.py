"""Containers of a pod: starting them, secret and ConfigMap volumes in kubelet's layout,
``exec`` and ``cp``.

Theory of operation: a container is a process started as
``python -m meshlet.runtime.enter SPEC`` (``meshlet.runtime.enter``), which joins the
pod's network namespace, makes its own mount namespace and then execs the command, so
the PID of the started process is the container's. Nothing here forks the calling
process with Python code between fork and exec (``subprocess`` without
``preexec_fn``), so a process that holds gRPC threads may call it.

``exec_in_container`` enters that PID's network and mount namespaces with ``nsenter``,
with the container's environment and gid; ``copy_into_container`` and
``copy_from_container`` go through ``/proc/PID/root``, which shows the container's own
view (its ``/tmp``, its volumes).

``write_secret_volume`` writes a volume the way kubelet's atomic writer does: the files
go into a new ``..<timestamp>.<random>`` directory, a ``..data_tmp`` symlink to it is
renamed over ``..data`` (one atomic step for readers), each top-level name is a
symlink ``name -> ..data/name``, and the previous directory is removed. A reader (the
proxy watching ``/etc/istio/tls-certs``) never sees a mix of old and new files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from meshlet.runtime._commands import which
from meshlet.runtime.containerspec import ContainerSpec, Mount
from meshlet.runtime.errors import NodeRuntimeError

__all__ = [
    "ContainerSpec",
    "Mount",
    "container_mounts",
    "copy_from_container",
    "copy_into_container",
    "enter_argv",
    "exec_argv",
    "exec_in_container",
    "start_container",
    "write_secret_volume",
]

_File = int | IO[Any] | None

DATA_DIR = "..data"


def container_mounts(
    container_dir: Path,
    *,
    resolv_conf: Path,
    hosts: Path,
    volumes: Sequence[Mount] = (),
) -> tuple[Path, list[Mount]]:
    """Make the container's private directories under ``container_dir`` and return its
    scratch directory and mounts: ``/tmp``, ``/etc/resolv.conf``, ``/etc/hosts`` and the
    volumes."""
    tmp = container_dir / "tmp"
    scratch = container_dir / "scratch"
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o1777)
    scratch.mkdir(parents=True, exist_ok=True)
    software = _software_under("/tmp")
    for path in software:  # its mount point, made in the container's own /tmp
        (tmp / os.path.relpath(path, "/tmp")).mkdir(parents=True, exist_ok=True)
    mounts = [
        Mount(str(tmp), "/tmp"),
        Mount(str(resolv_conf), "/etc/resolv.conf", read_only=True),
        Mount(str(hosts), "/etc/hosts", read_only=True),
        *(Mount(path, path, read_only=True) for path in software),
        *volumes,
    ]
    return scratch, mounts


def _software_under(masked: str) -> list[str]:
    """Where this Python and meshlet live, when that is below ``masked``.

    Containers run this machine's programs, the sidecar among them; a checkout or a
    virtual environment under ``/tmp`` would vanish behind the container's private
    ``/tmp``, so those directories are mounted back, read-only, at their own paths
    (for a checkout, its root: the samples and test programs beside the package).
    """
    import meshlet

    package_parent = Path(meshlet.__file__).resolve().parents[1]
    if package_parent.name == "src":  # a checkout: its samples and tests come along
        package_parent = package_parent.parent
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), str(package_parent)}
    prefix = masked.rstrip("/") + "/"
    below = sorted(root for root in roots if root.startswith(prefix))
    return [root for root in below if not any(root.startswith(b + "/") for b in below)]


def enter_argv(spec_file: Path) -> list[str]:
    """The command that starts the container described by ``spec_file``."""
    return [sys.executable, "-m", "meshlet.runtime.enter", str(spec_file)]


def _enter_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def start_container(
    spec: ContainerSpec,
    spec_file: Path,
    *,
    stdin: _File = subprocess.DEVNULL,
    stdout: _File = None,
    stderr: _File = None,
) -> subprocess.Popen[bytes]:
    """Write ``spec`` to ``spec_file`` and start the container; its PID is the process's."""
    spec_file.write_text(spec.to_json())
    return subprocess.Popen(
        enter_argv(spec_file),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd="/",
        env=_enter_env(),
        close_fds=True,
        start_new_session=True,
    )


# -- exec and cp -------------------------------------------------------------------------


def _container_env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError as error:
        raise NodeRuntimeError(f"container process {pid} is gone ({error.strerror})") from None
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _container_gid(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as error:
        raise NodeRuntimeError(f"container process {pid} is gone ({error.strerror})") from None
    for line in status.splitlines():
        if line.startswith("Gid:"):
            return int(line.split()[2])  # the effective gid
    raise NodeRuntimeError(f"/proc/{pid}/status has no Gid line")


def exec_argv(pid: int, argv: Sequence[str], *, gid: int | None = None) -> list[str]:
    """``nsenter`` into the container of ``pid`` (network and mount namespaces, its
    working directory, its gid) running ``argv``."""
    if not argv:
        raise ValueError("exec needs a command")
    nsenter = which("nsenter") or "nsenter"
    command = [nsenter, f"--target={pid}", "--net", "--mount", "--wd"]
    if gid is not None:
        command.append(f"--setgid={gid}")
    return [*command, "--", *argv]


def exec_in_container(
    pid: int,
    argv: Sequence[str],
    *,
    stdin: _File = None,
    stdout: _File = None,
    stderr: _File = None,
    timeout: float | None = None,
) -> int:
    """Run ``argv`` in the container of ``pid`` with its environment and gid; the
    command's exit code (127 when it is not found in the container)."""
    command = exec_argv(pid, argv, gid=_container_gid(pid))
    try:
        done = subprocess.run(
            command,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=_container_env(pid),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NodeRuntimeError(f"{argv[0]} did not finish within {timeout:g}s") from None
    return done.returncode


def _in_root(pid: int, path: str) -> Path:
    if not path.startswith("/"):
        path = "/" + path
    return Path(f"/proc/{pid}/root") / path.lstrip("/")


def copy_into_container(pid: int, source: Path, destination: str) -> str:
    """Copy a host file or directory into the container's own view of its filesystem
    (``kubectl cp`` to a pod); into ``destination`` when that is a directory. Returns
    the path written, as the container sees it."""
    target = _in_root(pid, destination)
    where = destination
    if target.is_dir():
        target = target / source.name
        where = destination.rstrip("/") + "/" + source.name
    if not source.exists():
        raise NodeRuntimeError(f"{source}: no such file or directory")
    if not target.parent.is_dir():
        raise NodeRuntimeError(
            f"{os.path.dirname(where) or '/'}: no such directory in the container"
        )
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)
    return where


def copy_from_container(pid: int, source: str, destination: Path) -> Path:
    """Copy a file or directory out of the container (``kubectl cp`` from a pod)."""
    origin = _in_root(pid, source)
    if not origin.exists():
        raise NodeRuntimeError(f"{source}: no such file or directory in the container")
    target = destination / origin.name if destination.is_dir() else destination
    if origin.is_dir():
        shutil.copytree(origin, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copyfile(origin, target)
    return target


# -- volumes -----------------------------------------------------------------------------


def _check_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or parts[0].startswith("..")
    ):
        raise ValueError(f"volume file name {key!r} must be a relative path without '..'")
    return key


def _current_files(directory: Path) -> dict[str, bytes] | None:
    data = directory / DATA_DIR
    if not data.is_symlink():
        return None
    found: dict[str, bytes] = {}
    root = data.resolve()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def write_secret_volume(
    directory: Path,
    files: Mapping[str, bytes],
    *,
    mode: int = 0o644,
    now: datetime | None = None,
) -> bool:
    """Make ``directory`` hold exactly ``files`` in kubelet's layout; False when it
    already did (nothing is touched then)."""
    for key in files:
        _check_key(key)
    directory.mkdir(parents=True, exist_ok=True)
    if _current_files(directory) == dict(files):
        return False
    stamp = (now or datetime.now(UTC)).strftime("..%Y_%m_%d_%H_%M_%S.")
    new = Path(tempfile.mkdtemp(prefix=stamp, dir=directory))
    new.chmod(0o755)
    for key, content in sorted(files.items()):
        path = new / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    data = directory / DATA_DIR
    old = os.readlink(data) if data.is_symlink() else None
    link = directory / (DATA_DIR + "_tmp")
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(new.name)
    link.rename(data)
    wanted = {key.split("/")[0] for key in files}
    for name in sorted(wanted):
        entry = directory / name
        if not entry.is_symlink():
            entry.symlink_to(f"{DATA_DIR}/{name}")
    for entry in sorted(directory.iterdir()):
        if (
            entry.is_symlink()
            and not entry.name.startswith("..")
            and entry.name not in wanted
            and os.readlink(entry).startswith(DATA_DIR + "/")
        ):
            entry.unlink()
    if old is not None and old != new.name and not old.startswith("/"):
        shutil.rmtree(directory / old, ignore_errors=True)
    return True
