"""``meshlet sidecar -f`` as real processes on loopback: the agent, two workers, real curl
and openssl, certificates made with openssl as the scenario's step 3 makes them.

The Sidecar is the scenario's, adapted to loopback: a MUTUAL port and a SIMPLE port
bound on 127.0.0.1, forwarding to a small app (``defaultEndpoint: 0.0.0.0:<app>``), the
certificates in kubelet-style secret volumes (``..data`` symlinks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from meshlet.proxy.zygote import WORKER_NAME
from tests.agent.conftest import KubeVolume
from tests.proxy.support import HOST, App, Pki, make_pki, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_factories=["asyncio"]),
    pytest.mark.skipif(
        shutil.which("curl") is None or shutil.which("openssl") is None,
        reason="curl and openssl are needed",
    ),
]

REPO = Path(__file__).resolve().parents[2]
READY_DEADLINE = 30.0
REFUSALS = {
    None: "curl: (56) OpenSSL SSL_read: OpenSSL/*: error:0A00045C:SSL routines::"
    "tlsv13 alert certificate required, errno 0",
    "stranger": "curl: (56) OpenSSL SSL_read: OpenSSL/*: error:0A000418:SSL routines::"
    "tlsv1 alert unknown ca, errno 0",
    "expired": "curl: (56) OpenSSL SSL_read: OpenSSL/*: error:0A000415:SSL routines::"
    "sslv3 alert certificate expired, errno 0",
}
PROTOCOLS = {"--http1.1": "HTTP/1.1 200 OK", "--http2": "HTTP/2 200"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def app() -> AsyncIterator[App]:
    running = await App().start()
    yield running
    await running.stop()


@dataclass
class Volumes:
    certs: KubeVolume
    ca: KubeVolume

    def install(self, pki: Pki, server: str = "httpbin") -> None:
        self.certs.write(
            {
                "tls.crt": pki.path(f"{server}.crt").read_bytes(),
                "tls.key": pki.path(f"{server}.key").read_bytes(),
            }
        )


@pytest.fixture
def volumes(tmp_path: Path, pki: Pki) -> Volumes:
    found = Volumes(KubeVolume(tmp_path / "tls-certs"), KubeVolume(tmp_path / "tls-ca-certs"))
    found.install(pki)
    found.ca.write({"ca.crt": pki.path("example.com.crt").read_bytes()})
    return found


def sidecar_yaml(volumes: Volumes, app_port: int, mutual: int, simple: int) -> str:
    certs, ca = volumes.certs.directory, volumes.ca.directory
    return f"""\
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
  workloadSelector:
    labels:
      app: httpbin
      version: v1
  ingress:
  - port:
      number: {mutual}
      protocol: HTTPS
      name: external
    bind: 127.0.0.1
    defaultEndpoint: 0.0.0.0:{app_port}
    tls:
      mode: MUTUAL
      privateKey: "{certs}/tls.key"
      serverCertificate: "{certs}/tls.crt"
      caCertificates: "{ca}/ca.crt"
  - port:
      number: {simple}
      protocol: HTTPS
      name: simple
    bind: 127.0.0.1
    defaultEndpoint: 0.0.0.0:{app_port}
    tls:
      mode: SIMPLE
      privateKey: "{certs}/tls.key"
      serverCertificate: "{certs}/tls.crt"
