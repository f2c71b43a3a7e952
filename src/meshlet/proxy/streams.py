"""Byte streams: the one interface the proxy's protocol code reads and writes through.

Theory of operation: every layer of the data path (TLS, HTTP/1.1, HTTP/2, the TCP
proxy, the upstream pool) talks to a ``ByteStream``: ``read`` returns what has arrived
(at most ``max_bytes``, ``b""`` at end of stream), ``write`` queues bytes, ``drain``
waits while the peer is slow, ``write_eof`` half-closes, ``close`` ends and ``abort``
resets. Three implementations:

- ``SocketStream``: an ``asyncio.Protocol`` on a connected socket, with a bounded read
  buffer (reading pauses when ``max_buffer`` bytes wait unread) and write flow control
  (``drain`` waits while the transport's buffer is above its high-water mark);
- ``meshlet.proxy.tls.TlsStream``: TLS on memory BIOs over another stream, so the TLS
  read buffer is ours to bound, on the standard loop and on uvloop alike;
- ``MemoryStream``: two connected in-memory ends, for byte-level tests.

``TCP_NODELAY`` is set on every socket the proxy opens or accepts: a response written
after its request must not wait for a delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Protocol, cast, runtime_checkable

__all__ = [
    "READ_SIZE",
    "ByteStream",
    "MemoryStream",
    "SocketStream",
    "memory_stream_pair",
    "open_tcp_stream",
    "wrap_socket",
]

READ_SIZE = 32 * 1024
_MAX_BUFFER = 32 * 1024  # Envoy's edge per_connection_buffer_limit_bytes


@runtime_checkable
class ByteStream(Protocol):
    """A bidirectional byte stream (see the module docstring)."""

    async def read(self, max_bytes: int = READ_SIZE) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    @property
    def closed(self) -> bool: ...


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        # The loop is kept: ``asyncio.get_running_loop`` costs a ``getpid`` system call
        # on Python 3.11, and a stream waits for its socket at every read.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.reading_paused = False
        self.writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        # Writes are bounded as reads are: ``drain`` waits above ``max_buffer`` bytes.
        self.transport.set_write_buffer_limits(high=self.max_buffer)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= self.max_buffer and not self.reading_paused:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return True  # keep the write half open

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = True
        self._wake_reader()
        self._wake_drainers()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_drainers()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drainers(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    async def wait_readable(self) -> None:
        self._read_waiter = self.loop.create_future()
        try:
            await self._read_waiter
        finally:
            self._read_waiter = None

    async def wait_writable(self) -> None:
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter


class SocketStream:
    """A ``ByteStream`` over a connected TCP (or unix) socket."""

    def __init__(self, protocol: _StreamProtocol) -> None:
        self._protocol = protocol
        assert protocol.transport is not None
        self._transport = protocol.transport

    @property
    def closed(self) -> bool:
        return self._protocol.lost or self._transport.is_closing()

    def at_eof(self) -> bool:
        """The peer has finished sending and every byte was read."""
        return self._protocol.eof and not self._protocol.buffer

    def get_extra_info(self, name: str) -> object:
        return self._transport.get_extra_info(name)

    async def read(self, max_bytes: int = READ_SIZE) -> bytes:
        protocol = self._protocol
        while not protocol.buffer:
            if protocol.eof:
                return b""
            await protocol.wait_readable()
        buffer = protocol.buffer
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        if protocol.reading_paused and len(buffer) < protocol.max_buffer // 2:
            protocol.reading_paused = False
            if not protocol.lost:
                self._transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        if not self._protocol.lost:
            self._transport.write(data)

    async def drain(self) -> None:
        while self._protocol.writing_paused and not self._protocol.lost:
            await self._protocol.wait_writable()
        if self._protocol.lost:
            raise ConnectionResetError("connection lost")

    def write_eof(self) -> None:
        if not self._protocol.lost and self._transport.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                self._transport.write_eof()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        """Reset: ``SO_LINGER`` (on, 0) then abort, so the peer sees a RST."""
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._transport.abort()


def _nodelay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def wrap_socket(sock: socket.socket, *, max_buffer: int = _MAX_BUFFER) -> SocketStream:
    """A ``SocketStream`` over an already connected (or accepted) socket."""
    _nodelay(sock)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    protocol = _StreamProtocol(max_buffer)
    await loop.connect_accepted_socket(lambda: protocol, sock)
    return SocketStream(protocol)


async def open_tcp_stream(
    host: str,
    port: int,
    *,
    source_address: str | None = None,
    timeout: float | None = None,
    max_buffer: int = _MAX_BUFFER,
) -> SocketStream:
    """Connect (bound to ``source_address`` when given) within ``timeout`` seconds.

    Raises ``OSError`` (``ConnectionRefusedError`` …) or ``TimeoutError``.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if source_address:
            sock.bind((source_address, 0))
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
        _nodelay(sock)
        protocol = _StreamProtocol(max_buffer)
        await loop.create_connection(lambda: protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return SocketStream(protocol)


class MemoryStream:
    """One end of an in-memory stream pair (``memory_stream_pair``)."""

    def __init__(self) -> None:
        self.peer: MemoryStream | None = None
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self.reset = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    def _deliver(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def _deliver_eof(self) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self, max_bytes: int = READ_SIZE) -> bytes:
        while not self._buffer:
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        return data

    def write(self, data: bytes) -> None:
        if self._closed or self.peer is None:
            return
        self.peer._deliver(data)

    async def drain(self) -> None:
        if self._closed:
            raise ConnectionResetError("stream closed")

    def write_eof(self) -> None:
        if self.peer is not None:
            self.peer._deliver_eof()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._eof = True
            self._wake()
            if self.peer is not None:
                self.peer._deliver_eof()

    def abort(self) -> None:
        self.reset = True
        self.close()


def memory_stream_pair() -> tuple[MemoryStream, MemoryStream]:
    """Two connected in-memory ends: what one writes, the other reads."""
    left, right = MemoryStream(), MemoryStream()
    left.peer, right.peer = right, left
    return left, right
