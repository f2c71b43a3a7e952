"""Finding and checking an HTTP/1.1 message head, without parsing more than framing needs.

Theory of operation: the proxy forwards HTTP/1.1 heads mostly as they came, so it does
not build a header object per request. It finds the end of the head (``CRLF CRLF``),
then checks and reads the header lines with one ``re.split`` over the whole block, so
no Python runs per header line. Only when ``Content-Length``,
``Transfer-Encoding`` or ``Connection`` appears are the headers that decide framing
and the connection's fate read one by one. The headers are returned as byte pairs,
names lower-cased as Envoy keeps and forwards them, for the rules in ``http_headers``.

What is refused, with the status Envoy answers with:

- a head over 60 KiB (``max_request_headers_kb``) or with more than 100 headers
  (``max_headers_count``): 431;
- request-smuggling shapes: ``Content-Length`` together with ``Transfer-Encoding``,
  two ``Content-Length`` headers, a bare LF or CR as a line end, white space between a
  header name and its colon, obsolete line folding, control characters in a value: 400;
- a ``Transfer-Encoding`` other than ``chunked``: 501 (Envoy implements only chunked).

A bare LF is refused as soon as it is seen, so a client cannot make the proxy wait for
a ``CRLF CRLF`` that will never come. The caller passes ``search_from`` (where the
previous, incomplete scan stopped) so that feeding a head one byte at a time costs
linear time.

A malformed response head is an upstream protocol error: status 503, as Envoy's router
answers it.

Pure: bytes in, values out.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NamedTuple

from meshlet.proxy.http_headers import Header

__all__ = [
    "MAX_HEADERS",
    "MAX_HEAD_SIZE",
    "BodyFraming",
    "HeadError",
    "RequestHead",
    "ResponseHead",
    "scan_request_head",
    "scan_response_head",
]

MAX_HEAD_SIZE = 60 * 1024
MAX_HEADERS = 100

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])")
_STATUS_LINE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
# A header line: the name, then the value trimmed of white space (no control bytes).
_HEADER_LINE = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*((?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)[ \t]*\r\n"
)
_DIGITS = re.compile(rb"[0-9]{1,19}")
_END = b"\r\n\r\n"


class BodyFraming(enum.Enum):
    """How the body after a head is delimited."""

    NONE = "none"
    CONTENT_LENGTH = "content-length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"


@dataclass(frozen=True, slots=True)
class HeadError:
    """A head the proxy refuses: the local reply's status and why."""

    status: int
    reason: str


_NO_TOKENS: frozenset[bytes] = frozenset()
_VERSIONS: dict[tuple[object, ...], tuple[int, int]] = {(b"1", b"1"): (1, 1), (b"1", b"0"): (1, 0)}
_Framing = tuple[int | None, bool, bool, frozenset[bytes]]  # length, chunked, any TE, tokens


class RequestHead(NamedTuple):
    """A request head (a named tuple: one is made per request)."""

    method: bytes
    target: bytes
    version: tuple[int, int]
    headers: tuple[Header, ...]
    size: int  # bytes of the head, final CRLF CRLF included
    content_length: int | None
    chunked: bool
    connection: frozenset[bytes]  # lower-cased Connection tokens

    @property
    def keep_alive(self) -> bool:
        if self.version >= (1, 1):
            return b"close" not in self.connection
        return b"keep-alive" in self.connection and b"close" not in self.connection

    @property
    def body_framing(self) -> BodyFraming:
        if self.chunked:
            return BodyFraming.CHUNKED
        if self.content_length:
            return BodyFraming.CONTENT_LENGTH
        return BodyFraming.NONE


class ResponseHead(NamedTuple):
    """A response head (a named tuple: one is made per response)."""

    version: tuple[int, int]
    status: int
    reason: bytes
    headers: tuple[Header, ...]
    size: int
    content_length: int | None
    chunked: bool
    transfer_encoding: bool
    connection: frozenset[bytes]

    def body_framing(self, request_method: bytes) -> BodyFraming:
        """RFC 9112 section 6.3, for the request this response answers."""
        if request_method == b"HEAD" or self.status < 200 or self.status in (204, 304):
            return BodyFraming.NONE
        if self.chunked:
            return BodyFraming.CHUNKED
        if self.transfer_encoding:
            return BodyFraming.UNTIL_CLOSE
        if self.content_length is not None:
            return BodyFraming.CONTENT_LENGTH if self.content_length else BodyFraming.NONE
        return BodyFraming.UNTIL_CLOSE

    def keep_alive(self, request_method: bytes) -> bool:
        if self.body_framing(request_method) is BodyFraming.UNTIL_CLOSE:
            return False
        if self.version >= (1, 1):
            return b"close" not in self.connection
        return b"keep-alive" in self.connection and b"close" not in self.connection


def _too_large(error_status: int) -> int:
    return 431 if error_status == 400 else error_status


