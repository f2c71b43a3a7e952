"""A very small HTTP/1.1 server and client for the admin, health and worker-control ports.

One request per connection (``Connection: close``); heads up to 16 KiB; request bodies
are read and ignored. Enough for ``curl``, probes and the agent asking its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

__all__ = ["HttpRequest", "HttpResponse", "http_get", "serve_connection"]

_MAX_HEAD = 16 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


async def serve_connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read one request, answer it with ``handler``, close."""
    try:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEAD:
                raise ValueError("head too large")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(min(length, 1 << 20))
        url = urlsplit(target)
        request = HttpRequest(method.upper(), url.path, parse_qs(url.query, keep_blank_values=True))
        response = await handler(request)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, TimeoutError):
        writer.close()
        return
    except ValueError:
        response = HttpResponse(400, b"bad request\n")
    head_lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"content-type: {response.content_type}",
        "cache-control: no-cache, max-age=0",
        "x-content-type-options: nosniff",
        *(f"{name}: {value}" for name, value in response.headers),
        f"content-length: {len(response.body)}",
        "connection: close",
        "",
        "",
    ]
    with contextlib.suppress(ConnectionError):
        writer.write("\r\n".join(head_lines).encode("latin-1") + response.body)
        await writer.drain()
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def http_get(
    unix_address: str, path: str, *, method: str = "GET", timeout: float = 2.0
) -> tuple[int, bytes]:
    """One request over a unix socket; ``(status, body)``. Raises ``OSError``/``TimeoutError``."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(unix_address)
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nhost: local\r\ncontent-length: 0\r\n\r\n".encode()
            )
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError("malformed response") from None
    return status, body
