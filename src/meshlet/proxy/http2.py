"""Downstream HTTP/2 for the connection manager, on the sans-I/O ``h2`` library.

Theory of operation: one reader loop feeds the connection's bytes to ``h2`` and acts on
its events; each request stream runs in its own task, which builds a ``Request``, calls
the connection manager's router and sends the response back. Limits are Envoy's: 100
concurrent streams, a 60 KiB header list, the connection manager's idle timeout while no
stream is open (then GOAWAY); ``h2`` validates inbound headers (upper-case
names and connection-specific headers are protocol errors).

Flow control both ways: request body data is acknowledged to the client only when the
upstream has taken it (so a slow app slows the client, with a bounded queue per
stream); response data is sent no faster than the client's stream and connection
windows allow, waiting for ``WINDOW_UPDATE`` otherwise.

Response headers carry no hop-by-hop header (the connection manager strips them; ``h2``
would refuse them), ``:status`` first; they are HPACK-encoded without Huffman coding
(``_PlainEncoder``) and not validated again on the way out. A reset stream cancels its task (and so closes
its upstream connection); a connection-level error sends GOAWAY and ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack

from meshlet.proxy.http_headers import Header
from meshlet.proxy.streams import READ_SIZE, ByteStream
from meshlet.proxy.upstream import RequestBody, UpstreamFailure

if TYPE_CHECKING:
    from meshlet.proxy.hcm import HttpConnectionManager, Response

__all__ = ["MAX_CONCURRENT_STREAMS", "Http2Server"]

MAX_CONCURRENT_STREAMS = 100
_MAX_HEADER_LIST = 60 * 1024
_CONNECTION_WINDOW = 1 << 20


class _Stream:
    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.body: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.ended = False


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding: hpack's Huffman coder is Python run per byte of
    every header value, which cost more CPU per response than the bytes it saves are
    worth between a client and its sidecar."""

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = False) -> bytes:  # type: ignore[override]
        return super().encode(headers, huffman=False)


