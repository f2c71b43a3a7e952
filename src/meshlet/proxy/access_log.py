"""The access log: one line per request in Istio's default text format.

Theory of operation: the connection manager fills a ``RequestInfo`` while it serves a
request (route, cluster, upstream host, response flags and details, bytes, times) and
hands it to ``format_access_log``, which writes the line Istio's sidecars print with
``meshConfig.accessLogFile: /dev/stdout`` and no format of their own::

    [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
    %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%
    %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
    %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
    "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%"
    "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS%
    %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%
    %ROUTE_NAME%

(on one line). As in Envoy, an empty or unknown value prints ``-``. Lines are gathered
in an ``AccessLogBuffer`` and written in batches, as Envoy flushes its log files once a
second, so a request costs one string format and no system call.

Pure: the caller gives the start time as text and the function that writes bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AccessLogBuffer", "RequestInfo", "format_access_log", "format_address"]

_FLUSH_BYTES = 64 * 1024


def format_address(address: tuple[str, int] | None) -> str | None:
    """``ip:port`` (``[ip]:port`` for IPv6) as Envoy prints addresses."""
    if address is None:
        return None
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class RequestInfo:
    """What the access log and the metrics need of one request, filled as it is served."""

    start_time: str  # RFC 3339 UTC with milliseconds, as Envoy's %START_TIME%
    started: float  # the loop's clock when the request began (for the duration)
    method: bytes | None = None
    path: bytes | None = None
    protocol: str = "HTTP/1.1"
    authority: bytes | None = None
    user_agent: bytes | None = None
    forwarded_for: bytes | None = None
    request_id: bytes | None = None
    status: int = 0
    flags: str = "-"
    details: str | None = None
    termination_details: str | None = None
    transport_failure: str | None = None
    bytes_received: int = 0  # request body bytes
    bytes_sent: int = 0  # response body bytes
    head_received: int = 0  # request head bytes (for istio_request_bytes)
    head_sent: int = 0  # response head bytes (for istio_response_bytes)
    duration_ms: int = 0
    service_time: int | None = None
    upstream_host: str | None = None
    upstream_cluster: str | None = None
    upstream_local: str | None = None
    downstream_local: str | None = None
    downstream_remote: str | None = None
    server_name: str | None = None
    route_name: str | None = None
    grpc: bool = False


def format_access_log(info: RequestInfo) -> str:
    """The line (newline included) for a finished request (see the module docstring).

    One f-string with each field written out (no helper call per field: this runs once
    per request).
    """
    method, path, details = info.method, info.path, info.details
    forwarded_for, user_agent = info.forwarded_for, info.user_agent
    request_id, authority = info.request_id, info.authority
    service_time = "-" if info.service_time is None else info.service_time
    return (
        f'[{info.start_time}] "{method.decode("latin-1") if method else "-"} '
        f'{path.decode("latin-1") if path else "-"} {info.protocol}" '
        f"{info.status} {info.flags or '-'} {details or '-'} "
        f'{info.termination_details or "-"} "{info.transport_failure or "-"}" '
        f"{info.bytes_received} {info.bytes_sent} {info.duration_ms} {service_time} "
        f'"{forwarded_for.decode("latin-1") if forwarded_for else "-"}" '
        f'"{user_agent.decode("latin-1") if user_agent else "-"}" '
        f'"{request_id.decode("latin-1") if request_id else "-"}" '
        f'"{authority.decode("latin-1") if authority else "-"}" '
        f'"{info.upstream_host or "-"}" {info.upstream_cluster or "-"} '
        f"{info.upstream_local or '-'} {info.downstream_local or '-'} "
        f"{info.downstream_remote or '-'} {info.server_name or '-'} {info.route_name or '-'}\n"
    )


class AccessLogBuffer:
    """Lines gathered and written in batches with ``write`` (``flush`` at least once a
    second from the caller's timer; a full buffer flushes at once)."""

    def __init__(self, write: Callable[[bytes], object], *, limit: int = _FLUSH_BYTES) -> None:
        self._write = write
        self._limit = limit
        self._lines: list[str] = []
        self._size = 0

    def append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self._limit:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "replace")
        self._lines.clear()
        self._size = 0
        self._write(data)