"""


async def http(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@dataclass
class RunningSidecar:
    process: asyncio.subprocess.Process
    admin: int
    status: int
    prometheus: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The workers (named ``meshlet-worker``) among the agent's descendants: its
        children once the zygote they were forked from has left, the zygote's before."""

        def children(pid: int) -> list[int]:
            path = Path(f"/proc/{pid}/task/{pid}/children")
            try:
                return [int(child) for child in path.read_text().split()]
            except OSError:
                return []

        def is_worker(pid: int) -> bool:
            with contextlib.suppress(OSError):
                return Path(f"/proc/{pid}/comm").read_bytes().strip() == WORKER_NAME
            return False

        workers: list[int] = []
        for child in children(self.process.pid):
            candidates = [child, *children(child)]
            workers.extend(pid for pid in candidates if is_worker(pid))
        return sorted(workers)

    async def stats(self) -> dict[str, int]:
        _, body = await http(self.admin, "/stats")
        return {
            name: int(value)
            for name, value in (line.split(": ") for line in body.decode().splitlines())
        }

    async def wait_ready(self, deadline: float = READY_DEADLINE) -> None:
        async with asyncio.timeout(deadline):
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"the sidecar exited:\n{self.output()}")
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if (await http(self.status, "/healthz/ready"))[0] == 200:
                        return
                await asyncio.sleep(0.1)

    async def wait_admin(self) -> None:
        async with asyncio.timeout(READY_DEADLINE):
            while True:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    await http(self.admin, "/ready")
                    return
                await asyncio.sleep(0.1)

    async def terminate(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def running_sidecar(
    folder: Path, yaml_text: str, *, concurrency: int = 2, ready: bool = True
) -> AsyncIterator[RunningSidecar]:
    manifest = folder / "sidecar.yaml"
    manifest.write_text(yaml_text)
    log = folder / "sidecar.log"
    admin, status, prometheus = free_port(), free_port(), free_port()
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "meshlet", "sidecar", "-f", str(manifest),
            "--concurrency", str(concurrency), "--admin-port", str(admin),
            "--status-port", str(status), "--prometheus-port", str(prometheus),
            "--drain-seconds", "1",
            stdout=output, stderr=asyncio.subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    sidecar = RunningSidecar(process, admin, status, prometheus, log)
    try:
        if ready:
            await sidecar.wait_ready()
        else:
            await sidecar.wait_admin()
        yield sidecar
    finally:
        if process.returncode is None:
            with contextlib.suppress(Exception):
                await sidecar.terminate()
        if process.returncode is None:
            for pid in [process.pid, *sidecar.worker_pids()]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await process.wait()


def _curl(pki: Pki, port: int, path: str, *extra: str, cert: str | None) -> list[str]:
    command = [
        "curl", "-sS", "-i", "--max-time", "10",
        "--cacert", str(pki.path("example.com.crt")),
        "--resolve", f"{HOST}:{port}:127.0.0.1",
        f"https://{HOST}:{port}{path}", *extra,
    ]  # fmt: skip
    if cert is not None:
        command += ["--cert", str(pki.path(f"{cert}.crt")), "--key", str(pki.path(f"{cert}.key"))]
    return command


def _headers(output: str) -> tuple[str, dict[str, str]]:
    head = output.split("\r\n\r\n", 1)[0]
    status, *lines = head.split("\r\n")
    return status.strip(), dict(line.split(": ", 1) for line in lines)


def _mask_openssl_version(message: str) -> str:
    return re.sub(r"OpenSSL/[0-9][0-9a-z.]*", "OpenSSL/*", message)


async def test_standalone_sidecar_terminates_mutual_and_simple_tls(
    tmp_path: Path, pki: Pki, app: App, volumes: Volumes
) -> None:
    mutual, simple = free_port(), free_port()
    async with running_sidecar(tmp_path, sidecar_yaml(volumes, app.port, mutual, simple)) as sc:
        # MUTUAL refuses a missing, a foreign and an expired certificate; nothing reaches
        # the app; the control with the right certificate passes, over both protocols
        for flag, status_line in PROTOCOLS.items():
            for credential, refusal in REFUSALS.items():
                refused = await run(*_curl(pki, mutual, "/status/200", flag, cert=credential))
                assert refused.code == 56, refused.stderr
                assert _mask_openssl_version(refused.stderr.strip()) == refusal
            assert app.requests == []
            control = await run(*_curl(pki, mutual, "/status/200", flag, cert="client"))
            assert control.code == 0, control.stderr
            status, headers = _headers(control.stdout)
            assert status == status_line
            assert headers["server"] == "istio-envoy"
            assert headers["x-envoy-decorator-operation"] == f"ingress-sidecar.test:{mutual}/*"
            assert len(app.requests) == 1
            app.requests.clear()

        # the client certificate reaches the app in x-forwarded-client-cert
        result = await run(*_curl(pki, mutual, "/headers", cert="client"))
        assert result.code == 0, result.stderr
        received = json.loads(result.stdout.split("\r\n\r\n", 1)[1])["headers"]
        xfcc = {k.lower(): v for k, v in received.items()}["x-forwarded-client-cert"]
        assert 'Subject="O=client organization,CN=client.test.svc.cluster.local"' in xfcc
        assert xfcc.startswith("Hash=")

        # SIMPLE takes a client with no certificate
        simple_result = await run(*_curl(pki, simple, "/status/200", cert=None))
        assert simple_result.code == 0, simple_result.stderr
        assert _headers(simple_result.stdout)[0] == "HTTP/2 200"

        # plaintext to the TLS port is reset
        plain = await run(
            "curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{mutual}/status/200"
        )
        assert plain.code == 56
        assert "Connection reset by peer" in plain.stderr

        # both workers serve: new connections spread over them by SO_REUSEPORT
        key = f"listener.127.0.0.1_{simple}.worker_{{}}.downstream_cx_total"
        for _ in range(40):
            stats = await sc.stats()
            if stats.get(key.format(0), 0) and stats.get(key.format(1), 0):
                break
            await run(*_curl(pki, simple, "/status/200", cert=None))
        else:
            raise AssertionError(f"one worker served everything: {stats}")
        assert len(sc.worker_pids()) == 2

        # no process of a standalone sidecar loads grpcio (the agent serves SDS and xDS
        # with meshlet's own HTTP/2 gRPC server)
        for pid in [sc.process.pid, *sc.worker_pids()]:
            assert "/grpc/" not in Path(f"/proc/{pid}/maps").read_text()

        # the secrets as proxy-config reads them, keys redacted
        status_code, body = await http(
            sc.admin, "/config_dump?mask=dynamic_active_secrets,dynamic_warming_secrets"
        )
        assert status_code == 200
        [dump] = json.loads(body)["configs"]
        names = sorted(s["name"] for s in dump["dynamic_active_secrets"])
        certs, ca = volumes.certs.directory, volumes.ca.directory
        assert names == [f"file-cert:{certs}/tls.crt~{certs}/tls.key", f"file-root:{ca}/ca.crt"]
        for item in dump["dynamic_active_secrets"]:
            certificate = item["secret"].get("tls_certificate")
            if certificate is not None:
                redacted = base64.b64decode(certificate["private_key"]["inline_bytes"])
                assert redacted == b"[redacted]"
        assert b"PRIVATE KEY" not in body

        # the other operator endpoints
        assert await http(sc.admin, "/quitquitquit") == (405, b"This endpoint requires POST\n")
        assert await http(sc.admin, "/ready") == (200, b"LIVE\n")
        info = json.loads((await http(sc.admin, "/server_info"))[1])
        assert info["state"] == "LIVE"
        assert info["command_line_options"]["concurrency"] == 2
        listeners = (await http(sc.admin, "/listeners"))[1].decode()
        assert f"127.0.0.1_{mutual}::127.0.0.1:{mutual}" in listeners
        prometheus = (await http(sc.prometheus, "/stats/prometheus"))[1].decode()
        assert "envoy_listener_worker_downstream_cx_total{" in prometheus

        workers = sc.worker_pids()
        assert await sc.terminate() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()
    assert "Traceback" not in sc.output()


def _served_serial(output: str) -> int:
    pem = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", output, re.DOTALL)
    assert pem is not None, output
    return int(x509.load_pem_x509_certificate(pem.group(0).encode()).serial_number)


async def test_a_replaced_certificate_is_served_on_the_next_handshake(
    tmp_path: Path, pki: Pki, app: App, volumes: Volumes
) -> None:
    mutual, simple = free_port(), free_port()
    s_client = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{simple}", "-servername", HOST,
        "-CAfile", str(pki.path("example.com.crt")), "-verify_return_error",
    ]  # fmt: skip
    async with running_sidecar(tmp_path, sidecar_yaml(volumes, app.port, mutual, simple)):
        first = await run(*s_client, stdin=b"")
        assert first.code == 0, first.stderr
        assert _served_serial(first.stdout) == 1
        volumes.install(pki, server="httpbin2")  # the ..data symlink swap kubelet does
        async with asyncio.timeout(20):
            while True:
                again = await run(*s_client, stdin=b"")
                if again.code == 0 and _served_serial(again.stdout) == 2:
                    break
                await asyncio.sleep(0.2)


