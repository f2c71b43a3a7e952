"""A pod's port through the API server's ``portforward`` subresource (async shell).

Theory of operation. ``open_port_forward`` upgrades
``GET /api/v1/namespaces/NS/pods/NAME/portforward?ports=PORT`` to a WebSocket with the
``v4.channel.k8s.io`` sub-protocol, through ``kubernetes-asyncio``'s ``WsApiClient``
(the same kubeconfig, TLS and credentials as every other request), and speaks the
channel protocol of ``meshlet.kube.portforward_frames`` over it: one WebSocket is one
TCP connection to the port inside the pod, as ``kubectl port-forward`` makes one
stream per connection. (kubectl itself prefers SPDY, or SPDY tunnelled in a
WebSocket; the plain channel protocol is the one the API server has long served to
WebSocket clients, and the one the client library speaks.)

On top of it:

- ``admin_get``: one HTTP/1.1 ``GET`` to the sidecar's admin port (15000), the body
  read with ``httptools`` until the response is complete: what ``proxy-config`` reads;
- ``forward_local_port``: a listener on 127.0.0.1 whose every connection is relayed
  through its own port-forward: what a gRPC client needs (``proxy-status`` asks
  istiod's 15010 through it);
- ``resolve_pod`` / ``control_plane_pod``: the pod a verb names, which must be
  Running, as kubectl requires before forwarding.

Errors: a refused upgrade is ``ApiStatusError`` (with the server's status code), a
message on the port's error channel (the kubelet could not connect inside the pod)
is ``PortForwardError``, and a connection that fails is ``ApiUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import httptools
from kubernetes_asyncio.stream import WsApiClient

from meshlet.errors import ExitCode, MeshletError
from meshlet.kube.client import ApiStatusError, ApiUnavailable, KubeApi
from meshlet.kube.portforward_frames import (
    PORTFORWARD_PROTOCOL,
    DataReceived,
    ErrorReceived,
    PortForwardDecoder,
    ProtocolViolation,
    encode_data,
)

__all__ = [
    "ADMIN_PORT",
    "PodNotFound",
    "PortForward",
    "PortForwardError",
    "admin_get",
    "control_plane_pod",
    "forward_local_port",
    "open_port_forward",
    "resolve_pod",
]

ADMIN_PORT = 15000
_CHUNK = 64 * 1024


class PortForwardError(MeshletError):
    """The forwarded connection failed (the server said why)."""

    exit_code = ExitCode.UNAVAILABLE


class PodNotFound(MeshletError):
    """No pod matches what the verb named."""

    exit_code = ExitCode.NOT_FOUND


class PortForward:
    """One TCP connection to a pod's port, carried by a WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, port: int, where: str) -> None:
        self._ws = ws
        self._decoder = PortForwardDecoder((port,))
        self.port = port
        self.where = where

    async def send(self, data: bytes) -> None:
        for message in encode_data(0, data):
            await self._ws.send_bytes(message)

    async def receive(self) -> bytes:
        """The next bytes from the pod's port; ``b""`` once the server closed."""
        while True:
            message = await self._ws.receive()
            if message.type is aiohttp.WSMsgType.BINARY:
                try:
                    events = self._decoder.receive(message.data)
                except ProtocolViolation as error:
                    raise PortForwardError(f"{self.where}: {error}") from None
                for event in events:
                    if isinstance(event, ErrorReceived):
                        raise PortForwardError(f"{self.where}: {event.message}")
                    if isinstance(event, DataReceived):
                        return event.data
                continue
            if message.type is aiohttp.WSMsgType.TEXT:
                raise PortForwardError(
                    f"{self.where}: the server sent text, not {PORTFORWARD_PROTOCOL} frames"
                )
            if message.type is aiohttp.WSMsgType.ERROR:
                raise ApiUnavailable(f"{self.where}: the connection broke off: {message.data}")
            return b""  # CLOSE, CLOSING, CLOSED

    async def aclose(self) -> None:
        await self._ws.close()


