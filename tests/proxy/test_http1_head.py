from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlet.proxy.http1_head import (
    MAX_HEAD_SIZE,
    BodyFraming,
    HeadError,
    RequestHead,
    ResponseHead,
    scan_request_head,
    scan_response_head,
)


class _Collect:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True


def llhttp_headers(head: bytes) -> list[tuple[bytes, bytes]] | None:
    """What httptools (llhttp) reads from a request head, or None if it refuses it."""
    collect = _Collect()
    parser = httptools.HttpRequestParser(collect)
    try:
        parser.feed_data(head)
    except httptools.HttpParserError:
        return None
    assert collect.complete
    return [(n.lower(), v.rstrip(b" \t")) for n, v in collect.headers]


def scan_bytewise(data: bytes) -> RequestHead | HeadError | None:
    result = None
    for i in range(1, len(data) + 1):
        result = scan_request_head(data[:i], search_from=i - 1)
        if result is not None:
            return result
    return result


def test_simple_get() -> None:
    data = b"GET /status/200 HTTP/1.1\r\nHost: httpbin\r\nUser-Agent: curl/7.88.1\r\n\r\n"
    head = scan_request_head(data + b"next request bytes")
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.version, head.size) == (
        b"GET",
        b"/status/200",
        (1, 1),
        len(data),
    )
    assert head.headers == ((b"host", b"httpbin"), (b"user-agent", b"curl/7.88.1"))
    assert head.keep_alive
    assert head.body_framing is BodyFraming.NONE
    assert llhttp_headers(data) == list(head.headers)


def test_incomplete_head_needs_more() -> None:
    assert scan_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n") is None
    assert scan_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r") is None
    assert scan_request_head(b"") is None


def test_bytewise_matches_whole() -> None:
    data = b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    whole = scan_request_head(data)
    assert isinstance(whole, RequestHead)
    assert scan_bytewise(data) == whole
    assert whole.content_length == 3
    assert whole.body_framing is BodyFraming.CONTENT_LENGTH
    assert not whole.keep_alive


