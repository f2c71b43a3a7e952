"""``meshlet logs [-f] [-c C] [--tail N] POD|TYPE/NAME``: a container's output.

The cluster says which file the container's stdout and stderr go to
(``logs_path``); it is read here. ``-f`` keeps reading as the file grows (and from
the start again when a restarted container's log is made anew) until interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from typing import BinaryIO

from meshlet.cli import _cluster, _pods
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.kubectl.messages import KubectlError

__all__ = ["register", "run", "tail_lines"]

POLL_SECONDS = 0.2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("logs", help="print a container's logs", description=__doc__)
    parser.add_argument("pod", metavar="POD|TYPE/NAME")
    parser.add_argument("-c", "--container", help="the container (default: the pod's default)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    parser.add_argument("--tail", type=int, default=-1, help="only the last N lines (-1: all)")
    add_namespace_flag(parser)
    parser.set_defaults(run=run)


def tail_lines(data: bytes, count: int) -> bytes:
    """The last ``count`` lines of ``data`` (all when ``count`` < 0)."""
    if count < 0:
        return data
    if count == 0:
        return b""
    kept: deque[bytes] = deque(data.splitlines(keepends=True), maxlen=count)
    return b"".join(kept)


def _follow(handle: BinaryIO, path: str, out: BinaryIO) -> None:
    inode = os.fstat(handle.fileno()).st_ino
    while True:
        chunk = handle.read(64 * 1024)
        if chunk:
            out.write(chunk)
            out.flush()
            continue
        time.sleep(POLL_SECONDS)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            continue
        if current.st_ino != inode or current.st_size < handle.tell():
            handle.close()
            handle = open(path, "rb")  # noqa: SIM115 - replaced as the log is made anew
            inode = os.fstat(handle.fileno()).st_ino


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    client = _cluster.open_client()
    pod = _pods.find_pod(client, namespace, args.pod)
    name = str(pod["metadata"]["name"])
    chosen = _pods.default_container(pod, args.container, quiet=False)
    path = client.logs_path(namespace, name, chosen)
    out = sys.stdout.buffer
    try:
        handle = open(path, "rb")  # noqa: SIM115 - kept open while following
    except FileNotFoundError:
        raise KubectlError(
            f'container "{chosen}" in pod "{name}" is waiting to start: ContainerCreating',
            reason="BadRequest",
        ) from None
    with handle:
        out.write(tail_lines(handle.read(), args.tail))
        out.flush()
        if args.follow:
            _follow(handle, path, out)
    return 0
