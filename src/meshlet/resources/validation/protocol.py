"""Port protocols as Istio parses them (``pkg/config/protocol``), case-insensitively."""

from __future__ import annotations

__all__ = ["is_http", "is_tls", "parse_protocol"]

_PROTOCOLS = {
    "tcp": "TCP",
    "udp": "UDP",
    "grpc": "GRPC",
    "grpc-web": "GRPC-Web",
    "http": "HTTP",
    "http_proxy": "HTTP_PROXY",
    "http2": "HTTP2",
    "https": "HTTPS",
    "tls": "TLS",
    "mongo": "Mongo",
    "redis": "Redis",
    "mysql": "MySQL",
}


def parse_protocol(name: str) -> str | None:
    """Istio's name of the protocol, or None when it is unsupported."""
    return _PROTOCOLS.get(name.lower())


def is_http(name: str) -> bool:
    return parse_protocol(name) in {"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"}


def is_tls(name: str) -> bool:
    return parse_protocol(name) in {"HTTPS", "TLS"}
