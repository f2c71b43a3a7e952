"""HTTP/1.1 wire pieces the proxy needs beyond the head scanner: bodies and heads out.

Theory of operation: heads come in through ``http1_head`` (framing-only scan). Bodies
are forwarded as they arrive, never buffered whole: a ``Content-Length`` body is counted,
a chunked body is run through ``ChunkedDecoder``, a state machine fed any slice of bytes
that returns the data it contains and says when the last chunk and the trailers have
passed (what follows is the next pipelined message, kept in ``leftover``). Going out,
``render_request_head`` / ``render_response_head`` build a head in one ``bytes`` so that
a response is one write (head and the body bytes at hand together), and
``encode_chunk`` frames a body whose length is not known.

Pure: bytes in, bytes out.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from meshlet.proxy.http_headers import Header
from meshlet.proxy.routing import reason_phrase

__all__ = [
    "LAST_CHUNK",
    "ChunkedDecoder",
    "FramingError",
    "encode_chunk",
    "render_request_head",
    "render_response_head",
]

LAST_CHUNK = b"0\r\n\r\n"
_MAX_LINE = 4096
_MAX_TRAILERS = 60 * 1024


class FramingError(ValueError):
    """A body whose framing is broken (a bad chunk size, a missing CRLF …)."""


class _State(enum.Enum):
    SIZE = "size"
    DATA = "data"
    DATA_END = "data-end"
    TRAILERS = "trailers"
    DONE = "done"


class ChunkedDecoder:
    """Decodes ``Transfer-Encoding: chunked`` incrementally (see the module docstring)."""

    def __init__(self) -> None:
        self._state = _State.SIZE
        self._line = bytearray()
        self._remaining = 0
        self._trailer_bytes = 0
        self.leftover = b""

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def feed(self, data: bytes) -> list[bytes]:
        """The body data in ``data``; raises ``FramingError`` on a broken framing."""
        out: list[bytes] = []
        view = memoryview(data)
        position = 0
        while position < len(view) and self._state is not _State.DONE:
            if self._state is _State.DATA:
                take = min(self._remaining, len(view) - position)
                out.append(bytes(view[position : position + take]))
                position += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _State.DATA_END
                continue
            end = data.find(b"\n", position)
            if end == -1:
                self._line += view[position:]
                position = len(view)
                if len(self._line) > _MAX_LINE:
                    raise FramingError("chunk line too long")
                break
            self._line += view[position : end + 1]
            position = end + 1
            line = bytes(self._line)
            self._line.clear()
            if not line.endswith(b"\r\n"):
                raise FramingError("bare LF in chunked framing")
            self._line_done(line[:-2])
        if self._state is _State.DONE:
            self.leftover = bytes(view[position:])
        return out

    def _line_done(self, line: bytes) -> None:
        if self._state is _State.SIZE:
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not size_text or len(size_text) > 16:
                raise FramingError("invalid chunk size")
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise FramingError("invalid chunk size") from exc
            if size_text[:1] in (b"+", b"-") or b"_" in size_text:
                raise FramingError("invalid chunk size")
            if size == 0:
                self._state = _State.TRAILERS
            else:
                self._remaining = size
                self._state = _State.DATA
        elif self._state is _State.DATA_END:
            if line:
                raise FramingError("chunk data not followed by CRLF")
            self._state = _State.SIZE
        elif self._state is _State.TRAILERS:
            if not line:
                self._state = _State.DONE
                return
            self._trailer_bytes += len(line)
            if self._trailer_bytes > _MAX_TRAILERS:
                raise FramingError("trailers too large")


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (empty data gives nothing: use ``LAST_CHUNK`` to end)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


def _header_block(headers: Sequence[Header]) -> bytes:
    return b"".join([b"%b: %b\r\n" % header for header in headers])


def render_request_head(method: bytes, target: bytes, headers: Sequence[Header]) -> bytes:
    return b"%b %b HTTP/1.1\r\n%b\r\n" % (method, target, _header_block(headers))


def render_response_head(
    status: int, headers: Sequence[Header], *, version: bytes = b"HTTP/1.1"
) -> bytes:
    """A status line with Envoy's reason phrase (the upstream's is not kept) and headers."""
    return b"%b %d %b\r\n%b\r\n" % (
        version,
        status,
        reason_phrase(status).encode(),
        _header_block(headers),
    )
