"""The agent's side of the zygote (``meshlet.proxy.zygote``): worker processes by request.

``WorkerStarter.spawn(options=WorkerOptions.to_json(), log_level=…)`` (or
``spawn(argv)``, a command line) asks the zygote to fork a worker and returns a
``ForkedWorker``: its pid, ``returncode`` (``None`` while it runs), ``send_signal``,
``kill`` and ``await wait()``, as ``asyncio.subprocess.Process`` has them.

Where the zygote comes from: ``fork_zygote()``, called by the agent before its event
loop starts (one thread, no gRPC server yet), forks it from the agent, so that agent,
zygote and workers share the pages of the modules they all import. Otherwise, and
whenever the zygote has died, the first request starts one as a new process
(``python -m meshlet.proxy.zygote``).

The zygote is needed only while workers are being started: once they run, its pages
are one more copy of what each worker has written to (about 7 MB). ``release()`` lets
it exit. The agent is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so the workers
of a zygote that ends become the agent's own children; they keep serving, and the
agent learns of their end from a pidfd and reaps them itself. (Without the subreaper
they would be orphans and end; then ``release`` keeps the zygote, and a worker whose
zygote dies counts as ended, code -1.) A worker started later (one that died) comes
from a new zygote, released in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Protocol

from meshlet.proxy import zygote as zygote_module

__all__ = ["ForkedWorker", "WorkerStarter"]

log = logging.getLogger("meshlet.proxy.sidecar")


_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    """Make this process the parent of its orphaned descendants; whether that worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class ForkedWorker:
    """One worker forked by the zygote (a grandchild of the agent, later its child)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.get_running_loop().create_future()
        self._pidfd: int | None = None

    def _set_exited(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)
        self._stop_watching()

    def _watch(self) -> None:
        """Its zygote is gone: learn of its end here (a pidfd) and reap it (it is this
        process's child by now, or will be, as this process is a subreaper)."""
        if self.returncode is not None or self._pidfd is not None:
            return
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:  # already gone, and reaped by the zygote before it ended
            self._set_exited(-1)
            return
        asyncio.get_running_loop().add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        try:
            done, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # not adopted by this process: its code is unknown
            self._set_exited(-1)
            return
        if done == self.pid:
            self._set_exited(zygote_module.status_code(status))
        else:  # ended, not adopted yet (its zygote is still exiting): look again soon
            self._stop_watching()
            asyncio.get_running_loop().call_later(0.05, self._reap)

    def _stop_watching(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        return int(await asyncio.shield(self._exited))


class _Process(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...


class _ForkedZygote:
    """The zygote forked from this process: a child no event loop watches, so it is
    reaped here (``waitpid``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._code: int | None = None

    @property
    def returncode(self) -> int | None:
        if self._code is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                done, status = self.pid, 0
            if done == self.pid:
                self._code = zygote_module.status_code(status)
        return self._code

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        while (code := self.returncode) is None:
            await asyncio.sleep(0.05)
        return code


class _Zygote:
    def __init__(self, process: _Process, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:  # fmt: skip
        self.process = process
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future[int]] = {}
        self.workers: dict[int, ForkedWorker] = {}
        self.early_exits: dict[int, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.adopts_orphans = False  # its workers become the agent's children when it ends

    async def listen(self) -> None:
        try:
            while line := await self.reader.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "spawned" in message:
                    future = self.pending.pop(int(message["spawned"]), None)
                    if future is not None and not future.done():
                        future.set_result(int(message["pid"]))
                elif "exited" in message:
                    pid, code = int(message["exited"]), int(message["code"])
                    worker = self.workers.pop(pid, None)
                    if worker is None:
                        self.early_exits[pid] = code
                    else:
                        worker._set_exited(code)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(OSError("the zygote ended"))
            for worker in self.workers.values():
                if self.adopts_orphans:
                    worker._watch()
                else:
                    worker._set_exited(-1)
            self.workers.clear()

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and self.task is not None and not self.task.done()


class WorkerStarter:
    """Starts workers by forking them from the zygote (see the module docstring).

    ``adopt_workers``: this process becomes a child subreaper (for the whole process: only
    the sidecar's agent should), so that ``release`` can let the zygote go.
    """

    def __init__(self, *, adopt_workers: bool = False) -> None:
        self._zygote: _Zygote | None = None
        self._forked: tuple[int, socket.socket] | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._adopt_workers = adopt_workers
        self._subreaper: bool | None = None

    def _adopts_orphans(self) -> bool:
        if not self._adopt_workers:
            return False
        if self._subreaper is None:
            self._subreaper = _become_subreaper()
        return self._subreaper

    def fork_zygote(self) -> None:
        """Fork the zygote from this process now, to be used by the first ``spawn``.

        Only before the event loop starts and while this process has one thread
        (``RuntimeError`` otherwise): what this process imported until now is then shared
        with the zygote and every worker.
        """
        if self._forked is not None or self._zygote is not None:
            raise RuntimeError("the zygote is started already")
        self._adopts_orphans()
        self._forked = zygote_module.fork_from_agent()

    async def _adopt_forked(self, pid: int, ours: socket.socket) -> _Zygote:
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        zygote = _Zygote(_ForkedZygote(pid), reader, writer)
        zygote.adopts_orphans = self._adopts_orphans()
        zygote.task = asyncio.get_running_loop().create_task(zygote.listen(), name="zygote")
        log.info("zygote forked (pid %d)", pid)
        return zygote

    async def _start_zygote(self) -> _Zygote:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.set_inheritable(theirs.fileno(), True)
            # A new interpreter: the child of this threaded process runs no Python before
            # its exec (posix_spawn on the default loop; libuv's fork-and-exec on uvloop).
            # close_fds=False keeps the control socket (every other fd is close-on-exec).
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "meshlet.proxy.zygote",
                "--control-fd", str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL, close_fds=False,
            )  # fmt: skip
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        zygote = _Zygote(process, reader, writer)
        zygote.adopts_orphans = self._adopts_orphans()
        zygote.task = asyncio.get_running_loop().create_task(zygote.listen(), name="zygote")
        log.info("zygote started (pid %d)", process.pid)
        return zygote

    async def spawn(
        self, argv: Sequence[str] = (), *, options: str | None = None, log_level: str = "info"
    ) -> ForkedWorker:
        """Fork a worker: ``meshlet.proxy.worker.serve`` with ``options`` (``WorkerOptions``
        as JSON) when given, else ``meshlet.proxy.worker.main(argv)``."""
        async with self._lock:
            zygote = self._zygote
            if zygote is None and self._forked is not None:
                forked, self._forked = self._forked, None
                zygote = self._zygote = await self._adopt_forked(*forked)
            if zygote is None or not zygote.alive:
                if zygote is not None:
                    await self._close(zygote)
                zygote = self._zygote = await self._start_zygote()
        ident = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        zygote.pending[ident] = future
        request: dict[str, object] = {"spawn": ident}
        if options is not None:
            request.update(worker=options, log_level=log_level)
        else:
            request["argv"] = list(argv)
        zygote.writer.write(json.dumps(request, sort_keys=True).encode() + b"\n")
        await zygote.writer.drain()
        async with asyncio.timeout(30):
            pid = await future
        worker = ForkedWorker(pid)
        early = zygote.early_exits.pop(pid, None)
        if early is not None:
            worker._set_exited(early)
        else:
            zygote.workers[pid] = worker
        return worker

    async def release(self) -> None:
        """Let the zygote exit: the workers it forked run on as this process's children
        (see the module docstring). Kept when this process cannot adopt them, or while a
        worker is being started."""
        async with self._lock:
            zygote = self._zygote
            if zygote is None or not zygote.adopts_orphans or zygote.pending:
                return
            self._zygote = None
        await self._close(zygote)
        log.info("zygote released: the workers run on")

    async def _close(self, zygote: _Zygote) -> None:
        zygote.writer.close()
        with contextlib.suppress(Exception):
            await zygote.writer.wait_closed()
        try:
            async with asyncio.timeout(3):
                await zygote.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                zygote.process.kill()
            await zygote.process.wait()
        if zygote.task is not None:
            zygote.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await zygote.task

    async def aclose(self) -> None:
        """Stop the zygote (the workers are the caller's to stop first)."""
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            await self._close(zygote)
        forked, self._forked = self._forked, None
        if forked is not None:  # never used: closing its socket ends it
            pid, ours = forked
            ours.close()
            process = _ForkedZygote(pid)
            try:
                async with asyncio.timeout(3):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
