"""One bidirectional-streaming gRPC call over a unix socket, on the sans-I/O ``h2`` library.

Theory of operation
-------------------
A worker's only gRPC peers are its agent's two unix sockets (local xDS and SDS), each
one long-lived streaming call. For that, grpcio (a C core, its threads and ~10 MB of
each process) is more than a worker needs; this module speaks the same bytes:

- the call is an HTTP/2 stream: ``POST`` to ``/<package.Service>/<Method>`` with
  ``content-type: application/grpc`` and ``te: trailers``;
- each message, either way, is a 5-byte prefix (a compressed flag, always 0 here, and
  the length as a big-endian ``uint32``) and then the serialized message
  (``frame_message``; ``MessageDecoder`` cuts a byte stream back into messages);
- the call ends with trailers carrying ``grpc-status`` and, on an error, a
  percent-encoded ``grpc-message`` (``status_of``); a response that has only headers
  ("trailers-only") carries them there. A stream reset, a GOAWAY (``h2`` reads no frame
  after one, so even a graceful one ends the call) or the connection closing ends the
  call as gRPC's clients report it (``UNAVAILABLE``, ``CANCELLED`` or ``INTERNAL``).

``open_stream(path, method)`` connects, starts the call and yields a ``GrpcStream``:
``await send(message_bytes)`` (respecting HTTP/2 flow control), ``await receive()``
(the next message's bytes; ``None`` when the server ended the call with ``OK``; else
``GrpcError`` with the status), ``cancel()``. One task per call reads the socket and
feeds ``h2``; it lives inside the ``async with`` block and is awaited when it ends.
Nothing here knows protobuf: the callers serialize and parse their messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import struct
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from meshlet.errors import MeshletError
from meshlet.proxy._unix import UnixPath

__all__ = [
    "MAX_MESSAGE",
    "GrpcError",
    "GrpcStream",
    "MessageDecoder",
    "Status",
    "frame_message",
    "open_stream",
    "status_of",
]

#: The largest message either way (as the agent's servers allow).
MAX_MESSAGE = 256 * 1024 * 1024
_PREFIX = struct.Struct(">BI")
_WINDOW = 16 * 1024 * 1024  # receive window of the stream and of the connection
_READ_SIZE = 256 * 1024
_FRAME_HEADER = 9  # an HTTP/2 frame's header: 24-bit length, type, flags, stream id
_CONNECT_SECONDS = 5.0


class Status(enum.IntEnum):
    """gRPC's status codes (as ``grpc-status`` carries them)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcError(MeshletError):
    """A call that ended with a status other than ``OK``."""

    def __init__(self, status: Status, details: str = "") -> None:
        super().__init__(f"{status.name}: {details}" if details else status.name)
        self.status = status
        self.details = details


# --- the bytes (pure) ----------------------------------------------------------------------


def frame_message(message: bytes) -> bytes:
    """One message as it goes on the wire: uncompressed flag, length, bytes."""
    if len(message) > MAX_MESSAGE:
        raise GrpcError(Status.RESOURCE_EXHAUSTED, f"message of {len(message)} bytes is too large")
    return _PREFIX.pack(0, len(message)) + message


class MessageDecoder:
    """Cuts the bytes of a stream's DATA frames into messages."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by ``data``; ``GrpcError`` on a frame this client
        cannot take (compressed: no encoding was offered; larger than the limit)."""
        buffer = self._buffer
        buffer += data
        messages = []
        while len(buffer) >= _PREFIX.size:
            flag, length = _PREFIX.unpack_from(buffer)
            if flag != 0:
                raise GrpcError(Status.INTERNAL, "a compressed message, and none was offered")
            if length > self._max:
                raise GrpcError(
                    Status.RESOURCE_EXHAUSTED, f"message of {length} bytes is larger than allowed"
                )
            end = _PREFIX.size + length
            if len(buffer) < end:
                break
            messages.append(bytes(buffer[_PREFIX.size : end]))
            del buffer[:end]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of a message not yet complete."""
        return len(self._buffer)


_HTTP_STATUS = {400: Status.INTERNAL, 401: Status.UNAUTHENTICATED, 403: Status.PERMISSION_DENIED,
                404: Status.UNIMPLEMENTED, 429: Status.UNAVAILABLE, 502: Status.UNAVAILABLE,
                503: Status.UNAVAILABLE, 504: Status.UNAVAILABLE}  # fmt: skip


def status_of(headers: Mapping[str, str]) -> tuple[Status, str] | None:
    """The status a header block (trailers, or trailers-only headers) ends a call with;
    None when it carries no ``grpc-status``."""
    value = headers.get("grpc-status")
    if value is None:
        return None
    try:
        status = Status(int(value))
    except ValueError:
        return Status.UNKNOWN, f"invalid grpc-status {value!r}"
    return status, urllib.parse.unquote(headers.get("grpc-message", ""))


def status_of_http(code: str) -> Status:
    """gRPC's status for a response whose ``:status`` is not 200."""
    try:
        return _HTTP_STATUS.get(int(code), Status.UNKNOWN)
    except ValueError:
        return Status.UNKNOWN