def test_framing_and_connection() -> None:
    head = scan_request_head(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nConnection: Keep-Alive, Upgrade\r\n\r\n"
    )
    assert isinstance(head, RequestHead)
    assert head.chunked and head.body_framing is BodyFraming.CHUNKED
    assert head.connection == {b"keep-alive", b"upgrade"}
    old = scan_request_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert isinstance(old, RequestHead) and old.keep_alive
    old_close = scan_request_head(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(old_close, RequestHead) and not old_close.keep_alive


def test_leading_empty_lines_are_skipped() -> None:
    message = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    head = scan_request_head(b"\r\n\r\n" + message)
    assert isinstance(head, RequestHead)
    assert head.method == b"GET" and head.size == 4 + len(message)


def test_value_whitespace_is_trimmed() -> None:
    head = scan_request_head(b"GET / HTTP/1.1\r\nX:  a \t b \t\r\nY:\r\n\r\n")
    assert isinstance(head, RequestHead)
    assert head.headers == ((b"x", b"a \t b"), (b"y", b""))


SMUGGLING = [
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (
        "TE and CL",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400,
    ),
    ("duplicate CL", b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
    ("conflicting CL", b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    ("CL list", b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400),
    ("negative CL", b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    ("CL plus sign", b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
    ("bare LF everywhere", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare LF in one line", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("tab before colon", b"GET / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n", 400),
    ("obsolete folding", b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),
    ("empty name", b"GET / HTTP/1.1\r\n: a\r\n\r\n", 400),
    ("TE gzip", b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("TE chunked not last", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
    (
        "TE chunked twice",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        501,
    ),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("HTTP/2.0 on an HTTP/1 port", b"GET / HTTP/2.0\r\n\r\n", 400),
    ("no version", b"GET /\r\n\r\n", 400),
    ("two spaces", b"GET  / HTTP/1.1\r\n\r\n", 400),
]


# Shapes llhttp lets through (HTTP/0.9, loose spacing) that the proxy refuses anyway.
STRICTER_THAN_LLHTTP = {"TE in HTTP/1.0", "HTTP/2.0 on an HTTP/1 port", "no version", "two spaces"}


@pytest.mark.parametrize(("case", "data", "status"), SMUGGLING, ids=[c[0] for c in SMUGGLING])
def test_smuggling_shapes_are_refused(case: str, data: bytes, status: int) -> None:
    result = scan_request_head(data)
    assert isinstance(result, HeadError), case
    assert result.status == status
    assert scan_bytewise(data) == result


@pytest.mark.parametrize(
    ("case", "data"),
    [(c, d) for c, d, _ in SMUGGLING if c not in STRICTER_THAN_LLHTTP],
)
def test_llhttp_refuses_the_same_shapes(case: str, data: bytes) -> None:
    assert llhttp_headers(data) is None, case


def test_bare_lf_is_refused_before_the_head_ends() -> None:
    # A client must not keep the proxy waiting for a CRLF CRLF that never comes.
    result = scan_request_head(b"GET / HTTP/1.1\nHost: a")
    assert isinstance(result, HeadError) and result.status == 400


def test_head_size_limit() -> None:
    filler = b"X-Fill: " + b"a" * 1000 + b"\r\n"
    big = b"GET / HTTP/1.1\r\n" + filler * 61 + b"\r\n"
    result = scan_request_head(big)
    assert result == HeadError(431, "head too large")
    unfinished = big[:-2] + b"X-More: " + b"b" * 100
    assert scan_request_head(unfinished) == HeadError(431, "head too large")
    just_fits = b"GET / HTTP/1.1\r\n" + filler * 59 + b"\r\n"
    assert len(just_fits) <= MAX_HEAD_SIZE
    assert isinstance(scan_request_head(just_fits), RequestHead)


def test_header_count_limit() -> None:
    hundred = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n"
    assert isinstance(scan_request_head(hundred), RequestHead)
    more = hundred[:-2] + b"X-Last: v\r\n\r\n"
    assert scan_request_head(more) == HeadError(431, "too many headers")


def test_byte_at_a_time_is_linear() -> None:
    # 60 KiB fed one byte at a time: with search_from this stays fast.
    data = b"GET / HTTP/1.1\r\n" + b"X-Fill: " + b"a" * (MAX_HEAD_SIZE - 40) + b"\r\n\r\n"
    assert isinstance(scan_bytewise(data), RequestHead)


# --- responses ---------------------------------------------------------------------------


def test_response_head() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    head = scan_response_head(data)
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.size) == (200, b"OK", len(data) - 2)
    assert head.body_framing(b"GET") is BodyFraming.CONTENT_LENGTH
    assert head.body_framing(b"HEAD") is BodyFraming.NONE
    assert head.keep_alive(b"GET")


@pytest.mark.parametrize(
    ("head", "method", "framing"),
    [
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", b"GET", BodyFraming.NONE),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", b"GET", BodyFraming.NONE),
        (b"HTTP/1.1 100 Continue\r\n\r\n", b"POST", BodyFraming.NONE),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET", BodyFraming.CHUNKED),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", b"GET", BodyFraming.UNTIL_CLOSE),
        (b"HTTP/1.0 200 OK\r\n\r\n", b"GET", BodyFraming.UNTIL_CLOSE),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"GET", BodyFraming.NONE),
        (b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", b"GET", BodyFraming.CONTENT_LENGTH),
    ],
)
def test_response_framing(head: bytes, method: bytes, framing: BodyFraming) -> None:
    result = scan_response_head(head)
    assert isinstance(result, ResponseHead)
    assert result.body_framing(method) is framing
    if framing is BodyFraming.UNTIL_CLOSE:
        assert not result.keep_alive(method)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\nServer: x\n\n",
        b"ICY 200 OK\r\n\r\n",
    ],
)
def test_bad_response_heads_are_upstream_errors(data: bytes) -> None:
    result = scan_response_head(data)
    assert isinstance(result, HeadError)
    assert result.status == 503


# --- differential fuzzing against llhttp -------------------------------------------------

METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"]
PIECES = [
    b"Host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"X-A",
    b"chunked",
    b"close",
    b"keep-alive",
    b"gzip",
    b"0",
    b"5",
    b"12",
    b":",
    b": ",
    b" ",
    b"\t",
    b",",
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"\x7f",
    b"\xc3\xa9",
    b"a",
    b"-",
    b"+",
    b";",
    b'"',
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(METHODS),
    st.lists(st.lists(st.sampled_from(PIECES), min_size=1, max_size=6), max_size=6),
)
def test_fuzz_never_more_lenient_than_llhttp(method: bytes, lines: list[list[bytes]]) -> None:
    data = method + b" /p HTTP/1.1\r\n" + b"".join(b"".join(p) + b"\r\n" for p in lines) + b"\r\n"
    ours = scan_request_head(data)
    assert scan_bytewise(data) == ours
    if isinstance(ours, RequestHead):
        theirs = llhttp_headers(data[: ours.size])
        assert theirs is not None, data
        assert theirs == list(ours.headers)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_fuzz_random_bytes(data: bytes, search_from: int) -> None:
    for scan in (scan_request_head, scan_response_head):
        result = scan(data, search_from=min(search_from, len(data)))
        assert result is None or isinstance(result, RequestHead | ResponseHead | HeadError)
