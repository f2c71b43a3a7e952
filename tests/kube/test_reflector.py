"""The reconcile loop against recorded API server answers, through kubernetes-asyncio.

A real v1.36 API server's bodies (lists, a watch with MODIFIED/ADDED/DELETED/BOOKMARK,
a watch answered with a 410 ERROR event, a 410 list) are served by an in-process HTTP
server; the real client library, configured from a kubeconfig, talks to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshlet.kube.client import KubeApi, connect
from meshlet.kube.reflector import Reflector
from meshlet.kube.source import KubeConfigSource
from meshlet.kube.watchstate import KIND_SPECS, KindCache, spec_for
from meshlet.resources.mesh import MeshSettings
from tests.kube.fake_apiserver import Answer, FakeApiServer, write_kubeconfig

PA_PATH = "/apis/security.istio.io/v1/namespaces/test/peerauthentications"


@pytest.fixture
def recorded(api_schemas: Path) -> Path:
    return api_schemas / "kubernetes-api"


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[FakeApiServer, KubeApi]]:
    server = FakeApiServer()
    url = await server.start()
    api = await connect(str(write_kubeconfig(tmp_path / "kubeconfig", url)))
    try:
        yield server, api
    finally:
        await api.close()
        await server.stop()


def _body(recorded: Path, name: str) -> bytes:
    return (recorded / name).read_bytes()


def _compact(recorded: Path, name: str) -> bytes:
    # What a program client gets: the same content as compact JSON (see the README).
    return json.dumps(json.loads(_body(recorded, name)), separators=(",", ":")).encode()


async def _until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def _run(reflector: Reflector, condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    task = asyncio.create_task(reflector.run())
    try:
        await _until(condition, timeout)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _mode(cache: KindCache, name: str) -> str:
    found = cache.get("test", name)
    assert found is not None
    return str(found["spec"]["mtls"]["mode"])


async def test_list_then_watch_follows_every_event(fake, recorded: Path) -> None:
    server, api = fake
    server.add(
        "GET", PA_PATH, Answer(body=_compact(recorded, "list-peerauthentications-test.json"))
    )
    stream = _body(recorded, "watch-peerauthentications-test.jsonl")
    # Cut the stream mid-line too: events may arrive in pieces.
    pieces = [stream[i : i + 700] for i in range(0, len(stream), 700)]
    server.add("GET", PA_PATH, Answer(chunks=pieces), Answer(hang=True), watch=True)
    cache = KindCache(spec_for("security.istio.io/PeerAuthentication"))
    changes: list[int] = []
    reflector = Reflector(
        api, cache, namespace="test", on_change=lambda: changes.append(len(cache))
    )

    await _run(reflector, lambda: len(server.seen("GET", PA_PATH, watch=True)) == 2)

    first_list = server.seen("GET", PA_PATH, watch=False)[0]
    assert first_list.headers["Authorization"] == "Bearer test-token"
    first, second = server.seen("GET", PA_PATH, watch=True)
    assert first.query["resourceVersion"] == "248"  # the list's version
    assert first.query["allowWatchBookmarks"] == "true"
    assert second.query["resourceVersion"] == "254"  # the last BOOKMARK's
    assert reflector.lists == 1
    assert [obj["metadata"]["name"] for obj in cache.items()] == [
        "default",
        "disable-peer-auth-for-external-mtls-port",
    ]
    assert _mode(cache, "default") == "PERMISSIVE"  # MODIFIED
    assert cache.get("test", "temporary") is None  # ADDED, then DELETED
    assert cache.resource_version == "254"
    # list (2 objects), MODIFIED, ADDED (3), DELETED (2); the BOOKMARK changes nothing
    assert changes == [2, 2, 3, 2]
    assert all(obj["apiVersion"] == "security.istio.io/v1" for obj in cache.items())


async def test_a_410_error_event_leads_to_a_relist(fake, recorded: Path) -> None:
    server, api = fake
    server.add(
        "GET", PA_PATH, Answer(body=_compact(recorded, "list-peerauthentications-test.json"))
    )
    server.add(
        "GET",
        PA_PATH,
        Answer(body=_body(recorded, "watch-peerauthentications-test-too-old-rv.jsonl")),
        Answer(hang=True),
        watch=True,
    )
    cache = KindCache(spec_for("security.istio.io/PeerAuthentication"))
    reflector = Reflector(api, cache, namespace="test")

    await _run(reflector, lambda: len(server.seen("GET", PA_PATH, watch=True)) == 2)

    assert reflector.lists == 2  # listed again after the ERROR 410 event
    assert len(server.seen("GET", PA_PATH, watch=False)) == 2
    assert len(cache) == 2


async def test_an_expired_list_is_listed_again_and_5xx_429_back_off(fake, recorded: Path) -> None:
    server, api = fake
    unavailable = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "InternalError",
            "message": "etcdserver: request timed out",
            "code": 500,
        }
    ).encode()
    too_many = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "TooManyRequests",
            "message": "too many requests, please try again later",
            "code": 429,
        }
    ).encode()
    server.add(
        "GET",
        PA_PATH,
        Answer(status=500, body=unavailable),
        Answer(status=429, body=too_many, headers={"Retry-After": "0"}),
        Answer(status=410, body=_body(recorded, "error-410-list-resourceversion-too-old.json")),
        Answer(body=_compact(recorded, "list-peerauthentications-test.json")),
    )
    server.add("GET", PA_PATH, Answer(hang=True), watch=True)
    cache = KindCache(spec_for("security.istio.io/PeerAuthentication"))
    jitters: list[float] = []

    def jitter() -> float:
        jitters.append(0.5)
        return 0.5

    reflector = Reflector(api, cache, namespace="test", backoff_base=0.01, jitter=jitter)

    await _run(reflector, lambda: len(server.seen("GET", PA_PATH, watch=True)) == 1)

    assert len(server.seen("GET", PA_PATH, watch=False)) == 4
    assert len(jitters) == 2  # a back-off after the 500 and the 429, none after the 410
    assert reflector.synced.is_set() and len(cache) == 2


async def test_the_source_feeds_the_same_snapshot_as_the_local_store(fake, recorded: Path) -> None:
    server, api = fake
    served = {
        "/api/v1/namespaces": "list-namespaces.json",
        "/api/v1/services": "list-services-test.json",
        "/api/v1/pods": "list-pods-test.json",
        "/api/v1/secrets": "list-secrets-test.json",
        "/apis/networking.istio.io/v1alpha3/sidecars": "list-sidecars-test.json",
        "/apis/security.istio.io/v1/peerauthentications": "list-peerauthentications-test.json",
    }
    for spec in KIND_SPECS:
        path = spec.collection_path()
        if path in served:
            server.add("GET", path, Answer(body=_compact(recorded, served[path])))
        else:  # kinds with no object in the recording: an empty list
            empty = {
                "kind": f"{spec.kind}List",
                "apiVersion": spec.api_version,
                "metadata": {"resourceVersion": "248"},
                "items": [],
            }
            server.add("GET", path, Answer(body=json.dumps(empty).encode()))
        server.add("GET", path, Answer(hang=True), watch=True)
    changed: list[str] = []
    source = KubeConfigSource(
        api, MeshSettings(enable_tls_on_sidecar_ingress=True), on_change=changed.append
    )
    task = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(5):
            await source.wait_synced()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    snapshot = source.snapshot()
    assert [s.hostname for s in snapshot.services] == ["httpbin.test.svc.cluster.local"]
    httpbin = snapshot.services[0]
    assert httpbin.vip == "10.96.156.143"
    assert [(p.name, p.port, p.target_port) for p in httpbin.ports] == [
        ("https", 8443, 9080),
        ("http", 8080, 9081),
    ]
    assert [s.name for s in snapshot.sidecars] == ["ingress-sidecar"]
    assert [p.name for p in snapshot.peer_authentications] == [
        "default",
        "disable-peer-auth-for-external-mtls-port",
    ]
    assert snapshot.workloads == ()  # the recorded pods are Pending, with no IP yet
    assert source.namespace_labels("test") == {
        "istio-injection": "enabled",
        "kubernetes.io/metadata.name": "test",
    }
    assert source.namespace_labels("absent") is None
    assert set(changed) == {spec.key for spec in KIND_SPECS}  # each first list counts