def _decoded(headers: Iterable[tuple[bytes | str, bytes | str]]) -> dict[str, str]:
    result = {}
    for name, value in headers:
        key = name.decode("latin-1") if isinstance(name, bytes) else name
        result[key] = value.decode("latin-1") if isinstance(value, bytes) else value
    return result


# --- the call (asyncio) --------------------------------------------------------------------

_END = object()


class GrpcStream:
    """One streaming call on its own HTTP/2 connection (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self._stream_id = 0
        self._decoder = MessageDecoder()
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._window_open = asyncio.Event()
        self._ended: GrpcError | None = None  # how the call ended (OK is a GrpcError too)
        self._headers_seen = False

    @property
    def ended(self) -> bool:
        return self._ended is not None

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    def _start(self, method: str, metadata: Iterable[tuple[str, str]]) -> None:
        conn = self._conn
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_WINDOW - 65535)
        self._stream_id = conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("user-agent", "meshlet"),
            *((k.lower(), v) for k, v in metadata),
        ]
        conn.send_headers(self._stream_id, headers)
        self._flush()

    def _end(self, status: Status, details: str = "") -> None:
        if self._ended is None:
            self._ended = GrpcError(status, details)
            self._inbox.put_nowait(_END)
            self._window_open.set()

    async def send(self, message: bytes) -> None:
        """Send one message (its serialized bytes); waits for the peer's window."""
        data = memoryview(frame_message(message))
        conn = self._conn
        while data:
            if self._ended is not None:
                raise self._error()
            try:
                window = min(
                    conn.local_flow_control_window(self._stream_id), conn.max_outbound_frame_size
                )
            except h2.exceptions.StreamClosedError:
                self._end(Status.INTERNAL, "the stream was closed")
                continue
            if window <= 0:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            conn.send_data(self._stream_id, bytes(data[:window]))
            data = data[window:]
            self._flush()
        await self._writer.drain()

    async def receive(self) -> bytes | None:
        """The next message's bytes; None once the call ended with ``OK``."""
        item = await self._inbox.get()
        if item is _END:
            self._inbox.put_nowait(_END)  # every later receive ends too
            error = self._error()
            if error.status is Status.OK:
                return None
            raise error
        assert isinstance(item, bytes)
        return item

    def _error(self) -> GrpcError:
        assert self._ended is not None
        return self._ended

    def cancel(self) -> None:
        """End the call from this side (``RST_STREAM CANCEL``); receive then raises
        ``GrpcError(CANCELLED)``."""
        if self._ended is not None:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self._conn.reset_stream(self._stream_id, h2.errors.ErrorCodes.CANCEL)
            self._flush()
        self._end(Status.CANCELLED, "cancelled by the client")

    # --- the connection's reader ---------------------------------------------------------

    async def _read(self) -> None:
        pending = bytearray()
        try:
            while self._ended is None:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    self._end(Status.UNAVAILABLE, "the connection was closed")
                    return
                pending += data
                # One frame at a time: h2 refuses any frame after a GOAWAY, and a refusal
                # would lose the events of the frames before it in the same read.
                while self._ended is None and len(pending) >= _FRAME_HEADER:
                    end = _FRAME_HEADER + int.from_bytes(pending[:3], "big")
                    if len(pending) < end:
                        break
                    frame = bytes(pending[:end])
                    del pending[:end]
                    try:
                        events = self._conn.receive_data(frame)
                    except h2.exceptions.ProtocolError as exc:
                        self._flush()
                        self._end(Status.INTERNAL, f"HTTP/2 protocol error: {exc}")
                        return
                    for event in events:
                        self._on_event(event)
                self._flush()
        except OSError as exc:
            self._end(Status.UNAVAILABLE, f"the connection failed: {exc.strerror or exc}")
        except GrpcError as exc:
            self.cancel_with(exc)

    def cancel_with(self, error: GrpcError) -> None:
        """End the call with ``error`` (a message this client cannot take)."""
        with contextlib.suppress(h2.exceptions.H2Error):
            self._conn.reset_stream(self._stream_id, h2.errors.ErrorCodes.CANCEL)
            self._flush()
        self._end(error.status, error.details)

    def _on_event(self, event: h2.events.Event) -> None:
        if getattr(event, "stream_id", self._stream_id) not in (0, self._stream_id):
            return
        if isinstance(event, h2.events.ResponseReceived):
            headers = _decoded(event.headers)
            self._headers_seen = True
            ended = status_of(headers)
            if headers.get(":status") != "200":
                code = headers.get(":status", "")
                self._end(status_of_http(code), f"HTTP status {code}")
            elif ended is not None:
                self._end(*ended)  # trailers-only
            elif not headers.get("content-type", "").startswith("application/grpc"):
                self._end(Status.UNKNOWN, f"content-type {headers.get('content-type', '')!r}")
        elif isinstance(event, h2.events.DataReceived):
            self._conn.acknowledge_received_data(event.flow_controlled_length, self._stream_id)
            for message in self._decoder.feed(event.data):
                self._inbox.put_nowait(message)
        elif isinstance(event, h2.events.TrailersReceived):
            ended = status_of(_decoded(event.headers))
            if ended is None:
                self._end(Status.INTERNAL, "the call ended without grpc-status")
            else:
                self._end(*ended)
        elif isinstance(event, h2.events.StreamEnded):
            self._end(Status.INTERNAL, "the call ended without grpc-status")
        elif isinstance(event, h2.events.StreamReset):
            reset = event.error_code
            if reset == h2.errors.ErrorCodes.REFUSED_STREAM:
                self._end(Status.UNAVAILABLE, "the stream was refused")
            elif reset == h2.errors.ErrorCodes.CANCEL:
                self._end(Status.CANCELLED, "the server cancelled the stream")
            else:
                self._end(Status.INTERNAL, f"the stream was reset ({reset!s})")
        elif isinstance(event, h2.events.ConnectionTerminated):
            # h2 takes no frame after a GOAWAY, so the call cannot finish on this
            # connection even when the GOAWAY would let it: the caller reconnects.
            self._end(Status.UNAVAILABLE, f"the server is going away ({event.error_code!s})")
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window_open.set()

    async def _close(self) -> None:
        if self._ended is None:
            self.cancel()
        with contextlib.suppress(h2.exceptions.H2Error):
            self._conn.close_connection()
            self._flush()
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1):
                await self._writer.wait_closed()


@contextlib.asynccontextmanager
async def open_stream(
    socket_path: str, method: str, metadata: Iterable[tuple[str, str]] = ()
) -> AsyncIterator[GrpcStream]:
    """A streaming call to ``method`` (``/package.Service/Method``) of the gRPC server on
    the unix socket ``socket_path``, for the block. ``GrpcError(UNAVAILABLE)`` when the
    socket cannot be reached."""
    path = UnixPath(socket_path)
    try:
        async with asyncio.timeout(_CONNECT_SECONDS):
            reader, writer = await asyncio.open_unix_connection(path.address, limit=_READ_SIZE)
    except (OSError, TimeoutError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "timed out"
        raise GrpcError(Status.UNAVAILABLE, f"cannot connect to {socket_path}: {reason}") from None
    finally:
        path.close()
    stream = GrpcStream(reader, writer)
    reading: asyncio.Task[None] | None = None
    try:
        stream._start(method, metadata)
        reading = asyncio.get_running_loop().create_task(stream._read(), name=f"grpc {method}")
        yield stream
    finally:
        await stream._close()
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
