"""``python -m meshlet.proxy.zygote``: the small parent the sidecar's workers are forked from.

Theory of operation
-------------------
Every worker needs the same large set of modules (uvloop, the Envoy protos, the data
path, ``cryptography``). Started as new interpreters, each worker holds its own copy of
all of them. Instead the workers are forked from this small parent, which imported the
data path (``DATA_PATH_MODULES``, ``meshlet.proxy.worker`` among them) and nothing of
gRPC's threads, so the workers' copies of those modules are the zygote's pages, shared
until written.

The zygote itself comes from one of two places:

- ``fork_from_agent``: the agent forks it while it is still one thread with no event
  loop (before its gRPC servers start), so the zygote *and* the agent share the pages
  of everything both import (asyncio, uvloop, protobuf, ``cryptography``, the proxy's
  modules): one copy of them for the whole sidecar;
- ``python -m meshlet.proxy.zygote --control-fd FD``: a new interpreter, which the agent
  starts when a worker must be started again and that zygote is gone (a fork of the
  running, threaded agent would not be safe).

Once the workers run, the agent lets the zygote go (``WorkerStarter.release``): its
pages would only be one more copy of what every worker has written to. The workers
become the agent's children (it is a child subreaper) and keep serving.

Before serving, it collects and freezes its objects (``gc.freeze``): a worker's
collections then never walk them, which would write to every page holding one (that
alone split about 5 MB of shared pages per worker). A worker writes to the zygote's
pages anyway where it changes reference counts and warms up bytecode, so each still
copies about 7 MB of them.

The zygote is single-threaded and runs no event loop, so a fork here is safe. It talks
to the agent over one stream socket (``--control-fd``), a JSON object per line:

- agent → zygote: ``{"spawn": ID, "worker": OPTIONS, "log_level": LEVEL}``, the
  worker's ``WorkerOptions`` as JSON (``{"spawn": ID, "argv": [...]}``, a command line
  of ``python -m meshlet.proxy.worker``, is taken too);
- zygote → agent: ``{"spawned": ID, "pid": PID}`` once forked, and
  ``{"exited": PID, "code": CODE}`` when a worker ends (``CODE`` is its exit status,
  or minus the signal that ended it, as ``subprocess`` reports it).

Each child imports nothing more after the fork: it runs ``meshlet.proxy.worker.serve``
(or ``main`` with the command line).

When the agent closes the socket or dies (``PR_SET_PDEATHSIG``), or on SIGTERM, the
zygote exits. Its workers do not end with it: they end with the agent (see
``meshlet.proxy.worker``).
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
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = [
    "DATA_PATH_MODULES",
    "WORKER_NAME",
    "fork_from_agent",
    "import_data_path",
    "main",
    "name_process",
    "status_code",
]

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
    "meshlet.proxy.http2",  # else loaded by each worker on its first HTTP/2 connection
    "meshlet.proxy.worker",  # with its xDS and SDS clients (gRPC by ``grpc_stream``)
)

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
WORKER_NAME = b"meshlet-worker"


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def name_process(name: bytes) -> None:
    """Set this process's name (``/proc/PID/comm``, what ``ps`` and ``top`` show; 15
    bytes at most): a worker forked from the zygote would otherwise carry the zygote's
    command line, or the agent's."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0)


def status_code(status: int) -> int:
    """A ``waitpid`` status as ``subprocess`` reports it (minus the signal)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else status


def import_data_path() -> None:
    """Import what a worker serves traffic with (idempotent)."""
    import importlib

    for name in DATA_PATH_MODULES:
        importlib.import_module(name)


def _serve(control: socket.socket) -> None:
    _die_with_parent()
    control.setblocking(True)
    import_data_path()
    gc.collect()
    gc.freeze()
    _Zygote(control).serve()


def fork_from_agent() -> tuple[int, socket.socket]:
    """Fork a zygote from the calling process: its pid and the agent's end of the control
    socket. Only while the caller is single-threaded and runs no event loop."""
    import threading

    if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
        raise RuntimeError("the zygote can be forked only from a single-threaded process")
    import_data_path()
    # Frozen in the agent too: its own full collections then leave the pages it shares
    # with the zygote alone.
    gc.collect()
    gc.freeze()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        ours.close()
        _exit_after(lambda: _serve(theirs))
    theirs.close()
    return pid, ours


def _exit_after(run: Callable[[], None]) -> NoReturn:
    code = 0
    try:
        run()
    except BaseException:  # a forked child must never return into its parent's code
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def _run_worker(
    control: socket.socket, wakeup: tuple[int, int], request: dict[str, object]
) -> None:
    """In the forked child: become a worker; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        control.close()
        for fd in wakeup:
            os.close(fd)
        name_process(WORKER_NAME)
        from meshlet.proxy import worker

        if "worker" in request:
            options = worker.WorkerOptions.from_json(str(request["worker"]))
            code = worker.serve(options, str(request.get("log_level") or "info"))
        else:
            argv = request["argv"]
            code = worker.main([str(a) for a in argv] if isinstance(argv, list) else [])
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
                ident = request["spawn"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(request, dict) and ("worker" in request or "argv" in request):
                self._spawn(ident, request)
        return True

    def _spawn(self, ident: object, request: dict[str, object]) -> None:
        gc.collect()
        pid = os.fork()
        if pid == 0:
            _run_worker(self.control, self.wakeup, request)
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
                self.send({"exited": pid, "code": status_code(status)})


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "--control-fd":
        print("usage: python -m meshlet.proxy.zygote --control-fd FD", file=sys.stderr)
        return 2
    _serve(socket.socket(fileno=int(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
