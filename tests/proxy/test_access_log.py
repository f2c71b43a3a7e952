"""The access log: one line per request, in Istio's default text format."""

from __future__ import annotations

import re

from meshlet.proxy.access_log import AccessLogBuffer, RequestInfo, format_access_log
from meshlet.proxy.hcm import DownstreamInfo
from tests.proxy.hcm_support import (
    OK_RESPONSE,
    REQUEST_ID,
    ScriptedUpstream,
    canned,
    exchange,
    manager_for,
)

# [%START_TIME%] "%METHOD% %PATH% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %DETAILS%
# %TERMINATION% "%TRANSPORT_FAILURE%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
# %SERVICE_TIME% "%XFF%" "%UA%" "%REQUEST_ID%" "%AUTHORITY%" "%UPSTREAM_HOST%"
# %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL% %DOWNSTREAM_LOCAL% %DOWNSTREAM_REMOTE% %SNI% %ROUTE%
LINE = re.compile(
    r"\[(?P<start>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "
    r'"(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r"(?P<code>\d+) (?P<flags>\S+) (?P<details>\S+) (?P<termination>\S+) "
    r'"(?P<transport>[^"]*)" (?P<received>\d+) (?P<sent>\d+) (?P<duration>\d+) '
    r'(?P<service_time>\S+) "(?P<xff>[^"]*)" "(?P<ua>[^"]*)" "(?P<rid>[^"]*)" '
    r'"(?P<authority>[^"]*)" "(?P<upstream>[^"]*)" (?P<cluster>\S+) (?P<upstream_local>\S+) '
    r"(?P<local>\S+) (?P<remote>\S+) (?P<sni>\S+) (?P<route>\S+)\n"
)


def test_format_matches_istio_default_text_format() -> None:
    info = RequestInfo(
        start_time="2026-11-29T16:27:45.409Z",
        started=0.0,
        method=b"GET",
        path=b"/status/418",
        protocol="HTTP/2",
        authority=b"httpbin.test.svc.cluster.local:9080",
        user_agent=b"curl/7.88.1",
        request_id=b"e7d3f8a1-2f7c-4a6b-9d1e-1c5b3a0f9e21",
        status=418,
        details="via_upstream",
        bytes_sent=135,
        duration_ms=4,
        service_time=3,
        upstream_host="127.0.0.1:8000",
        upstream_cluster="inbound|9080||",
        upstream_local="127.0.0.6:41235",
        downstream_local="127.0.0.1:9080",
        downstream_remote="127.0.0.1:51234",
        server_name="httpbin.test.svc.cluster.local",
        route_name="default",
    )
    assert format_access_log(info) == (
        '[2026-11-29T16:27:45.409Z] "GET /status/418 HTTP/2" 418 - via_upstream - "-" '
        '0 135 4 3 "-" "curl/7.88.1" "e7d3f8a1-2f7c-4a6b-9d1e-1c5b3a0f9e21" '
        '"httpbin.test.svc.cluster.local:9080" "127.0.0.1:8000" inbound|9080|| '
        "127.0.0.6:41235 127.0.0.1:9080 127.0.0.1:51234 httpbin.test.svc.cluster.local "
        "default\n"
    )


def test_buffer_writes_in_batches() -> None:
    written: list[bytes] = []
    buffer = AccessLogBuffer(written.append, limit=100)
    buffer.append("a" * 60 + "\n")
    assert written == []
    buffer.append("b" * 60 + "\n")
    assert written == [b"a" * 60 + b"\n" + b"b" * 60 + b"\n"]
    buffer.append("c\n")
    buffer.flush()
    buffer.flush()
    assert written[-1] == b"c\n"
    assert len(written) == 2


async def _logged(request: bytes, upstream: ScriptedUpstream) -> list[dict[str, str]]:
    lines: list[bytes] = []
    manager = manager_for(
        upstream,
        downstream=DownstreamInfo(
            source=("10.0.0.1", 5555),
            destination=("10.244.0.7", 9080),
            tls=True,
            server_name="httpbin.test.svc.cluster.local",
        ),
    )
    manager.access_log = AccessLogBuffer(lines.append)
    await exchange(manager, request)
    manager.access_log.flush()
    text = b"".join(lines).decode()
    out = []
    for line in text.splitlines(keepends=True):
        match = LINE.fullmatch(line)
        assert match is not None, line
        out.append(match.groupdict())
    return out


async def test_a_proxied_request_logs_one_line() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    request = (
        b"POST /post?x=1 HTTP/1.1\r\nHost: httpbin.test.svc.cluster.local:9080\r\n"
        b"User-Agent: curl/7.88.1\r\nX-Forwarded-For: 192.0.2.1\r\nContent-Length: 5\r\n\r\nhello"
    )
    (line,) = await _logged(request, upstream)
    assert line["method"] == "POST"
    assert line["path"] == "/post?x=1"
    assert line["protocol"] == "HTTP/1.1"
    assert line["code"] == "200"
    assert line["flags"] == "-"
    assert line["details"] == "via_upstream"
    assert line["received"] == "5"
    assert line["sent"] == "2"
    assert line["service_time"].isdigit()
    assert line["xff"] == "192.0.2.1"
    assert line["ua"] == "curl/7.88.1"
    assert line["rid"] == REQUEST_ID
    assert line["authority"] == "httpbin.test.svc.cluster.local:9080"
    assert line["upstream"] == "10.244.0.7:80"
    assert line["cluster"] == "inbound|9080||"
    assert line["local"] == "10.244.0.7:9080"
    assert line["remote"] == "10.0.0.1:5555"
    assert line["sni"] == "httpbin.test.svc.cluster.local"
    assert line["route"] == "default"


async def test_local_replies_carry_envoy_flags_and_details() -> None:
    refused = ScriptedUpstream(canned(OK_RESPONSE), refuse=True)
    (line,) = await _logged(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", refused)
    assert (line["code"], line["flags"], line["details"]) == (
        "503",
        "UF",
        "upstream_reset_before_response_started{connection_failure}",
    )
    assert line["service_time"] == "-"

    too_many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"x-h: 1\r\n" * 101 + b"\r\n"
    (line,) = await _logged(too_many, ScriptedUpstream(canned(OK_RESPONSE)))
    assert (line["code"], line["flags"], line["details"]) == (
        "431",
        "DPE",
        "http1.too_many_headers",
    )
    assert line["method"] == "-"


async def test_pipelined_requests_log_in_order() -> None:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    request = b"".join(
        b"GET /%d HTTP/1.1\r\nHost: a\r\nX-Request-Id: r%d\r\n\r\n" % (n, n) for n in range(3)
    )
    lines = await _logged(request, upstream)
    assert [(line["path"], line["rid"]) for line in lines] == [
        ("/0", "r0"),
        ("/1", "r1"),
        ("/2", "r2"),
    ]


def test_request_ids_are_random_version_4_uuids() -> None:
    import uuid

    from meshlet.proxy.hcm import _RequestIds

    ids = _RequestIds()
    made = [ids() for _ in range(600)]  # more than one pool of random bytes
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
