"""File secrets over a real SDS stream: Kubernetes ``..data`` swaps, late files, bad pairs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from meshlet.agent import Agent, file_secrets
from meshlet.ca.signing import Signer
from tests.agent.conftest import Issued, KubeVolume, StartAgent, issue, serial_of
from tests.agent.sds_client import SDSClient, chain_of, key_of, tls_handshake, trusted_ca_of

pytestmark = pytest.mark.integration

# A poll this slow never fires during a test: what is seen, the directory watch saw.
NO_POLL = 3600.0


def file_cert_name(directory: Path) -> str:
    return f"file-cert:{directory}/tls.crt~{directory}/tls.key"


def served_serial(name: str) -> Callable[[dict], int | None]:  # type: ignore[type-arg]
    def get(secrets: dict) -> int | None:  # type: ignore[type-arg]
        return serial_of(chain_of(secrets[name])) if name in secrets else None

    return get


async def wait_status(agent: Agent, name: str, predicate: Callable[[str | None], bool]) -> None:
    async with asyncio.timeout(10):
        while True:
            status = agent.cache.status(name)
            if status is not None and predicate(status.last_error):
                return
            await asyncio.sleep(0.02)


async def test_data_symlink_swap_is_pushed_every_time(
    tmp_path: Path, signer: Signer, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshlet.agent")
    volume = KubeVolume(tmp_path / "tls-certs")
    pairs = [issue(signer) for _ in range(3)]
    volume.write({"tls.crt": pairs[0].chain, "tls.key": pairs[0].key})
    name = file_cert_name(volume.directory)
    agent = await start_agent(file_poll_interval=NO_POLL)
    serial = served_serial(name)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        secrets = await client.receive_until(lambda s: serial(s) == pairs[0].serial)
        assert secrets[name].WhichOneof("type") == "tls_certificate"
        # Two swaps in a row: the second is where a watch on the file goes blind.
        for pair in pairs[1:]:
            volume.write({"tls.crt": pair.chain, "tls.key": pair.key})
            secrets = await client.receive_until(lambda s, p=pair: serial(s) == p.serial)
            assert key_of(secrets[name]) == pair.key
            handshake = await tls_handshake(
                chain_of(secrets[name]), key_of(secrets[name]), signer.root_pem
            )
            assert serial_of_der(handshake.peer_der) == pair.serial
    messages = [r.getMessage() for r in caplog.records]
    assert f"adding watcher for file certificate {volume.directory}/tls.crt" in messages
    assert any(
        m.startswith(f"event for file certificate {name} : ") and m.endswith(", pushing to proxy")
        for m in messages
    )
    assert not any("PRIVATE KEY" in m for m in messages)


def serial_of_der(der: bytes) -> int:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


async def test_file_root_swap_is_pushed(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    volume = KubeVolume(tmp_path / "tls-ca-certs")
    first, second = issue(signer, "ca-one"), issue(signer, "ca-two")
    volume.write({"ca.crt": first.chain})
    name = f"file-root:{volume.directory}/ca.crt"
    agent = await start_agent(file_poll_interval=NO_POLL)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        secrets = await client.receive_until(lambda s: name in s)
        assert secrets[name].WhichOneof("type") == "validation_context"
        assert trusted_ca_of(secrets[name]) == first.chain
        volume.write({"ca.crt": second.chain})
        await client.receive_until(lambda s: trusted_ca_of(s[name]) == second.chain)


async def test_file_that_does_not_exist_yet_is_served_when_it_appears(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    directory = tmp_path / "later"
    directory.mkdir()
    name = file_cert_name(directory)
    agent = await start_agent(file_poll_interval=NO_POLL)
    pair = issue(signer)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name, "ROOTCA"])
        secrets = await client.receive_until(lambda s: "ROOTCA" in s)
        assert name not in secrets
        await wait_status(
            agent, name, lambda error: error is not None and "failed to read" in error
        )
        KubeVolume(directory).write({"tls.crt": pair.chain, "tls.key": pair.key})
        secrets = await client.receive_until(lambda s: name in s)
        assert serial_of(chain_of(secrets[name])) == pair.serial


async def test_directory_that_does_not_exist_yet(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    directory = tmp_path / "mounted" / "later"
    name = file_cert_name(directory)
    agent = await start_agent(file_poll_interval=NO_POLL)
    pair = issue(signer)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        await wait_status(agent, name, lambda error: error is not None)
        KubeVolume(directory).write({"tls.crt": pair.chain, "tls.key": pair.key})
        secrets = await client.receive_until(lambda s: name in s)
        assert key_of(secrets[name]) == pair.key


async def test_mismatched_key_keeps_the_last_good_pair(
    tmp_path: Path, signer: Signer, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshlet.agent")
    volume = KubeVolume(tmp_path / "certs")
    good, other, fixed = issue(signer), issue(signer), issue(signer)
    volume.write({"tls.crt": good.chain, "tls.key": good.key})
    name = file_cert_name(volume.directory)
    agent = await start_agent(file_poll_interval=NO_POLL)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        await client.receive_until(lambda s: name in s)
        volume.write(
            {"tls.crt": other.chain, "tls.key": good.key}
        )  # a certificate and a stranger's key
        await wait_status(
            agent, name, lambda error: error is not None and "does not match" in error
        )
        served = agent.cache.get(name)
        assert served is not None and served.private_key == good.key
        handshake = await tls_handshake(
            served.certificate_chain, served.private_key, signer.root_pem
        )
        assert serial_of_der(handshake.peer_der) == good.serial
        # Fixed: the next push is the new pair, so the broken one was never pushed.
        volume.write({"tls.crt": fixed.chain, "tls.key": fixed.key})
        response = await client.receive()
        assert serial_of(chain_of(response.secrets[name])) == fixed.serial
        await wait_status(agent, name, lambda error: error is None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("does not match" in m and "keeping the last good secret" in m for m in warnings)


async def test_corrupt_certificate_keeps_the_last_good_pair(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    volume = KubeVolume(tmp_path / "certs")
    good = issue(signer)
    volume.write({"tls.crt": good.chain, "tls.key": good.key})
    name = file_cert_name(volume.directory)
    agent = await start_agent(file_poll_interval=NO_POLL)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        await client.receive_until(lambda s: name in s)
        volume.write({"tls.crt": b"-----BEGIN CERTIFICATE-----\nnot base64\n", "tls.key": good.key})
        await wait_status(agent, name, lambda error: error is not None and "parse" in error)
        served = agent.cache.get(name)
        assert served is not None and served.certificate_chain == good.chain


async def test_plain_file_rewrite_is_seen(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    """Files written in place (no symlinks), the key first and the certificate last."""
    directory = tmp_path / "plain"
    directory.mkdir()
    first, second = issue(signer), issue(signer)
    write_pair(directory, first)
    name = file_cert_name(directory)
    agent = await start_agent(file_poll_interval=NO_POLL)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        await client.receive_until(lambda s: name in s)
        write_pair(directory, second)
        await client.receive_until(lambda s: serial_of(chain_of(s[name])) == second.serial)


def write_pair(directory: Path, pair: Issued) -> None:
    (directory / "tls.key").write_bytes(pair.key)
    (directory / "tls.crt").write_bytes(pair.chain)


async def test_stat_poll_is_a_safety_net(
    tmp_path: Path, signer: Signer, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the directory watch unable to start, the poll alone still finds the change."""
    from meshlet.agent import file_secrets

    def broken_awatch(*args: object, **kwargs: object) -> object:
        raise OSError("inotify is not available")

    monkeypatch.setattr(file_secrets, "awatch", broken_awatch)
    directory = tmp_path / "polled"
    directory.mkdir()
    first, second = issue(signer), issue(signer)
    write_pair(directory, first)
    name = file_cert_name(directory)
    agent = await start_agent(file_poll_interval=0.2)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        await client.receive_until(lambda s: name in s)
        write_pair(directory, second)
        await client.receive_until(lambda s: serial_of(chain_of(s[name])) == second.serial)


