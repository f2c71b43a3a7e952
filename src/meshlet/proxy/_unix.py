"""Unix socket paths that may be longer than a socket address allows.

A socket address holds at most 107 bytes; a pod's or a test's directory can be deeper.
``UnixPath(path).address`` is the path itself when it fits, else an alias through
``/proc/self/fd/N`` of the directory (kept open until ``close``), which names the same
file for binding and for connecting.
"""

from __future__ import annotations

import os

__all__ = ["UnixPath"]

_MAX_UNIX_PATH = 107


class UnixPath:
    """A socket path and the address to bind or connect to it by."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._fd: int | None = None
        if len(os.fsencode(self.path)) <= _MAX_UNIX_PATH:
            self.address = self.path
        else:
            self._fd = os.open(os.path.dirname(self.path), os.O_PATH | os.O_DIRECTORY)
            self.address = f"/proc/self/fd/{self._fd}/{os.path.basename(self.path)}"

    @property
    def grpc_target(self) -> str:
        return f"unix:{self.address}"

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
