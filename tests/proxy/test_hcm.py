"""The HTTP connection manager, byte for byte, over in-memory streams; and its pure rules."""

from __future__ import annotations

import re

from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from meshlet.proxy.hcm import DownstreamInfo
from meshlet.proxy.http_headers import TrafficDirection
from meshlet.proxy.routing import (
    DEFAULT_ROUTE_TIMEOUT,
    HcmSettings,
    RouteTable,
    downstream_response_headers,
    upstream_request_headers,
)
from tests.proxy.hcm_support import (
    DATE,
    REQUEST_ID,
    ScriptedUpstream,
    canned,
    exchange,
    inbound_hcm,
    manager_for,
    route_config,
)

OK = (
    b"HTTP/1.1 200 OK\r\nServer: gunicorn/19.9.0\r\nDate: Mon, 24 Oct 2022 09:05:31 GMT\r\n"
    b"Connection: keep-alive\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Access-Control-Allow-Origin: *\r\nContent-Length: 2\r\n\r\nok"
)
GET = b"GET /status/200 HTTP/1.1\r\nHost: httpbin.test.svc.cluster.local\r\nAccept: */*\r\n\r\n"


# --- pure rules ---------------------------------------------------------------------------


def _table(*hosts: tuple[str, list[str], list[tuple[str, str, str]]]) -> RouteTable:
    config = route_pb2.RouteConfiguration(name="8080")
    for name, domains, routes in hosts:
        host = config.virtual_hosts.add(name=name, domains=domains)
        for kind, value, cluster in routes:
            route = host.routes.add(name=f"{kind}:{value}")
            setattr(route.match, kind, value)
            route.route.cluster = cluster
    return RouteTable(config)


def test_virtual_hosts_are_chosen_as_envoy_does() -> None:
    table = _table(
        ("any", ["*"], [("prefix", "/", "fallback")]),
        ("suffix", ["*.example.com"], [("prefix", "/", "suffix")]),
        ("longer-suffix", ["*.api.example.com"], [("prefix", "/", "longer")]),
        ("prefix", ["httpbin.*"], [("prefix", "/", "prefix")]),
        ("exact", ["httpbin.test", "httpbin.test:8080"], [("prefix", "/", "exact")]),
    )
    assert table.virtual_host("httpbin.test") == "exact"
    assert table.virtual_host("HTTPBIN.test:8080") == "exact"
    assert table.virtual_host("httpbin.test:9999") == "prefix"
    assert table.virtual_host("a.api.example.com") == "longer-suffix"
    assert table.virtual_host("www.example.com") == "suffix"
    assert table.virtual_host("example.com") == "any"


def test_first_matching_route_wins_and_the_query_is_ignored() -> None:
    table = _table(
        ("h", ["*"], [("path", "/exact", "exact"), ("prefix", "/api", "api"),
                      ("path_separated_prefix", "/v1", "v1"), ("prefix", "/", "rest")]),
    )  # fmt: skip
    select = table.select
    assert select("h", "/exact?x=1").cluster == "exact"  # type: ignore[union-attr]
    assert select("h", "/exact/more").cluster == "rest"  # type: ignore[union-attr]
    assert select("h", "/apis").cluster == "api"  # type: ignore[union-attr]
    assert select("h", "/v1/x").cluster == "v1"  # type: ignore[union-attr]
    assert select("h", "/v10").cluster == "rest"  # type: ignore[union-attr]


def test_no_virtual_host_or_route_is_none() -> None:
    table = _table(("only", ["a.example"], [("path", "/x", "c")]))
    assert table.select("b.example", "/x") is None
    assert table.select("a.example", "/y") is None


def test_host_port_stripping() -> None:
    table = _table(("h", ["svc"], [("prefix", "/", "c")]))
    assert table.select("svc:80", "/") is None
    assert table.select("svc:80", "/", strip_port=True) is not None
    assert table.select("svc:80", "/", strip_port=80) is not None
    assert table.select("svc:81", "/", strip_port=80) is None


