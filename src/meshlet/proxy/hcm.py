"""The HTTP connection manager: downstream HTTP/1.1 and HTTP/2, the router, local replies.

Theory of operation: one ``HttpConnectionManager`` serves one downstream connection
with the config that was current when the connection was accepted (a new config applies
to new connections; this one drains on the old). ``serve`` speaks HTTP/2 when ALPN chose
``h2`` (or the client sent the HTTP/2 preface on a plaintext port) and HTTP/1.1
otherwise; both turn each request into a ``Request`` and call ``handle``, the router:

1. route (``routing.RouteTable``), 404 when nothing matches;
2. the cluster and a host (503 ``no healthy upstream`` when there is none);
3. the request headers as Envoy's router sends them (``routing.upstream_request_headers``:
   ``x-forwarded-proto``, ``x-request-id``, ``x-forwarded-client-cert`` from the element
   computed once at the handshake);
4. HTTP/1.1 to the upstream over the cluster's keep-alive pool, within the route's
   timeout (504 ``upstream request timeout``); a refused or broken upstream gives 503
   ``upstream connect error or disconnect/reset before headers. reset reason: …``;
5. the response headers as Envoy's connection manager writes them
   (``routing.downstream_response_headers``), the body streamed.

HTTP/1.1 downstream (``_serve_http1``): heads are scanned for framing only
(``http1_head``, 400/431/501 local replies that close the connection); bodies stream
through in both directions with ``Content-Length`` or chunked framing; ``Expect:
100-continue`` is answered by the proxy; keep-alive and pipelining follow the request's
version and ``Connection``; the response head and the body bytes at hand go out in one
write. HTTP/2 downstream lives in ``meshlet.proxy.http2``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING

from meshlet.proxy.http1 import (
    LAST_CHUNK,
    ChunkedDecoder,
    FramingError,
    encode_chunk,
    render_request_head,
    render_response_head,
)
from meshlet.proxy.http1_head import HeadError, RequestHead, scan_request_head
from meshlet.proxy.http_headers import Header, TrafficDirection, get_header
from meshlet.proxy.routing import (
    UPSTREAM_RESET,
    HcmSettings,
    LocalReply,
    RouteDecision,
    RouteTable,
    downstream_response_headers,
    local_reply,
    local_reply_headers,
    upstream_request_headers,
)
from meshlet.proxy.streams import READ_SIZE, ByteStream
from meshlet.proxy.upstream import RequestBody, ResponseBody, UpstreamFailure, UpstreamManager

if TYPE_CHECKING:
    from meshlet.proxy.runtime import ProxyConfig

__all__ = [
    "H2_PREFACE",
    "DownstreamInfo",
    "HttpConnectionManager",
    "Request",
    "Response",
]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class DownstreamInfo:
    """What the connection manager knows of its downstream connection."""

    source: tuple[str, int]
    destination: tuple[str, int]  # the original destination (ORIGINAL_DST clusters)
    tls: bool = False
    alpn: str | None = None
    client_cert_element: str | None = None  # this hop's XFCC element, once per connection


@dataclass(slots=True)
class Request:
    """A downstream request, the same for HTTP/1.1 and HTTP/2."""

    method: bytes
    target: bytes  # origin-form path and query
    authority: bytes
    headers: list[Header]  # regular headers, ``host`` first
    body: RequestBody | None = None


@dataclass(slots=True)
class Response:
    """What goes back downstream: shaped headers, then the body."""

    status: int
    headers: list[Header]
    body: ResponseBody | None = None
    local_body: bytes = b""
    content_length: int | None = None
    close: bool = False


class _DateCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


_dates = _DateCache(time.time)


class HttpConnectionManager:
    """Serves one downstream connection (see the module docstring)."""

    def __init__(
        self,
        settings: HcmSettings,
        routes: RouteTable | None,
        config: ProxyConfig,
        upstreams: UpstreamManager,
        downstream: DownstreamInfo,
        *,
        listener_port: int | None = None,
        request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        date: Callable[[], bytes] = _dates,
    ) -> None:
        self.settings = settings
        self.routes = routes
        self.config = config
        self.upstreams = upstreams
        self.downstream = downstream
        self.listener_port = listener_port
        self.request_id = request_id
        self.date = date
        self.requests = 0

    # --- serving ----------------------------------------------------------------------

    async def serve(self, stream: ByteStream) -> None:
        """Serve until the client is done; never raises for the client's mistakes."""
        try:
            if self.downstream.alpn == "h2":
                await self._serve_http2(stream, b"")
                return
            await self._serve_http1(stream)
        except (OSError, UpstreamFailure):
            stream.abort()
        finally:
            if not stream.closed:
                stream.close()

    async def _serve_http2(self, stream: ByteStream, initial: bytes) -> None:
        from meshlet.proxy.http2 import Http2Server

        await Http2Server(self, stream).serve(initial)

    async def _serve_http1(self, stream: ByteStream) -> None:
        settings = self.settings
        buffer = bytearray()
        searched = 0
        while True:
            found = scan_request_head(
                bytes(buffer),
                search_from=searched,
                max_head_size=settings.max_request_headers_kb * 1024,
                max_headers=settings.max_headers_count,
            )
            if found is None:
                if len(buffer) >= len(H2_PREFACE) and buffer.startswith(H2_PREFACE):
                    await self._serve_http2(stream, bytes(buffer))
                    return
                searched = len(buffer)
                data = await stream.read(READ_SIZE)
                if not data:
                    return
                buffer += data
                continue
            if isinstance(found, HeadError):
                if buffer.startswith(H2_PREFACE[:16]):
                    data = bytes(buffer)
                    while len(data) < len(H2_PREFACE) and H2_PREFACE.startswith(data):
                        more = await stream.read(READ_SIZE)
                        if not more:
                            return
                        data += more
                    if data.startswith(H2_PREFACE):
                        await self._serve_http2(stream, data)
                        return
                await self._write_http1(stream, None, local_reply(found.status, close=True), False)
                return
            head = found
            del buffer[: head.size]
            searched = 0
            request, body_reader, error = self._request_from_http1(head, buffer, stream)
            if error is not None:
                await self._write_http1(stream, None, error, False)
                return
            assert request is not None
            if body_reader is not None and (
                (get_header(head.headers, b"expect") or b"").lower() == b"100-continue"
            ):
                stream.write(_CONTINUE)
            response = await self.handle(request)
            keep_alive = head.keep_alive and not response.close
            if body_reader is not None and not body_reader.done:
                keep_alive = False  # the rest of the body was not read: the framing is lost
            await self._write_http1(stream, head, response, keep_alive)
            if not keep_alive:
                return
            if body_reader is not None:
                buffer[:0] = body_reader.leftover

    def _request_from_http1(
        self, head: RequestHead, buffer: bytearray, stream: ByteStream
    ) -> tuple[Request | None, _Http1Body | None, LocalReply | None]:
        target = head.target
        host = get_header(head.headers, b"host")
        if target.startswith((b"http://", b"https://")):
            rest = target.split(b"://", 1)[1]
            authority, slash, path = rest.partition(b"/")
            host = authority or host
            target = slash + path or b"/"
        if host is None:
            if head.version >= (1, 1):
                return None, None, local_reply(400, close=True)
            host = b""
        headers = [(b"host", host)]
        headers.extend((name, value) for name, value in head.headers if name.lower() != b"host")
        body_reader: _Http1Body | None = None
        body: RequestBody | None = None
        if head.chunked or head.content_length:
            body_reader = _Http1Body(buffer, stream, head.content_length, head.chunked)
            body = RequestBody(body_reader.chunks(), None if head.chunked else head.content_length)
        return Request(head.method, target, host, headers, body), body_reader, None

    async def _write_http1(
        self,
        stream: ByteStream,
        head: RequestHead | None,
        response: Response | LocalReply,
        keep_alive: bool,
    ) -> None:
        if isinstance(response, LocalReply):
            response = self.local_response(response, None)
            keep_alive = False
        method = head.method if head is not None else b"GET"
        headers = response.headers
        body = response.body
        has_body = method != b"HEAD" and response.status not in (204, 304)
        chunked = False
        if body is not None and response.content_length is None and has_body:
            if head is not None and head.version >= (1, 1):
                chunked = True
                headers = [*headers, (b"transfer-encoding", b"chunked")]
            else:
                keep_alive = False
        if not keep_alive:
            headers = [*headers, (b"connection", b"close")]
        out = render_response_head(response.status, headers)
        if body is None:
            if has_body:
                out += response.local_body
            stream.write(out)
            await stream.drain()
            return
        if not has_body:
            if not body.done:
                body.abort()
            stream.write(out)
            await stream.drain()
            return
        try:
            first = body.take_buffered()
            out += encode_chunk(first) if chunked else first
            while True:
                if body.done:
                    if chunked:
                        out += LAST_CHUNK
                    stream.write(out)
                    await stream.drain()
                    return
                stream.write(out)
                await stream.drain()
                data = await body.read()
                out = encode_chunk(data) if chunked else data
        except BaseException:
            body.abort()
            raise

    # --- the router -------------------------------------------------------------------

    def route_table(self) -> RouteTable | None:
        if self.routes is not None:
            return self.routes
        if self.settings.rds_name is None:
            return None
        return self.config.route_table(self.settings.rds_name)

    def _select(self, table: RouteTable, request: Request) -> RouteDecision | None:
        strip: int | bool | None = False
        if self.settings.strip_any_host_port:
            strip = True
        elif self.settings.strip_matching_host_port:
            strip = self.listener_port
        return table.select(
            request.authority.decode("latin-1"), request.target.decode("latin-1"), strip_port=strip
        )

    async def handle(self, request: Request) -> Response:
        """Route one request upstream and return the response to send downstream."""
        self.requests += 1
        table = self.route_table()
        decision = None if table is None else self._select(table, request)
        if decision is None:
            return self.local_response(local_reply(404), None)
        cluster = self.config.clusters.get(decision.cluster)
        if cluster is None:
            return self.local_response(LocalReply(503, b""), decision)
        try:
            endpoint = self.upstreams.pick(
                cluster, self.config.endpoints, self.downstream.destination
            )
        except UpstreamFailure as failure:
            return self.local_response(LocalReply(503, failure.reason.encode()), decision)
        headers = upstream_request_headers(
            request.headers,
            self.settings,
            tls=self.downstream.tls,
            client_cert_element=self.downstream.client_cert_element,
            request_id=self.request_id(),
            attempt_count=1 if decision.include_attempt_count else None,
        )
        if request.body is not None and request.body.content_length is None:
            headers.append((b"transfer-encoding", b"chunked"))  # re-framed for this hop
        head = render_request_head(request.method, request.target, headers)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(decision.timeout):
                upstream = await self.upstreams.request(
                    cluster, endpoint, method=request.method, head=head, body=request.body
                )
        except TimeoutError:
            return self.local_response(local_reply(504), decision)
        except UpstreamFailure as failure:
            reason = UPSTREAM_RESET + failure.reason
            return self.local_response(LocalReply(503, reason.encode()), decision)
        elapsed_ms = int((loop.time() - started) * 1000)
        shaped = downstream_response_headers(
            upstream.head.headers,
            self.settings,
            decorator=decision.decorator,
            elapsed_ms=elapsed_ms,
            date=self.date(),
        )
        return Response(
            status=upstream.head.status,
            headers=shaped,
            body=upstream.body,
            content_length=upstream.content_length,
        )

    def local_response(self, reply: LocalReply, decision: RouteDecision | None) -> Response:
        headers = local_reply_headers(reply, self.settings, date=self.date())
        settings = self.settings
        if (
            decision is not None
            and decision.decorator is not None
            and settings.tracing
            and settings.direction is TrafficDirection.INBOUND
        ):
            headers.append((b"x-envoy-decorator-operation", decision.decorator.encode()))
        return Response(
            status=reply.status,
            headers=headers,
            local_body=reply.body,
            content_length=len(reply.body),
            close=reply.close,
        )


class _Http1Body:
    """A downstream HTTP/1.1 request body, read as the upstream takes it."""

    def __init__(
        self, buffer: bytearray, stream: ByteStream, content_length: int | None, chunked: bool
    ) -> None:
        self._buffer = buffer
        self._stream = stream
        self._remaining = content_length or 0
        self._decoder = ChunkedDecoder() if chunked else None
        self.done = False
        self.leftover = b""

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.done:
            if self._buffer:
                data = bytes(self._buffer)
                self._buffer.clear()
            else:
                data = await self._stream.read(READ_SIZE)
                if not data:
                    raise ConnectionResetError("client closed during the request body")
            if self._decoder is not None:
                try:
                    pieces = self._decoder.feed(data)
                except FramingError as exc:
                    raise ConnectionResetError(f"bad chunked body: {exc}") from exc
                if self._decoder.done:
                    self.done = True
                    self.leftover = self._decoder.leftover
                piece = b"".join(pieces)
            else:
                piece = data[: self._remaining]
                self._remaining -= len(piece)
                if self._remaining == 0:
                    self.done = True
                    self.leftover = data[len(piece) :]
            if piece:
                yield piece
