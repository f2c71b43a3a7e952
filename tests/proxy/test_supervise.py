"""The agent's worker supervision, with a scripted worker starter (no processes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from meshlet.proxy.sidecar import Sidecar, SidecarOptions, _WorkerProcess


class _IdleWorker:
    """A started worker that runs until the test ends."""

    pid = 4242
    returncode: int | None = None

    async def wait(self) -> int:
        await asyncio.Event().wait()
        return 0


class _FlakyStarter:
    """Fails the first start with an error nobody planned for, then starts workers."""

    def __init__(self) -> None:
        self.calls = 0
        self.released = 0

    async def spawn(
        self, argv: Sequence[str] = (), *, options: str | None = None, log_level: str = "info"
    ) -> _IdleWorker:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("the zygote answered something unexpected")
        return _IdleWorker()

    async def release(self) -> None:
        self.released += 1


async def test_a_worker_supervisor_survives_an_unexpected_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    starter = _FlakyStarter()
    options = SidecarOptions(node_id="sidecar~127.0.0.1~w.test~test.svc.cluster.local",
                             xds_address="127.0.0.1:1", run_dir=str(tmp_path))  # fmt: skip
    sidecar = Sidecar(options, starter=starter)  # type: ignore[arg-type]
    worker = _WorkerProcess(worker_id=0, control=str(tmp_path / "worker-0"))
    sidecar.workers = [worker]
    caplog.set_level(logging.WARNING)
    task = asyncio.get_running_loop().create_task(sidecar._supervise(worker))
    try:
        async with asyncio.timeout(5):
            while worker.process is None:
                await asyncio.sleep(0.05)
        assert starter.calls == 2
        assert isinstance(worker.process, _IdleWorker)
        assert starter.released == 1  # every worker runs: the zygote may go
        assert "could not be started: RuntimeError" in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
