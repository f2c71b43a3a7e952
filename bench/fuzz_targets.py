"""The fuzz targets bench/fuzz.sh runs under atheris (also runnable without it).

Each target takes bytes and must return normally; any exception other than the ones the
code under test is documented to raise is a finding:

- ``client_hello``: ``ClientHelloParser.feed`` on the bytes, cut in two at a point the
  input chooses; the outcome must not depend on the cut;
- ``http1``: the bytes sent by a client to the HTTP connection manager over an
  in-memory stream, in front of an upstream that answers 200; the answer must be empty
  or start with a status line, and the manager must finish within 5 s of the client's
  end of stream (a hang is a finding);
- ``yaml``: ``decode_text`` on the bytes as text; only ``MeshletError`` may come out.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.proxy.hcm_support

from tests.proxy.hcm_support import (
    OK_RESPONSE,
    ScriptedUpstream,
    canned,
    manager_for,
)

from meshlet.errors import MeshletError
from meshlet.proxy.client_hello import ClientHelloParser
from meshlet.proxy.streams import memory_stream_pair
from meshlet.resources.loader import decode_text


def client_hello(data: bytes) -> None:
    if not data:
        return
    cut = data[0] % (len(data) + 1)
    body = data[1:]
    whole = ClientHelloParser().feed(body)
    parser = ClientHelloParser()
    first = parser.feed(body[:cut])
    split = first if first is not None else parser.feed(body[cut:])
    if whole is not None and split is not None and type(whole) is not type(split):
        raise AssertionError(f"outcome depends on the cut: {whole!r} / {split!r}")


async def _http1(data: bytes) -> bytes:
    upstream = ScriptedUpstream(canned(OK_RESPONSE))
    manager = manager_for(upstream)
    client, server = memory_stream_pair()
    task = asyncio.get_running_loop().create_task(manager.serve(server))
    client.write(data)
    client.write_eof()
    out = b""
    async with asyncio.timeout(5):
        while piece := await client.read():
            out += piece
        await task
    for pending in upstream.tasks:
        pending.cancel()
    return out


def http1(data: bytes) -> None:
    out = asyncio.run(_http1(data))
    if out and not out.startswith(b"HTTP/1.1 "):
        raise AssertionError(f"not a response: {out[:60]!r}")


def yaml(data: bytes) -> None:
    with contextlib.suppress(MeshletError):
        decode_text(data.decode("utf-8", "replace"), "fuzz.yaml")


TARGETS = {"client_hello": client_hello, "http1": http1, "yaml": yaml}
