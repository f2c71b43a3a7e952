"""``ConnectionPoolSettings``: Istio's ``validateConnectionPool`` and the CRD's
duration rule ("must be a valid duration greater than 1ms")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshlet.resources.validation.findings import Finding, cel_error, error
from meshlet.resources.yamlsource import Path

__all__ = ["parse_duration", "validate_connection_pool"]

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000}
_UNITS |= {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MS = 1_000_000


def parse_duration(text: str) -> int | None:
    """A Go/CEL duration (``1h30m``, ``1.5s``, ``100ms``) in nanoseconds, or None."""
    rest = text
    sign = 1
    if rest[:1] in {"+", "-"}:
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        return None
    total = 0.0
    position = 0
    while position < len(rest):
        match = _PART.match(rest, position)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return sign * round(total)


def _duration(value: Any, path: Path, *, cel: bool = True, zero_ok: bool = False) -> list[Finding]:
    """Istio's ``ValidateDuration``, and the CRD's CEL duration rule when ``cel``."""
    if value is None:
        return []
    nanos = parse_duration(str(value))
    findings: list[Finding] = []
    if cel and (nanos is None or nanos < _MS):
        findings.append(cel_error("must be a valid duration greater than 1ms", path))
    if nanos is None:
        return findings
    if zero_ok and int(nanos / _MS) == 0:
        return findings  # 0s turns the timeout off
    if nanos < _MS:
        findings.append(error("duration must be greater than 1ms", path))
    elif nanos % _MS:
        findings.append(error("only durations to ms precision are supported", path))
    return findings


def validate_connection_pool(pool: Mapping[str, Any] | None, path: Path) -> list[Finding]:
    """``validateConnectionPool`` on the pool at ``path`` (None when absent)."""
    if pool is None:
        return []
    http = pool.get("http")
    tcp = pool.get("tcp")
    if http is None and tcp is None:
        return [error("connection pool must have at least one field", path)]
    findings: list[Finding] = []
    if isinstance(http, Mapping):
        here = (*path, "http")
        for field, text in (
            ("http1MaxPendingRequests", "http1 max pending requests must be non-negative"),
            ("http2MaxRequests", "http2 max requests must be non-negative"),
            ("maxRequestsPerConnection", "max requests per connection must be non-negative"),
            ("maxRetries", "max retries must be non-negative"),
        ):
            if (http.get(field) or 0) < 0:
                findings.append(error(text, (*here, field)))
        findings.extend(_duration(http.get("idleTimeout"), (*here, "idleTimeout")))
        if http.get("h2UpgradePolicy") == "UPGRADE" and http.get("useClientProtocol") is True:
            findings.append(
                error(
                    "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
                    (*here, "useClientProtocol"),
                )
            )
        if (http.get("maxConcurrentStreams") or 0) < 0:
            findings.append(
                error(
                    "max concurrent streams must be non-negative",
                    (*here, "maxConcurrentStreams"),
                )
            )
        keepalive = http.get("http2KeepAlive")
        if isinstance(keepalive, Mapping):
            for field in ("interval", "timeout"):
                findings.extend(
                    _cel_duration(keepalive.get(field), (*here, "http2KeepAlive", field))
                )
    if isinstance(tcp, Mapping):
        here = (*path, "tcp")
        if (tcp.get("maxConnections") or 0) < 0:
            findings.append(
                error("max connections must be non-negative", (*here, "maxConnections"))
            )
        findings.extend(_duration(tcp.get("connectTimeout"), (*here, "connectTimeout")))
        findings.extend(
            _duration(tcp.get("maxConnectionDuration"), (*here, "maxConnectionDuration"))
        )
        findings.extend(
            _duration(tcp.get("idleTimeout"), (*here, "idleTimeout"), cel=False, zero_ok=True)
        )
        keepalive = tcp.get("tcpKeepalive")
        if isinstance(keepalive, Mapping):
            for field in ("time", "interval"):
                findings.extend(_duration(keepalive.get(field), (*here, "tcpKeepalive", field)))
    return findings


def _cel_duration(value: Any, path: Path) -> list[Finding]:
    if value is None:
        return []
    nanos = parse_duration(str(value))
    if nanos is None or nanos < _MS:
        return [cel_error("must be a valid duration greater than 1ms", path)]
    return []
