"""The ADS stream bookkeeping both servers share: what a request answers, and the order
in which requests and pushes are handled (no sockets)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from meshlet.proxy.config import CLUSTER_TYPE
from meshlet.xds.stream import AdsStream, Answer, discovery_response

LOG = logging.getLogger("tests.xds.stream")


def _request(nonce: str = "", *, version: str = "", error: str = "") -> Any:
    request = discovery_pb2.DiscoveryRequest(
        type_url=CLUSTER_TYPE, response_nonce=nonce, version_info=version
    )
    if error:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def test_a_request_without_a_nonce_asks_afresh() -> None:
    stream = AdsStream("peer", log=LOG, label="test")
    watch, answer = stream.receive(_request())
    assert answer is Answer.REQUEST
    assert stream.watches == {CLUSTER_TYPE: watch}


def test_only_the_last_nonce_sent_is_answered(caplog: pytest.LogCaptureFixture) -> None:
    stream = AdsStream("peer", log=LOG, label="test")
    watch, _ = stream.receive(_request())
    watch.nonce, watch.version = "n2", "v2"
    assert stream.receive(_request("n1", version="v1"))[1] is Answer.STALE
    assert (watch.acked_nonce, watch.acked_version) == ("", "")

    caplog.set_level(logging.WARNING, logger=LOG.name)
    stream.node_id = "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"
    assert stream.receive(_request("n2", version="v1", error="bad cluster"))[1] is Answer.NACK
    assert watch.nack == "bad cluster"
    assert [r.getMessage() for r in caplog.records] == [
        "test: CDS: NACK node:sidecar~10.0.0.1~a.ns~ns.svc.cluster.local version:v2: bad cluster"
    ]

    assert stream.receive(_request("n2", version="v2"))[1] is Answer.ACK
    assert (watch.acked_nonce, watch.acked_version, watch.nack) == ("n2", "v2", "")


def test_a_nack_with_a_code_alone_names_the_code() -> None:
    stream = AdsStream("peer", log=LOG, label="test")
    watch, _ = stream.receive(_request())
    watch.nonce = "n1"
    request = _request("n1")
    request.error_detail.code = 13
    assert stream.receive(request)[1] is Answer.NACK
    assert watch.nack == "code 13"


def test_responses_carry_the_resources_and_a_fresh_nonce() -> None:
    first = discovery_response(CLUSTER_TYPE, "v1", [b"a", b"b"])
    second = discovery_response(CLUSTER_TYPE, "v1", [])
    assert (first.version_info, first.type_url) == ("v1", CLUSTER_TYPE)
    assert [(r.type_url, r.value) for r in first.resources] == [
        (CLUSTER_TYPE, b"a"),
        (CLUSTER_TYPE, b"b"),
    ]
    assert first.nonce and second.nonce and first.nonce != second.nonce


async def test_requests_and_pushes_are_handled_in_order_until_the_client_ends() -> None:
    stream = AdsStream("peer", log=LOG, label="test")
    requests: asyncio.Queue[Any] = asyncio.Queue()

    async def client() -> AsyncIterator[Any]:
        while (request := await requests.get()) is not None:
            yield request

    handled: list[str] = []

    def on_request(request: Any) -> list[Any]:
        handled.append(f"request {request.response_nonce or '-'}")
        return [request.response_nonce]

    def on_push() -> list[Any]:
        handled.append("push")
        return ["pushed"]

    responses = stream.serve(client(), on_request, on_push)
    requests.put_nowait(_request())
    assert await anext(responses) == ""
    stream.wake()
    stream.wake()  # once is enough
    assert await anext(responses) == "pushed"
    requests.put_nowait(_request("n1"))
    assert await anext(responses) == "n1"
    requests.put_nowait(None)
    with pytest.raises(StopAsyncIteration):
        await anext(responses)
    assert handled == ["request -", "push", "request n1"]
    assert stream.error is None


async def test_a_failing_client_ends_the_stream_with_its_error() -> None:
    stream = AdsStream("peer", log=LOG, label="test")

    async def client() -> AsyncIterator[Any]:
        yield _request()
        raise ConnectionResetError("gone")

    responses = [r async for r in stream.serve(client(), lambda r: ["answer"], lambda: [])]
    assert responses == ["answer"]
    assert isinstance(stream.error, ConnectionResetError)
