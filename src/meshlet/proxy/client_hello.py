"""Reading a TLS ClientHello from the first bytes of a connection, as Envoy's TLS inspector does.

Theory of operation: the parser is fed the bytes a listener peeked from a new
connection, in whatever pieces they arrived, and answers with ``None`` (more bytes
needed) or one final outcome, which it then keeps answering:

- ``ClientHelloResult``: the connection speaks TLS (``transport_protocol`` "tls"); it
  carries the SNI host name, the ALPN list, the offered versions and cipher suites.
- ``NotTLS``: the first bytes are not a TLS handshake record (a plaintext HTTP request,
  an SSLv2 hello, ...); the connection is ``raw_buffer``.
- ``MalformedClientHello``: the bytes start like a TLS handshake but break its grammar.
  Envoy's inspector gives such a connection no ``tls`` transport protocol, so it too is
  matched as ``raw_buffer``; an ``oversized`` one is closed instead. The limit,
  ``max_size`` (64 KiB as Envoy's ``max_client_hello_size``), bounds both the declared
  ClientHello length and the bytes read to get it, record headers included.

Bytes go through two layers. The record layer takes 5-byte headers (content type 22,
version major 3, a length of 1..2^14) and appends each record's payload to the handshake
buffer; a ClientHello may be split over many records. The handshake layer waits for the
4-byte message header (type 1, 24-bit length), then for the whole message, and decodes
it in one pass with bounds checks on every length prefix. Anything after the ClientHello
(early data, a second record) is not looked at. Work per byte fed is constant, so a
client that sends one byte at a time costs no more than one that sends it at once.

Pure: no sockets, no clock. The socket side peeks with ``MSG_PEEK`` and feeds the
parser only the bytes it has not fed before.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "MAX_CLIENT_HELLO_SIZE",
    "TLS_VERSION_NAMES",
    "ClientHelloOutcome",
    "ClientHelloParser",
    "ClientHelloResult",
    "MalformedClientHello",
    "NotTLS",
    "parse_client_hello",
]

MAX_CLIENT_HELLO_SIZE = 64 * 1024
"""Envoy's TLS inspector default for ``max_client_hello_size``."""

TLS_VERSION_NAMES = {
    0x0300: "SSLv3",
    0x0301: "TLSv1",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}

_CONTENT_HANDSHAKE = 22
_HANDSHAKE_CLIENT_HELLO = 1
_RECORD_HEADER = 5
_HANDSHAKE_HEADER = 4
_MAX_RECORD_PAYLOAD = 1 << 14  # TLSPlaintext.length, RFC 8446 section 5.1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_MAX_HOST_NAME = 255