def test_route_timeouts() -> None:
    assert RouteTable(route_config(timeout=0)).select("x", "/").timeout is None  # type: ignore[union-attr]
    assert RouteTable(route_config(timeout=2.5)).select("x", "/").timeout == 2.5  # type: ignore[union-attr]
    unset = RouteTable(route_config(timeout=None)).select("x", "/")
    assert unset is not None and unset.timeout == DEFAULT_ROUTE_TIMEOUT


def test_settings_from_istios_inbound_and_outbound_managers() -> None:
    inbound = HcmSettings.from_proto(inbound_hcm(), core_base_pb2.INBOUND)
    assert inbound.server_name == "istio-envoy"
    assert inbound.tracing and inbound.direction is TrafficDirection.INBOUND
    assert inbound.client_cert_details.subject and inbound.client_cert_details.uri
    outbound_proto = hcm_pb2.HttpConnectionManager(stat_prefix="outbound_0.0.0.0_8080")
    outbound_proto.rds.route_config_name = "8080"
    outbound_proto.tracing.SetInParent()
    outbound = HcmSettings.from_proto(outbound_proto, core_base_pb2.OUTBOUND)
    assert outbound.server_name == "envoy"
    assert outbound.rds_name == "8080"
    assert outbound.direction is TrafficDirection.OUTBOUND


def test_response_headers_inbound_and_outbound() -> None:
    upstream = [
        (b"Server", b"gunicorn"),
        (b"Connection", b"close"),
        (b"Content-Type", b"text/plain"),
        (b"x-envoy-decorator-operation", b"from-the-server-sidecar"),
    ]
    inbound = HcmSettings.from_proto(inbound_hcm(), core_base_pb2.INBOUND)
    assert downstream_response_headers(
        upstream, inbound, decorator="op:1/*", elapsed_ms=4, date=DATE
    ) == [
        (b"server", b"istio-envoy"),
        (b"content-type", b"text/plain"),
        (b"x-envoy-decorator-operation", b"op:1/*"),
        (b"x-envoy-upstream-service-time", b"4"),
        (b"date", DATE),
    ]
    outbound_proto = hcm_pb2.HttpConnectionManager()
    outbound_proto.tracing.SetInParent()
    outbound = HcmSettings.from_proto(outbound_proto, core_base_pb2.OUTBOUND)
    assert downstream_response_headers(
        upstream, outbound, decorator="op:1/*", elapsed_ms=7, date=DATE
    ) == [
        (b"server", b"envoy"),
        (b"content-type", b"text/plain"),
        (b"x-envoy-upstream-service-time", b"7"),
        (b"date", DATE),
    ]