@contextlib.asynccontextmanager
async def open_port_forward(
    api: KubeApi, namespace: str, pod: str, port: int, *, timeout: float = 30.0
) -> AsyncIterator[PortForward]:
    """A connection to ``port`` inside ``pod`` (``localhost:PORT`` there)."""
    where = f"port-forward to pod {namespace}/{pod} port {port}"
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/portforward"
    client = WsApiClient(configuration=api.api_client.configuration)
    try:
        connecting = await client.call_api(
            path,
            "GET",
            query_params=[("ports", str(port))],
            header_params={"sec-websocket-protocol": PORTFORWARD_PROTOCOL},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        try:
            async with asyncio.timeout(timeout):
                ws = await connecting
        except aiohttp.WSServerHandshakeError as error:
            raise ApiStatusError(
                error.status,
                "",
                f"error upgrading connection: {where}: HTTP {error.status} {error.message}",
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiUnavailable(
                f"{where}: the Kubernetes API server at {api.host} cannot be reached: "
                f"{error or type(error).__name__}"
            ) from None
        forward = PortForward(ws, port, where)
        try:
            yield forward
        finally:
            await forward.aclose()
    finally:
        await client.close()


async def admin_get(
    api: KubeApi,
    namespace: str,
    pod: str,
    path: str,
    *,
    port: int = ADMIN_PORT,
    timeout: float = 30.0,
) -> bytes:
    """The body of ``GET path`` on the pod's sidecar admin port; non-200 is an error."""
    async with (
        asyncio.timeout(timeout),
        open_port_forward(api, namespace, pod, port, timeout=timeout) as forward,
    ):
        request = (
            f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n"
            "User-Agent: meshlet\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        ).encode()
        await forward.send(request)
        status, body = await _read_response(forward)
    if status != 200:
        text = body.decode("utf-8", "replace").strip()
        raise PortForwardError(
            f"GET {path} on pod {namespace}/{pod} port {port} answered {status}: {text}"
        )
    return body


class _Response:
    def __init__(self) -> None:
        self.body = bytearray()
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


async def _read_response(forward: PortForward) -> tuple[int, bytes]:
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    while not response.complete:
        data = await forward.receive()
        if not data:
            break
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as error:
            raise PortForwardError(f"{forward.where}: not an HTTP answer: {error}") from None
    if not response.complete:
        raise PortForwardError(f"{forward.where}: the connection closed before the answer ended")
    return int(parser.get_status_code()), bytes(response.body)


@contextlib.asynccontextmanager
async def forward_local_port(
    api: KubeApi, namespace: str, pod: str, port: int
) -> AsyncIterator[int]:
    """A port on 127.0.0.1 whose connections reach ``port`` inside ``pod``."""
    relays: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with open_port_forward(api, namespace, pod, port) as forward:
                await _relay(reader, writer, forward)
        except (MeshletError, OSError):
            pass  # the local client sees its connection close
        finally:
            writer.close()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(relay(reader, writer))
        relays.add(task)
        task.add_done_callback(relays.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(relays):
            task.cancel()
        for task in list(relays):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, forward: PortForward
) -> None:
    async def upstream() -> None:
        while data := await reader.read(_CHUNK):
            await forward.send(data)
        await forward.aclose()  # the protocol has no half-close

    async def downstream() -> None:
        while data := await forward.receive():
            writer.write(data)
            await writer.drain()

    up = asyncio.create_task(upstream())
    down = asyncio.create_task(downstream())
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        for task in (up, down):
            with contextlib.suppress(asyncio.CancelledError, MeshletError, OSError):
                await task


# --- which pod --------------------------------------------------------------------------


def _selector_text(selector: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _first(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    pods.sort(key=lambda p: (not _ready(p), str((p.get("metadata") or {}).get("name"))))
    return pods[0] if pods else None


def _must_run(pod: Mapping[str, Any]) -> dict[str, Any]:
    phase = str((pod.get("status") or {}).get("phase") or "Unknown")
    if phase != "Running":
        raise PortForwardError(
            f"unable to forward port because pod is not running. Current status={phase}"
        )
    return dict(pod)


async def resolve_pod(api: KubeApi, namespace: str, text: str) -> dict[str, Any]:
    """The running pod ``text`` names: ``NAME``, ``pod/NAME``, ``deployment/NAME`` or
    ``svc/NAME`` (their first pod, the ready ones first)."""
    kind, slash, name = text.partition("/")
    if not slash:
        kind, name = "pod", text
    ns = quote(namespace, safe="")
    kind = kind.lower()
    if kind in ("pod", "pods", "po"):
        return _must_run(await api.request("GET", f"/api/v1/namespaces/{ns}/pods/{quote(name)}"))
    if kind in ("deployment", "deployments", "deploy"):
        owner = await api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{quote(name)}")
        selector = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    elif kind in ("service", "services", "svc"):
        owner = await api.request("GET", f"/api/v1/namespaces/{ns}/services/{quote(name)}")
        selector = (owner.get("spec") or {}).get("selector") or {}
    else:
        raise MeshletError(f"cannot forward to {kind}/{name}: use a pod, deployment or service")
    if not selector:
        raise MeshletError(f"cannot forward to {kind}/{name}: its selector is empty")
    listed = await api.request(
        "GET", f"/api/v1/namespaces/{ns}/pods", query=[("labelSelector", _selector_text(selector))]
    )
    found = _first(list(listed.get("items") or []))
    if found is None:
        raise PodNotFound(f"no pods found for {kind}/{name}")
    return _must_run(found)


async def control_plane_pod(api: KubeApi, namespace: str) -> dict[str, Any]:
    """A running pod of the control plane (``app=istiod``), as istioctl picks istiod."""
    listed = await api.request(
        "GET",
        f"/api/v1/namespaces/{quote(namespace, safe='')}/pods",
        query=[("labelSelector", "app=istiod"), ("fieldSelector", "status.phase=Running")],
    )
    found = _first(list(listed.get("items") or []))
    if found is None:
        raise PortForwardError(
            f"no running control plane pod (app=istiod) in namespace {namespace}; "
            "is meshlet installed in this cluster?"
        )
    return found
