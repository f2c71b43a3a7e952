"""``python -m meshlet.proxy.zygote``: the small parent the sidecar's workers are forked from.

Theory of operation
-------------------
Every worker needs the same large set of modules (uvloop, the Envoy protos, the data
path, ``cryptography``). Started as new interpreters, each worker holds its own copy of
all of them. The agent instead starts this process once (``posix_spawn``, never a fork
of the agent, which runs gRPC threads). It imports the data path and nothing of gRPC,
and then forks one child per worker, on request. (``gc.freeze`` before the fork was
tried: no measurable gain in PSS, and keep-alive throughput looked lower.) The workers' copies of those modules are the zygote's pages, shared until
written. Each child imports what only a worker needs (the gRPC clients of the agent's
local xDS and SDS sockets) after the fork and runs ``meshlet.proxy.worker.main``.

The zygote is single-threaded and runs no event loop, so a fork here is safe. It talks
to the agent over one stream socket (``--control-fd``), a JSON object per line:

- agent → zygote: ``{"spawn": ID, "argv": [...]}``, the worker's command line;
- zygote → agent: ``{"spawned": ID, "pid": PID}`` once forked, and
  ``{"exited": PID, "code": CODE}`` when a worker ends (``CODE`` is its exit status,
  or minus the signal that ended it, as ``subprocess`` reports it).

When the agent closes the socket or dies (``PR_SET_PDEATHSIG``), or on SIGTERM, the
zygote exits; the workers see their parent go and drain (their own death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import selectors
import signal
import socket
import sys
from collections.abc import Sequence

__all__ = ["DATA_PATH_MODULES", "main"]

#: What the zygote imports before it forks: everything a worker serves traffic with,
#: and nothing that starts threads (gRPC stays out).
DATA_PATH_MODULES = (
    "asyncio",
    "uvloop",
    "meshlet.proxy.runtime",
    "meshlet.proxy.access_log",
    "meshlet.proxy.limits",
    "meshlet.proxy.metrics",
    "meshlet.proxy._http",
    "meshlet.proxy._logging",
    "meshlet.pilot.secrets",
)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else status


def _run_worker(control: socket.socket, wakeup: tuple[int, int], argv: list[str]) -> None:
    """In the forked child: become a worker; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        control.close()
        for fd in wakeup:
            os.close(fd)
        from meshlet.proxy import worker

        code = worker.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # a child must never return into the zygote's loop
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class _Zygote:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: set[int] = set()
        self._buffer = b""
        self.wakeup = os.pipe()
        for fd in self.wakeup:
            os.set_blocking(fd, False)
        self.stopping = False

    def send(self, message: dict[str, object]) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(json.dumps(message, sort_keys=True).encode() + b"\n")

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wakeup[1])
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        with selectors.DefaultSelector() as selector:
            selector.register(self.control, selectors.EVENT_READ, "control")
            selector.register(self.wakeup[0], selectors.EVENT_READ, "signal")
            while not self.stopping:
                for key, _ in selector.select(timeout=1.0):
                    if key.data == "signal":
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.wakeup[0], 512)
                    elif not self._read():
                        self.stopping = True
                self._reap()

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _read(self) -> bool:
        try:
            data = self.control.recv(65536)
        except InterruptedError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
                ident, argv = request["spawn"], [str(a) for a in request["argv"]]
            except (ValueError, KeyError, TypeError):
                continue
            self._spawn(ident, argv)
        return True

    def _spawn(self, ident: object, argv: list[str]) -> None:
        gc.collect()
        pid = os.fork()
        if pid == 0:
            _run_worker(self.control, self.wakeup, argv)
        self.children.add(pid)
        self.send({"spawned": ident, "pid": pid})

    def _reap(self) -> None:
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == pid:
                self.children.discard(pid)
                self.send({"exited": pid, "code": _status_code(status)})


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "--control-fd":
        print("usage: python -m meshlet.proxy.zygote --control-fd FD", file=sys.stderr)
        return 2
    _die_with_parent()
    control = socket.socket(fileno=int(args[1]))
    control.setblocking(True)
    import importlib

    for name in DATA_PATH_MODULES:
        importlib.import_module(name)
    gc.collect()
    _Zygote(control).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