def _find_head(
    buffer: bytes, search_from: int, max_head_size: int, error_status: int
) -> tuple[int, int] | HeadError | None:
    """``(start, end)`` of the head without leading empty lines, an error, or ``None``.

    Sizes count from the start of ``buffer``, leading empty lines included.
    """
    start = 0
    while buffer.startswith(b"\r\n", start):  # empty lines before a message are ignored
        start += 2
    end = buffer.find(_END, max(search_from - 3, start))
    # Every CR and LF seen so far (up to the head's end) must pair as CRLF; a CR at the
    # very end of an incomplete buffer may still get its LF.
    low = max(search_from - 2, start)
    if low > start and buffer[low] == 0x0A:
        low -= 1  # look at the byte before an LF
    high = len(buffer) if end == -1 else end + 4
    pairs = buffer.count(b"\r\n", low, high)
    carriage_returns = buffer.count(b"\r", low, high)
    if buffer.count(b"\n", low, high) != pairs or (
        carriage_returns != pairs
        and not (end == -1 and carriage_returns == pairs + 1 and buffer.endswith(b"\r"))
    ):
        return HeadError(error_status, "bare CR or LF as a line end")
    if end == -1:
        if len(buffer) > max_head_size:
            return HeadError(_too_large(error_status), "head too large")
        return None
    if end + 4 > max_head_size:
        return HeadError(_too_large(error_status), "head too large")
    return start, end


def _scan_headers(
    block: bytes, max_headers: int, error_status: int
) -> tuple[tuple[Header, ...], _Framing] | HeadError:
    """The header lines of a head (``block``: each line with its CRLF), checked and read
    in one ``re.split``: the text between the matches must be empty, and the captured
    names and values alternate. The framing headers are then looked up by name in the
    list of lower-cased names, so no Python runs per line."""
    if not block:
        return (), (None, False, False, _NO_TOKENS)
    if block.count(b"\n") > max_headers:
        return HeadError(_too_large(error_status), "too many headers")
    parts = _HEADER_LINE.split(block)
    if any(parts[::3]):
        if re.search(rb"(?:^|\n)[ \t]", block):
            return HeadError(error_status, "obsolete line folding")
        return HeadError(error_status, "invalid header line")
    names = b"\n".join(parts[1::3]).lower().split(b"\n")
    values = parts[2::3]
    headers = tuple(zip(names, values, strict=True))
    content_length: int | None = None
    if b"content-length" in names:
        if names.count(b"content-length") > 1:
            return HeadError(error_status, "more than one content-length")
        value = values[names.index(b"content-length")]
        if _DIGITS.fullmatch(value) is None:
            return HeadError(error_status, "invalid content-length")
        content_length = int(value)
    connection = _NO_TOKENS
    if b"connection" in names:
        tokens = {
            token.strip(b" \t")
            for name, value in headers
            if name == b"connection"
            for token in value.lower().split(b",")
        }
        tokens.discard(b"")
        connection = frozenset(tokens)
    if b"transfer-encoding" not in names:
        return headers, (content_length, False, False, connection)
    if content_length is not None:
        return HeadError(error_status, "both content-length and transfer-encoding")
    codings = [
        coding.strip(b" \t")
        for name, value in headers
        if name == b"transfer-encoding"
        for coding in value.lower().split(b",")
    ]
    if codings != [b"chunked"] and error_status == 400:
        return HeadError(501, "transfer-encoding other than chunked")
    return headers, (None, codings[-1] == b"chunked", True, connection)


def _split_head(buffer: bytes, start: int, end: int) -> tuple[bytes, bytes]:
    """The start line and the header lines (each with its CRLF) of ``buffer[start:end]``."""
    line_end = buffer.find(b"\r\n", start, end)
    if line_end == -1:
        return buffer[start:end], b""
    return buffer[start:line_end], buffer[line_end + 2 : end + 2]


def scan_request_head(
    buffer: bytes,
    *,
    search_from: int = 0,
    max_head_size: int = MAX_HEAD_SIZE,
    max_headers: int = MAX_HEADERS,
) -> RequestHead | HeadError | None:
    """The request head at the start of ``buffer``; ``None`` while it is incomplete.

    ``search_from`` is how many bytes of ``buffer`` an earlier call already saw.
    """
    found = _find_head(buffer, search_from, max_head_size, 400)
    if found is None or isinstance(found, HeadError):
        return found
    start, end = found
    request_line, block = _split_head(buffer, start, end)
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        return HeadError(400, "invalid request line")
    version = _VERSIONS.get(match.group(3, 4))
    if version is None:
        return HeadError(400, "unsupported HTTP version")
    scanned = _scan_headers(block, max_headers, 400)
    if isinstance(scanned, HeadError):
        return scanned
    headers, (content_length, chunked, transfer_encoding, connection) = scanned
    if transfer_encoding and version < (1, 1):
        return HeadError(400, "transfer-encoding in an HTTP/1.0 request")
    method, target = match.group(1, 2)
    return RequestHead(
        method, target, version, headers, end + 4, content_length, chunked, connection
    )


def scan_response_head(
    buffer: bytes,
    *,
    search_from: int = 0,
    max_head_size: int = MAX_HEAD_SIZE,
    max_headers: int = MAX_HEADERS,
) -> ResponseHead | HeadError | None:
    """The response head at the start of ``buffer``; errors carry status 503."""
    found = _find_head(buffer, search_from, max_head_size, 503)
    if found is None or isinstance(found, HeadError):
        return found
    start, end = found
    status_line, block = _split_head(buffer, start, end)
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        return HeadError(503, "invalid status line")
    version = _VERSIONS.get(match.group(1, 2))
    if version is None:
        return HeadError(503, "unsupported HTTP version")
    scanned = _scan_headers(block, max_headers, 503)
    if isinstance(scanned, HeadError):
        return scanned
    headers, (content_length, chunked, transfer_encoding, connection) = scanned
    status, reason = match.group(3, 4)
    return ResponseHead(
        version, int(status), reason or b"", headers, end + 4, content_length, chunked,
        transfer_encoding, connection,
    )  # fmt: skip
