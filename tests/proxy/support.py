"""Helpers for the proxy's data-path tests: certificates made with ``openssl``, a small
upstream app, and a proxy built from the control plane's own builders."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from meshlet.pilot import _xds
from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.listeners import build_downstream_tls_context, build_inbound_listener
from meshlet.proxy.runtime import ProxyState, StaticSecretProvider, serve_listener
from meshlet.resources.istio import ServerTLSSettings, TLSMode
from tests.pilot.scenario import httpbin_proxy, scenario_snapshot

HOST = "httpbin.test.svc.cluster.local"
CERT_PATH = "/etc/istio/tls-certs/tls.crt"
KEY_PATH = "/etc/istio/tls-certs/tls.key"
CA_PATH = "/etc/istio/tls-ca-certs/ca.crt"
CERT_SECRET = f"file-cert:{CERT_PATH}~{KEY_PATH}"
ROOT_SECRET = f"file-root:{CA_PATH}"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass
class Pki:
    """The scenario's certificates (step 3), plus another CA and an expired client."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name


def make_pki(folder: Path) -> Pki:
    """``openssl`` as the scenario runs it: X.509 v1 leaves signed by a v3 CA."""
    for ca in ("example.com", "other.example"):
        _openssl(
            "req", "-x509", "-sha256", "-nodes", "-days", "365", "-newkey", "rsa:2048",
            "-subj", f"/O={ca} Inc./CN={ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
            cwd=folder,
        )  # fmt: skip
    leaves = [
        ("httpbin", HOST, "example.com", "1"),
        ("httpbin2", HOST, "example.com", "2"),
        ("client", "client.test.svc.cluster.local", "example.com", "1"),
        ("stranger", "client.test.svc.cluster.local", "other.example", "7"),
    ]
    for name, common_name, ca, serial in leaves:
        _openssl(
            "req", "-out", f"{name}.csr", "-newkey", "rsa:2048", "-nodes",
            "-keyout", f"{name}.key", "-subj", f"/CN={common_name}/O={name} organization",
            cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-days", "365", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", serial, "-in", f"{name}.csr", "-out", f"{name}.crt",
            cwd=folder,
        )  # fmt: skip
    _expired_client(folder)
    return Pki(folder)