class Http2Server:
    """Serves HTTP/2 on one downstream connection for an ``HttpConnectionManager``."""

    def __init__(self, manager: HttpConnectionManager, stream: ByteStream) -> None:
        self.manager = manager
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_inbound_headers=True,
                normalize_inbound_headers=True,
                # What goes out was built by the header rules: lower-case names, values
                # the head scanner checked, no connection-specific headers.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.conn.encoder = _PlainEncoder()
        self.streams: dict[int, _Stream] = {}
        self._window_open = asyncio.Event()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.stream.write(data)

    async def serve(self, initial: bytes = b"") -> None:
        conn = self.conn
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_CONNECTION_WINDOW)
        self.flush()
        idle_timeout = self.manager.settings.idle_timeout
        try:
            async with asyncio.TaskGroup() as tasks:
                data = initial
                try:
                    while True:
                        if data and not self._receive(data, tasks):
                            break
                        await self.stream.drain()
                        if self.streams or idle_timeout is None:
                            data = await self.stream.read(READ_SIZE)
                        else:
                            try:  # no stream open: the connection's idle timeout runs
                                async with asyncio.timeout(idle_timeout):
                                    data = await self.stream.read(READ_SIZE)
                            except TimeoutError:
                                self.conn.close_connection()  # GOAWAY, as Envoy does
                                self.flush()
                                break
                        if not data:
                            break
                finally:
                    for state in self.streams.values():
                        if state.task is not None:
                            state.task.cancel()
        except* (OSError, UpstreamFailure):
            self.stream.abort()

    def _receive(self, data: bytes, tasks: asyncio.TaskGroup) -> bool:
        """Handle the events in ``data``; ``False`` when the connection is over."""
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()  # h2 has queued a GOAWAY
            return False
        alive = True
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                state = _Stream(event.stream_id)
                self.streams[event.stream_id] = state
                state.ended = event.stream_ended is not None
                headers = list(event.headers or [])
                state.task = tasks.create_task(self._run(state, headers, has_body=not state.ended))
            elif isinstance(event, h2.events.DataReceived):
                found = self.streams.get(event.stream_id)
                if found is None:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                else:
                    found.body.put_nowait(event.data)
                    if event.flow_controlled_length > len(event.data):  # padding
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length - len(event.data), event.stream_id
                        )
            elif isinstance(event, h2.events.StreamEnded):
                found = self.streams.get(event.stream_id)
                if found is not None:
                    found.ended = True
                    found.body.put_nowait(None)
            elif isinstance(event, h2.events.StreamReset):
                found = self.streams.pop(event.stream_id, None)
                if found is not None and found.task is not None:
                    found.task.cancel()
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self._window_open.set()
            elif isinstance(event, h2.events.ConnectionTerminated):
                alive = False
        self.flush()
        return alive

    async def _request_body(self, state: _Stream) -> AsyncIterator[bytes]:
        while True:
            data = await state.body.get()
            if data is None:
                return
            with contextlib.suppress(h2.exceptions.StreamClosedError, KeyError):
                self.conn.acknowledge_received_data(len(data), state.id)
                self.flush()
            if data:
                yield data

    async def _run(
        self, state: _Stream, raw_headers: list[tuple[bytes, bytes]], *, has_body: bool
    ) -> None:
        from meshlet.proxy.hcm import Request

        pseudo: dict[bytes, bytes] = {}
        headers: list[Header] = []
        for name, value in raw_headers:
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                headers.append((name, value))
        method = pseudo.get(b":method", b"GET")
        target = pseudo.get(b":path", b"/")
        authority = pseudo.get(b":authority")
        if authority is None:
            authority = next((value for name, value in headers if name == b"host"), b"")
        request_headers = [(b"host", authority)]
        request_headers.extend((name, value) for name, value in headers if name != b"host")
        body: RequestBody | None = None
        if has_body:
            length = next((v for n, v in headers if n == b"content-length"), None)
            content_length = int(length) if length is not None and length.isdigit() else None
            body = RequestBody(self._request_body(state), content_length)
        request = Request(method, target, authority, request_headers, body)
        manager = self.manager
        info = manager._new_info(asyncio.get_running_loop().time())
        info.protocol = "HTTP/2"
        info.head_received = sum(len(n) + len(v) for n, v in raw_headers)
        try:
            response = await manager.handle(request, info)
            await self._respond(state, method, response)
        except UpstreamFailure:
            self._reset(state.id)
        except (h2.exceptions.ProtocolError, KeyError):
            pass  # the client reset or closed the stream meanwhile
        finally:
            self.streams.pop(state.id, None)

    def _reset(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            self.flush()

    async def _respond(self, state: _Stream, method: bytes, response: Response) -> None:
        headers: list[Header] = [(b":status", str(response.status).encode())]
        headers.extend(response.headers)
        body = response.body
        no_body = method == b"HEAD" or response.status in (204, 304)
        sent = 0
        try:
            if body is None:
                data = b"" if no_body else response.local_body
                sent = len(data)
                self.conn.send_headers(state.id, headers, end_stream=not data)
                self.flush()
                if data:
                    await self._send_data(state.id, data, end=True)
                return
            try:
                if no_body:
                    self.conn.send_headers(state.id, headers, end_stream=True)
                    self.flush()
                    return
                first = body.take_buffered()
                ended = body.done and not first
                self.conn.send_headers(state.id, headers, end_stream=ended)
                self.flush()
                if ended:
                    return
                data = first
                while True:
                    sent += len(data)
                    if body.done:
                        await self._send_data(state.id, data, end=True)
                        return
                    if data:
                        await self._send_data(state.id, data, end=False)
                    data = await body.read()
            finally:
                if not body.done:
                    body.abort()
        finally:
            info = response.info
            if info is not None:
                info.status = response.status
                info.bytes_sent = sent
                info.head_sent = sum(len(n) + len(v) for n, v in headers)
                self.manager._observe(info)

    async def _send_data(self, stream_id: int, data: bytes, *, end: bool) -> None:
        conn = self.conn
        view = memoryview(data)
        while True:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0 and view:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            piece = view[:window]
            view = view[len(piece) :]
            conn.send_data(stream_id, piece.tobytes(), end_stream=end and not view)
            self.flush()
            await self.stream.drain()
            if not view:
                return
