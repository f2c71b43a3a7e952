"""The zygote the workers are forked from: what it imports, and its spawn/exit protocol."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from meshlet.proxy._workers import WorkerStarter
from meshlet.proxy.zygote import DATA_PATH_MODULES


def test_the_data_path_imports_no_grpc() -> None:
    """The zygote forks after importing these: gRPC must not be among what they pull in."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {DATA_PATH_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('grpc', 'kubernetes_asyncio', 'aiohttp'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []


async def test_workers_are_forked_and_their_exit_codes_reported() -> None:
    starter = WorkerStarter()
    try:
        # a worker command line that ends at once: --help (exit 0), a missing flag (exit 2)
        helped = await starter.spawn(["--help"])
        broken = await starter.spawn(["--worker-id", "0"])
        assert helped.pid != broken.pid
        async with asyncio.timeout(30):
            assert await helped.wait() == 0
            assert await broken.wait() == 2
        assert (helped.returncode, broken.returncode) == (0, 2)
    finally:
        await starter.aclose()


async def test_a_dead_zygote_is_started_again() -> None:
    starter = WorkerStarter()
    try:
        first = await starter.spawn(["--help"])
        async with asyncio.timeout(30):
            await first.wait()
        zygote = starter._zygote
        assert zygote is not None
        zygote.process.kill()
        await zygote.process.wait()
        second = await starter.spawn(["--help"])
        assert starter._zygote is not zygote
        async with asyncio.timeout(30):
            assert await second.wait() == 0
    finally:
        await starter.aclose()