async def test_a_missing_certificate_leaves_its_listener_not_ready(
    tmp_path: Path, pki: Pki, app: App, volumes: Volumes
) -> None:
    mutual, simple = free_port(), free_port()
    text = sidecar_yaml(volumes, app.port, mutual, simple).replace(
        f"{volumes.ca.directory}/ca.crt", f"{tmp_path}/missing/ca.crt"
    )
    async with running_sidecar(tmp_path, text, ready=False) as sc:
        async with asyncio.timeout(READY_DEADLINE):
            while True:
                status, body = await http(sc.status, "/healthz/ready")
                if b"missing/ca.crt" in body:
                    break
                await asyncio.sleep(0.2)
        assert status == 503
        reason = body.decode()
        assert f"listener 127.0.0.1_{mutual} is not ready" in reason
        assert "No such file or directory" in reason
        refused = await run(*_curl(pki, mutual, "/status/200", cert="client"))
        assert refused.code == 7  # not serving at all, never without its CA
        _, dump = await http(sc.admin, "/config_dump?mask=dynamic_warming_secrets")
        [warming] = json.loads(dump)["configs"][0]["dynamic_warming_secrets"]
        assert warming["name"] == f"file-root:{tmp_path}/missing/ca.crt"
        assert "No such file or directory" in warming["error_state"]["details"]
        assert await http(sc.admin, "/ready") == (503, b"INITIALIZING\n")
        # the SIMPLE port has what it needs and serves meanwhile
        served = await run(*_curl(pki, simple, "/status/200", cert=None))
        assert served.code == 0, served.stderr
        # the file appears: the listener comes up
        (tmp_path / "missing").mkdir()
        shutil.copy(pki.path("example.com.crt"), tmp_path / "missing" / "ca.crt")
        await sc.wait_ready()
        control = await run(*_curl(pki, mutual, "/status/200", cert="client"))
        assert control.code == 0, control.stderr
    assert "listener" in sc.output()


async def test_a_dead_worker_is_started_again(
    tmp_path: Path, pki: Pki, app: App, volumes: Volumes
) -> None:
    mutual, simple = free_port(), free_port()
    text = sidecar_yaml(volumes, app.port, mutual, simple)
    async with running_sidecar(tmp_path, text, concurrency=1) as sc:
        [first] = sc.worker_pids()
        os.kill(first, signal.SIGKILL)
        try:
            async with asyncio.timeout(READY_DEADLINE):
                while True:
                    pids = sc.worker_pids()
                    if pids and pids != [first]:
                        break
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"no new worker {READY_DEADLINE} s after {first} was killed "
                f"(workers now {sc.worker_pids()}):\n{sc.output()}"
            ) from None
        await sc.wait_ready()
        served = await run(*_curl(pki, simple, "/status/200", cert=None))
        assert served.code == 0, served.stderr
        assert (await sc.stats())["server.worker_restarts"] == 1
