"""Bidirectional-streaming gRPC methods served on a unix socket, on the sans-I/O ``h2`` library.

Theory of operation
-------------------
The agent serves two gRPC methods to its workers, each one long-lived streaming call
per worker: local xDS (``StreamAggregatedResources``) and SDS (``StreamSecrets``). This
module is the server side of ``grpc_stream``: the same bytes (``frame_message``,
``MessageDecoder``, ``Status``), so the agent needs no grpcio (its C core, threads and
library pages) to serve them. Real grpcio clients talk to it as to any gRPC server.

``GrpcServer(socket_path, methods)`` listens on the socket; ``methods`` maps a path
(``/package.Service/Method``) to a ``StreamMethod``: the handler, called as
``handler(requests, call)`` and iterated for its responses, and how to parse a request
and serialize a response. The handler reads ``requests`` (an async iterator that ends
when the client half-closes) and yields responses; returning ends the call with ``OK``,
raising ``GrpcError`` ends it with that status.

Each connection is one task reading the socket and feeding ``h2`` one frame at a time
(``h2`` refuses every frame after a GOAWAY, and a refusal would lose the events of
frames before it in the same read). Each call is a task of its own running the handler:

- a request is parsed when its last byte arrives and queued for the handler; a request
  that cannot be parsed, or a compressed or oversized one, ends the call (``INTERNAL``,
  ``RESOURCE_EXHAUSTED``) and cancels the handler;
- flow control inbound: the connection's window is reopened as data arrives; a
  stream's only while its unread requests stay under ``_BUFFERED`` bytes, so a handler
  that does not read slows its client down instead of filling memory;
- flow control outbound: a response is sent in DATA frames no larger than the peer's
  stream and connection windows; the call waits for a WINDOW_UPDATE (or SETTINGS)
  when they are closed, then for the socket to drain;
- the response headers go with the first message; a call that ends before any message
  answers with headers only ("trailers-only"), carrying ``grpc-status`` and a
  percent-encoded ``grpc-message``. If the client has not finished sending, the
  trailers are followed by ``RST_STREAM(NO_ERROR)``, as gRPC servers do;
- an unknown path is ``UNIMPLEMENTED``; a method other than ``POST`` is HTTP 405 and a
  content-type other than ``application/grpc`` HTTP 415, as the gRPC protocol says;
- a ``RST_STREAM`` from the client cancels the call's handler; a GOAWAY from the client
  or the connection closing cancels every call of the connection (nothing more is sent).

``stop(grace)`` stops accepting connections and refuses new streams (``REFUSED_STREAM``),
lets the calls end on their own for ``grace`` seconds, then ends what is left with
``UNAVAILABLE``, sends GOAWAY and closes every connection. Nothing here knows protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from meshlet.proxy._unix import UnixPath
from meshlet.proxy.grpc_stream import MAX_MESSAGE, GrpcError, MessageDecoder, Status, frame_message

__all__ = ["GrpcServer", "ServerCall", "StreamMethod", "encode_grpc_message", "trailers"]

log = logging.getLogger("meshlet.proxy.grpc")

_WINDOW = 16 * 1024 * 1024  # receive window of each stream and of the connection
_BUFFERED = 4 * 1024 * 1024  # unread request bytes of a stream above which it gets no window
_MAX_STREAMS = 100  # concurrent streams a client may open on one connection
_READ_SIZE = 256 * 1024
_FRAME_HEADER = 9
_DATA_FRAME = 0
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
_STOP_SECONDS = 2.0  # how long a stopping connection may take to finish writing
_GRPC_CONTENT_TYPE = "application/grpc"
# grpc-message is percent-encoded: everything outside printable ASCII, and "%" itself.
_MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")

Handler = Callable[[AsyncIterator[Any], "ServerCall"], AsyncGenerator[Any, None]]


@dataclass(frozen=True, slots=True)
class StreamMethod:
    """One bidirectional-streaming method: its handler and how its messages are read and
    written (``request_deserializer(bytes)``, ``response_serializer(message)``)."""

    handler: Handler
    request_deserializer: Callable[[bytes], Any]
    response_serializer: Callable[[Any], bytes]


def encode_grpc_message(details: str) -> str:
    """``grpc-message`` as the protocol carries it (percent-encoded UTF-8)."""
    return urllib.parse.quote(details, safe=_MESSAGE_SAFE)


def trailers(status: Status, details: str = "") -> list[tuple[str, str]]:
    """The header block that ends a call with ``status``."""
    block = [("grpc-status", str(int(status)))]
    if details:
        block.append(("grpc-message", encode_grpc_message(details)))
    return block


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


_END = object()


class ServerCall:
    """One call as its handler sees it: ``method``, ``peer``, ``metadata`` (the client's
    headers other than HTTP/2's own, lower-case names, in order)."""

    def __init__(
        self,
        connection: _Connection,
        stream_id: int,
        method: str,
        metadata: tuple[tuple[str, str], ...],
        deserializer: Callable[[bytes], Any],
    ) -> None:
        self.method = method
        self.peer = connection.peer
        self.metadata = metadata
        self._connection = connection
        self._stream_id = stream_id
        self._deserializer = deserializer
        self._decoder = MessageDecoder(MAX_MESSAGE)
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._queued = 0  # bytes of requests queued and not read by the handler
        self._unacked = 0  # bytes received whose stream window was not reopened yet
        self._window_open = asyncio.Event()
        self._headers_sent = False
        self._remote_closed = False
        self._finished = False
        self._abort: GrpcError | None = None  # why the call was cut short, if it should say
        self._started = False
        self.task: asyncio.Task[None] | None = None

    # --- what the handler uses -----------------------------------------------------------

    async def requests(self) -> AsyncIterator[Any]:
        """The client's requests, parsed; ends when the client half-closes."""
        while True:
            item = await self._inbox.get()
            if item is _END:
                self._inbox.put_nowait(_END)
                return
            assert isinstance(item, tuple)
            request, size = item
            self._queued -= size
            self._reopen()
            yield request

    # --- inbound (called by the connection's reader) -------------------------------------

    def _received(self, data: bytes, flow_controlled: int) -> None:
        self._unacked += flow_controlled
        try:
            messages = self._decoder.feed(data)
            for message in messages:
                request = self._deserializer(message)
                self._queued += len(message)
                self._inbox.put_nowait((request, len(message)))
        except GrpcError as exc:
            self.abort(exc)
            return
        except Exception as exc:  # a request the method's parser refuses
            self.abort(GrpcError(Status.INTERNAL, f"cannot parse the request: {exc}"))
            return
        self._reopen()

    def _half_closed(self) -> None:
        self._remote_closed = True
        self._inbox.put_nowait(_END)

    def _reopen(self) -> None:
        """Give the client back the window of what it sent (in batches, as h2 does for
        the connection), unless too much of it is unread."""
        if self._finished or self._queued >= _BUFFERED or self._unacked < _WINDOW // 4:
            return
        increment, self._unacked = self._unacked, 0
        with contextlib.suppress(h2.exceptions.H2Error):
            self._connection.h2.increment_flow_control_window(increment, stream_id=self._stream_id)
            self._connection.flush()

    def _wake(self) -> None:
        self._window_open.set()

    def abort(self, error: GrpcError | None) -> None:
        """Cut the call short: cancel its handler and end the call with ``error`` (None:
        send nothing more, the stream or the connection is gone)."""
        if self._finished:
            return
        if self._abort is None:
            self._abort = error
        if error is None:
            self._finished = True
        if self.task is not None and self._started:
            self.task.cancel()  # (a task not started yet sees ``_abort`` when it starts)

    # --- outbound --------------------------------------------------------------------------

    def _send_headers(self) -> None:
        if not self._headers_sent:
            self._headers_sent = True
            self._connection.h2.send_headers(
                self._stream_id,
                [
                    (":status", "200"),
                    ("content-type", _GRPC_CONTENT_TYPE),
                    ("grpc-accept-encoding", "identity"),
                ],
            )

    async def _send(self, message: bytes) -> None:
        data = memoryview(frame_message(message))
        connection = self._connection
        conn = connection.h2
        self._send_headers()
        while data:
            if self._finished or connection.closed:
                raise ConnectionResetError("the stream is gone")
            window = min(
                conn.local_flow_control_window(self._stream_id), conn.max_outbound_frame_size
            )
            if window <= 0:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            conn.send_data(self._stream_id, bytes(data[:window]))
            data = data[window:]
            connection.flush()
        await connection.drain()

    def _finish(self, error: GrpcError) -> None:
        """End the call with ``error``'s status (``OK`` included)."""
        if self._finished:
            return
        self._finished = True
        conn = self._connection.h2
        block = trailers(error.status, error.details)
        with contextlib.suppress(h2.exceptions.H2Error):
            if self._headers_sent:
                conn.send_headers(self._stream_id, block, end_stream=True)
            else:
                conn.send_headers(
                    self._stream_id,
                    [(":status", "200"), ("content-type", _GRPC_CONTENT_TYPE), *block],
                    end_stream=True,
                )
            if not self._remote_closed:
                conn.reset_stream(self._stream_id, h2.errors.ErrorCodes.NO_ERROR)
        self._connection.flush()

    async def _run(self, method: StreamMethod) -> None:
        self._started = True
        outcome: GrpcError | None
        try:
            if self._abort is not None or self._finished:
                raise asyncio.CancelledError
            async with contextlib.aclosing(method.handler(self.requests(), self)) as responses:
                async for response in responses:
                    await self._send(method.response_serializer(response))
            outcome = self._abort or GrpcError(Status.OK)
        except asyncio.CancelledError:
            outcome = self._abort
        except GrpcError as exc:
            outcome = self._abort or exc
        except OSError:
            outcome = None  # the connection is gone
        except Exception as exc:
            log.exception("gRPC: %s failed", self.method)
            outcome = GrpcError(Status.UNKNOWN, f"unexpected error: {exc}")
        finally:
            self._connection.calls.pop(self._stream_id, None)
        if outcome is not None:
            self._finish(outcome)
        self._finished = True


class _Connection:
    """One client connection: its ``h2`` state, its calls, its reader."""

    def __init__(
        self, server: GrpcServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.calls: dict[int, ServerCall] = {}
        self.peer = _peer(writer)
        self.closed = False
        self.stopping = False
        self._unacked = 0  # connection-level bytes received and not yet given back

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed and not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        if self.closed or self.writer.is_closing():
            raise ConnectionResetError("the connection is closed")
        await self.writer.drain()

    async def serve(self) -> None:
        conn = self.h2
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: _MAX_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_WINDOW - 65535)
        self.flush()
        try:
            await self._read()
        except OSError:
            pass
        finally:
            await self._close_calls(None)
            self.closed = True
            self.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(_STOP_SECONDS):
                    await self.writer.wait_closed()

    async def _read(self) -> None:
        pending = bytearray()
        preface = len(_PREFACE)  # bytes of the client's preface not yet passed to h2
        while not self.closed:
            data = await self.reader.read(_READ_SIZE)
            if not data:
                return
            pending += data
            while len(pending) >= _FRAME_HEADER:
                if preface:
                    length, end = 0, preface  # not a frame: passed to h2 as it is
                else:
                    length = int.from_bytes(pending[:3], "big")
                    end = _FRAME_HEADER + length
                if len(pending) < end:
                    break
                preface = 0
                frame = bytes(pending[:end])
                del pending[:end]
                try:
                    events = self.h2.receive_data(frame)
                except h2.exceptions.ProtocolError as exc:
                    log.debug("gRPC: %s: HTTP/2 protocol error: %s", self.peer, exc)
                    self.flush()  # h2's GOAWAY
                    return
                if (
                    length
                    and frame[3] == _DATA_FRAME
                    and not any(isinstance(e, h2.events.DataReceived) for e in events)
                ):
                    self._consumed(length)  # data for a stream already gone
                for event in events:
                    if self._on_event(event):
                        self.flush()
                        return
            self.flush()

    def _consumed(self, length: int) -> None:
        """Reopen the connection's window once half of it is used."""
        self._unacked += length
        if self._unacked >= _WINDOW // 2:
            increment, self._unacked = self._unacked, 0
            self.h2.increment_flow_control_window(increment)

    def _on_event(self, event: h2.events.Event) -> bool:
        """Handle one event; True when the connection is over."""
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._consumed(event.flow_controlled_length)
            call = self.calls.get(event.stream_id)
            if call is not None:
                call._received(event.data, event.flow_controlled_length)
        elif isinstance(event, h2.events.StreamEnded):
            call = self.calls.get(event.stream_id)
            if call is not None:
                call._half_closed()
        elif isinstance(event, h2.events.StreamReset):
            call = self.calls.get(event.stream_id)
            if call is not None:
                call.abort(None)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                for call in self.calls.values():
                    call._wake()
            elif (call := self.calls.get(event.stream_id)) is not None:
                call._wake()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for call in self.calls.values():
                call._wake()
        elif isinstance(event, h2.events.ConnectionTerminated):
            return True  # the client's GOAWAY: h2 takes no more frames
        return False

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        ended = event.stream_ended is not None
        if self.stopping:
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        headers = [(_text(k), _text(v)) for k, v in event.headers or ()]
        fields = dict(headers)
        if fields.get(":method") != "POST":
            self._refuse_http(stream_id, "405", ended)
            return
        content_type = fields.get("content-type", "")
        if content_type != _GRPC_CONTENT_TYPE and not content_type.startswith(
            (_GRPC_CONTENT_TYPE + "+", _GRPC_CONTENT_TYPE + ";")
        ):
            self._refuse_http(stream_id, "415", ended)
            return
        path = fields.get(":path", "")
        method = self.server.methods.get(path)
        metadata = tuple((k, v) for k, v in headers if not k.startswith(":"))
        call = ServerCall(
            self,
            stream_id,
            path,
            metadata,
            method.request_deserializer if method is not None else bytes,
        )
        if ended:
            call._half_closed()
        if method is None:
            call._finish(GrpcError(Status.UNIMPLEMENTED, f"Method not found: {path}"))
            return
        self.calls[stream_id] = call
        call.task = asyncio.get_running_loop().create_task(call._run(method), name=f"gRPC {path}")

    def _refuse_http(self, stream_id: int, status: str, ended: bool) -> None:
        self.h2.send_headers(stream_id, [(":status", status)], end_stream=True)
        if not ended:
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    async def _close_calls(self, error: GrpcError | None) -> None:
        """End every call (with ``error``; None: silently) and wait for their tasks."""
        tasks = []
        for call in list(self.calls.values()):
            call.abort(error)
            if call.task is not None:
                tasks.append(call.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """End the calls left with ``UNAVAILABLE``, say GOAWAY and close."""
        await self._close_calls(GrpcError(Status.UNAVAILABLE, "the server is stopping"))
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.close_connection(h2.errors.ErrorCodes.NO_ERROR)
        self.flush()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_STOP_SECONDS):
                await self.writer.drain()
        self.closed = True
        self.writer.close()


def _peer(writer: asyncio.StreamWriter) -> str:
    """``unix:pid=N`` for the process at the other end (``unix:`` when unknown)."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError, struct.error):
        pid, _uid, _gid = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        if pid:
            return f"unix:pid={pid}"
    return "unix:"


class GrpcServer:
    """Streaming gRPC methods on a unix socket (see the module docstring)."""

    def __init__(
        self, socket_path: str, methods: Mapping[str, StreamMethod], *, mode: int = 0o660
    ) -> None:
        self.socket_path = os.path.abspath(socket_path)
        self.methods = dict(methods)
        self._mode = mode
        self._server: asyncio.Server | None = None
        self._connections: dict[_Connection, asyncio.Task[Any]] = {}

    @property
    def serving(self) -> bool:
        return self._server is not None

    def connections(self) -> int:
        return len(self._connections)

    def calls(self) -> Iterable[ServerCall]:
        for connection in list(self._connections):
            yield from list(connection.calls.values())

    async def start(self) -> None:
        """Listen (the socket's directory is made, a stale socket replaced)."""
        if self._server is not None:
            raise RuntimeError("already started")
        os.makedirs(os.path.dirname(self.socket_path), mode=0o750, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        path = UnixPath(self.socket_path)
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path.address, limit=_READ_SIZE
            )
        finally:
            path.close()
        os.chmod(self.socket_path, self._mode)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[connection] = task
        try:
            await connection.serve()
        finally:
            self._connections.pop(connection, None)

    async def stop(self, grace: float | None = 0.5) -> None:
        """Stop listening, give the calls ``grace`` seconds, end the rest, close."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.stopping = True
        running = [call.task for call in self.calls() if call.task is not None]
        if running and grace:
            await asyncio.wait(running, timeout=grace)
        await asyncio.gather(*(c.stop() for c in connections), return_exceptions=True)
        tasks = [t for c, t in list(self._connections.items()) if c in connections]
        if tasks:
            _done, left = await asyncio.wait(tasks, timeout=_STOP_SECONDS)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
