"""``python -m meshlet.agent`` as its own process, against the real CA."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pytest
from cryptography import x509

from tests.agent.conftest import SPIFFE_ID, RunningCA
from tests.agent.sds_client import SDSClient, chain_of

pytestmark = pytest.mark.integration


async def test_agent_process_serves_and_stops_on_sigterm(ca: RunningCA, pod_dir: Path) -> None:
    socket = pod_dir / "var/run/secrets/workload-spiffe-uds/socket"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshlet.agent",
        "--pod-name=httpbin-0",
        "--namespace=test",
        "--service-account=httpbin",
        f"--ca-address={ca.address}",
        f"--root-cert={pod_dir}/var/run/secrets/istio/root-cert.pem",
        f"--token={pod_dir}/var/run/secrets/tokens/istio-token",
        f"--root-dir={pod_dir}",
        "--ecdsa",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(20):
            while not socket.exists():
                await asyncio.sleep(0.05)
        async with SDSClient(str(socket)) as client:
            client.send(["default"])
            secrets = await client.receive_until(lambda s: "default" in s, deadline=20)
        leaf = x509.load_pem_x509_certificates(chain_of(secrets["default"]))[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE_ID]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        assert not socket.exists()
        assert b"PRIVATE KEY" not in stderr
    finally:
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(Exception):
                await process.wait()


async def test_agent_process_reports_a_missing_root(pod_dir: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshlet.agent",
        "--pod-name=httpbin-0",
        "--namespace=test",
        "--service-account=httpbin",
        f"--root-cert={pod_dir}/missing.pem",
        f"--root-dir={pod_dir}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(20):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 1
    lines = stderr.decode().strip().splitlines()
    assert lines[-1].startswith("meshlet agent: cannot read the mesh root certificate")
    assert "Traceback" not in stderr.decode()
