"""The agent's side of the zygote (``meshlet.proxy.zygote``): worker processes by request.

``WorkerStarter.spawn(argv)`` asks the zygote to fork a worker with that command line and
returns a ``ForkedWorker``: its pid, ``returncode`` (``None`` while it runs),
``send_signal``, ``kill`` and ``await wait()``, as ``asyncio.subprocess.Process`` has
them. The zygote is started on the first request (and again if it has died) as a new
process, never a fork of the agent; when it dies, every worker it had counts as ended
(code -1) and is started again by the agent's supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

__all__ = ["ForkedWorker", "WorkerStarter"]

log = logging.getLogger("meshlet.proxy.sidecar")


class ForkedWorker:
    """One worker forked by the zygote (a grandchild of the agent)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.get_running_loop().create_future()

    def _set_exited(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        return int(await asyncio.shield(self._exited))


class _Zygote:
    def __init__(self, process: asyncio.subprocess.Process, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:  # fmt: skip
        self.process = process
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future[int]] = {}
        self.workers: dict[int, ForkedWorker] = {}
        self.early_exits: dict[int, int] = {}
        self.task: asyncio.Task[None] | None = None

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
                worker._set_exited(-1)
            self.workers.clear()

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and self.task is not None and not self.task.done()


class WorkerStarter:
    """Starts workers by forking them from the zygote (see the module docstring)."""

    def __init__(self) -> None:
        self._zygote: _Zygote | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def _start_zygote(self) -> _Zygote:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.set_inheritable(theirs.fileno(), True)
            # close_fds=False lets Python use posix_spawn (every other fd it opens is
            # close-on-exec): no fork of this gRPC process.
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "meshlet.proxy.zygote",
                "--control-fd", str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL, close_fds=False,
            )  # fmt: skip
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        zygote = _Zygote(process, reader, writer)
        zygote.task = asyncio.get_running_loop().create_task(zygote.listen(), name="zygote")
        log.info("zygote started (pid %d)", process.pid)
        return zygote

    async def spawn(self, argv: Sequence[str]) -> ForkedWorker:
        """Fork a worker running ``meshlet.proxy.worker.main(argv)``."""
        async with self._lock:
            zygote = self._zygote
            if zygote is None or not zygote.alive:
                if zygote is not None:
                    await self._close(zygote)
                zygote = self._zygote = await self._start_zygote()
        ident = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        zygote.pending[ident] = future
        zygote.writer.write(json.dumps({"argv": list(argv), "spawn": ident}).encode() + b"\n")
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
