"""The DNS wire format (RFC 1035, EDNS from RFC 6891) and the cluster DNS's answers.

Theory of operation: ``answer_query(packet, lookup)`` takes the bytes of one query and
returns the bytes of its response; ``lookup`` maps a lower-case name without the final
dot to the name's addresses (an empty tuple: the name exists without A records) or
``None`` (no such name). The decision:

* a known name and type A (or ANY): its A records, authoritative;
* a known name and any other type (AAAA above all): an empty NOERROR answer at once, so
  a resolver asking for both families does not wait;
* an unknown name (every search-path form a resolver tries before the absolute one,
  ``httpbin.test.svc.cluster.local.test.svc.cluster.local`` included): NXDOMAIN at once;
* a malformed query: FORMERR; another opcode: NOTIMP; a class other than IN: REFUSED;
  an EDNS version other than 0: BADVERS. Negative answers in the cluster domain carry
  its SOA in the authority section (for negative caching).

A packet is never answered with silence, except one too short to hold a header (there
is no id to answer to) and one that is itself a response. The question is copied with
its letter case (resolvers that randomise case check it). A response larger than the
client can take (512 bytes, or its EDNS size up to 1232) is truncated (TC) so the client
asks again over TCP.

``encode_query`` and ``parse_response`` are the client's half, used by tests and by
probes. No sockets here: ``meshlet.runtime.dns`` moves the bytes.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "DnsFormatError",
    "Edns",
    "Lookup",
    "Query",
    "RCode",
    "RRType",
    "Record",
    "Response",
    "answer_query",
    "encode_query",
    "error_response",
    "parse_query",
    "parse_response",
    "service_names",
]

Lookup = Callable[[str], Sequence[IPv4Address] | None]

_HEADER = struct.Struct("!HHHHHH")
_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
CLASS_IN = 1
CLASS_ANY = 255
MAX_UDP_PAYLOAD = 1232  # the DNS flag day 2020 size, as CoreDNS uses
ANSWER_TTL = 5  # seconds, CoreDNS' kubernetes plugin default
NEGATIVE_TTL = 5


class RRType(enum.IntEnum):
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    OPT = 41
    ANY = 255


class RCode(enum.IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16  # extended: the upper 8 bits travel in the OPT record


class DnsFormatError(ValueError):
    """A message that does not parse."""


@dataclass(frozen=True, slots=True)
class Edns:
    """The OPT pseudo-record of a message."""

    payload_size: int = 512
    version: int = 0
    do_bit: bool = False
    options: bytes = b""


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    name: str  # as sent (letter case kept), without the final dot; "" is the root
    qtype: int
    qclass: int
    edns: Edns | None = None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & _RD)


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    flags: int
    rcode: int
    questions: tuple[tuple[str, int, int], ...]
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]

    @property
    def truncated(self) -> bool:
        return bool(self.flags & _TC)

    @property
    def authoritative(self) -> bool:
        return bool(self.flags & _AA)

    def addresses(self) -> list[IPv4Address | IPv6Address]:
        found: list[IPv4Address | IPv6Address] = []
        for record in self.answers:
            if record.rtype == RRType.A and len(record.data) == 4:
                found.append(IPv4Address(record.data))
            elif record.rtype == RRType.AAAA and len(record.data) == 16:
                found.append(IPv6Address(record.data))
        return found


# -- names -----------------------------------------------------------------------------


def _encode_name(name: str) -> bytes:
    name = name.rstrip(".")
    if not name:
        return b"\x00"
    out = bytearray()
    for label in name.split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise DnsFormatError(f"label {label!r} must have 1-63 characters")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise DnsFormatError("a name may have at most 255 octets")
    return bytes(out)


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset after it, following compression pointers."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    total = 0
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsFormatError("compression pointer runs past the end")
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > 32:
                raise DnsFormatError("compression pointers loop")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsFormatError(f"unknown label type 0x{length:02x}")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise DnsFormatError("label runs past the end of the message")
        raw = data[offset : offset + length]
        total += length + 1
        if total > 254:
            raise DnsFormatError("a name may have at most 255 octets")
        try:
            labels.append(raw.decode("ascii"))
        except UnicodeDecodeError:
            raise DnsFormatError("a label is not ASCII") from None
        offset += length
    return ".".join(labels), (end if end is not None else offset)


# -- messages --------------------------------------------------------------------------


def _read_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = _read_name(data, offset)
    if offset + 10 > len(data):
        raise DnsFormatError("record header runs past the end of the message")
    rtype, rclass, ttl, length = struct.unpack_from("!HHIH", data, offset)
    offset += 10
    if offset + length > len(data):
        raise DnsFormatError("record data runs past the end of the message")
    return Record(name, rtype, rclass, ttl, data[offset : offset + length]), offset + length


def _edns_of(record: Record) -> Edns:
    return Edns(
        payload_size=record.rclass,
        version=(record.ttl >> 16) & 0xFF,
        do_bit=bool(record.ttl & 0x8000),
        options=record.data,
    )


def parse_query(data: bytes) -> Query:
    """The one question (and EDNS) of a query; ``DnsFormatError`` when it does not parse."""
    if len(data) < _HEADER.size:
        raise DnsFormatError("shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if qdcount != 1:
        raise DnsFormatError(f"a query must have one question, not {qdcount}")
    name, offset = _read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise DnsFormatError("question runs past the end of the message")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    offset += 4
    edns: Edns | None = None
    for _ in range(ancount + nscount + arcount):
        record, offset = _read_record(data, offset)
        if record.rtype == RRType.OPT:
            if edns is not None or record.name:
                raise DnsFormatError("a bad or second OPT record")
            edns = _edns_of(record)
    return Query(ident, flags, name, qtype, qclass, edns)


def parse_response(data: bytes) -> Response:
    if len(data) < _HEADER.size:
        raise DnsFormatError("shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    offset = _HEADER.size
    questions: list[tuple[str, int, int]] = []
    for _ in range(qdcount):
        name, offset = _read_name(data, offset)
        if offset + 4 > len(data):
            raise DnsFormatError("question runs past the end of the message")
        qtype, qclass = struct.unpack_from("!HH", data, offset)
        offset += 4
        questions.append((name, qtype, qclass))
    sections: list[list[Record]] = [[], [], []]
    for section, count in zip(sections, (ancount, nscount, arcount), strict=True):
        for _ in range(count):
            record, offset = _read_record(data, offset)
            section.append(record)
    rcode = flags & 0xF
    for record in sections[2]:
        if record.rtype == RRType.OPT:
            rcode |= ((record.ttl >> 24) & 0xFF) << 4
    return Response(
        ident,
        flags,
        rcode,
        tuple(questions),
        tuple(sections[0]),
        tuple(sections[1]),
        tuple(sections[2]),
    )


def encode_query(
    name: str,
    qtype: int = RRType.A,
    *,
    ident: int = 0,
    recursion_desired: bool = True,
    edns: Edns | None = None,
) -> bytes:
    flags = _RD if recursion_desired else 0
    out = bytearray(_HEADER.pack(ident, flags, 1, 0, 0, 1 if edns else 0))
    out += _encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)
    if edns is not None:
        out += _opt_record(edns.payload_size, 0, edns.version, edns.do_bit, edns.options)
    return bytes(out)


def _opt_record(payload: int, ext_rcode: int, version: int, do_bit: bool, options: bytes) -> bytes:
    ttl = (ext_rcode << 24) | (version << 16) | (0x8000 if do_bit else 0)
    return b"\x00" + struct.pack("!HHIH", RRType.OPT, payload, ttl, len(options)) + options


# -- answers ---------------------------------------------------------------------------


def _soa_record(zone: str) -> bytes:
    rdata = (
        _encode_name(f"ns.dns.{zone}")
        + _encode_name(f"hostmaster.{zone}")
        + struct.pack("!IIIII", 1, 7200, 1800, 86400, NEGATIVE_TTL)
    )
    return (
        _encode_name(zone)
        + struct.pack("!HHIH", RRType.SOA, CLASS_IN, NEGATIVE_TTL, len(rdata))
        + rdata
    )


def _in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _response(
    query: Query | None,
    ident: int,
    *,
    flags: int,
    rcode: int,
    answers: Sequence[IPv4Address] = (),
    soa_zone: str | None = None,
) -> bytes:
    ext_rcode, rcode_low = rcode >> 4, rcode & 0xF
    out_flags = _QR | (flags & (0xF << 11)) | (flags & _RD) | _RA | rcode_low
    question = b""
    if query is not None:
        out_flags |= _AA if rcode in (RCode.NOERROR, RCode.NXDOMAIN) else 0
        question = _encode_name(query.name) + struct.pack("!HH", query.qtype, query.qclass)
    edns = query.edns if query is not None else None
    opt = b""
    limit = 512
    if edns is not None:
        opt = _opt_record(MAX_UDP_PAYLOAD, ext_rcode, 0, False, b"")
        limit = max(512, min(edns.payload_size, MAX_UDP_PAYLOAD))
    answer_bytes = b"".join(
        b"\xc0\x0c" + struct.pack("!HHIH", RRType.A, CLASS_IN, ANSWER_TTL, 4) + address.packed
        for address in answers
    )
    authority = _soa_record(soa_zone) if soa_zone is not None else b""
    counts = (1 if query else 0, len(answers), 1 if authority else 0, 1 if opt else 0)
    message = _HEADER.pack(ident, out_flags, *counts) + question + answer_bytes + authority + opt
    if len(message) > limit:
        counts = (1 if query else 0, 0, 0, 1 if opt else 0)
        message = _HEADER.pack(ident, out_flags | _TC, *counts) + question + opt
    return message


def answer_query(data: bytes, lookup: Lookup, *, zone: str = "cluster.local") -> bytes | None:
    """The response to one query packet (``None`` only for a packet that cannot be
    answered: too short for a header, or itself a response)."""
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & _QR:
        return None
    try:
        query = parse_query(data)
    except DnsFormatError:
        return _response(None, ident, flags=flags, rcode=RCode.FORMERR)
    if query.opcode != 0:
        return _response(query, ident, flags=flags, rcode=RCode.NOTIMP)
    if query.edns is not None and query.edns.version != 0:
        return _response(query, ident, flags=flags, rcode=RCode.BADVERS)
    if query.qclass not in (CLASS_IN, CLASS_ANY):
        return _response(query, ident, flags=flags, rcode=RCode.REFUSED)
    name = query.name.lower()
    soa = zone if _in_zone(name, zone) else None
    found = lookup(name)
    if found is None:
        return _response(query, ident, flags=flags, rcode=RCode.NXDOMAIN, soa_zone=soa)
    if query.qtype in (RRType.A, RRType.ANY) and found:
        return _response(query, ident, flags=flags, rcode=RCode.NOERROR, answers=sorted(set(found)))
    return _response(query, ident, flags=flags, rcode=RCode.NOERROR, soa_zone=soa)


def error_response(data: bytes, rcode: RCode) -> bytes | None:
    """A response with ``rcode`` (SERVFAIL when the lookup itself failed) and no answer."""
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & _QR:
        return None
    try:
        query: Query | None = parse_query(data)
    except DnsFormatError:
        query = None
    return _response(query, ident, flags=flags, rcode=rcode)


def service_names(
    services: Iterable[tuple[str, str, IPv4Address]], *, zone: str = "cluster.local"
) -> Mapping[str, tuple[IPv4Address, ...]]:
    """A lookup table from ``(name, namespace, ClusterIP)`` of Services:
    ``name.namespace.svc.<zone>`` maps to the ClusterIP (several for one name when a
    caller gives several, as for a headless Service's endpoints)."""
    table: dict[str, set[IPv4Address]] = {}
    for name, namespace, address in services:
        table.setdefault(f"{name}.{namespace}.svc.{zone}".lower(), set()).add(address)
    return {name: tuple(sorted(addresses)) for name, addresses in sorted(table.items())}
