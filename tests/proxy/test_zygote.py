"""The zygote the workers are forked from: what it imports, and its spawn/exit protocol."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

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


_FORKED = """
import asyncio, json, os
from meshlet.proxy._workers import WorkerStarter

starter = WorkerStarter()
starter.fork_zygote()
forked = starter._forked[0]
with open(f"/proc/{forked}/stat") as stat:
    parent = int(stat.read().rsplit(")", 1)[1].split()[1])

async def main():
    helped = await starter.spawn(["--help"])
    code = await helped.wait()
    first = starter._zygote.process
    first.kill()
    await first.wait()
    again = await starter.spawn(["--help"])
    code_again = await again.wait()
    second = starter._zygote.process.pid
    await starter.aclose()
    return {"parent": parent == os.getpid(), "codes": [code, code_again],
            "first": first.pid == forked, "replaced": second != forked}

print(json.dumps(asyncio.run(main())))
"""


def test_a_zygote_forked_from_the_agent_serves_and_is_replaced_when_it_dies() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FORKED], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "parent": True,  # a child of the agent, not a new interpreter
        "codes": [0, 0],
        "first": True,
        "replaced": True,  # by a new interpreter (the running agent is not forked again)
    }


def test_a_process_with_threads_is_not_forked() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        with pytest.raises(RuntimeError, match="single-threaded"):
            WorkerStarter().fork_zygote()
    finally:
        release.set()
        thread.join()


_RELEASED = """
import asyncio, json, os, signal, sys, tempfile
from meshlet.proxy._workers import WorkerStarter
from meshlet.proxy.worker import WorkerOptions

starter = WorkerStarter(adopt_workers=True)
starter.fork_zygote()
folder = tempfile.mkdtemp()

def parent_of(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])

async def main():
    options = WorkerOptions(
        worker_id=0, node_id="sidecar~127.0.0.1~a.test~test.svc.cluster.local",
        xds_socket=f"{folder}/XDS", sds_socket=f"{folder}/socket",
        control_socket=f"{folder}/worker-0.sock", drain_seconds=0.2, access_log=None,
        agent_pid=os.getpid(),
    )
    worker = await starter.spawn(options=options.to_json(), log_level="warning")
    zygote = starter._zygote.process.pid
    before = parent_of(worker.pid)
    await starter.release()
    gone = not os.path.exists(f"/proc/{zygote}")
    await asyncio.sleep(1.5)  # past the worker's check of its parent
    after = parent_of(worker.pid)
    if sys.argv[1] == "agent-dies":
        print(json.dumps({"worker": worker.pid}), flush=True)
        os._exit(0)
    worker.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(worker.wait(), 10)
    await starter.aclose()
    return {"before": before == zygote, "zygote_gone": gone, "adopted": after == os.getpid(),
            "code": code}

import uvloop
run = uvloop.run if sys.argv[2] == "uvloop" else asyncio.run
print(json.dumps(run(main())), flush=True)
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_released_zygote_leaves_its_workers_to_the_agent(loop: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RELEASED, "stop", loop],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    [line] = [line for line in done.stdout.splitlines() if line.startswith('{"before"')]
    assert json.loads(line) == {
        "before": True,  # forked by the zygote
        "zygote_gone": True,
        "adopted": True,  # the agent (a subreaper) is its parent now, and it kept running
        "code": 0,  # reaped by the agent itself: SIGTERM drains and exits 0
    }


def test_an_adopted_worker_ends_with_its_agent() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RELEASED, "agent-dies", "uvloop"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    [line] = [line for line in done.stdout.splitlines() if line.startswith('{"worker"')]
    worker = json.loads(line)["worker"]
    deadline = time.monotonic() + 15
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{worker}/stat").read_text(errors="replace")
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            break  # ended; a zombie until its new parent reaps it
        time.sleep(0.1)
    else:
        assert not Path(f"/proc/{worker}").exists(), "the worker outlived its agent"
