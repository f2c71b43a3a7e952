"""The cluster DNS server: UDP and TCP on the DNS Service address in the node namespace.

Theory of operation: the sockets are opened by a thread that joined the node namespace
(``meshlet.runtime.netns``), bound to the DNS ClusterIP (``10.96.0.10:53``, an address
on the node namespace's loopback), and then served by the caller's event loop. Every
packet is answered by the pure ``meshlet.runtime.dnsmsg.answer_query`` from a lookup
function given to the server; a lookup that raises gives SERVFAIL, never silence. TCP
(for clients that got a truncated answer, or ``dig +tcp``) speaks the same messages with
a two-byte length in front, one connection at a time per client, with an idle timeout.

``NameTable`` is a lookup the local cluster's controllers can replace as Services come
and go; the server reads it on every query, so a change is visible at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType
from typing import cast

from meshlet.runtime.dnsmsg import Lookup, RCode, answer_query, error_response
from meshlet.runtime.netns import open_socket_in_netns

__all__ = ["ClusterDns", "NameTable"]

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0


class NameTable:
    """Names to addresses, replaced whole (``replace``) and looked up per query."""

    def __init__(self, names: Mapping[str, Sequence[IPv4Address]] | None = None) -> None:
        self._names: dict[str, tuple[IPv4Address, ...]] = {}
        self.replace(names or {})

    def replace(self, names: Mapping[str, Sequence[IPv4Address]]) -> None:
        self._names = {name.lower().rstrip("."): tuple(addrs) for name, addrs in names.items()}

    def __call__(self, name: str) -> tuple[IPv4Address, ...] | None:
        return self._names.get(name)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: ClusterDns) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = self._server.respond(data)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("cluster DNS: %s", exc)


class ClusterDns:
    """``async with ClusterDns(lookup) as dns: await dns.start(address, netns=...)``."""

    def __init__(self, lookup: Lookup, *, zone: str = "cluster.local") -> None:
        self._lookup = lookup
        self._zone = zone
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    def respond(self, data: bytes) -> bytes | None:
        """The response to one query message."""
        try:
            return answer_query(data, self._lookup, zone=self._zone)
        except Exception:
            log.exception("cluster DNS lookup failed")
            return error_response(data, RCode.SERVFAIL)

    async def start(
        self, address: IPv4Address | str, port: int = 53, *, netns: str | Path | None = None
    ) -> None:
        """Listen on ``address:port`` (UDP and TCP), in the namespace at ``netns`` (the
        process's own namespace when ``None``)."""
        loop = asyncio.get_running_loop()
        bind = (str(address), port)
        if netns is not None:
            udp_sock = open_socket_in_netns(netns, socket.AF_INET, socket.SOCK_DGRAM, bind)
            tcp_sock = open_socket_in_netns(netns, socket.AF_INET, socket.SOCK_STREAM, bind)
        else:
            udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp_sock.bind(bind)
            tcp_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp_sock.bind(bind)
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=udp_sock
            )
            self._udp = transport
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            await self.aclose()
            raise

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the server listens (UDP first, then TCP)."""
        found = []
        if self._udp is not None:
            found.append(self._udp.get_extra_info("sockname"))
        if self._tcp is not None:
            found += [s.getsockname() for s in self._tcp.sockets]
        return found

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    message = await reader.readexactly(size)
                reply = self.respond(message)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    async def aclose(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._clients):
                task.cancel()
            await self._tcp.wait_closed()
            self._tcp = None

    async def __aenter__(self) -> ClusterDns:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