async def test_symlink_to_another_directory_is_followed(
    tmp_path: Path, signer: Signer, start_agent: StartAgent
) -> None:
    """``tls.crt`` links into another directory, where the files are rewritten in place."""
    real, mounted = tmp_path / "real", tmp_path / "mounted"
    real.mkdir()
    mounted.mkdir()
    first, second = issue(signer), issue(signer)
    write_pair(real, first)
    for file in ("tls.crt", "tls.key"):
        (mounted / file).symlink_to(real / file)
    name = file_cert_name(mounted)
    agent = await start_agent(file_poll_interval=NO_POLL)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        await client.receive_until(lambda s: name in s)
        write_pair(real, second)
        await client.receive_until(lambda s: serial_of(chain_of(s[name])) == second.serial)


async def test_other_files_in_the_folder_do_not_reload_the_pair(
    tmp_path: Path, signer: Signer, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log file or another secret beside the pair wakes the watch; the pair is not read
    and checked again (a key check costs a signature), until one of its files changes."""
    loads: list[object] = []
    real_load = file_secrets.load_file_secret

    def counting_load(spec: object) -> object:
        loads.append(spec)
        return real_load(spec)  # type: ignore[arg-type]

    monkeypatch.setattr(file_secrets, "load_file_secret", counting_load)
    directory = tmp_path / "busy"
    directory.mkdir()
    first, second = issue(signer), issue(signer)
    write_pair(directory, first)
    name = file_cert_name(directory)
    agent = await start_agent(file_poll_interval=NO_POLL)
    async with SDSClient(agent.sds_socket_path) as client:
        client.send([name])
        await client.receive_until(lambda s: name in s)
        settled = len(loads)
        for line in range(5):
            with (directory / "proxy.log").open("a") as log_file:
                log_file.write(f"line {line}\n")
            await asyncio.sleep(0.5)  # past the watch's debounce, so each write wakes it
        assert len(loads) == settled
        write_pair(directory, second)
        await client.receive_until(lambda s: serial_of(chain_of(s[name])) == second.serial)
        assert len(loads) > settled