def _expired_client(folder: Path) -> None:
    """A client certificate of the right CA that expired yesterday (openssl 3.0's
    ``x509 -req`` cannot back-date, so ``cryptography`` signs this one)."""
    ca_key = serialization.load_pem_private_key((folder / "example.com.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((folder / "example.com.crt").read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=client.test.svc.cluster.local"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(9)
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (folder / "expired.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "expired.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def certificate_secret(name: str, cert: Path, key: Path) -> secret_pb2.Secret:
    secret = secret_pb2.Secret(name=name)
    secret.tls_certificate.certificate_chain.inline_bytes = cert.read_bytes()
    secret.tls_certificate.private_key.inline_bytes = key.read_bytes()
    return secret


def root_secret(name: str, ca: Path) -> secret_pb2.Secret:
    secret = secret_pb2.Secret(name=name)
    secret.validation_context.trusted_ca.inline_bytes = ca.read_bytes()
    return secret


# --- the upstream app ------------------------------------------------------------------


@dataclass
class App:
    """A small HTTP/1.1 keep-alive app (what httpbin answers, for the paths tests use)."""

    port: int = 0
    requests: list[dict[str, object]] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> App:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
                lower = {name.lower(): value for name, value in headers}
                body = b""
                if "content-length" in lower:
                    body = await reader.readexactly(int(lower["content-length"]))
                elif lower.get("transfer-encoding") == "chunked":
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        chunk = await reader.readexactly(size + 2)
                        body += chunk[:-2]
                        if size == 0:
                            break
                self.requests.append(
                    {"method": method, "target": target, "headers": headers, "body": body,
                     "peer": peer}
                )  # fmt: skip
                close = await self._answer(writer, method, target, headers, body)
                if close:
                    writer.close()
                    return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        headers: list[tuple[str, ...]],
        body: bytes,
    ) -> bool:
        path = target.split("?", maxsplit=1)[0]
        extra = ""
        close = False
        if path == "/delay":
            await asyncio.sleep(0.2)
            payload = b"slow\n"
        elif path == "/headers":
            payload = json.dumps({"headers": dict(headers)}, sort_keys=True).encode()
        elif path == "/close":
            payload = b"closing\n"
            extra = "Connection: close\r\n"
            close = True
        elif path == "/chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                b"Server: app\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            await writer.drain()
            return False
        elif path == "/echo":
            payload = body
        else:
            payload = b""
        writer.write(
            b"HTTP/1.1 200 OK\r\nServer: gunicorn/19.9.0\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
            b"Content-Type: text/html; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\n"
            + extra.encode()
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + (b"" if method == "HEAD" else payload)
        )
        await writer.drain()
        return close


# --- a proxy built by the control plane ---------------------------------------------------


def _scenario_inbound() -> tuple[listener_components_pb2.FilterChain, cluster_pb2.Cluster]:
    snapshot = scenario_snapshot()
    proxy = httpbin_proxy(snapshot)
    listener = build_inbound_listener(proxy, snapshot)
    chain = next(c for c in listener.filter_chains if c.name == "0.0.0.0_9080")
    cluster = next(c for c in build_clusters(proxy, snapshot) if c.name == "inbound|9080||")
    return chain, cluster


def ingress_listener(mode: TLSMode, port: int) -> tuple[listener_pb2.Listener, cluster_pb2.Cluster]:
    """The scenario's ``0.0.0.0_9080`` chain (HCM, routes, decorator as pilot builds
    them) on a listener of its own, with ``mode`` TLS, and its ``inbound|9080||``
    cluster pointing at an app on 127.0.0.1:``port`` (upstream bind 127.0.0.6 kept)."""
    chain, cluster = _scenario_inbound()
    chain = listener_components_pb2.FilterChain.FromString(chain.SerializeToString())
    chain.filter_chain_match.ClearField("destination_port")  # transport_protocol: tls stays
    context = build_downstream_tls_context(
        ServerTLSSettings(
            mode=mode, server_certificate=CERT_PATH, private_key=KEY_PATH,
            ca_certificates=CA_PATH if mode is TLSMode.MUTUAL else "",
        )
    )  # fmt: skip
    chain.transport_socket.CopyFrom(_xds.transport_socket(context))
    listener = listener_pb2.Listener(
        name="0.0.0.0_9080",
        address=_xds.socket_address("127.0.0.1", 0),
        traffic_direction=core_base_pb2.INBOUND,
        filter_chains=[chain],
    )
    cluster = cluster_pb2.Cluster.FromString(cluster.SerializeToString())
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    address.socket_address.address = "127.0.0.1"
    address.socket_address.port_value = port
    return listener, cluster


@dataclass
class RunningProxy:
    state: ProxyState
    secrets: StaticSecretProvider
    port: int
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_proxy(
    listener: listener_pb2.Listener,
    clusters: list[cluster_pb2.Cluster],
    secrets: StaticSecretProvider,
    **resources: object,
) -> AsyncIterator[RunningProxy]:
    state = ProxyState(secrets, listeners=[listener], clusters=clusters, **resources)  # type: ignore[arg-type]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    task = asyncio.create_task(serve_listener(listener, state, sock=sock))
    try:
        yield RunningProxy(state, secrets, port, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        sock.close()


@dataclass(frozen=True)
class CurlResult:
    code: int
    stdout: str
    stderr: str


async def run(*command: str, timeout: float = 20.0, stdin: bytes | None = None) -> CurlResult:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return CurlResult(
        process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


def tls_upstream_context(
    ca: Path, *, sni: str, alpn: tuple[str, ...], cert_secret: str, root_secret_name: str,
    san_exact: str | None = None,
) -> tls_pb2.UpstreamTlsContext:  # fmt: skip
    context = tls_pb2.UpstreamTlsContext(sni=sni)
    common = context.common_tls_context
    common.alpn_protocols.extend(alpn)
    common.tls_certificate_sds_secret_configs.append(_xds.sds_secret_config(cert_secret))
    combined = common.combined_validation_context
    combined.validation_context_sds_secret_config.CopyFrom(_xds.sds_secret_config(root_secret_name))
    if san_exact is not None:
        combined.default_validation_context.match_typed_subject_alt_names.append(
            _xds.spiffe_uri_exact(san_exact)
        )
    return context
