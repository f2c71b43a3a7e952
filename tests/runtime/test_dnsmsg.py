"""The DNS codec and the cluster DNS's answers, byte by byte."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from meshlet.runtime.dnsmsg import (
    DnsFormatError,
    Edns,
    RCode,
    RRType,
    answer_query,
    encode_query,
    error_response,
    parse_query,
    parse_response,
    service_names,
)

VIP = IPv4Address("10.96.0.20")
TABLE = service_names([("httpbin", "test", VIP)])

NAME = b"\x07httpbin\x04test\x03svc\x07cluster\x05local\x00"
# What glibc's resolver (getent, curl) sends: id, RD, one question, no EDNS.
GLIBC_QUERY = bytes.fromhex("1234 0100 0001 0000 0000 0000") + NAME + b"\x00\x01\x00\x01"
# What dig sends: RD and AD set, and an OPT record (1232 bytes, a client cookie).
DIG_QUERY = (
    bytes.fromhex("beef 0120 0001 0000 0000 0001")
    + NAME
    + b"\x00\x01\x00\x01"
    + bytes.fromhex("00 0029 04d0 00000000 000c 000a 0008 0102030405060708")
)


def lookup(name: str) -> tuple[IPv4Address, ...] | None:
    return TABLE.get(name)


def test_a_hand_encoded_query_gets_its_a_record_exactly():
    reply = answer_query(GLIBC_QUERY, lookup)
    assert reply == (
        bytes.fromhex("1234 8580 0001 0001 0000 0000")
        + NAME
        + b"\x00\x01\x00\x01"
        + bytes.fromhex("c00c 0001 0001 00000005 0004 0a600014")
    )


def test_digs_query_gets_an_opt_record_back():
    reply = answer_query(DIG_QUERY, lookup)
    assert reply is not None
    assert reply[:12] == bytes.fromhex("beef 8580 0001 0001 0000 0001")
    assert reply.endswith(bytes.fromhex("00 0029 04d0 00000000 0000"))
    response = parse_response(reply)
    assert response.addresses() == [VIP]
    assert response.authoritative and not response.truncated


def test_query_parsing():
    query = parse_query(DIG_QUERY)
    assert query.id == 0xBEEF
    assert query.name == "httpbin.test.svc.cluster.local"
    assert (query.qtype, query.qclass) == (RRType.A, 1)
    assert query.recursion_desired
    assert query.edns == Edns(1232, 0, False, bytes.fromhex("000a00080102030405060708"))
    assert encode_query("httpbin.test.svc.cluster.local", ident=0x1234) == GLIBC_QUERY


def test_letter_case_of_the_question_is_kept():
    query = encode_query("HttpBin.Test.svc.cluster.local", ident=7)
    response = parse_response(answer_query(query, lookup) or b"")
    assert response.questions == (("HttpBin.Test.svc.cluster.local", RRType.A, 1),)
    assert response.addresses() == [VIP]


@pytest.mark.parametrize(
    "name",
    [
        "httpbin.test.svc.cluster.local.test.svc.cluster.local",
        "httpbin.test.svc.cluster.local.svc.cluster.local",
        "httpbin.test.svc.cluster.local.cluster.local",
        "nothere.test.svc.cluster.local",
        "example.com",
    ],
)
def test_a_miss_is_nxdomain_at_once(name):
    response = parse_response(answer_query(encode_query(name, ident=9), lookup) or b"")
    assert response.rcode == RCode.NXDOMAIN
    assert response.id == 9
    assert response.answers == ()


def test_a_miss_in_the_cluster_domain_carries_the_soa():
    reply = answer_query(encode_query("nothere.test.svc.cluster.local"), lookup) or b""
    assert reply[2:4] == b"\x85\x83"
    response = parse_response(reply)
    [soa] = response.authority
    assert (soa.name, soa.rtype, soa.ttl) == ("cluster.local", RRType.SOA, 5)
    outside = parse_response(answer_query(encode_query("example.com"), lookup) or b"")
    assert outside.authority == ()


def test_aaaa_of_a_known_name_is_an_empty_noerror():
    reply = answer_query(encode_query("httpbin.test.svc.cluster.local", RRType.AAAA), lookup)
    response = parse_response(reply or b"")
    assert response.rcode == RCode.NOERROR
    assert response.answers == ()
    assert [r.rtype for r in response.authority] == [RRType.SOA]


def test_bad_packets_get_an_error_not_silence():
    # two questions
    two = bytes.fromhex("0001 0100 0002 0000 0000 0000") + NAME + b"\x00\x01\x00\x01" * 2
    assert parse_response(answer_query(two, lookup) or b"").rcode == RCode.FORMERR
    # a name running off the end
    cut = GLIBC_QUERY[:20]
    formerr = answer_query(cut, lookup) or b""
    assert formerr[:4] == bytes.fromhex("1234 8181")
    # an update (opcode 5)
    update = bytearray(GLIBC_QUERY)
    update[2] = 0x28
    assert parse_response(answer_query(bytes(update), lookup) or b"").rcode == RCode.NOTIMP
    # class CHAOS
    chaos = GLIBC_QUERY[:-2] + b"\x00\x03"
    assert parse_response(answer_query(chaos, lookup) or b"").rcode == RCode.REFUSED
    # EDNS version 1
    v1 = encode_query("httpbin.test.svc.cluster.local", edns=Edns(1232, version=1))
    assert parse_response(answer_query(v1, lookup) or b"").rcode == RCode.BADVERS
    # only what cannot be answered at all is dropped
    assert answer_query(b"\x12\x34\x01", lookup) is None
    assert answer_query(b"\x12\x34\x81\x80" + bytes(8), lookup) is None
    servfail = parse_response(error_response(GLIBC_QUERY, RCode.SERVFAIL) or b"")
    assert servfail.rcode == RCode.SERVFAIL and servfail.id == 0x1234


def test_compression_pointer_loops_are_refused():
    looped = bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\xc0\x0c\x00\x01\x00\x01"
    with pytest.raises(DnsFormatError, match="loop"):
        parse_query(looped)
    assert parse_response(answer_query(looped, lookup) or b"").rcode == RCode.FORMERR


def test_too_many_answers_are_truncated_for_udp():
    many = {"big.test.svc.cluster.local": tuple(IPv4Address(f"10.96.1.{n}") for n in range(1, 60))}
    plain = parse_response(
        answer_query(encode_query("big.test.svc.cluster.local"), many.get) or b""
    )
    assert plain.truncated and plain.answers == ()
    roomy = answer_query(encode_query("big.test.svc.cluster.local", edns=Edns(4096)), many.get)
    response = parse_response(roomy or b"")
    assert not response.truncated and len(response.answers) == 59


def test_service_names_table():
    table = service_names([("httpbin", "test", VIP), ("Web", "default", IPv4Address("10.96.0.30"))])
    assert table == {
        "httpbin.test.svc.cluster.local": (VIP,),
        "web.default.svc.cluster.local": (IPv4Address("10.96.0.30"),),
    }
    assert list(table) == sorted(table)


def test_header_is_network_order():
    reply = answer_query(GLIBC_QUERY, lookup) or b""
    assert struct.unpack("!6H", reply[:12]) == (0x1234, 0x8580, 1, 1, 0, 0)
