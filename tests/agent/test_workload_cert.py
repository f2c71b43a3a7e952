"""The workload certificate from the real CA, over a real SDS stream and real TLS."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.verification import PolicyBuilder, Store

from meshlet.agent import Agent
from meshlet.agent.keys import KeyAlgorithm, KeyOptions
from meshlet.ca.server import CAServer
from meshlet.ca.signing import Signer
from meshlet.ca.tokens import issue_token
from meshlet.errors import CertificateError
from tests.agent.conftest import SPIFFE_ID, RunningCA, StartAgent, agent_config, serial_of
from tests.agent.sds_client import SDSClient, chain_of, key_of, tls_handshake, trusted_ca_of

pytestmark = pytest.mark.integration


def verify_strictly(leaf_der: bytes, root_pem: bytes) -> list[x509.GeneralName]:
    """RFC 5280 path validation of a mesh peer; returns the peer's SANs."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    store = Store(x509.load_pem_x509_certificates(root_pem))
    verifier = PolicyBuilder().store(store).time(datetime.now(UTC)).build_client_verifier()
    return list(verifier.verify(leaf, []).subjects or [])


async def wait_until(predicate, deadline: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(deadline):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_default_verifies_strictly_in_a_mutual_tls_handshake(
    ca: RunningCA, signer: Signer, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    agent = await start_agent(ca.address)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send(["default", "ROOTCA"])
        secrets = await client.receive_until(lambda s: {"default", "ROOTCA"} <= set(s))
    default, root = secrets["default"], secrets["ROOTCA"]
    assert default.WhichOneof("type") == "tls_certificate"
    assert root.WhichOneof("type") == "validation_context"
    chain, key, trusted = chain_of(default), key_of(default), trusted_ca_of(root)
    certificates = x509.load_pem_x509_certificates(chain)
    assert certificates[-1] == x509.load_pem_x509_certificate(signer.root_pem)  # root last
    assert x509.load_pem_x509_certificate(trusted) == certificates[-1]
    assert load_pem_private_key(key, None).key_size == 2048  # type: ignore[union-attr]

    handshake = await tls_handshake(
        chain, key, trusted, client_chain=chain, client_key=key, server_trust=trusted
    )
    for peer in (handshake.peer_der, handshake.server_saw_client):
        assert peer is not None
        subjects = verify_strictly(peer, trusted)
        assert x509.UniformResourceIdentifier(SPIFFE_ID) in subjects
    assert agent.workload is not None
    assert agent.workload.status().credential == "token"
    # The key went to the SDS client only: not into any log line.
    body = key.decode().splitlines()[1]
    for record in caplog.records:
        text = record.getMessage()
        assert "PRIVATE KEY" not in text and body not in text


async def test_any_other_name_is_the_workload_certificate(
    ca: RunningCA, start_agent: StartAgent
) -> None:
    agent = await start_agent(ca.address)
    async with SDSClient(agent.sds_socket_path) as client:
        names = ["default", "my-credential", "file-cert:/no-separator"]
        client.send(names)
        secrets = await client.receive_until(lambda s: set(names) <= set(s))
    chains = {chain_of(secrets[name]) for name in names}
    assert len(chains) == 1


async def test_rotation_pushes_a_new_certificate(
    ca: RunningCA, pod_dir: Path, start_agent: StartAgent
) -> None:
    agent = await start_agent(ca.address, cert_ttl=timedelta(seconds=4))
    async with SDSClient(agent.sds_socket_path) as client:
        client.send(["default"])
        secrets = await client.receive_until(lambda s: "default" in s)
        first = serial_of(chain_of(secrets["default"]))
        # Renewal authenticates with the current certificate: no token needed any more.
        (pod_dir / "var/run/secrets/tokens/istio-token").unlink()
        secrets = await client.receive_until(lambda s: serial_of(chain_of(s["default"])) != first)
        renewed = x509.load_pem_x509_certificates(chain_of(secrets["default"]))[0]
        assert renewed.not_valid_after_utc - renewed.not_valid_before_utc <= timedelta(
            minutes=2, seconds=4
        )
    assert agent.workload is not None
    assert agent.workload.status().credential == "certificate"
    assert agent.workload.status().issued >= 2


async def test_ca_down_keeps_the_current_certificate_and_recovers(
    ca: RunningCA, signer: Signer, token_key: bytes, start_agent: StartAgent
) -> None:
    # Renew after 10 % of a 20 s life: the certificate stays valid while the CA is down.
    agent = await start_agent(ca.address, cert_ttl=timedelta(seconds=20), grace_ratio=0.9)
    workload = agent.workload
    assert workload is not None
    async with SDSClient(agent.sds_socket_path) as client:
        client.send(["default", "ROOTCA"])
        secrets = await client.receive_until(lambda s: {"default", "ROOTCA"} <= set(s))
        first_chain, first_key = chain_of(secrets["default"]), key_of(secrets["default"])
        await ca.server.stop()
        await wait_until(lambda: workload.status().failures >= 2, deadline=20)
        assert workload.status().last_error is not None
        served = agent.cache.get("default")
        assert served is not None and served.certificate_chain == first_chain
        handshake = await tls_handshake(first_chain, first_key, signer.root_pem)
        assert serial_of_der(handshake.peer_der) == serial_of(first_chain)

        restarted = CAServer(signer, token_key)
        await restarted.start("127.0.0.1", ca.port)
        try:
            # Nothing was pushed while the CA was down: the next response is the new one.
            async with asyncio.timeout(20):
                pushed = await client.receive()
            assert set(pushed.secrets) == {"default", "ROOTCA"}
            assert serial_of(chain_of(pushed.secrets["default"])) != serial_of(first_chain)
            assert workload.status().failures == 0
        finally:
            await restarted.stop()


def serial_of_der(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number


async def test_ecdsa_workload_key(ca: RunningCA, signer: Signer, start_agent: StartAgent) -> None:
    agent = await start_agent(ca.address, key_options=KeyOptions(algorithm=KeyAlgorithm.ECDSA))
    async with SDSClient(agent.sds_socket_path) as client:
        client.send(["default"])
        secrets = await client.receive_until(lambda s: "default" in s)
    key = load_pem_private_key(key_of(secrets["default"]), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    handshake = await tls_handshake(
        chain_of(secrets["default"]), key_of(secrets["default"]), signer.root_pem
    )
    assert x509.UniformResourceIdentifier(SPIFFE_ID) in verify_strictly(
        handshake.peer_der, signer.root_pem
    )


async def test_expired_token_gets_no_certificate(
    ca: RunningCA, pod_dir: Path, token_key: bytes, start_agent: StartAgent
) -> None:
    expired = issue_token(
        token_key,
        namespace="test",
        service_account="httpbin",
        pod="httpbin-0",
        expires=datetime.now(UTC) - timedelta(minutes=5),
    )
    (pod_dir / "var/run/secrets/tokens/istio-token").write_text(expired)
    agent = await start_agent(ca.address)
    assert agent.workload is not None
    workload = agent.workload
    async with SDSClient(agent.sds_socket_path) as client:
        client.send(["default", "ROOTCA"])
        secrets = await client.receive_until(lambda s: "ROOTCA" in s)
        await wait_until(lambda: workload.status().failures >= 1)
        assert "UNAUTHENTICATED" in (workload.status().last_error or "")
        assert "default" not in secrets and agent.cache.get("default") is None


async def test_missing_root_is_reported(pod_dir: Path) -> None:
    (pod_dir / "var/run/secrets/istio/root-cert.pem").unlink()
    agent = Agent(agent_config(pod_dir, "127.0.0.1:1"))
    with pytest.raises(CertificateError, match="cannot read the mesh root certificate"):
        await agent.start()
