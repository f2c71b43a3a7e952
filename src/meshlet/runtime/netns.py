"""Entering a network namespace from a thread, so a socket can be opened there.

Theory of operation: ``setns(2)`` with ``CLONE_NEWNET`` moves the calling thread, and
only it, into another network namespace; a socket keeps the namespace it was created
in for its whole life. ``call_in_netns`` runs a function in a new short-lived thread
that first joins the namespace (Python 3.11 has no ``os.setns``: the call goes through
``ctypes``); the rest of the process never changes namespace. Sockets made that way can
then be served by the process's event loop as usual (the cluster DNS, the control
plane's listeners, probes and ``port-forward`` all reach pods like this, never from the
host's own namespace). Writes to ``/proc/sys/net/...`` from such a thread set the
namespace's sysctls without starting a process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from meshlet.runtime.errors import NodeRuntimeError

__all__ = [
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "NETNS_DIR",
    "call_in_netns",
    "netns_path",
    "open_socket_in_netns",
    "setns",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

T = TypeVar("T")


@functools.cache
def _lib() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_path(name: str) -> Path:
    """The file of a named network namespace (as ``ip netns add`` makes it)."""
    return NETNS_DIR / name


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace open at ``fd``."""
    if _lib().setns(fd, nstype) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def call_in_netns(path: str | Path, func: Callable[[], T], *, timeout: float = 30.0) -> T:
    """The result of ``func()`` called in a fresh thread inside the network namespace at
    ``path``; its exception is raised here."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise NodeRuntimeError(
            f"network namespace {path} cannot be opened: {error.strerror}"
        ) from None
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            setns(fd, CLONE_NEWNET)
            outcome.append(func())
        except BaseException as error:
            failure.append(error)

    try:
        thread = threading.Thread(target=body, name=f"netns:{path}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise NodeRuntimeError(f"work in network namespace {path} took over {timeout:g}s")
    finally:
        os.close(fd)
    if failure:
        raise failure[0]
    return outcome[0]


def open_socket_in_netns(
    path: str | Path,
    family: socket.AddressFamily = socket.AF_INET,
    kind: socket.SocketKind = socket.SOCK_STREAM,
    bind: tuple[str, int] | None = None,
    *,
    reuse_address: bool = True,
) -> socket.socket:
    """A socket of the namespace at ``path`` (bound to ``bind`` when given), non-blocking."""

    def make() -> socket.socket:
        sock = socket.socket(family, kind)
        try:
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if bind is not None:
                sock.bind(bind)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return call_in_netns(path, make)