def test_request_headers_sent_upstream() -> None:
    settings = HcmSettings.from_proto(inbound_hcm(), core_base_pb2.INBOUND)
    headers = [
        (b"host", b"h"),
        (b"Connection", b"keep-alive, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Expect", b"100-continue"),
        (b"X-Forwarded-Proto", b"http"),
        (b"x-forwarded-client-cert", b"By=a;Hash=b"),
    ]
    assert upstream_request_headers(
        headers, settings, tls=True, client_cert_element="Hash=c", request_id="r", attempt_count=1
    ) == [
        (b"host", b"h"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-client-cert", b"By=a;Hash=b,Hash=c"),
        (b"x-request-id", b"r"),
        (b"x-envoy-attempt-count", b"1"),
    ]


def _any_service_time(out: bytes) -> bytes:
    """The response with its upstream service time (milliseconds, clock-dependent) masked."""
    return re.sub(rb"x-envoy-upstream-service-time: \d+", b"x-envoy-upstream-service-time: N", out)


# --- HTTP/1.1 byte for byte ---------------------------------------------------------------


async def test_a_request_is_forwarded_and_answered_as_envoy() -> None:
    upstream = ScriptedUpstream(canned(OK))
    out = await exchange(manager_for(upstream), GET)
    assert upstream.requests == [
        b"GET /status/200 HTTP/1.1\r\nhost: httpbin.test.svc.cluster.local\r\naccept: */*\r\n"
        b"x-forwarded-proto: http\r\nx-request-id: " + REQUEST_ID.encode() + b"\r\n\r\n"
    ]
    assert _any_service_time(out) == (
        b"HTTP/1.1 200 OK\r\nserver: istio-envoy\r\ndate: Mon, 24 Oct 2022 09:05:31 GMT\r\n"
        b"content-type: text/html; charset=utf-8\r\naccess-control-allow-origin: *\r\n"
        b"content-length: 2\r\nx-envoy-upstream-service-time: N\r\n"
        b"x-envoy-decorator-operation: ingress-sidecar.test:9080/*\r\n\r\nok"
    )


async def test_keep_alive_and_pipelining_share_one_upstream_connection() -> None:
    upstream = ScriptedUpstream(canned(OK))
    out = await exchange(manager_for(upstream), GET + GET + GET)
    assert out.count(b"HTTP/1.1 200 OK") == 3
    assert len(upstream.requests) == 3
    assert upstream.connections == 1


async def test_no_route_is_404() -> None:
    config = route_config()
    config.virtual_hosts[0].routes[0].match.prefix = "/only"
    out = await exchange(manager_for(ScriptedUpstream(canned(OK)), routes=config), GET)
    assert out == (
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\ndate: Mon, 24 Oct 2022 09:05:31 GMT\r\n"
        b"server: istio-envoy\r\n\r\n"  # the connection stays open, as Envoy keeps it
    )


async def test_malformed_request_is_400_and_closes() -> None:
    upstream = ScriptedUpstream(canned(OK))
    out = await exchange(manager_for(upstream), b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
    assert out == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n"
        b"date: Mon, 24 Oct 2022 09:05:31 GMT\r\nserver: istio-envoy\r\nconnection: close\r\n"
        b"\r\nBad Request"
    )
    assert upstream.requests == []


async def test_smuggling_shapes_and_oversized_heads_are_refused() -> None:
    cl_te = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (await exchange(manager_for(ScriptedUpstream(canned(OK))), cl_te)).startswith(
        b"HTTP/1.1 400 Bad Request\r\n"
    )
    huge = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 70000 + b"\r\n\r\n"
    out = await exchange(manager_for(ScriptedUpstream(canned(OK))), huge)
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    no_host = b"GET / HTTP/1.1\r\n\r\n"
    assert (await exchange(manager_for(ScriptedUpstream(canned(OK))), no_host)).startswith(
        b"HTTP/1.1 400 Bad Request\r\n"
    )


async def test_refused_upstream_is_envoys_503() -> None:
    upstream = ScriptedUpstream(canned(OK), refuse=True)
    out = await exchange(manager_for(upstream), GET)
    body = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    assert out == (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 91\r\ncontent-type: text/plain\r\n"
        b"date: Mon, 24 Oct 2022 09:05:31 GMT\r\nserver: istio-envoy\r\n"
        b"x-envoy-decorator-operation: ingress-sidecar.test:9080/*\r\n\r\n" + body
    )
    assert len(body) == 91


async def test_route_timeout_is_504() -> None:
    upstream = ScriptedUpstream(canned(OK, delay=1.0))
    out = await exchange(manager_for(upstream, routes=route_config(timeout=0.05)), GET)
    assert out.startswith(b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 24\r\n")
    assert out.endswith(b"\r\n\r\nupstream request timeout")


async def test_chunked_bodies_stream_both_ways_with_100_continue() -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    upstream = ScriptedUpstream(canned(response))
    request = (
        b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwxyz\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n"
    )
    out = await exchange(manager_for(upstream), request + GET)
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked\r\n" in out
    assert b"\r\n\r\n5\r\nabcde\r\n0\r\n\r\n" in out or b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" in out
    first = upstream.requests[0]
    assert b"expect" not in first.lower()
    # Re-framed for this hop: the data that arrived together is one chunk, trailers dropped.
    assert first.endswith(b"transfer-encoding: chunked\r\n\r\n5\r\nwxyz!\r\n0\r\n\r\n")
    assert len(upstream.requests) == 2  # the pipelined GET after the body


async def test_content_length_body_is_forwarded() -> None:
    upstream = ScriptedUpstream(canned(OK))
    request = b"PUT /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    out = await exchange(manager_for(upstream), request)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert upstream.requests[0].endswith(b"content-length: 5\r\nx-forwarded-proto: http\r\n"
                                         b"x-request-id: " + REQUEST_ID.encode() + b"\r\n\r\nhello")  # fmt: skip


async def test_response_until_close_is_rechunked_for_http11() -> None:
    upstream = ScriptedUpstream(canned(b"HTTP/1.1 200 OK\r\n\r\nstreamed", close=True))
    out = await exchange(manager_for(upstream), GET)
    assert b"transfer-encoding: chunked\r\n" in out
    assert out.endswith(b"\r\n\r\n8\r\nstreamed\r\n0\r\n\r\n")


async def test_upstream_connection_close_is_not_forwarded_and_not_reused() -> None:
    closing = OK.replace(b"Connection: keep-alive", b"Connection: close")
    upstream = ScriptedUpstream(canned(closing, close=True))
    out = await exchange(manager_for(upstream), GET + GET)
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert b"connection:" not in out.lower()
    assert upstream.connections == 2


async def test_xfcc_is_appended_from_the_connections_element() -> None:
    upstream = ScriptedUpstream(canned(OK))
    info = DownstreamInfo(
        source=("10.0.0.1", 1), destination=("10.244.0.7", 9080), tls=True,
        client_cert_element='Hash=ab;Subject="CN=c";URI=',
    )  # fmt: skip
    request = GET.replace(b"\r\n\r\n", b"\r\nX-Forwarded-Client-Cert: Hash=prev\r\n\r\n")
    await exchange(manager_for(upstream, downstream=info), request)
    assert (
        b'x-forwarded-client-cert: Hash=prev,Hash=ab;Subject="CN=c";URI=\r\n'
        in (upstream.requests[0])
    )
    assert b"x-forwarded-proto: https\r\n" in upstream.requests[0]


async def test_outbound_manager_strips_the_decorator_and_says_envoy() -> None:
    from_server_sidecar = OK.replace(
        b"Content-Length",
        b"x-envoy-decorator-operation: a:1/*\r\nServer: istio-envoy\r\nContent-Length",
    )
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix="outbound_0.0.0.0_8080")
    hcm.tracing.SetInParent()
    upstream = ScriptedUpstream(canned(from_server_sidecar))
    out = await exchange(manager_for(upstream, hcm=hcm, direction=core_base_pb2.OUTBOUND), GET)
    assert b"server: envoy\r\n" in out
    assert b"decorator" not in out


