"""HTTP/1.1 body framing and head rendering, byte by byte (pure)."""

from __future__ import annotations

import ast
import importlib.util

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlet.proxy.http1 import (
    LAST_CHUNK,
    ChunkedDecoder,
    FramingError,
    encode_chunk,
    render_request_head,
    render_response_head,
)

BODY = b"4;name=value\r\nwxyz\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\nNEXT"


def test_chunked_body_decoded_whole() -> None:
    decoder = ChunkedDecoder()
    assert b"".join(decoder.feed(BODY)) == b"wxyz!"
    assert decoder.done
    assert decoder.leftover == b"NEXT"


def test_chunked_body_decoded_byte_by_byte() -> None:
    decoder = ChunkedDecoder()
    data = b""
    for index in range(len(BODY)):
        if decoder.done:
            break
        data += b"".join(decoder.feed(BODY[index : index + 1]))
    assert data == b"wxyz!"
    assert decoder.done


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=8), st.integers(1, 7))
def test_encode_then_decode_round_trips(pieces: list[bytes], step: int) -> None:
    wire = b"".join(encode_chunk(piece) for piece in pieces) + LAST_CHUNK
    decoder = ChunkedDecoder()
    out = b"".join(b"".join(decoder.feed(wire[i : i + step])) for i in range(0, len(wire), step))
    assert out == b"".join(pieces)
    assert decoder.done


@pytest.mark.parametrize(
    "wire",
    [b"zz\r\n", b"+5\r\nhello\r\n", b"5\nhello", b"3\r\nabcX\r\n", b"-1\r\n", b"1" * 5000],
)
def test_broken_chunked_framing_is_refused(wire: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(wire)


def test_encode_chunk() -> None:
    assert encode_chunk(b"") == b""
    assert encode_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"


def test_heads_render_in_one_piece() -> None:
    assert render_request_head(b"GET", b"/a?b", [(b"host", b"h"), (b"x", b"1")]) == (
        b"GET /a?b HTTP/1.1\r\nhost: h\r\nx: 1\r\n\r\n"
    )
    assert render_response_head(431, [(b"content-length", b"0")]) == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
    )


IMPURE = {"asyncio", "socket", "ssl", "os", "io", "pathlib", "time", "datetime", "uuid"}


@pytest.mark.parametrize("module", ["meshlet.proxy.http1", "meshlet.proxy.routing"])
def test_pure_modules_import_no_io(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & IMPURE
