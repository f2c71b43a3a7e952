"""The HTTP connection manager's decisions, as pure functions of its config.

Theory of operation: an ``HttpConnectionManager`` proto becomes ``HcmSettings`` once per
filter chain; a ``RouteConfiguration`` becomes a ``RouteTable`` once per config version.
Per request the shell asks three things:

1. ``RouteTable.select(authority, path)``: the virtual host by domain, as Envoy picks
   it — an exact domain first, then the longest ``*.suffix`` wildcard, then the longest
   ``prefix.*`` wildcard, then ``*``; the ``Host`` value is compared whole (Istio lists
   both ``name`` and ``name:port``), lower-cased, after ``strip_any_host_port`` /
   ``strip_matching_host_port`` when the connection manager asks for it. Within the
   virtual host the first route whose ``prefix``/``path``/``safe_regex``/
   ``path_separated_prefix`` matches the path (query removed) wins. ``None`` is
   Envoy's 404.
2. ``upstream_request_headers``: what the router sends upstream (hop-by-hop removed,
   ``x-forwarded-proto``, ``x-request-id``, ``x-forwarded-client-cert``,
   ``x-envoy-attempt-count``).
3. ``downstream_response_headers``: what the client sees (lower-case names, hop-by-hop
   removed, ``server`` per ``server_header_transformation``,
   ``x-envoy-upstream-service-time``, the decorator rule, ``date`` when absent).

Local replies (``local_reply``) carry Envoy's statuses and bodies.

Pure: the clock (``date``), request ids and elapsed times are arguments.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshlet.proxy.http_headers import (
    FORWARDED_CLIENT_CERT,
    ClientCertDetails,
    ForwardClientCert,
    Header,
    TrafficDirection,
    edit_headers,
    forward_client_cert_edit,
    header_names,
)

__all__ = [
    "CONNECTION_FAILURE",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_REQUEST_HEADERS_TIMEOUT",
    "DEFAULT_ROUTE_TIMEOUT",
    "DEFAULT_STREAM_IDLE_TIMEOUT",
    "HcmSettings",
    "LocalReply",
    "RouteDecision",
    "RouteTable",
    "ServerHeader",
    "downstream_response_headers",
    "local_reply",
    "local_reply_headers",
    "reason_phrase",
    "upstream_request_headers",
]

DEFAULT_ROUTE_TIMEOUT = 15.0  # Envoy's route timeout when the route sets none
DEFAULT_IDLE_TIMEOUT = 3600.0  # common_http_protocol_options.idle_timeout: one hour
DEFAULT_STREAM_IDLE_TIMEOUT = 300.0  # stream_idle_timeout: five minutes
DEFAULT_REQUEST_HEADERS_TIMEOUT = 10.0  # request_headers_timeout, Envoy's edge value
UPSTREAM_RESET = "upstream connect error or disconnect/reset before headers. reset reason: "
CONNECTION_FAILURE = UPSTREAM_RESET + "connection failure"


class ServerHeader(enum.Enum):
    """``server_header_transformation``."""

    OVERWRITE = "OVERWRITE"
    APPEND_IF_ABSENT = "APPEND_IF_ABSENT"
    PASS_THROUGH = "PASS_THROUGH"


@dataclass(frozen=True, slots=True)
class HcmSettings:
    """What the connection manager needs of its proto, read once."""

    stat_prefix: str
    direction: TrafficDirection
    server_name: str = "envoy"
    server_header: ServerHeader = ServerHeader.OVERWRITE
    tracing: bool = False
    forward_client_cert: ForwardClientCert = ForwardClientCert.SANITIZE
    client_cert_details: ClientCertDetails = field(default_factory=ClientCertDetails)
    xff_num_trusted_hops: int = 0
    strip_any_host_port: bool = False
    strip_matching_host_port: bool = False
    max_request_headers_kb: int = 60
    max_headers_count: int = 100
    rds_name: str | None = None  # else the route configuration is inline
    # Timeouts in seconds (None: off), Envoy's edge values when the proto sets none.
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    request_headers_timeout: float | None = DEFAULT_REQUEST_HEADERS_TIMEOUT
    stream_idle_timeout: float | None = DEFAULT_STREAM_IDLE_TIMEOUT

    @classmethod
    def from_proto(cls, hcm: hcm_pb2.HttpConnectionManager, listener_direction: int) -> HcmSettings:
        """``listener_direction`` is the listener's ``traffic_direction``: only OUTBOUND
        makes the manager an egress one (tracing's operation rule)."""
        details = hcm.set_current_client_cert_details
        headers_count = hcm.common_http_protocol_options.max_headers_count.value or 100
        return cls(
            stat_prefix=hcm.stat_prefix,
            direction=TrafficDirection.OUTBOUND
            if listener_direction == core_base_pb2.OUTBOUND
            else TrafficDirection.INBOUND,
            server_name=hcm.server_name or "envoy",
            server_header=ServerHeader(
                hcm_pb2.HttpConnectionManager.ServerHeaderTransformation.Name(
                    hcm.server_header_transformation
                )
            ),
            tracing=hcm.HasField("tracing"),
            forward_client_cert=ForwardClientCert(
                hcm_pb2.HttpConnectionManager.ForwardClientCertDetails.Name(
                    hcm.forward_client_cert_details
                )
            ),
            client_cert_details=ClientCertDetails(
                subject=details.subject.value, uri=details.uri, dns=details.dns
            ),
            xff_num_trusted_hops=hcm.xff_num_trusted_hops,
            strip_any_host_port=hcm.strip_any_host_port,
            strip_matching_host_port=hcm.strip_matching_host_port,
            max_request_headers_kb=hcm.max_request_headers_kb.value or 60,
            max_headers_count=headers_count,
            rds_name=hcm.rds.route_config_name if hcm.HasField("rds") else None,
            idle_timeout=_timeout(
                hcm.common_http_protocol_options, "idle_timeout", DEFAULT_IDLE_TIMEOUT
            ),
            request_headers_timeout=_timeout(
                hcm, "request_headers_timeout", DEFAULT_REQUEST_HEADERS_TIMEOUT
            ),
            stream_idle_timeout=_timeout(hcm, "stream_idle_timeout", DEFAULT_STREAM_IDLE_TIMEOUT),
        )


def _timeout(message: Any, name: str, default: float) -> float | None:
    """A ``Duration`` field in seconds: ``default`` when unset, ``None`` when zero (off)."""
    if not message.HasField(name):
        return default
    duration = getattr(message, name)
    seconds = float(duration.seconds + duration.nanos / 1e9)
    return seconds or None


# --- routes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The route a request takes."""

    virtual_host: str
    route_name: str
    cluster: str
    timeout: float | None  # seconds; None: no timeout
    decorator: str | None
    include_attempt_count: bool = False


@dataclass(frozen=True, slots=True)
class _Route:
    kind: str  # prefix, path, regex, separated
    value: str
    case_sensitive: bool
    pattern: re.Pattern[str] | None
    decision: RouteDecision

    def matches(self, path: str) -> bool:
        if self.kind == "regex":
            assert self.pattern is not None
            return self.pattern.fullmatch(path) is not None
        subject, value = (
            (path, self.value) if self.case_sensitive else (path.lower(), self.value.lower())
        )
        if self.kind == "prefix":
            return subject.startswith(value)
        if self.kind == "path":
            return subject == value
        return subject == value or subject.startswith(value + "/")


@dataclass(frozen=True, slots=True)
class _VirtualHost:
    name: str
    routes: tuple[_Route, ...]


def _compile_route(
    route: route_components_pb2.Route, host: route_components_pb2.VirtualHost
) -> _Route | None:
    if route.WhichOneof("action") != "route":
        return None  # redirect / direct_response are not served (the config layer NACKs them)
    action = route.route
    if action.WhichOneof("cluster_specifier") != "cluster":
        return None
    if action.HasField("timeout"):
        seconds = action.timeout.seconds + action.timeout.nanos / 1e9
        timeout: float | None = seconds or None
    else:
        timeout = DEFAULT_ROUTE_TIMEOUT
    decision = RouteDecision(
        virtual_host=host.name,
        route_name=route.name,
        cluster=action.cluster,
        timeout=timeout,
        decorator=route.decorator.operation if route.HasField("decorator") else None,
        include_attempt_count=host.include_request_attempt_count,
    )
    match = route.match
    case_sensitive = match.case_sensitive.value if match.HasField("case_sensitive") else True
    which = match.WhichOneof("path_specifier")
    if which == "prefix":
        return _Route("prefix", match.prefix, case_sensitive, None, decision)
    if which == "path":
        return _Route("path", match.path, case_sensitive, None, decision)
    if which == "path_separated_prefix":
        return _Route("separated", match.path_separated_prefix, case_sensitive, None, decision)
    if which == "safe_regex":
        return _Route("regex", "", True, re.compile(match.safe_regex.regex), decision)
    return None


class RouteTable:
    """A compiled ``RouteConfiguration``."""

    def __init__(self, config: route_pb2.RouteConfiguration) -> None:
        self.name = config.name
        self._exact: dict[str, _VirtualHost] = {}
        self._suffix: list[tuple[str, _VirtualHost]] = []
        self._prefix: list[tuple[str, _VirtualHost]] = []
        self._default: _VirtualHost | None = None
        for host in config.virtual_hosts:
            routes = tuple(
                compiled
                for compiled in (_compile_route(route, host) for route in host.routes)
                if compiled is not None
            )
            compiled_host = _VirtualHost(host.name, routes)
            for raw_domain in host.domains:
                domain = raw_domain.lower()
                if domain == "*":
                    self._default = self._default or compiled_host
                elif domain.startswith("*"):
                    self._suffix.append((domain[1:], compiled_host))
                elif domain.endswith("*"):
                    self._prefix.append((domain[:-1], compiled_host))
                else:
                    self._exact.setdefault(domain, compiled_host)
        # Longest wildcard first; stable for equal lengths (config order).
        self._suffix.sort(key=lambda item: -len(item[0]))
        self._prefix.sort(key=lambda item: -len(item[0]))

    def virtual_host(self, authority: str) -> str | None:
        found = self._host(authority.lower())
        return None if found is None else found.name

    def _host(self, host: str) -> _VirtualHost | None:
        found = self._exact.get(host)
        if found is not None:
            return found
        for suffix, candidate in self._suffix:
            if host.endswith(suffix) and len(host) > len(suffix):
                return candidate
        for prefix, candidate in self._prefix:
            if host.startswith(prefix) and len(host) > len(prefix):
                return candidate
        return self._default

    def select(
        self, authority: str, path: str, *, strip_port: int | bool | None = False
    ) -> RouteDecision | None:
        """The route for a request, or ``None`` (404).

        ``strip_port``: ``True`` strips any ``:port`` from the authority
        (``strip_any_host_port``); a number strips it only when it equals that port
        (``strip_matching_host_port``, the listener's port).
        """
        host = authority.lower()
        if strip_port is not False and not host.endswith("]"):
            name, colon, port = host.rpartition(":")
            if colon and port.isdigit() and (strip_port is True or int(port) == strip_port):
                host = name
        found = self._host(host)
        if found is None:
            return None
        route_path = path.split("?", 1)[0].split("#", 1)[0]
        for route in found.routes:
            if route.matches(route_path):
                return route.decision
        return None


# --- headers -------------------------------------------------------------------------------

_REQUEST_HOP_BY_HOP = [b"expect"]


def upstream_request_headers(
    headers: Sequence[Header],
    settings: HcmSettings,
    *,
    tls: bool,
    client_cert_element: str | None,
    request_id: str,
    attempt_count: int | None = None,
) -> list[Header]:
    """The request headers the router sends upstream (HTTP/1.1), in one pass.

    ``headers`` holds the downstream request's headers without pseudo-headers (``host``
    included). ``Expect`` is answered by the proxy itself and not forwarded;
    ``x-forwarded-client-cert`` is changed as ``forward_client_cert_edit`` says.
    """
    names = header_names(headers)
    remove = list(_REQUEST_HOP_BY_HOP)
    replace: list[Header] = []
    if settings.xff_num_trusted_hops == 0 or b"x-forwarded-proto" not in names:
        replace.append((b"x-forwarded-proto", b"https" if tls else b"http"))
    if b"x-request-id" not in names:
        replace.append((b"x-request-id", request_id.encode()))
    if attempt_count is not None:
        replace.append((b"x-envoy-attempt-count", str(attempt_count).encode()))
    drop, value = forward_client_cert_edit(
        headers, settings.forward_client_cert, client_cert_element
    )
    if drop:
        remove.append(FORWARDED_CLIENT_CERT)
    elif value is not None:
        replace.append(value)
    return edit_headers(headers, remove=remove, replace=replace, drop_hop_by_hop=True, names=names)


def downstream_response_headers(
    headers: Sequence[Header],
    settings: HcmSettings,
    *,
    decorator: str | None,
    elapsed_ms: int | None,
    date: bytes,
) -> list[Header]:
    """The response headers the client sees, hop-by-hop ones removed, in one pass.

    ``elapsed_ms`` is ``None`` for local replies (no ``x-envoy-upstream-service-time``).
    """
    names = header_names(headers)
    remove: list[bytes] = []
    replace: list[Header] = []
    append: list[Header] = []
    server = settings.server_name.encode()
    if settings.server_header is ServerHeader.OVERWRITE:
        replace.append((b"server", server))
    elif settings.server_header is ServerHeader.APPEND_IF_ABSENT and b"server" not in names:
        append.append((b"server", server))
    if elapsed_ms is not None:
        replace.append((b"x-envoy-upstream-service-time", str(max(elapsed_ms, 0)).encode()))
    if settings.tracing:
        if settings.direction is TrafficDirection.OUTBOUND:
            remove.append(b"x-envoy-decorator-operation")
        elif decorator is not None:
            replace.append((b"x-envoy-decorator-operation", decorator.encode()))
    if b"date" not in names:
        append.append((b"date", date))
    return edit_headers(
        headers, remove=remove, replace=replace, append=append, drop_hop_by_hop=True, names=names
    )


# --- local replies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalReply:
    """A response the proxy makes itself; ``close`` ends the downstream connection."""

    status: int
    body: bytes
    close: bool = False


def local_reply(status: int, *, reason: str | None = None, close: bool = False) -> LocalReply:
    """Envoy's local replies: a 503 carries the upstream reset reason, a 504 ``upstream
    request timeout``, a 404 (no route) no body, codec errors the status's phrase."""
    if status == 503:
        body = (reason or CONNECTION_FAILURE).encode()
    elif status == 504:
        body = b"upstream request timeout"
    elif status == 404:
        body = b""
    else:
        body = (reason or reason_phrase(status)).encode()
    return LocalReply(status, body, close)


def local_reply_headers(reply: LocalReply, settings: HcmSettings, *, date: bytes) -> list[Header]:
    """Headers of a local reply: content-length, content-type when there is a body,
    date and server (as Envoy orders them)."""
    headers: list[Header] = [(b"content-length", str(len(reply.body)).encode())]
    if reply.body:
        headers.append((b"content-type", b"text/plain"))
    headers.append((b"date", date))
    if settings.server_header is not ServerHeader.PASS_THROUGH:
        headers.append((b"server", settings.server_name.encode()))
    return headers


_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def reason_phrase(status: int) -> str:
    return _PHRASES.get(status, "Unknown")