async def test_unknown_cluster_is_503_without_body() -> None:
    out = await exchange(manager_for(ScriptedUpstream(canned(OK)), clusters=[]), GET)
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n")


async def test_head_request_has_no_body() -> None:
    upstream = ScriptedUpstream(canned(OK.replace(b"\r\n\r\nok", b"\r\n\r\n")))
    out = await exchange(manager_for(upstream), GET.replace(b"GET", b"HEAD"))
    assert _any_service_time(out).endswith(b"content-length: 2\r\nx-envoy-upstream-service-time: N\r\n"
                        b"x-envoy-decorator-operation: ingress-sidecar.test:9080/*\r\n\r\n")  # fmt: skip


async def test_client_gone_mid_request_ends_only_that_connection() -> None:
    upstream = ScriptedUpstream(canned(OK))
    manager = manager_for(upstream)
    out = await exchange(manager, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    assert out == b"" or out.startswith(b"HTTP/1.1 503")
    # The same manager class still serves the next connection.
    assert (await exchange(manager_for(upstream), GET)).startswith(b"HTTP/1.1 200 OK")


def test_route_with_direct_response_is_not_served() -> None:
    config = route_pb2.RouteConfiguration(name="r")
    host = config.virtual_hosts.add(name="h", domains=["*"])
    route = host.routes.add(match=route_components_pb2.RouteMatch(prefix="/"))
    route.direct_response.status = 200
    assert RouteTable(config).select("x", "/") is None


async def test_many_pipelined_requests_are_all_answered() -> None:
    upstream = ScriptedUpstream(canned(OK))
    out = await exchange(manager_for(upstream), GET * 300)
    assert out.count(b"HTTP/1.1 200 OK") == 300
