"""An in-process HTTP server that answers like the Kubernetes API server, from a script.

Tests register answers per ``(method, path)`` — usually the exact bodies recorded
from a real API server — and point the real client library at it through a
kubeconfig. Answers for one route are used in order; the last one is used again for
later requests. A ``hang`` answer keeps a watch open until the server stops (what a
quiet watch does). Every request is recorded, with its query and body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["Answer", "FakeApiServer", "write_kubeconfig"]


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    chunks: list[bytes] | None = None  # a streamed body (a watch), sent piece by piece
    hang: bool = False  # after the body, keep the connection open
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class FakeApiServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str, bool], list[Answer]] = {}
        self.requests: list[Seen] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.port = 0

    def add(self, method: str, path: str, *answers: Answer, watch: bool = False) -> None:
        self.routes.setdefault((method, path, watch), []).extend(answers)

    def seen(self, method: str, path: str, *, watch: bool | None = None) -> list[Seen]:
        return [
            r
            for r in self.requests
            if r.method == method
            and r.path == path
            and (watch is None or (r.query.get("watch") in ("1", "true")) == watch)
        ]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        query = dict(request.query)
        self.requests.append(Seen(request.method, request.path, query, dict(request.headers), body))
        watch = query.get("watch") in ("1", "true")
        answers = self.routes.get((request.method, request.path, watch))
        if not answers:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "the server could not find the requested resource",
                "reason": "NotFound",
                "code": 404,
            }
            return web.json_response(status, status=404)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_type = "application/json"
        await response.prepare(request)
        for chunk in answer.chunks if answer.chunks is not None else [answer.body]:
            await response.write(chunk)
            await asyncio.sleep(0)
        if answer.hang:
            await self._closing.wait()
        with contextlib.suppress(ConnectionError):  # the client may be gone already
            await response.write_eof()
        return response

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()


def write_kubeconfig(path: Path, server: str, token: str = "test-token") -> Path:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "admin"}}],
        "current-context": "fake",
    }
    path.write_text(json.dumps(config))
    return path
