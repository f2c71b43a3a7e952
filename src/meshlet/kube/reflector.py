"""One kind's list + watch loop against the API server (async shell).

Theory of operation: ``Reflector.run`` repeats, until cancelled:

- when the cache is not synced (the start, or after ``410 Gone``), **list** the kind
  in pages of ``page_size`` (``limit``/``continue``) and ``replace`` the cache; a page
  that answers 410 (its ``continue`` token expired) starts the list over;
- **watch** from the cache's ``resourceVersion`` with ``allowWatchBookmarks=true``
  and a ``timeoutSeconds`` of a few minutes, applying each event to the cache; a
  stream that ends normally is simply watched again from the latest version (the
  last event or bookmark);
- on a failure, ``watchstate.decide`` says what next: relist at once (410, including
  an ``ERROR`` event carrying a 410 ``Status`` inside a 200 stream), or wait
  ``backoff_delay`` and try the same step again (429 with its ``Retry-After``, 5xx,
  a broken connection, and — more slowly — other 4xx such as missing RBAC).

``on_change`` is called (synchronously) after each change to the cache; ``synced``
is set once the first list has landed. The loop never raises for a server's answer:
it logs and carries on, so one kind's trouble never stops the control plane.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from meshlet.errors import LoadError
from meshlet.kube.client import ApiStatusError, ApiUnavailable, KubeApi
from meshlet.kube.watchstate import (
    Action,
    EventType,
    KindCache,
    LineBuffer,
    backoff_delay,
    decide,
    parse_event,
)

__all__ = ["Reflector"]

log = logging.getLogger("meshlet.kube")

WATCH_TIMEOUT_SECONDS = 290
SLOW_RETRY_ATTEMPT = 6  # 4xx other than 410/429: start the back-off this far along


class _Expired(Exception):
    """The watch's version is older than the server keeps: relist."""


class Reflector:
    """Keeps ``cache`` equal to the API server's objects of its kind."""

    def __init__(
        self,
        api: KubeApi,
        cache: KindCache,
        *,
        on_change: Callable[[], None] = lambda: None,
        namespace: str | None = None,
        page_size: int = 500,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        backoff_base: float = 0.8,
        backoff_cap: float = 30.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.api = api
        self.cache = cache
        self.on_change = on_change
        self.namespace = namespace
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._jitter = jitter
        self.synced = asyncio.Event()
        self.lists = 0  # how many full lists landed (a relist after 410 counts)
        self.watches = 0  # how many watch requests were made

    @property
    def _path(self) -> str:
        return self.cache.spec.collection_path(self.namespace)

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                if not self.cache.synced:
                    await self._list()
                    attempt = 0
                await self._watch()
                attempt = 0
            except _Expired:
                log.info("%s: resourceVersion too old; listing again", self.cache.spec.key)
                self.cache.synced = False
                continue
            except (ApiStatusError, ApiUnavailable, LoadError) as error:
                code = error.code if isinstance(error, ApiStatusError) else None
                action = decide(code)
                if action is Action.RELIST:
                    self.cache.synced = False
                    continue
                attempt += 1
                if action is Action.WAIT:
                    attempt = max(attempt, SLOW_RETRY_ATTEMPT)
                delay = backoff_delay(
                    attempt,
                    jitter=self._jitter() * 0.2,
                    base=self.backoff_base,
                    cap=self.backoff_cap,
                    retry_after=getattr(error, "retry_after", None),
                )
                log.warning(
                    "%s: %s; trying again in %.1fs", self.cache.spec.key, error.message, delay
                )
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        items: list[dict[str, object]] = []
        token = ""
        while True:
            query: list[tuple[str, str]] = [("limit", str(self.page_size))]
            if token:
                query.append(("continue", token))
            page = await self.api.request("GET", self._path, query=query)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = str(metadata.get("continue") or "")
            if not token:
                break
        version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        self.lists += 1
        if self.cache.replace(items, version):
            self.on_change()
        self.synced.set()

    async def _watch(self) -> None:
        query = [
            ("watch", "1"),
            ("resourceVersion", self.cache.resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self.watch_timeout)),
        ]
        self.watches += 1
        lines = LineBuffer()
        async for chunk in self.api.stream(
            self._path, query=query, read_timeout=self.watch_timeout + 30
        ):
            for line in lines.feed(chunk):
                self._handle(line)
        rest = lines.rest()
        if rest is not None:
            self._handle(rest)

    def _handle(self, line: bytes) -> None:
        event = parse_event(line)
        if event.type is EventType.ERROR:
            code = event.status_code
            message = str(event.object.get("message") or "")
            if decide(code) is Action.RELIST:
                raise _Expired(message)
            raise ApiStatusError(code or 500, str(event.object.get("reason") or ""), message)
        if self.cache.apply(event):
            self.on_change()
