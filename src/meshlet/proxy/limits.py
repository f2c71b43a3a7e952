"""Envoy's edge limits for a listener: buffered bytes per connection, connections at once.

Theory of operation: Envoy's guidance for a proxy facing untrusted clients bounds what
one client can make it hold. The HTTP limits (60 KiB of request headers, 100 headers,
the request headers timeout, the idle and stream idle timeouts, 100 concurrent HTTP/2
streams) are the connection manager's (``routing.HcmSettings``, from the
``HttpConnectionManager`` proto). This module holds the listener's:

- ``buffer_limit``: at most this many bytes are held for one connection in each
  direction before reading from the other side pauses (the listener's
  ``per_connection_buffer_limit_bytes``; 32 KiB, the edge value, when unset);
- ``max_connections``: connections served at once on the listener; one more is closed
  as soon as it is accepted and counted as ``downstream_cx_overflow``, as Envoy's
  connection limit does.

``ConnectionGate`` counts the open connections of one listener.

Pure: protos in, values out.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.listener.v3 import listener_pb2

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "EDGE_BUFFER_LIMIT",
    "ConnectionGate",
    "ListenerLimits",
]

EDGE_BUFFER_LIMIT = 32 * 1024
DEFAULT_MAX_CONNECTIONS = 50_000  # Envoy's edge guidance (overload manager)


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """The limits of one listener (see the module docstring)."""

    buffer_limit: int = EDGE_BUFFER_LIMIT
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @classmethod
    def of(
        cls, listener: listener_pb2.Listener, *, max_connections: int = DEFAULT_MAX_CONNECTIONS
    ) -> ListenerLimits:
        limit = listener.per_connection_buffer_limit_bytes.value or EDGE_BUFFER_LIMIT
        return cls(buffer_limit=max(limit, 1024), max_connections=max_connections)


class ConnectionGate:
    """Open connections of a listener against its limit."""

    __slots__ = ("active", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_enter(self) -> bool:
        """Take a place for a new connection; ``False`` when the listener is full."""
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1
