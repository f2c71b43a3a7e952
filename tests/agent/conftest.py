from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from meshlet.agent import Agent, AgentConfig
from meshlet.agent.keys import make_key_and_csr
from meshlet.agent.rotation import Backoff
from meshlet.ca.server import CAServer
from meshlet.ca.signing import Signer, SpiffeId, make_self_signed_root, sign_csr
from meshlet.ca.tokens import issue_token

SPIFFE_ID = "spiffe://cluster.local/ns/test/sa/httpbin"


@pytest.fixture(scope="session")
def signer() -> Signer:
    """The mesh root for this test run."""
    return make_self_signed_root("cluster.local", now=datetime.now(UTC))


@pytest.fixture(scope="session")
def token_key() -> bytes:
    return secrets.token_bytes(32)


@dataclass
class RunningCA:
    server: CAServer
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def ca(signer: Signer, token_key: bytes) -> AsyncIterator[RunningCA]:
    server = CAServer(signer, token_key)
    port = await server.start("127.0.0.1", 0)
    try:
        yield RunningCA(server, port)
    finally:
        await server.stop()


@pytest.fixture
def pod_dir(tmp_path: Path, signer: Signer, token_key: bytes) -> Path:
    """A pod's files: the mesh root and a token for test/httpbin."""
    root = tmp_path / "pod"
    (root / "var/run/secrets/istio").mkdir(parents=True)
    (root / "var/run/secrets/istio/root-cert.pem").write_bytes(signer.root_pem)
    token = issue_token(
        token_key,
        namespace="test",
        service_account="httpbin",
        pod="httpbin-0",
        expires=datetime.now(UTC) + timedelta(hours=1),
    )
    (root / "var/run/secrets/tokens").mkdir(parents=True)
    (root / "var/run/secrets/tokens/istio-token").write_text(token)
    return root


def agent_config(pod_dir: Path, ca_address: str | None, **overrides: Any) -> AgentConfig:
    config = AgentConfig(
        pod_name="httpbin-0",
        namespace="test",
        service_account="httpbin",
        root_cert_path=str(pod_dir / "var/run/secrets/istio/root-cert.pem"),
        ca_address=ca_address,
        token_path=str(pod_dir / "var/run/secrets/tokens/istio-token"),
        root_dir=str(pod_dir),
        ca_backoff=Backoff(initial=0.2, maximum=1.0),
    )
    return replace(config, **overrides)


StartAgent = Callable[..., Awaitable[Agent]]


@pytest.fixture
async def start_agent(pod_dir: Path) -> AsyncIterator[StartAgent]:
    """Start agents for this test (``ca_address=None`` for files only); all stopped after."""
    agents: list[Agent] = []

    async def start(ca_address: str | None = None, **overrides: Any) -> Agent:
        agent = Agent(agent_config(pod_dir, ca_address, **overrides))
        await agent.start()
        agents.append(agent)
        return agent

    try:
        yield start
    finally:
        for agent in agents:
            await agent.stop()


@dataclass
class Issued:
    chain: bytes
    key: bytes
    serial: int


def issue(signer: Signer, service_account: str = "files") -> Issued:
    """A certificate and key made with meshlet's own CA code, as files would hold them."""
    request = make_key_and_csr(f"spiffe://cluster.local/ns/test/sa/{service_account}")
    chain = sign_csr(
        request.csr_pem,
        SpiffeId("cluster.local", "test", service_account),
        signer,
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    return Issued("".join(chain).encode(), request.key_pem, leaf.serial_number)


def serial_of(chain_pem: bytes) -> int:
    return x509.load_pem_x509_certificates(chain_pem)[0].serial_number


class KubeVolume:
    """A directory laid out as kubelet's atomic writer lays out a secret volume.

    ``..<timestamp>/tls.crt``, ``..data -> ..<timestamp>``, ``tls.crt -> ..data/tls.crt``;
    ``write`` makes a new timestamped directory, renames a fresh symlink over ``..data``
    and removes the old directory, as kubelet does on every update.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.generation = 0
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, files: dict[str, bytes]) -> None:
        self.generation += 1
        stamp = f"..2026_01_01_00_00_{self.generation:02d}.{secrets.randbelow(10**9)}"
        target = self.directory / stamp
        target.mkdir()
        for name, data in files.items():
            (target / name).write_bytes(data)
        data_link = self.directory / "..data"
        old = os.readlink(data_link) if data_link.is_symlink() else None
        tmp_link = self.directory / "..data_tmp"
        os.symlink(stamp, tmp_link)
        os.rename(tmp_link, data_link)
        for name in files:
            link = self.directory / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if old is not None:
            for child in (self.directory / old).iterdir():
                child.unlink()
            (self.directory / old).rmdir()
