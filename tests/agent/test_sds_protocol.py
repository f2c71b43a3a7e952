"""The xDS side of the SDS server: nonces, ACK/NACK, resource names, stream end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meshlet.agent import Agent
from meshlet.agent.sds import SECRET_TYPE_URL
from meshlet.ca.signing import Signer
from tests.agent.conftest import KubeVolume, StartAgent, issue, serial_of
from tests.agent.sds_client import SDSClient, chain_of, trusted_ca_of

pytestmark = pytest.mark.integration


async def wait_until(predicate, deadline: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(deadline):
        while not predicate():
            await asyncio.sleep(0.02)


def two_volumes(tmp_path: Path, signer: Signer) -> tuple[KubeVolume, str, KubeVolume, str]:
    a, b = KubeVolume(tmp_path / "a"), KubeVolume(tmp_path / "b")
    for volume in (a, b):
        pair = issue(signer)
        volume.write({"tls.crt": pair.chain, "tls.key": pair.key})
    name_a = f"file-cert:{a.directory}/tls.crt~{a.directory}/tls.key"
    name_b = f"file-cert:{b.directory}/tls.crt~{b.directory}/tls.key"
    return a, name_a, b, name_b


async def test_response_fields_and_ack(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    volume, name, _, _ = two_volumes(tmp_path, signer)
    agent = await start_agent(file_poll_interval=3600)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name, "ROOTCA"])
        await client.receive_until(lambda s: name in s and "ROOTCA" in s)
        first = client.last
        assert first is not None
        response = first.response
        assert response.type_url == SECRET_TYPE_URL
        assert response.nonce and response.version_info
        assert [r.type_url for r in response.resources] == [SECRET_TYPE_URL] * 2
        assert list(first.secrets) == sorted(first.secrets)  # sorted by name
        assert trusted_ca_of(first.secrets["ROOTCA"]) == signer.root_pem
        # After the ACK nothing is resent until something changes; the next response is
        # the change, with a new version and nonce.
        pair = issue(signer)
        volume.write({"tls.crt": pair.chain, "tls.key": pair.key})
        changed = await client.receive()
        assert serial_of(chain_of(changed.secrets[name])) == pair.serial
        assert changed.response.nonce != response.nonce
        assert changed.response.version_info != response.version_info


async def test_nack_is_not_answered_with_the_same_config(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    volume, name, _, _ = two_volumes(tmp_path, signer)
    agent = await start_agent(file_poll_interval=3600)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        first = await client.receive()
        client.send([name], nonce=first.response.nonce, error="rejected for the test")
        pair = issue(signer)
        volume.write({"tls.crt": pair.chain, "tls.key": pair.key})
        # Had the NACK been answered, that answer would come first, with the old pair.
        following = await client.receive()
        assert serial_of(chain_of(following.secrets[name])) == pair.serial


async def test_stale_nonce_is_ignored(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    volume, name_a, _, name_b = two_volumes(tmp_path, signer)
    agent = await start_agent(file_poll_interval=3600)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name_a])
        await client.receive()
        client.send([name_a, name_b], nonce="not-a-nonce-we-sent")
        pair = issue(signer)
        volume.write({"tls.crt": pair.chain, "tls.key": pair.key})
        following = await client.receive()
        assert list(following.secrets) == [name_a]
        assert serial_of(chain_of(following.secrets[name_a])) == pair.serial


async def test_resource_names_grow_and_shrink(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    _, name_a, _, name_b = two_volumes(tmp_path, signer)
    agent = await start_agent(file_poll_interval=3600)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name_a])
        first = await client.receive()
        assert list(first.secrets) == [name_a]
        client.send([name_a, name_b], nonce=first.response.nonce)
        grown = await client.receive()
        assert set(grown.secrets) == {name_a, name_b}  # state of the world
        await wait_until(lambda: agent.cache.files.names() == sorted([name_a, name_b]))
        client.send([name_a], nonce=grown.response.nonce)
        await wait_until(lambda: agent.cache.files.names() == [name_a])
    # The stream is gone: so are its watches.
    await wait_until(lambda: agent.cache.files.names() == [])


async def test_two_streams_share_a_watch(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    volume, name, _, _ = two_volumes(tmp_path, signer)
    agent = await start_agent(file_poll_interval=3600)
    async with SDSClient(agent.sds_socket_path) as one, SDSClient(agent.sds_socket_path) as two:
        one.send([name])
        two.send([name])
        await one.receive()
        await two.receive()
        pair = issue(signer)
        volume.write({"tls.crt": pair.chain, "tls.key": pair.key})
        for client in (one, two):
            pushed = await client.receive()
            assert serial_of(chain_of(pushed.secrets[name])) == pair.serial
    await wait_until(lambda: agent.cache.files.names() == [])


async def test_other_types_are_not_served(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    _, name, _, _ = two_volumes(tmp_path, signer)
    agent: Agent = await start_agent(file_poll_interval=3600)
    async with SDSClient(agent.sds_socket_path) as client:
        from envoy.service.discovery.v3 import discovery_pb2

        client._outgoing.put_nowait(
            discovery_pb2.DiscoveryRequest(
                resource_names=["x"], type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster"
            )
        )
        client.send([name])
        response = await client.receive()
        assert list(response.secrets) == [name]
