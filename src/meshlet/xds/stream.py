"""One ADS stream, as both of meshlet's ADS servers keep it.

Theory of operation
-------------------
The control plane's server (``meshlet.xds.server``) and the agent's local server
(``meshlet.proxy.local_xds``) speak the same state-of-the-world protocol and differ in
what they serve and when. What they share is here:

- ``AdsStream`` is one ``StreamAggregatedResources`` call. A reader task puts each
  request on a queue; ``wake()`` puts at most one push marker there. ``serve()`` takes
  them in order and yields what the server's callbacks return (``on_request`` for a
  request, ``on_push`` for the marker), until the client ends its side or the stream
  fails (``error`` then says why). Requests and pushes of one stream are thus handled
  one at a time, in the order they came.
- ``Watch`` is one type on one stream: the names asked for (None: wildcard), the
  version and nonce last sent, the digests sent, the last ACK and the last NACK.
- ``AdsStream.receive(request)`` says what a request answers: ``Answer.REQUEST`` when
  it names no nonce (a first request, or a client starting over), ``STALE`` when it
  names a nonce other than the last one sent (ignored: a newer response is on its
  way), else ``ACK``, or ``NACK`` when it carries ``error_detail``. The ACK or NACK is
  kept in the watch; a NACK is logged with the version it refuses.
- ``discovery_response`` is a response with a fresh nonce.

Whether to answer a request, and with what, stays with each server.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from meshlet.xds.cache import short_type

__all__ = ["AdsStream", "Answer", "Watch", "discovery_response"]

_stream_ids = itertools.count(1)


class Answer(enum.Enum):
    """What a request says of the last response sent of its type."""

    REQUEST = "request"
    STALE = "stale"
    ACK = "ack"
    NACK = "nack"


class Watch:
    """One type on one stream."""

    __slots__ = (
        "acked_nonce",
        "acked_version",
        "nack",
        "names",
        "nonce",
        "sent",
        "sent_at",
        "version",
    )

    def __init__(self) -> None:
        self.names: frozenset[str] | None = None  # None: wildcard
        self.nonce = ""
        self.version = ""
        self.acked_nonce = ""
        self.acked_version = ""
        self.nack = ""  # the last NACK's message, until an ACK
        self.sent: dict[str, bytes] = {}  # name -> digest last sent
        self.sent_at: float | None = None  # wall-clock time of the last response


class _Push:
    """Queue marker: the stream's config changed."""


class _Ended:
    """Queue marker: the client closed its side."""


_PUSH = _Push()
_ENDED = _Ended()


def discovery_response(type_url: str, version: str, data: Iterable[bytes]) -> Any:
    """A ``DiscoveryResponse`` of serialized resources, with a fresh nonce."""
    return discovery_pb2.DiscoveryResponse(
        version_info=version,
        type_url=type_url,
        nonce=uuid.uuid4().hex,
        resources=[any_pb2.Any(type_url=type_url, value=raw) for raw in data],
    )


class AdsStream:
    """One ``StreamAggregatedResources`` call: its client, its watches, its queue.

    ``label`` starts the stream's log lines (``ADS``, ``xDS proxy``), on ``log``.
    """

    def __init__(self, peer: str, *, log: logging.Logger, label: str) -> None:
        self.id = f"{peer}-{next(_stream_ids)}"
        self.peer = peer
        self.node_id = ""
        self.watches: dict[str, Watch] = {}
        #: Why the stream failed (None: it has not, or the client ended it).
        self.error: Exception | None = None
        self._log = log
        self._label = label
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._push_pending = False

    def wake(self) -> None:
        """Have ``serve`` call ``on_push`` (once, however often woken before it does)."""
        if not self._push_pending:
            self._push_pending = True
            self._queue.put_nowait(_PUSH)

    async def serve(
        self,
        requests: AsyncIterable[Any],
        on_request: Callable[[Any], list[Any]],
        on_push: Callable[[], list[Any]],
    ) -> AsyncGenerator[Any, None]:
        """The responses to send, until the client ends the stream or it fails."""
        reader = asyncio.get_running_loop().create_task(
            self._read(requests), name=f"{self._label} reader"
        )
        try:
            while True:
                event = await self._queue.get()
                if event is _ENDED:
                    return
                if isinstance(event, Exception):
                    self.error = event
                    return
                if event is _PUSH:
                    self._push_pending = False
                    responses = on_push()
                else:
                    responses = on_request(event)
                for response in responses:
                    yield response
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(self, requests: AsyncIterable[Any]) -> None:
        try:
            async for request in requests:
                self._queue.put_nowait(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait(exc)
            return
        self._queue.put_nowait(_ENDED)

    def receive(self, request: Any) -> tuple[Watch, Answer]:
        """The watch of the request's type, and what the request answers (kept in it)."""
        type_url: str = request.type_url
        watch = self.watches.setdefault(type_url, Watch())
        nonce: str = request.response_nonce
        if not nonce:
            return watch, Answer.REQUEST
        if nonce != watch.nonce:
            self._log.debug("%s: node:%s stale nonce for %s", self._label, self.node_id, type_url)
            return watch, Answer.STALE
        detail = request.error_detail if request.HasField("error_detail") else None
        if detail is not None and (detail.code or detail.message):
            watch.nack = detail.message or f"code {detail.code}"
            self._log.warning(
                "%s: %s: NACK node:%s version:%s: %s",
                self._label,
                short_type(type_url),
                self.node_id,
                watch.version,
                watch.nack,
            )
            return watch, Answer.NACK
        watch.acked_nonce = nonce
        watch.acked_version = request.version_info
        watch.nack = ""
        return watch, Answer.ACK
