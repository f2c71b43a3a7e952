"""The entry program of a container: ``python -m meshlet.runtime.enter SPEC.json``.

Theory of operation: started as a new process (never forked from a process that may
hold gRPC threads), it reads the spec, joins the pod's network namespace, makes a mount
namespace of its own with private propagation (so nothing it mounts reaches the host
or another container), and bind-mounts, parents before children: a per-container
directory at ``/tmp``, the pod's ``resolv.conf`` and ``hosts`` over ``/etc/resolv.conf``
and ``/etc/hosts``, and each volume's directory at its ``mountPath`` (the directory, not
its files, so kubelet's ``..data`` symlink swap stays visible).

A ``mountPath`` that does not exist on the host, such as ``/etc/istio/tls-certs``, is
made inside an overlay: a tmpfs at the spec's scratch directory holds the upper layer
of an overlayfs whose lower layer is the path's deepest existing ancestor (``/etc``);
mounts below that ancestor are moved onto the overlay and the overlay is moved onto the
ancestor. The directories appear for this container alone, and nothing is created on
the host's filesystem. The path's first component must exist on the host (an overlay of
``/`` itself is not made).

Then it changes to the working directory, takes gid ``spec.gid`` (uid stays 0) with no
supplementary groups, and execs the command with the spec's environment, so the
container's process is this process. Failures before the exec print one line to stderr
and exit 125 (setup), 126 (not executable) or 127 (command not found).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat
import sys

from meshlet.runtime.containerspec import ContainerSpec, Mount
from meshlet.runtime.netns import CLONE_NEWNET, CLONE_NEWNS, setns

__all__ = ["EXIT_NOT_EXECUTABLE", "EXIT_NOT_FOUND", "EXIT_SETUP_FAILED", "main"]

EXIT_SETUP_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class SetupError(Exception):
    pass


def _c(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    if _libc.mount(_c(source), _c(target), _c(fstype), flags, _c(data)) != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def _unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"unshare: {os.strerror(errno)}")


def _unescape(field: str) -> str:
    """A mount point from /proc/self/mountinfo (spaces and the like come octal-escaped)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _submounts(parent: str) -> list[str]:
    """The top-most mount points strictly below ``parent``, shallowest first."""
    with open("/proc/self/mountinfo") as info:
        points = sorted({_unescape(line.split()[4]) for line in info if line.strip()})
    below = [p for p in points if p.startswith(parent.rstrip("/") + "/")]
    top: list[str] = []
    for point in below:
        if not any(point.startswith(t + "/") for t in top):
            top.append(point)
    return top


