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

Timeouts (HTTP/1.1), Envoy's edge values unless the proto sets them: between requests
the idle timeout (1 h) runs and the connection is closed when it fires; from the first
byte of a head, the request headers timeout (10 s) ends a slow client with 408; while a
request is served, the stream idle timeout (5 min, renewed by each body chunk) answers
408 ``stream timeout`` before the response started and resets the connection after. One
``asyncio.Timeout`` per connection is moved between them.

Telemetry: each request fills a ``RequestInfo``; when its response is written the
connection's ``ConnectionMetrics`` count it (Istio's metrics) and the access log gets
its line.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING

from meshlet.proxy.access_log import (
    AccessLogBuffer,
    RequestInfo,
    format_access_log,
    format_address,
)
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
from meshlet.proxy.metrics import ConnectionMetrics
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
    server_name: str | None = None  # the SNI the client sent


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
    info: RequestInfo | None = None  # filled by the router for the log and the metrics


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


class _StartTimes:
    """Envoy's ``%START_TIME%`` (``2026-11-29T16:27:45.123Z``), the seconds cached."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


_start_times = _StartTimes()


class _RequestIds:
    """Random (version 4) UUIDs as Envoy's ``x-request-id``, from a pool of random
    bytes refilled 4 KiB at a time instead of a system call per request."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        if self._at + 16 > len(self._pool):
            self._pool = os.urandom(4096)
            self._at = 0
        raw = int.from_bytes(self._pool[self._at : self._at + 16], "big")
        self._at += 16
        raw = (raw & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        text = f"{raw:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_request_ids = _RequestIds()

# The request headers the access log and the metrics read.
_LOGGED_REQUEST_HEADERS = frozenset(
    {b"user-agent", b"x-request-id", b"x-forwarded-for", b"content-type"}
)

# Envoy's RESPONSE_CODE_DETAILS for the heads the proxy refuses.
_HEAD_DETAILS = {
    "head too large": "http1.headers_too_large",
    "too many headers": "http1.too_many_headers",
}


class _LazyDeadline:
    """Moves an ``asyncio.Timeout`` without a timer operation per move.

    The connection's deadline moves several times per request (idle, head, stream);
    rescheduling the ``Timeout`` each time costs a timer cancel and a timer start. Here
    one loop timer stays armed: a later deadline is only noted, and when the timer fires
    early it re-arms itself for the noted time; only an earlier deadline re-arms it at
    once. When the noted deadline has passed, the ``Timeout`` is expired (it cancels
    the task as it would have on its own).
    """

    __slots__ = ("_armed_at", "_handle", "_loop", "_timeout", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: asyncio.Timeout) -> None:
        self._loop = loop
        self._timeout = timeout
        self._when: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def reschedule(self, when: float | None) -> None:
        self._when = when
        if when is None:
            return
        handle = self._handle
        if handle is not None:
            if self._armed_at <= when:
                return
            handle.cancel()
        self._armed_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        when = self._when
        if when is None or self._timeout.expired():
            return
        if self._loop.time() < when:
            self._armed_at = when
            self._handle = self._loop.call_at(when, self._fire)
            return
        self._timeout.reschedule(when)

    def cancel(self) -> None:
        self._when = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Deadlines:
    """Expires any number of ``asyncio.Timeout`` (entered with no deadline) from one
    loop timer, as ``_LazyDeadline`` does for one: the route timeouts of a connection's
    requests. Adding a deadline later than the armed timer, or removing one, costs no
    timer operation; when the timer fires it expires what is due and re-arms for the
    earliest deadline left."""

    __slots__ = ("_armed_at", "_handle", "_loop", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[asyncio.Timeout, float] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def add(self, timeout: asyncio.Timeout, when: float) -> None:
        self._pending[timeout] = when
        handle = self._handle
        if handle is not None:
            if self._armed_at <= when:
                return
            handle.cancel()
        self._armed_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def discard(self, timeout: asyncio.Timeout) -> None:
        self._pending.pop(timeout, None)

    def _fire(self) -> None:
        self._handle = None
        now = self._loop.time()
        earliest: float | None = None
        for timeout, when in list(self._pending.items()):
            if when <= now:
                del self._pending[timeout]
                if not timeout.expired():
                    timeout.reschedule(when)
            elif earliest is None or when < earliest:
                earliest = when
        if earliest is not None:
            self._armed_at = earliest
            self._handle = self._loop.call_at(earliest, self._fire)

    def close(self) -> None:
        self._pending.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Expired(Exception):
    """A connection or stream timeout fired (which one: ``_Phase``)."""


class _Phase:
    IDLE = 0  # between requests: the idle timeout
    HEADERS = 1  # a request head is arriving: the request headers timeout
    STREAM = 2  # a request is being served: the stream idle timeout


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
        request_id: Callable[[], str] = _request_ids,
        date: Callable[[], bytes] = _dates,
        metrics: ConnectionMetrics | None = None,
        access_log: AccessLogBuffer | None = None,
        wall_clock: Callable[[], float] = time.time,
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
        self.metrics = metrics
        self.access_log = access_log
        self.wall_clock = wall_clock
        self._local = format_address(downstream.destination)
        self._remote = format_address(downstream.source)
        self._route_deadlines: _Deadlines | None = None
        self._loop: asyncio.AbstractEventLoop  # set when serving starts
        self._last_route: tuple[tuple[RouteTable, bytes, bytes], RouteDecision | None] | None = None

    # --- serving ----------------------------------------------------------------------

    async def serve(self, stream: ByteStream) -> None:
        """Serve until the client is done; never raises for the client's mistakes."""
        # Kept: ``asyncio.get_running_loop`` costs a ``getpid`` system call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        try:
            if self.downstream.alpn == "h2":
                await self._serve_http2(stream, b"")
                return
            await self._serve_http1(stream)
        except (OSError, UpstreamFailure):
            stream.abort()
        finally:
            if self._route_deadlines is not None:
                self._route_deadlines.close()
            if not stream.closed:
                stream.close()

    async def _serve_http2(self, stream: ByteStream, initial: bytes) -> None:
        from meshlet.proxy.http2 import Http2Server

        await Http2Server(self, stream).serve(initial)

    async def _serve_http1(self, stream: ByteStream) -> None:
        settings = self.settings
        loop = self._loop
        idle_timeout = settings.idle_timeout
        headers_timeout = settings.request_headers_timeout
        self._phase = _Phase.IDLE
        self._response_started = False
        try:
            async with asyncio.timeout(None) as timeout:
                deadline = self._deadline = _LazyDeadline(loop, timeout)
                try:
                    await self._http1_loop(stream, loop, deadline, idle_timeout, headers_timeout)
                finally:
                    deadline.cancel()
        except TimeoutError:
            await self._expired(stream)

    async def _expired(self, stream: ByteStream) -> None:
        """A timeout fired: close when idle, 408 when the head or the stream stalled."""
        phase = self._phase
        if phase == _Phase.IDLE:
            return
        if phase == _Phase.STREAM and self._response_started:
            stream.abort()
            return
        details = "request_header_timeout" if phase == _Phase.HEADERS else "stream_idle_timeout"
        reason = "request timeout" if phase == _Phase.HEADERS else "stream timeout"
        reply = local_reply(408, reason=reason, close=True)
        info = self._current or self._new_info(self._loop.time())
        info.flags = "DT" if phase == _Phase.HEADERS else "SI"
        info.details = details
        response = self.local_response(reply, None)
        response.info = info
        try:
            async with asyncio.timeout(1):
                await self._write_http1(stream, None, response, False)
        except (OSError, TimeoutError):
            stream.abort()

    def _new_info(self, started: float) -> RequestInfo:
        return RequestInfo(
            start_time=_start_times(self.wall_clock()),
            started=started,
            downstream_local=self._local,
            downstream_remote=self._remote,
            server_name=self.downstream.server_name,
        )

    async def _http1_loop(
        self,
        stream: ByteStream,
        loop: asyncio.AbstractEventLoop,
        deadline: _LazyDeadline,
        idle_timeout: float | None,
        headers_timeout: float | None,
    ) -> None:
        settings = self.settings
        buffer = bytearray()
        searched = 0
        max_head = settings.max_request_headers_kb * 1024
        stream_idle = settings.stream_idle_timeout
        self._current: RequestInfo | None = None
        while True:
            # Between requests the idle timeout runs; from a head's first byte, the
            # request headers timeout.
            if not buffer:
                self._phase = _Phase.IDLE
                deadline.reschedule(None if idle_timeout is None else loop.time() + idle_timeout)
            elif self._phase != _Phase.HEADERS:
                self._phase = _Phase.HEADERS
                deadline.reschedule(
                    None if headers_timeout is None else loop.time() + headers_timeout
                )
            found = (
                scan_request_head(
                    bytes(buffer),
                    search_from=searched,
                    max_head_size=max_head,
                    max_headers=settings.max_headers_count,
                )
                if buffer
                else None
            )
            if found is None:
                if len(buffer) >= len(H2_PREFACE) and buffer.startswith(H2_PREFACE):
                    deadline.reschedule(None)
                    await self._serve_http2(stream, bytes(buffer))
                    return
                searched = len(buffer)
                data = await stream.read(READ_SIZE)
                if not data:
                    return
                if not buffer and self._phase == _Phase.IDLE:
                    self._phase = _Phase.HEADERS
                    deadline.reschedule(
                        None if headers_timeout is None else loop.time() + headers_timeout
                    )
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
                        deadline.reschedule(None)
                        await self._serve_http2(stream, data)
                        return
                response = self.local_response(local_reply(found.status, close=True), None)
                info = response.info = self._new_info(loop.time())
                info.flags = "DPE"
                info.details = _HEAD_DETAILS.get(found.reason, "http1.codec_error")
                await self._write_http1(stream, None, response, False)
                return
            head = found
            del buffer[: head.size]
            searched = 0
            self._phase = _Phase.STREAM
            self._response_started = False
            deadline.reschedule(None if stream_idle is None else loop.time() + stream_idle)
            info = self._current = self._new_info(loop.time())
            info.head_received = head.size
            request, body_reader, error = self._request_from_http1(head, buffer, stream)
            if error is not None:
                response = self.local_response(error, None)
                info.method, info.path = head.method, head.target
                info.flags = "DPE"
                info.details = "http1.invalid_authority"
                response.info = info
                await self._write_http1(stream, None, response, False)
                return
            assert request is not None
            if body_reader is not None and (
                (get_header(head.headers, b"expect") or b"").lower() == b"100-continue"
            ):
                stream.write(_CONTINUE)
            response = await self.handle(request, info)
            keep_alive = head.keep_alive and not response.close
            if body_reader is not None and not body_reader.done:
                keep_alive = False  # the rest of the body was not read: the framing is lost
            if body_reader is not None:
                info.bytes_received = body_reader.received
            await self._write_http1(stream, head, response, keep_alive)
            self._current = None
            if not keep_alive:
                return
            if body_reader is not None:
                buffer[:0] = body_reader.leftover

    def _request_from_http1(
        self, head: RequestHead, buffer: bytearray, stream: ByteStream
    ) -> tuple[Request | None, _Http1Body | None, LocalReply | None]:
        target = head.target
        host = None
        for name, value in head.headers:  # names are lower-case from the head scanner
            if name == b"host":
                host = value
                break
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
        headers.extend([header for header in head.headers if header[0] != b"host"])
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
        head_size = len(out)
        sent = 0
        try:
            if body is None:
                if has_body:
                    out += response.local_body
                    sent = len(response.local_body)
                self._response_started = True
                stream.write(out)
                await stream.drain()
                return
            if not has_body:
                if not body.done:
                    body.abort()
                self._response_started = True
                stream.write(out)
                await stream.drain()
                return
            try:
                first = body.take_buffered()
                sent = len(first)
                out += encode_chunk(first) if chunked else first
                deadline = self._deadline
                stream_idle = self.settings.stream_idle_timeout
                loop = self._loop if stream_idle is not None else None
                while True:
                    if body.done:
                        if chunked:
                            out += LAST_CHUNK
                        self._response_started = True
                        stream.write(out)
                        await stream.drain()
                        return
                    self._response_started = True
                    stream.write(out)
                    await stream.drain()
                    data = await body.read()
                    sent += len(data)
                    out = encode_chunk(data) if chunked else data
                    if loop is not None and stream_idle is not None:
                        deadline.reschedule(loop.time() + stream_idle)
            except BaseException:
                body.abort()
                raise
        finally:
            info = response.info
            if info is not None:
                info.status = response.status
                info.head_sent = head_size
                info.bytes_sent = sent
                self._observe(info)

    def _observe(self, info: RequestInfo) -> None:
        """Count the finished request and write its access log line."""
        info.duration_ms = int((self._loop.time() - info.started) * 1000)
        metrics = self.metrics
        if metrics is not None:
            metrics.record_request(
                info.authority.decode("latin-1") if info.authority else "unknown",
                "grpc" if info.grpc else "http",
                info.status,
                info.flags,
                info.duration_ms,
                info.head_received + info.bytes_received,
                info.head_sent + info.bytes_sent,
            )
        if self.access_log is not None:
            self.access_log.append(format_access_log(info))

    # --- the router -------------------------------------------------------------------

    def route_table(self) -> RouteTable | None:
        if self.routes is not None:
            return self.routes
        if self.settings.rds_name is None:
            return None
        return self.config.route_table(self.settings.rds_name)

    def _select(self, table: RouteTable, request: Request) -> RouteDecision | None:
        """The route (routes match on the authority and the path only, so a connection's
        requests to the same place reuse the last answer)."""
        key = (table, request.authority, request.target)
        last = self._last_route
        if last is not None and last[0] == key:
            return last[1]
        strip: int | bool | None = False
        if self.settings.strip_any_host_port:
            strip = True
        elif self.settings.strip_matching_host_port:
            strip = self.listener_port
        decision = table.select(
            request.authority.decode("latin-1"), request.target.decode("latin-1"), strip_port=strip
        )
        self._last_route = (key, decision)
        return decision

    async def handle(self, request: Request, info: RequestInfo | None = None) -> Response:
        """Route one request upstream and return the response to send downstream.

        ``info`` (the access log's and the metrics' record of the request) is filled in
        and attached to the response; the writer completes it.
        """
        self.requests += 1
        if info is None:
            info = self._new_info(self._loop.time())
        headers_in = request.headers
        info.method = request.method
        info.path = request.target
        info.authority = request.authority
        request_id = None
        for name, value in headers_in:  # names are lower-case from both codecs
            if name not in _LOGGED_REQUEST_HEADERS:
                continue
            if name == b"user-agent":
                info.user_agent = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"x-forwarded-for":
                info.forwarded_for = value
            elif value.startswith(b"application/grpc"):  # content-type
                info.grpc = True
        response = await self._route(request, info, request_id)
        response.info = info
        return response

    async def _route(
        self, request: Request, info: RequestInfo, request_id: bytes | None
    ) -> Response:
        table = self.route_table()
        decision = None if table is None else self._select(table, request)
        if decision is None:
            info.flags, info.details = "NR", "route_not_found"
            info.request_id = request_id
            return self.local_response(local_reply(404), None)
        info.route_name = decision.route_name
        info.upstream_cluster = decision.cluster
        cluster = self.config.clusters.get(decision.cluster)
        if request_id is None:
            generated = self.request_id()
            info.request_id = generated.encode()
        else:
            generated = ""
            info.request_id = request_id
        if cluster is None:
            info.flags, info.details = "NC", "cluster_not_found"
            return self.local_response(LocalReply(503, b""), decision)
        try:
            endpoint = self.upstreams.pick(
                cluster, self.config.endpoints, self.downstream.destination
            )
        except UpstreamFailure as failure:
            info.flags, info.details = "UH", "no_healthy_upstream"
            return self.local_response(LocalReply(503, failure.reason.encode()), decision)
        info.upstream_host = f"{endpoint.host}:{endpoint.port}"
        headers = upstream_request_headers(
            request.headers,
            self.settings,
            tls=self.downstream.tls,
            client_cert_element=self.downstream.client_cert_element,
            request_id=generated,
            attempt_count=1 if decision.include_attempt_count else None,
        )
        if request.body is not None and request.body.content_length is None:
            headers.append((b"transfer-encoding", b"chunked"))  # re-framed for this hop
        head = render_request_head(request.method, request.target, headers)
        loop = self._loop
        started = loop.time()
        try:
            if decision.timeout is None:
                upstream = await self.upstreams.request(
                    cluster, endpoint, method=request.method, head=head, body=request.body
                )
            else:
                async with asyncio.timeout(None) as timeout:
                    deadlines = self._route_deadlines
                    if deadlines is None:
                        deadlines = self._route_deadlines = _Deadlines(loop)
                    deadlines.add(timeout, started + decision.timeout)
                    try:
                        upstream = await self.upstreams.request(
                            cluster, endpoint, method=request.method, head=head, body=request.body
                        )
                    finally:
                        deadlines.discard(timeout)
        except TimeoutError:
            info.flags, info.details = "UT", "response_timeout"
            return self.local_response(local_reply(504), decision)
        except UpstreamFailure as failure:
            reason = UPSTREAM_RESET + failure.reason
            info.flags = _FAILURE_FLAGS.get(failure.reason.split(",", 1)[0], "UC")
            info.details = (
                "upstream_reset_before_response_started{"
                + failure.reason.split(",", 1)[0].replace(" ", "_")
                + "}"
            )
            if "transport failure reason: " in failure.reason:
                info.transport_failure = failure.reason.split("transport failure reason: ", 1)[1]
            return self.local_response(LocalReply(503, reason.encode()), decision)
        elapsed_ms = int((loop.time() - started) * 1000)
        info.service_time = elapsed_ms
        info.details = "via_upstream"
        info.upstream_local = upstream.local_address
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


# Envoy's RESPONSE_FLAGS for the upstream failures the pools report.
_FAILURE_FLAGS = {
    "connection failure": "UF",
    "connection timeout": "UF",
    "overflow": "UO",
    "connection termination": "UC",
    "protocol error": "UPE",
}


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
        self.received = 0  # body bytes (decoded) read so far

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
                self.received += len(piece)
                yield piece
