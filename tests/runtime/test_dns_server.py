"""The DNS server over UDP and TCP on loopback (no root needed: the process's own
namespace, an ephemeral port)."""

from __future__ import annotations

import asyncio
import socket
import struct
from ipaddress import IPv4Address

from meshlet.runtime.dns import ClusterDns, NameTable
from meshlet.runtime.dnsmsg import RCode, RRType, encode_query, parse_response

VIP = IPv4Address("10.96.0.20")


def failing_lookup(name: str) -> tuple[IPv4Address, ...] | None:
    raise RuntimeError("store unavailable")


async def udp_exchange(address: tuple[str, int], query: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, query)
        async with asyncio.timeout(2):
            return await loop.sock_recv(sock, 4096)


async def test_udp_and_tcp_answer_the_same():
    table = NameTable({"httpbin.test.svc.cluster.local": [VIP]})
    async with ClusterDns(table) as dns:
        await dns.start("127.0.0.1", 0)
        udp_address, tcp_address = dns.addresses
        query = encode_query("httpbin.test.svc.cluster.local", ident=42)
        udp_reply = parse_response(await udp_exchange(udp_address, query))
        assert udp_reply.addresses() == [VIP]

        reader, writer = await asyncio.open_connection(*tcp_address)
        try:
            for ident, qtype in ((1, RRType.A), (2, RRType.AAAA)):
                message = encode_query("httpbin.test.svc.cluster.local", qtype, ident=ident)
                writer.write(struct.pack("!H", len(message)) + message)
                await writer.drain()
                async with asyncio.timeout(2):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    reply = parse_response(await reader.readexactly(size))
                assert reply.id == ident
                assert reply.addresses() == ([VIP] if qtype == RRType.A else [])
        finally:
            writer.close()
            await writer.wait_closed()


async def test_a_failing_lookup_is_servfail_not_silence():
    async with ClusterDns(failing_lookup) as dns:
        await dns.start("127.0.0.1", 0)
        reply = parse_response(
            await udp_exchange(dns.addresses[0], encode_query("x.cluster.local"))
        )
        assert reply.rcode == RCode.SERVFAIL
