"""The fake API server, plus the pod ``portforward`` subresource over WebSocket.

Written from the Kubernetes documentation of the channel protocol, independently of
meshlet's client: the WebSocket sub-protocol ``v4.channel.k8s.io``; for the i-th port
in ``?ports=``, channel ``2i`` carries data both ways and ``2i+1`` errors from the
server; every binary message starts with its channel byte; the server opens each
channel with the port as two little-endian bytes. Like the kubelet, the server
connects to the port "inside the pod" — here a real TCP port on 127.0.0.1 that a test
registers for ``(namespace, pod, port)`` — and relays bytes until either side closes;
a refused connection is reported as text on the error channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from aiohttp import WSMsgType, web

from tests.kube.fake_apiserver import FakeApiServer, Seen

__all__ = ["PortForwardApiServer"]

PROTOCOL = "v4.channel.k8s.io"


class PortForwardApiServer(FakeApiServer):
    def __init__(self) -> None:
        super().__init__()
        self.backends: dict[tuple[str, str, int], int] = {}  # -> a port on 127.0.0.1
        self.forwards: list[Seen] = []
        self.protocols: list[str | None] = []
        self.split_prefix = False  # send each port prefix in two messages
        self.refuse: int | None = None  # answer upgrades with this status instead

    def backend(self, namespace: str, pod: str, port: int, local_port: int) -> None:
        self.backends[(namespace, pod, port)] = local_port

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        is_forward = (
            len(parts) == 7
            and parts[:3] == ["api", "v1", "namespaces"]
            and parts[4] == "pods"
            and parts[6] == "portforward"
            and request.headers.get("Upgrade", "").lower() == "websocket"
        )
        if not is_forward:
            return await super()._handle(request)
        namespace, pod = parts[3], parts[5]
        self.forwards.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), b"")
        )
        if self.refuse is not None:
            status = {"kind": "Status", "status": "Failure", "code": self.refuse}
            return web.json_response(status, status=self.refuse)
        ports = [int(p) for value in request.query.getall("ports", []) for p in value.split(",")]
        if not ports:
            return web.json_response(
                {"kind": "Status", "code": 400, "message": 'query parameter "port" is required'},
                status=400,
            )
        ws = web.WebSocketResponse(protocols=(PROTOCOL,))
        await ws.prepare(request)
        self.protocols.append(ws.ws_protocol)
        for index, port in enumerate(ports):
            for channel in (2 * index, 2 * index + 1):
                prefix = struct.pack("<BH", channel, port)
                if self.split_prefix:
                    await ws.send_bytes(prefix[:2])
                    await ws.send_bytes(bytes([channel]))  # an empty message
                    await ws.send_bytes(bytes([channel]) + prefix[2:])
                else:
                    await ws.send_bytes(prefix)
        await self._serve(ws, namespace, pod, ports[0])
        return ws

    async def _serve(self, ws: web.WebSocketResponse, namespace: str, pod: str, port: int) -> None:
        local = self.backends.get((namespace, pod, port))
        try:
            if local is None:
                raise ConnectionRefusedError("connection refused")
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
        except OSError as error:
            message = (
                f"error forwarding port {port} to pod {pod}, uid : failed to connect to "
                f"localhost:{port} inside namespace {namespace}: {error.strerror or error}"
            )
            await ws.send_bytes(b"\x01" + message.encode())
            await ws.close()
            return

        async def to_pod() -> None:
            async for message in ws:
                if message.type is not WSMsgType.BINARY or not message.data:
                    continue
                if message.data[0] == 0:
                    writer.write(message.data[1:])
                    await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        async def from_pod() -> None:
            while data := await reader.read(4096):  # small messages: the client joins them
                await ws.send_bytes(b"\x00" + data)

        tasks = [asyncio.create_task(to_pod()), asyncio.create_task(from_pod())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not tasks[1].done():  # the client went away first
            tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await tasks[1]
        await ws.close()
        tasks[0].cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await tasks[0]
        writer.close()
