"""The socket side of a listener: accept, inspect the first bytes, pick a chain or reset.

Theory of operation: for each accepted connection the listener

1. finds the destination: ``SO_ORIGINAL_DST`` when iptables redirected the connection
   (``virtualInbound``/``virtualOutbound``), else the socket's own address;
2. runs the TLS inspector: peeks (``MSG_PEEK``) at the first bytes, never consuming
   them, and feeds what is new to ``ClientHelloParser`` until it has an outcome. The
   first peek is made at once (the ClientHello has usually arrived by the time the
   connection is accepted, and is then parsed from that one peek); only when nothing
   is there yet does the inspector wait for readiness. A peeked byte stays in the
   kernel buffer, so the socket stays readable: after a partial ClientHello the
   inspector polls with a short, growing pause instead of waiting for readiness. After
   ``listener_filters_timeout`` the connection is closed, or goes on as ``raw_buffer``
   with ``continue_on_listener_filters_timeout``; an oversized ClientHello is reset;
3. selects the filter chain with the pure matcher (``meshlet.envoy.filter_chain``);
4. hands the untouched socket, the chain and how many bytes it peeked to ``on_chain``
   (which may ``recv`` those bytes and give them to TLS, so that TLS reads the very
   ClientHello the inspector saw without waiting for it again; the stream it wraps the
   socket in sets ``TCP_NODELAY``), or, when no chain matches, resets the connection:
   ``SO_LINGER`` on with a zero timeout makes ``close`` send a RST, so ``curl`` reports
   ``(56) Recv failure: Connection reset by peer`` rather than ``(52) Empty reply``.

A failure in one connection ends that connection only (reset) and is counted in
``stats`` (under Envoy's stat names where Envoy has one); the accept loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import select
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from envoy.config.listener.v3.listener_components_pb2 import FilterChain

from meshlet.envoy.filter_chain import ConnectionFacts, FilterChainTable
from meshlet.proxy.client_hello import (
    ClientHelloOutcome,
    ClientHelloParser,
    ClientHelloResult,
    MalformedClientHello,
)
from meshlet.proxy.limits import ConnectionGate

__all__ = [
    "SO_ORIGINAL_DST",
    "AcceptedConnection",
    "ChainHandler",
    "InspectingListener",
    "original_destination",
    "reset_connection",
]

log = logging.getLogger(__name__)

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; Python has no constant for it
_PEEK_SIZE = 16 * 1024
_FIRST_POLL = 0.001
_MAX_POLL = 0.05


@dataclass(frozen=True, slots=True)
class AcceptedConnection:
    """What the listener learned about a connection before choosing its chain."""

    facts: ConnectionFacts
    client_hello: ClientHelloOutcome | None  # None: no bytes before the timeout
    #: How many bytes the inspector saw waiting in the socket (still unread there): a
    #: chain handler may take them with ``recv`` and hand them to TLS directly.
    peeked: int = 0


ChainHandler = Callable[[socket.socket, FilterChain, AcceptedConnection], Awaitable[None]]


def original_destination(sock: socket.socket) -> tuple[str, int] | None:
    """The address a REDIRECTed IPv4 connection was sent to, or ``None`` if not redirected."""
    if sock.family != socket.AF_INET:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
            return None
        raise
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


def reset_connection(sock: socket.socket) -> None:
    """Close with a RST (``SO_LINGER`` on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class InspectingListener:
    """Accepts on a bound, listening socket and dispatches each connection to a chain."""

    def __init__(
        self,
        table: FilterChainTable,
        on_chain: ChainHandler,
        *,
        use_original_dst: bool = False,
        listener_filters_timeout: float = 15.0,
        continue_on_listener_filters_timeout: bool = False,
        inspect_tls: bool = True,
        gate: ConnectionGate | None = None,
    ) -> None:
        self.gate = gate  # the listener's connection limit
        self.table = table
        self.on_chain = on_chain
        self.use_original_dst = use_original_dst
        self.listener_filters_timeout = listener_filters_timeout
        self.continue_on_listener_filters_timeout = continue_on_listener_filters_timeout
        self.inspect_tls = inspect_tls
        self.stats: Counter[str] = Counter()

    async def serve(self, listening: socket.socket) -> None:
        """Accept until cancelled; each connection runs in its own task."""
        loop = asyncio.get_running_loop()
        listening.setblocking(False)
        async with asyncio.TaskGroup() as tasks:
            while True:
                sock, peer = await loop.sock_accept(listening)
                tasks.create_task(self.handle(sock, peer))

    async def handle(self, sock: socket.socket, peer: tuple[str, int] | None = None) -> None:
        """One connection, start to end; never raises (the connection is reset).

        ``peer`` is the address ``accept`` returned (saves a ``getpeername``). Over the
        listener's connection limit the connection is closed at once.
        """
        self.stats["downstream_cx_total"] += 1
        gate = self.gate
        if gate is not None and not gate.try_enter():
            self.stats["downstream_cx_overflow"] += 1
            reset_connection(sock)
            return
        try:
            await self._dispatch(sock, peer)
        except Exception:
            self.stats["downstream_cx_error"] += 1
            log.exception("connection failed in the listener")
            reset_connection(sock)
        finally:
            if gate is not None:
                gate.leave()

    async def _dispatch(self, sock: socket.socket, peer: tuple[str, int] | None) -> None:
        sock.setblocking(False)
        local = sock.getsockname()
        peer_ip, peer_port = (peer if peer is not None else sock.getpeername())[:2]
        local_ip, local_port = local[:2]
        if self.use_original_dst and len(local) == 2:
            original = original_destination(sock)
            if original is not None:
                local_ip, local_port = original
        stats = self.stats
        peeked = 0
        hello: ClientHelloOutcome | None = None
        if self.inspect_tls:
            try:
                hello, peeked = await self._inspect(sock)
            except _PeerClosed:
                stats["downstream_cx_closed_in_listener_filters"] += 1
                sock.close()
                return
            except TimeoutError:
                stats["downstream_pre_cx_timeout"] += 1
                if not self.continue_on_listener_filters_timeout:
                    sock.close()
                    return
        if isinstance(hello, ClientHelloResult):
            stats["tls_inspector.tls_found"] += 1
            transport, server_name, alpn = "tls", hello.server_name or "", hello.alpn
        else:
            if isinstance(hello, MalformedClientHello) and hello.oversized:
                stats["tls_inspector.client_hello_too_large"] += 1
                reset_connection(sock)
                return
            stats["tls_inspector.tls_not_found"] += 1
            transport, server_name, alpn = "raw_buffer", "", ()
        facts = ConnectionFacts(
            destination_ip=local_ip,
            destination_port=local_port,
            source_ip=peer_ip,
            source_port=peer_port,
            transport_protocol=transport,
            server_name=server_name,
            application_protocols=alpn,
        )
        chain = self.table.select(facts)
        if chain is None:
            stats["no_filter_chain_match"] += 1
            reset_connection(sock)
            return
        await self.on_chain(sock, chain, AcceptedConnection(facts, hello, peeked))

    async def _inspect(self, sock: socket.socket) -> tuple[ClientHelloOutcome, int]:
        """Peek until the parser decides: the outcome and the bytes peeked so far.

        ``TimeoutError`` or ``_PeerClosed`` otherwise. The first peek comes before any
        wait: a client writes its ClientHello right after connecting, so it is usually
        in the socket already when the connection is accepted, and then it is parsed
        from that one peek with no timer, poll or reader registration.
        """
        parser = ClientHelloParser()
        try:
            data = sock.recv(_PEEK_SIZE, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data:
            outcome = parser.feed(data)
            if outcome is not None:
                return outcome, len(data)
        elif data is not None:
            raise _PeerClosed  # end of stream before a byte
        loop = asyncio.get_running_loop()
        seen = len(data) if data else 0
        pause = _FIRST_POLL
        async with asyncio.timeout(self.listener_filters_timeout):
            while True:
                if seen == 0:
                    await _wait_readable(loop, sock)
                else:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _MAX_POLL)
                try:
                    data = sock.recv(_PEEK_SIZE + seen, socket.MSG_PEEK)
                except BlockingIOError:
                    continue
                if len(data) == seen:
                    if not data or _peer_hung_up(sock):
                        raise _PeerClosed
                    continue
                outcome = parser.feed(data[seen:])
                seen = len(data)
                pause = _FIRST_POLL
                if outcome is not None:
                    return outcome, seen


class _PeerClosed(Exception):
    """The peer closed before the listener filters decided."""


def _peer_hung_up(sock: socket.socket) -> bool:
    """True once the peer has sent its FIN (Linux ``POLLRDHUP``)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP)
    return any(event & (select.POLLRDHUP | select.POLLHUP) for _, event in poller.poll(0))


async def _wait_readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())