def _is_grease(value: int) -> bool:
    """RFC 8701 values (0x0a0a, 0x1a1a, ... 0xfafa) that clients send to keep servers honest."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True, slots=True)
class ClientHelloResult:
    """A ClientHello that parsed: what the filter-chain match and the TLS layer need."""

    server_name: str | None
    alpn: tuple[str, ...]
    legacy_version: int
    supported_versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    size: int

    transport_protocol = "tls"

    @property
    def versions(self) -> tuple[int, ...]:
        """The versions offered: ``supported_versions`` without GREASE, else the legacy one."""
        offered = tuple(v for v in self.supported_versions if not _is_grease(v))
        return offered if offered else (self.legacy_version,)

    @property
    def version_names(self) -> tuple[str, ...]:
        return tuple(TLS_VERSION_NAMES.get(v, f"0x{v:04x}") for v in self.versions)


@dataclass(frozen=True, slots=True)
class NotTLS:
    """The first bytes are not a TLS handshake record: the connection is ``raw_buffer``."""

    reason: str

    transport_protocol = "raw_buffer"


@dataclass(frozen=True, slots=True)
class MalformedClientHello:
    """Bytes that start as a TLS handshake and then break its grammar, or are too large."""

    reason: str
    oversized: bool = False

    transport_protocol = "raw_buffer"


ClientHelloOutcome = ClientHelloResult | NotTLS | MalformedClientHello


class _Malformed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Reader:
    """Bounds-checked reads over a window (``pos`` to ``end``) of one immutable buffer.

    Error messages are built only when a read fails: decoding a well-formed ClientHello
    formats no strings.
    """

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = pos
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def skip(self, n: int, what: str) -> int:
        """Advance by ``n``; the start of the skipped bytes."""
        start = self._pos
        if start + n > self._end:
            raise _Malformed(f"{what} runs past the end of its enclosing field")
        self._pos = start + n
        return start

    def take(self, n: int, what: str) -> bytes:
        start = self.skip(n, what)
        return self._data[start : start + n]

    def u8(self, what: str) -> int:
        return self._data[self.skip(1, what)]

    def u16(self, what: str) -> int:
        start = self.skip(2, what)
        return (self._data[start] << 8) | self._data[start + 1]

    def u16_list(self, what: str) -> tuple[int, ...]:
        """The rest as big-endian 2-byte values (the caller checked the length is even)."""
        count = self.remaining // 2
        return struct.unpack_from(f">{count}H", self._data, self.skip(count * 2, what))

    def vector(self, length_bytes: int, what: str | int) -> _Reader:
        """A length-prefixed field; an ``int`` ``what`` names extension ``what``."""
        pos, data = self._pos, self._data
        if pos + length_bytes > self._end:
            raise _Malformed(
                f"length of {_field_name(what)} runs past the end of its enclosing field"
            )
        length = int.from_bytes(data[pos : pos + length_bytes], "big")
        start = pos + length_bytes
        if start + length > self._end:
            raise _Malformed(f"{_field_name(what)} runs past the end of its enclosing field")
        self._pos = start + length
        return _Reader(data, start, start + length)

    def extension(self) -> tuple[int, int, int]:
        """The next extension: its type and where its data starts and ends."""
        pos, data = self._pos, self._data
        if pos + 2 > self._end:
            raise _Malformed("extension type runs past the end of its enclosing field")
        ext_type = (data[pos] << 8) | data[pos + 1]
        if pos + 4 > self._end:
            raise _Malformed(
                f"length of extension {ext_type} runs past the end of its enclosing field"
            )
        start = pos + 4
        end = start + ((data[pos + 2] << 8) | data[pos + 3])
        if end > self._end:
            raise _Malformed(f"extension {ext_type} runs past the end of its enclosing field")
        self._pos = end
        return ext_type, start, end

    def window(self, start: int, end: int) -> _Reader:
        return _Reader(self._data, start, end)


def _field_name(what: str | int) -> str:
    return what if isinstance(what, str) else f"extension {what}"


class ClientHelloParser:
    """Feed the first bytes of a connection; get ``None`` until there is an outcome."""

    __slots__ = ("_fed", "_handshake", "_max_size", "_outcome", "_record")

    def __init__(self, *, max_size: int = MAX_CLIENT_HELLO_SIZE) -> None:
        if max_size < _HANDSHAKE_HEADER:
            raise ValueError("max_size is too small to hold a handshake header")
        self._max_size = max_size
        self._record = bytearray()  # the current, incomplete record (header included)
        self._handshake = bytearray()  # handshake payload gathered from whole records
        self._outcome: ClientHelloOutcome | None = None
        self._fed = 0

    @property
    def outcome(self) -> ClientHelloOutcome | None:
        return self._outcome

    @property
    def bytes_fed(self) -> int:
        return self._fed

    def feed(self, data: bytes) -> ClientHelloOutcome | None:
        """Take more bytes; return the outcome once known (and every time after)."""
        if self._outcome is not None:
            return self._outcome
        if not self._fed:
            whole = self._whole_first_record(data)
            if whole is not None:
                self._fed = len(data)
                return self._finish(whole)
        self._fed += len(data)
        view = memoryview(data)
        while view:
            if len(self._record) < _RECORD_HEADER:
                need = _RECORD_HEADER - len(self._record)
                self._record += view[:need]
                view = view[need:]
                outcome = self._check_record_header()
                if outcome is not None:
                    return self._finish(outcome)
                if len(self._record) < _RECORD_HEADER:
                    return None
            length = int.from_bytes(self._record[3:5], "big")
            need = _RECORD_HEADER + length - len(self._record)
            self._record += view[:need]
            view = view[need:]
            if self._fed - len(view) > self._max_size:
                return self._finish(
                    MalformedClientHello(
                        f"no whole ClientHello within the first {self._max_size} bytes",
                        oversized=True,
                    )
                )
            if len(self._record) < _RECORD_HEADER + length:
                return None
            self._handshake += self._record[_RECORD_HEADER:]
            self._record.clear()
            outcome = self._check_handshake()
            if outcome is not None:
                return self._finish(outcome)
        return None

    def _whole_first_record(self, data: bytes) -> ClientHelloOutcome | None:
        """The outcome when the first bytes hold a whole ClientHello in one record.

        The common case (a client writes its ClientHello at once): decoded straight from
        ``data`` with no buffering. Anything else (pieces, several records, a limit
        reached, a bad header) returns ``None`` and goes the general way.
        """
        if len(data) < _RECORD_HEADER + _HANDSHAKE_HEADER:
            return None
        if data[0] != _CONTENT_HANDSHAKE or data[1] != 3 or data[5] != _HANDSHAKE_CLIENT_HELLO:
            return None
        length = (data[3] << 8) | data[4]
        end = _RECORD_HEADER + length
        if length > _MAX_RECORD_PAYLOAD or end > len(data) or end > self._max_size:
            return None
        size = _HANDSHAKE_HEADER + int.from_bytes(data[6:9], "big")
        if size > length:
            return None
        try:
            return _decode_body(
                data[_RECORD_HEADER + _HANDSHAKE_HEADER : _RECORD_HEADER + size], size
            )
        except _Malformed as exc:
            return MalformedClientHello(exc.reason)

    def _finish(self, outcome: ClientHelloOutcome) -> ClientHelloOutcome:
        self._outcome = outcome
        self._record = bytearray()
        self._handshake = bytearray()
        return outcome

    def _check_record_header(self) -> ClientHelloOutcome | None:
        header = self._record
        first_record = not self._handshake
        if header[0] != _CONTENT_HANDSHAKE:
            if first_record:
                return NotTLS(f"first byte 0x{header[0]:02x} is not a TLS handshake record")
            return MalformedClientHello(
                f"record of content type {header[0]} inside the ClientHello"
            )
        if len(header) >= 2 and header[1] != 3:
            if first_record:
                return NotTLS(f"record version major {header[1]} is not 3")
            return MalformedClientHello(f"record version major {header[1]} is not 3")
        if len(header) == _RECORD_HEADER:
            length = int.from_bytes(header[3:5], "big")
            if length == 0:
                return MalformedClientHello("empty handshake record")
            if length > _MAX_RECORD_PAYLOAD:
                return MalformedClientHello(
                    f"record length {length} is over the limit of {_MAX_RECORD_PAYLOAD}"
                )
        return None

    def _check_handshake(self) -> ClientHelloOutcome | None:
        buf = self._handshake
        if len(buf) < _HANDSHAKE_HEADER:
            return None
        if buf[0] != _HANDSHAKE_CLIENT_HELLO:
            return MalformedClientHello(f"handshake message type {buf[0]} is not ClientHello (1)")
        size = _HANDSHAKE_HEADER + int.from_bytes(buf[1:4], "big")
        if size > self._max_size:
            return MalformedClientHello(
                f"ClientHello of {size} bytes is over the limit of {self._max_size}",
                oversized=True,
            )
        if len(buf) < size:
            return None
        try:
            return _decode_body(bytes(buf[_HANDSHAKE_HEADER:size]), size)
        except _Malformed as exc:
            return MalformedClientHello(exc.reason)


def _decode_body(body: bytes, size: int) -> ClientHelloResult:
    reader = _Reader(body)
    legacy_version = reader.u16("legacy_version")
    reader.skip(32, "random")
    session_id = reader.vector(1, "legacy_session_id")
    if session_id.remaining > 32:
        raise _Malformed("legacy_session_id is longer than 32 bytes")
    suites_reader = reader.vector(2, "cipher_suites")
    if suites_reader.remaining == 0 or suites_reader.remaining % 2:
        raise _Malformed("cipher_suites must be a non-empty list of 2-byte values")
    cipher_suites = suites_reader.u16_list("cipher suite")
    compression = reader.vector(1, "legacy_compression_methods")
    if compression.remaining == 0:
        raise _Malformed("legacy_compression_methods is empty")

    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    supported_versions: tuple[int, ...] = ()
    extension_types: list[int] = []
    if reader.remaining:  # a TLS 1.0-1.2 ClientHello may end before the extensions
        extensions = reader.vector(2, "extensions")
        if reader.remaining:
            raise _Malformed("bytes after the extensions")
        while extensions.remaining:
            ext_type, start, end = extensions.extension()
            if ext_type in extension_types:
                raise _Malformed(f"extension {ext_type} appears twice")
            extension_types.append(ext_type)
            if ext_type == _EXT_SERVER_NAME:
                server_name = _decode_server_name(extensions.window(start, end))
            elif ext_type == _EXT_ALPN:
                alpn = _decode_alpn(extensions.window(start, end))
            elif ext_type == _EXT_SUPPORTED_VERSIONS:
                supported_versions = _decode_supported_versions(extensions.window(start, end))
    return ClientHelloResult(
        server_name=server_name,
        alpn=alpn,
        legacy_version=legacy_version,
        supported_versions=supported_versions,
        cipher_suites=cipher_suites,
        extensions=tuple(extension_types),
        size=size,
    )


def _decode_server_name(data: _Reader) -> str:
    # Like BoringSSL: exactly one entry, of type host_name, 1..255 bytes, no NUL.
    names = data.vector(2, "server_name_list")
    if data.remaining:
        raise _Malformed("bytes after server_name_list")
    name_type = names.u8("server name type")
    host = names.vector(2, "host_name")
    if names.remaining:
        raise _Malformed("server_name_list holds more than one name")
    if name_type != 0:
        raise _Malformed(f"server name type {name_type} is not host_name (0)")
    raw = host.take(host.remaining, "host_name")
    if not raw or len(raw) > _MAX_HOST_NAME:
        raise _Malformed("host_name must be 1 to 255 bytes")
    if b"\x00" in raw:
        raise _Malformed("host_name contains a NUL byte")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise _Malformed("host_name is not ASCII") from None


def _decode_alpn(data: _Reader) -> tuple[str, ...]:
    protocols = data.vector(2, "protocol_name_list")
    if data.remaining:
        raise _Malformed("bytes after protocol_name_list")
    if protocols.remaining == 0:
        raise _Malformed("protocol_name_list is empty")
    names: list[str] = []
    while protocols.remaining:
        name = protocols.vector(1, "protocol name")
        if name.remaining == 0:
            raise _Malformed("empty protocol name in ALPN")
        # ALPN names are opaque bytes; latin-1 maps each byte to one character.
        names.append(name.take(name.remaining, "protocol name").decode("latin-1"))
    return tuple(names)


def _decode_supported_versions(data: _Reader) -> tuple[int, ...]:
    versions = data.vector(1, "supported_versions")
    if data.remaining:
        raise _Malformed("bytes after supported_versions")
    if versions.remaining == 0 or versions.remaining % 2:
        raise _Malformed("supported_versions must be a non-empty list of 2-byte values")
    return versions.u16_list("version")


def parse_client_hello(
    data: bytes, *, max_size: int = MAX_CLIENT_HELLO_SIZE
) -> ClientHelloOutcome | None:
    """Parse bytes that are all there is so far; ``None`` means they end mid-ClientHello."""
    return ClientHelloParser(max_size=max_size).feed(data)
