"""Fuzzing the HTTP/1.1 request path: whatever a client sends, the connection manager
answers with a well-formed response or closes, and never hangs or raises."""

from __future__ import annotations

import asyncio
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlet.proxy.hcm import H2_PREFACE, HttpConnectionManager
from tests.proxy.hcm_support import OK_RESPONSE, ScriptedUpstream, canned, manager_for

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) [A-Za-z -]+\r\n")
VALID = {b"100", b"200", b"400", b"404", b"408", b"413", b"431", b"501", b"503"}

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET http://a/abs HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
    b"PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
]


async def _serve(data: bytes, cuts: list[int]) -> bytes:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager: HttpConnectionManager = manager_for(upstream)
    from meshlet.proxy.streams import memory_stream_pair

    client, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    position = 0
    for cut in sorted(cuts):
        client.write(data[position:cut])
        position = max(position, cut)
        await asyncio.sleep(0)
    client.write(data[position:])
    client.write_eof()
    out = b""
    async with asyncio.timeout(5):  # a hang fails the example
        while piece := await client.read():
            out += piece
        await task
    for pending in upstream.tasks:
        pending.cancel()
    return out


def _check(out: bytes, sent: bytes) -> None:
    """Every response in ``out`` has a status line of a status the proxy uses (the
    upstream's bodies here are ``ok``, so any status line in ``out`` is a response's);
    a client that sent HTTP/2's preface gets HTTP/2, which starts with a SETTINGS frame."""
    if not out:
        return
    if sent.startswith(H2_PREFACE):
        assert len(out) >= 9 and out[3] == 0x4, out[:80]  # frame type 4: SETTINGS
        return
    assert STATUS.match(out) is not None, out[:80]
    for match in re.finditer(rb"HTTP/1\.1 (\d{3}) ", out):
        assert match.group(1) in VALID, out[match.start() : match.start() + 40]


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes(data: bytes, cuts: list[int]) -> None:
    _check(asyncio.run(_serve(data, cuts)), data)


@FUZZ
@given(
    st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 300), st.binary(min_size=0, max_size=3)), max_size=4),
    st.lists(st.integers(0, 300), max_size=3),
)
def test_mutated_requests(
    requests: list[bytes], mutations: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    data = bytearray(b"".join(requests))
    for position, replacement in mutations:
        at = min(position, len(data))
        data[at : at + len(replacement)] = replacement
    _check(asyncio.run(_serve(bytes(data), cuts)), bytes(data))


@FUZZ
@given(st.sampled_from(REQUESTS), st.lists(st.integers(0, 200), max_size=6))
def test_valid_requests_in_any_pieces_are_served(request: bytes, cuts: list[int]) -> None:
    out = asyncio.run(_serve(request, cuts))
    if out.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
        out = out[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    assert STATUS.match(out) is not None
    assert out.split(b" ", 2)[1] == b"200"


def test_the_http2_preface_on_a_plaintext_port_is_answered_in_http2() -> None:
    """The input hypothesis once found: HTTP/2 with prior knowledge, answered as such."""
    _check(asyncio.run(_serve(H2_PREFACE, [])), H2_PREFACE)
