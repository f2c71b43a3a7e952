"""The data path end to end on loopback: real curl, real openssl, the scenario's config.

The listener carries the filter chain meshlet's control plane builds for the scenario's
Sidecar (``0.0.0.0_9080``: user TLS, HCM with ``server_name: istio-envoy``, tracing and
the ``ingress-sidecar.test:9080/*`` decorator) and the ``inbound|9080||`` cluster (bound
to 127.0.0.6), pointed at an app on loopback. Certificates are made with ``openssl`` as
in the scenario's step 3 (X.509 v1 leaves).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshlet.proxy.runtime import StaticSecretProvider
from meshlet.resources.istio import TLSMode
from tests.proxy.support import (
    CERT_SECRET,
    HOST,
    ROOT_SECRET,
    App,
    Pki,
    RunningProxy,
    certificate_secret,
    ingress_listener,
    make_pki,
    root_secret,
    run,
    running_proxy,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("curl") is None or shutil.which("openssl") is None,
        reason="curl and openssl are needed",
    ),
]

PROTOCOLS = {"http1.1": "--http1.1", "http2": "--http2"}
STATUS_LINE = {"http1.1": "HTTP/1.1 200 OK", "http2": "HTTP/2 200"}
# curl's message for each refused credential, with OpenSSL's version masked
REFUSALS = {
    None: "curl: (56) OpenSSL SSL_read: OpenSSL/*: error:0A00045C:SSL routines::"
    "tlsv13 alert certificate required, errno 0",
    "stranger": "curl: (56) OpenSSL SSL_read: OpenSSL/*: error:0A000418:SSL routines::"
    "tlsv1 alert unknown ca, errno 0",
    "expired": "curl: (56) OpenSSL SSL_read: OpenSSL/*: error:0A000415:SSL routines::"
    "sslv3 alert certificate expired, errno 0",
}


def _mask_openssl_version(message: str) -> str:
    return re.sub(r"OpenSSL/[0-9][0-9a-z.]*", "OpenSSL/*", message)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def app() -> AsyncIterator[App]:
    running = await App().start()
    yield running
    await running.stop()


def _secrets(pki: Pki, server: str = "httpbin") -> StaticSecretProvider:
    return StaticSecretProvider(
        [
            certificate_secret(CERT_SECRET, pki.path(f"{server}.crt"), pki.path(f"{server}.key")),
            root_secret(ROOT_SECRET, pki.path("example.com.crt")),
        ]
    )


def _curl(pki: Pki, proxy: RunningProxy, path: str, *extra: str, cert: str | None) -> list[str]:
    command = [
        "curl", "-sS", "-i", "--max-time", "10",
        "--cacert", str(pki.path("example.com.crt")),
        "--resolve", f"{HOST}:{proxy.port}:127.0.0.1",
        f"https://{HOST}:{proxy.port}{path}", *extra,
    ]  # fmt: skip
    if cert is not None:
        command += ["--cert", str(pki.path(f"{cert}.crt")), "--key", str(pki.path(f"{cert}.key"))]
    return command


def _headers(output: str) -> tuple[str, dict[str, str]]:
    head = output.split("\r\n\r\n", 1)[0]
    status, *lines = head.split("\r\n")
    return status.strip(), dict(line.split(": ", 1) for line in lines)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_simple_accepts_a_client_without_certificate(
    pki: Pki, app: App, protocol: str
) -> None:
    listener, cluster = ingress_listener(TLSMode.SIMPLE, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        result = await run(*_curl(pki, proxy, "/status/200", PROTOCOLS[protocol], cert=None))
    assert result.code == 0, result.stderr
    status, headers = _headers(result.stdout)
    assert status == STATUS_LINE[protocol]
    assert headers["server"] == "istio-envoy"
    assert len(app.requests) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("credential", [None, "stranger", "expired"])
async def test_mutual_refuses_beside_a_passing_control(
    pki: Pki, app: App, protocol: str, credential: str | None
) -> None:
    listener, cluster = ingress_listener(TLSMode.MUTUAL, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        refused = await run(*_curl(pki, proxy, "/status/200", PROTOCOLS[protocol], cert=credential))
        assert refused.code == 56
        assert _mask_openssl_version(refused.stderr.strip()) == REFUSALS[credential]
        assert app.requests == []
        control = await run(*_curl(pki, proxy, "/status/200", PROTOCOLS[protocol], cert="client"))
    assert control.code == 0, control.stderr
    assert _headers(control.stdout)[0] == STATUS_LINE[protocol]
    assert len(app.requests) == 1


async def test_http2_response_is_envoys(pki: Pki, app: App) -> None:
    listener, cluster = ingress_listener(TLSMode.MUTUAL, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        result = await run(*_curl(pki, proxy, "/status/200", "-I", cert="client"))
    assert result.code == 0, result.stderr
    status, headers = _headers(result.stdout)
    assert status == "HTTP/2 200"
    assert list(headers) == [
        "server",
        "date",
        "content-type",
        "access-control-allow-origin",
        "content-length",
        "x-envoy-upstream-service-time",
        "x-envoy-decorator-operation",
    ]
    assert headers["server"] == "istio-envoy"
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["x-envoy-decorator-operation"] == "ingress-sidecar.test:9080/*"
    # The inbound cluster binds its upstream connections to 127.0.0.6, as Envoy does.
    assert app.requests[0]["peer"][0] == "127.0.0.6"  # type: ignore[index]


async def test_forwarded_client_cert_reaches_the_app(pki: Pki, app: App) -> None:
    listener, cluster = ingress_listener(TLSMode.MUTUAL, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        result = await run(*_curl(pki, proxy, "/headers", cert="client"))
    assert result.code == 0, result.stderr
    seen = json.loads(result.stdout.split("\r\n\r\n", 1)[1])["headers"]
    xfcc = seen["x-forwarded-client-cert"]
    assert re.fullmatch(
        r'Hash=[0-9a-f]{64};Subject="O=client organization,CN=client.test.svc.cluster.local";URI=',
        xfcc,
    ), xfcc
    assert seen["x-forwarded-proto"] == "https"
    assert re.fullmatch(r"[0-9a-f-]{36}", seen["x-request-id"])


async def test_upstream_service_time_counts_the_apps_wait(pki: Pki, app: App) -> None:
    listener, cluster = ingress_listener(TLSMode.SIMPLE, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        result = await run(*_curl(pki, proxy, "/delay", cert=None))
    assert result.code == 0, result.stderr
    assert int(_headers(result.stdout)[1]["x-envoy-upstream-service-time"]) >= 200


async def test_app_down_gives_envoys_503(pki: Pki) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    listener, cluster = ingress_listener(TLSMode.SIMPLE, closed_port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        result = await run(*_curl(pki, proxy, "/status/200", "--http1.1", cert=None))
    assert result.code == 0, result.stderr
    status, headers = _headers(result.stdout)
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["content-type"] == "text/plain"
    assert headers["server"] == "istio-envoy"
    body = result.stdout.split("\r\n\r\n", 1)[1]
    assert body == (
        "upstream connect error or disconnect/reset before headers. "
        "reset reason: connection failure"
    )
    assert headers["content-length"] == str(len(body))


async def test_connection_close_from_the_app_never_reaches_http2(pki: Pki, app: App) -> None:
    listener, cluster = ingress_listener(TLSMode.SIMPLE, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        first = _curl(pki, proxy, "/close", "--http2", cert=None)
        second = _curl(pki, proxy, "/status/200", "--http2", cert=None)
        result = await run(*first, "--next", *second[1:])
    assert result.code == 0, result.stderr
    responses = result.stdout.split("HTTP/2 ")
    assert len(responses) == 3  # two responses, both HTTP/2
    assert "connection:" not in result.stdout.lower()
    assert "transfer-encoding" not in result.stdout.lower()
    assert [r["target"] for r in app.requests] == ["/close", "/status/200"]
    assert app.connections == 2  # the closed upstream connection was not reused


async def test_keep_alive_pool_reuses_the_upstream_connection(pki: Pki, app: App) -> None:
    listener, cluster = ingress_listener(TLSMode.SIMPLE, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        for _ in range(3):
            result = await run(*_curl(pki, proxy, "/status/200", "--http1.1", cert=None))
            assert result.code == 0, result.stderr
    assert len(app.requests) == 3
    assert app.connections == 1


async def test_plaintext_to_a_tls_port_is_reset(pki: Pki, app: App) -> None:
    listener, cluster = ingress_listener(TLSMode.MUTUAL, app.port)
    async with running_proxy(listener, [cluster], _secrets(pki)) as proxy:
        result = await run("curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{proxy.port}/")
    assert result.code == 56
    assert result.stderr.strip() == "curl: (56) Recv failure: Connection reset by peer"
    assert app.requests == []


async def _served_serial(pki: Pki, proxy: RunningProxy) -> str:
    shown = await run(
        "openssl", "s_client", "-connect", f"127.0.0.1:{proxy.port}", "-servername", HOST,
        "-CAfile", str(pki.path("example.com.crt")),
        "-cert", str(pki.path("client.crt")), "-key", str(pki.path("client.key")),
        stdin=b"",
    )  # fmt: skip
    assert "Verify return code: 0 (ok)" in shown.stdout, shown.stdout
    serial = await run("openssl", "x509", "-noout", "-serial", stdin=shown.stdout.encode())
    return serial.stdout.strip()


async def test_a_changed_secret_is_served_on_the_next_handshake(pki: Pki, app: App) -> None:
    listener, cluster = ingress_listener(TLSMode.MUTUAL, app.port)
    secrets = _secrets(pki)
    async with running_proxy(listener, [cluster], secrets) as proxy:
        assert await _served_serial(pki, proxy) == "serial=01"
        secrets.set(
            certificate_secret(CERT_SECRET, pki.path("httpbin2.crt"), pki.path("httpbin2.key"))
        )
        assert await _served_serial(pki, proxy) == "serial=02"


async def test_a_missing_secret_resets_instead_of_serving_without_certificate(
    pki: Pki, app: App
) -> None:
    listener, cluster = ingress_listener(TLSMode.SIMPLE, app.port)
    secrets = StaticSecretProvider([root_secret(ROOT_SECRET, pki.path("example.com.crt"))])
    async with running_proxy(listener, [cluster], secrets) as proxy:
        result = await run(*_curl(pki, proxy, "/status/200", cert=None))
    assert result.code in (35, 56), result.stderr
    assert app.requests == []


def test_pki_leaves_are_x509_v1(pki: Pki) -> None:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(Path(pki.path("httpbin.crt")).read_bytes())
    assert leaf.version is x509.Version.v1
