"""The WebSocket port-forward protocol of the Kubernetes API server, without I/O.

Theory of operation. ``GET /api/v1/namespaces/NS/pods/NAME/portforward?ports=P…``
upgraded to a WebSocket with the sub-protocol ``v4.channel.k8s.io`` carries, for the
``i``-th requested port, two channels: ``2i`` (data, both ways) and ``2i+1`` (errors,
server to client only). Every binary message starts with one byte, the channel; the
rest is that channel's bytes. The server opens each channel by sending the port it
belongs to as an unsigned 16-bit little-endian integer: those two bytes are the first
of the channel's stream, not data (they may, in principle, be split over messages, and
an empty message carries nothing). Anything after them on an error channel is a
message from the kubelet, such as a refused connection inside the pod. There is no
half-close: the server ends a forwarded connection by closing the WebSocket.

``PortForwardDecoder.receive(message)`` returns the events a message carries;
``encode_data`` frames bytes for a data channel. This is the whole protocol; the
WebSocket itself belongs to the async shell (``meshlet.kube.portforward``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "PORTFORWARD_PROTOCOL",
    "DataReceived",
    "ErrorReceived",
    "PortForwardDecoder",
    "ProtocolViolation",
    "encode_data",
    "encode_port_prefix",
]

PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
_MAX_FRAME_DATA = 32 * 1024


class ProtocolViolation(ValueError):
    """A message that the port-forward protocol does not allow."""


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Bytes the pod's port sent (the ``index``-th requested port)."""

    index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """Text on a port's error channel: the forwarding of that port failed."""

    index: int
    message: str


Event = DataReceived | ErrorReceived


def encode_port_prefix(channel: int, port: int) -> bytes:
    """The first message the server sends on a channel: the channel byte and the port."""
    return bytes([channel]) + port.to_bytes(2, "little")


def encode_data(index: int, data: bytes) -> list[bytes]:
    """Messages that carry ``data`` to the ``index``-th port (its data channel)."""
    channel = 2 * index
    if not 0 <= channel < 255:
        raise ProtocolViolation(f"no data channel for port number {index + 1}")
    return [
        bytes([channel]) + data[start : start + _MAX_FRAME_DATA]
        for start in range(0, len(data), _MAX_FRAME_DATA)
    ]


@dataclass
class PortForwardDecoder:
    """Server-to-client messages of a port-forward with ``ports`` requested, as events.

    Each channel's first two bytes must name the port the channel was opened for;
    a different port, or a channel beyond the requested ports, is a
    ``ProtocolViolation``.
    """

    ports: tuple[int, ...]
    _prefixes: dict[int, bytes] = field(default_factory=dict)

    def receive(self, message: bytes) -> list[Event]:
        if not message:
            return []
        channel, payload = message[0], message[1:]
        index, is_error = divmod(channel, 2)
        if index >= len(self.ports):
            raise ProtocolViolation(
                f"message on channel {channel}, but only {len(self.ports)} port(s) were requested"
            )
        seen = self._prefixes.get(channel, b"")
        if len(seen) < 2:
            take = payload[: 2 - len(seen)]
            seen += take
            payload = payload[len(take) :]
            self._prefixes[channel] = seen
            if len(seen) == 2:
                announced = int.from_bytes(seen, "little")
                if announced != self.ports[index]:
                    raise ProtocolViolation(
                        f"channel {channel} was opened for port {announced}, "
                        f"not {self.ports[index]}"
                    )
        if not payload:
            return []
        if is_error:
            return [ErrorReceived(index, payload.decode("utf-8", "replace"))]
        return [DataReceived(index, payload)]

    def opened(self, index: int) -> bool:
        """Whether the server announced the ``index``-th port's data channel."""
        return len(self._prefixes.get(2 * index, b"")) == 2