class _MountNamespace:
    """Builds the container's view of the filesystem."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.scratch_fd: int | None = None  # the scratch tmpfs, reached by descriptor
        self.overlays: list[str] = []

    def _overlaid(self, path: str) -> bool:
        return any(path == root or path.startswith(root + "/") for root in self.overlays)

    def _overlay(self, ancestor: str) -> None:
        if any(c in ancestor for c in ",:\\"):
            raise SetupError(f"cannot overlay {ancestor}: the path has ',', ':' or '\\'")
        if self.scratch_fd is None:
            _mount("tmpfs", self.scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
            self.scratch_fd = os.open(self.scratch, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # The layers are reached through the descriptor, not the scratch path: the path
        # may lie below the ancestor (``/var`` holds ``/var/lib/meshlet``), where the
        # overlay hides it, and the scratch mount itself must stay where it is (moving
        # it into its own ``merged`` directory would be a loop).
        layer = f"/proc/self/fd/{self.scratch_fd}/{len(self.overlays)}"
        upper, work, merged = (f"{layer}/{d}" for d in ("upper", "work", "merged"))
        for directory in (upper, work, merged):
            os.makedirs(directory)
        options = f"lowerdir={ancestor},upperdir={upper},workdir={work}"
        _mount("overlay", merged, "overlay", 0, options)
        scratch = self.scratch.rstrip("/")
        for point in _submounts(ancestor):
            if point == scratch or point.startswith(scratch + "/"):
                continue
            _mount(point, merged + point[len(ancestor.rstrip("/")) :], None, MS_MOVE)
        _mount(merged, ancestor, None, MS_MOVE)
        self.overlays.append(ancestor)

    def ensure_target(self, target: str, directory: bool) -> str:
        """The path to mount on: ``target`` (through a symlink such as a host's
        ``/etc/resolv.conf``), made inside an overlay when it does not exist."""
        if os.path.lexists(target):
            real = os.path.realpath(target)
            if os.path.exists(real):
                return real
            target = real
        ancestor = os.path.dirname(target)
        while not os.path.isdir(ancestor):
            if os.path.lexists(ancestor):
                raise SetupError(f"cannot make {target}: {ancestor} is not a directory")
            ancestor = os.path.dirname(ancestor)
        if ancestor == "/":
            raise SetupError(
                f"cannot make {target}: its first directory does not exist on the host"
            )
        if not self._overlaid(ancestor):
            self._overlay(ancestor)
        if directory:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "a"):
                pass
        return target

    def bind(self, mount: Mount, source: int, target: str | None = None) -> None:
        """Bind the source (held open as an ``O_PATH`` descriptor, so a mount made
        earlier, such as ``/tmp``, cannot hide it) at the mount's target."""
        is_dir = stat.S_ISDIR(os.fstat(source).st_mode)
        if target is None:
            target = self.ensure_target(mount.target, is_dir)
        if is_dir != os.path.isdir(target):
            kind = "directory" if is_dir else "file"
            raise SetupError(f"cannot mount the {kind} {mount.source} on {mount.target}")
        _mount(f"/proc/self/fd/{source}", target, None, MS_BIND | MS_REC)
        if mount.read_only:
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _open_source(mount: Mount) -> int:
    try:
        return os.open(mount.source, os.O_PATH | os.O_CLOEXEC)
    except OSError as error:
        raise SetupError(f"volume source {mount.source}: {error.strerror}") from None


def setup(spec: ContainerSpec) -> None:
    """Join the pod's network namespace and build this container's mount namespace."""
    try:
        net = os.open(spec.netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise SetupError(f"pod network namespace {spec.netns}: {error.strerror}") from None
    try:
        setns(net, CLONE_NEWNET)
    except OSError as error:
        raise SetupError(str(error)) from None
    finally:
        os.close(net)
    _unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    namespace = _MountNamespace(spec.scratch_dir)
    ordered = spec.mounts_in_order()
    # Mount points first, while the host's paths (the scratch directory among them) are
    # all still visible; a mountPath inside another mount's is made when its turn comes.
    nested = {
        m.target
        for m in ordered
        if any(m.target.startswith(other.target.rstrip("/") + "/") for other in ordered)
    }
    sources = {m.target: _open_source(m) for m in ordered}
    targets = {
        m.target: namespace.ensure_target(
            m.target, stat.S_ISDIR(os.fstat(sources[m.target]).st_mode)
        )
        for m in ordered
        if m.target not in nested
    }
    for mount in ordered:
        namespace.bind(mount, sources[mount.target], targets.get(mount.target))
        os.close(sources[mount.target])


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    if len(args) != 1:
        print("usage: python -m meshlet.runtime.enter SPEC.json", file=sys.stderr)
        return EXIT_SETUP_FAILED
    try:
        with open(args[0]) as file:
            spec = ContainerSpec.from_json(file.read())
        setup(spec)
        os.chdir(spec.workdir)
        os.setgroups([])
        os.setresgid(spec.gid, spec.gid, spec.gid)
    except (SetupError, OSError, ValueError) as error:
        print(f"meshlet: container setup failed: {error}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(spec.argv[0], list(spec.argv), dict(spec.env))
    except FileNotFoundError:
        print(f"meshlet: {spec.argv[0]}: command not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as error:
        print(f"meshlet: {spec.argv[0]}: {error.strerror}", file=sys.stderr)
        return EXIT_NOT_EXECUTABLE


if __name__ == "__main__":
    sys.exit(main())
