"""``meshlet cp SRC DST [-c C]``: kubectl's cp, in either direction.

One side is local, the other ``[NAMESPACE/]POD:PATH`` (the namespace defaults to
``-n``). The file or directory is written into, or read from, the container's own
view of its filesystem (its ``/tmp``, its volumes) through ``/proc/PID/root`` of its
main process, so another pod or the host does not see it. A directory as the
destination receives the source under its own name.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from meshlet.cli import _cluster, _pods
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.kubectl.messages import KubectlError
from meshlet.runtime import container as runtime
from meshlet.runtime.errors import NodeRuntimeError

__all__ = ["FileSpec", "parse_file_spec", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cp", help="copy files to and from containers", description=__doc__
    )
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DST")
    parser.add_argument("-c", "--container", help="the container (default: the pod's default)")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A side of ``cp``: a local path, or a path in ``namespace/pod``."""

    path: str
    pod: str | None = None
    namespace: str | None = None


def parse_file_spec(text: str) -> FileSpec:
    """``/local/file``, ``pod:/path`` or ``ns/pod:/path``, as kubectl reads them."""
    if ":" not in text:
        return FileSpec(text)
    if text.startswith(("/", "./", "../")) or text.startswith("~"):
        return FileSpec(text)
    remote, _, path = text.partition(":")
    if not path:
        raise KubectlError("filespec must match the canonical format: [[namespace/]pod:]file/path")
    namespace, slash, pod = remote.partition("/")
    if not slash:
        return FileSpec(path, pod=remote)
    if not namespace or not pod or "/" in pod:
        raise KubectlError("filespec must match the canonical format: [[namespace/]pod:]file/path")
    return FileSpec(path, pod=pod, namespace=namespace)


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    source = parse_file_spec(args.source)
    destination = parse_file_spec(args.destination)
    if (source.pod is None) == (destination.pod is None):
        if source.pod is None:
            raise KubectlError("one of src or dest must be a remote file specification")
        raise KubectlError("one of src or dest must be a local file specification")
    remote = source if source.pod is not None else destination
    assert remote.pod is not None
    namespace = remote.namespace or namespace_of(args)
    client = _cluster.open_client()
    pod = _pods.find_pod(client, namespace, remote.pod)
    chosen = _pods.default_container(pod, args.container, quiet=False)
    located = client.locate(namespace, str(pod["metadata"]["name"]), chosen)
    pid = int(located["pid"])
    try:
        if remote is destination:
            local = Path(source.path)
            if not local.exists():
                raise KubectlError(f"{source.path} doesn't exist in local filesystem")
            runtime.copy_into_container(pid, local, destination.path)
        else:
            runtime.copy_from_container(pid, source.path, Path(destination.path))
    except NodeRuntimeError as error:
        raise KubectlError(error.message) from None
    except OSError as error:
        raise KubectlError(
            f"{error.filename or ''}: {(error.strerror or str(error)).lower()}"
        ) from None
    return 0
