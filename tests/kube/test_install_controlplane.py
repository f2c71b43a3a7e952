"""install/uninstall --kubeconfig and the control plane process, against a scripted API server."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from meshlet.cli.main import main
from meshlet.kube.client import connect
from meshlet.kube.controlplane import ControlPlane, Ports, root_cert_wanted
from meshlet.kube.install import placement
from meshlet.kube.manifests import generate_manifests
from meshlet.kube.settings import kube_settings_from_flags
from meshlet.kube.watchstate import KIND_SPECS
from tests.kube.fake_apiserver import Answer, FakeApiServer, write_kubeconfig
from tests.kube.test_manifests import SIGNER


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeApiServer, str]]:
    server = FakeApiServer()
    url = await server.start()
    try:
        yield server, url
    finally:
        await server.stop()


def _ok(body: object = None) -> Answer:
    return Answer(body=json.dumps(body or {"kind": "Status", "status": "Success"}).encode())


async def test_install_applies_every_manifest_server_side(fake, tmp_path: Path) -> None:
    server, url = fake
    objects = generate_manifests(kube_settings_from_flags([]), SIGNER)
    server.add(
        "GET", "/api/v1/namespaces/istio-system/secrets/cacerts", Answer(status=404, body=b"{}")
    )
    for obj in objects:
        server.add("PATCH", placement(obj), _ok(obj))
    server.add(
        "GET",
        "/apis/apps/v1/namespaces/istio-system/deployments/istiod",
        _ok({"status": {}}),
        _ok({"status": {"availableReplicas": 1}}),
    )
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)

    code = await asyncio.to_thread(
        main, ["install", "--kubeconfig", str(kubeconfig), "--readiness-timeout", "5"]
    )

    assert code == 0
    patches = [r for r in server.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == [placement(o) for o in objects]
    for request in patches:
        assert request.headers["Content-Type"] == "application/apply-patch+yaml"
        assert request.query == {"fieldManager": "meshlet", "force": "true"}
    sent = [json.loads(r.body) for r in patches]
    assert [o["kind"] for o in sent][:3] == ["CustomResourceDefinition"] * 3
    assert sent[-1]["kind"] == "MutatingWebhookConfiguration"
    assert len(server.seen("GET", "/apis/apps/v1/namespaces/istio-system/deployments/istiod")) == 2


async def test_uninstall_purge_deletes_them_and_every_root_cert(fake, tmp_path: Path) -> None:
    server, url = fake
    objects = generate_manifests(kube_settings_from_flags([]), SIGNER)
    server.add(
        "GET", "/api/v1/namespaces/istio-system/secrets/cacerts", Answer(status=404, body=b"{}")
    )
    for obj in objects:
        server.add("DELETE", placement(obj), _ok())
    server.add(
        "GET",
        "/api/v1/namespaces",
        _ok({"items": [{"metadata": {"name": "default"}}, {"metadata": {"name": "test"}}]}),
    )
    server.add("DELETE", "/api/v1/namespaces/test/configmaps/istio-ca-root-cert", _ok())
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)

    code = await asyncio.to_thread(
        main, ["uninstall", "--purge", "-y", "--kubeconfig", str(kubeconfig)]
    )

    assert code == 0
    deletes = [r.path for r in server.requests if r.method == "DELETE"]
    assert deletes[: len(objects)] == [placement(o) for o in reversed(objects)]
    assert deletes[len(objects) :] == [
        "/api/v1/namespaces/default/configmaps/istio-ca-root-cert",
        "/api/v1/namespaces/test/configmaps/istio-ca-root-cert",
    ]


def test_install_into_an_unreachable_cluster_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    assert main(["install", "--kubeconfig", str(kubeconfig), "--readiness-timeout", "0"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be reached" in err[0]


def test_root_certs_go_to_every_namespace_that_lacks_this_root() -> None:
    namespaces = [{"metadata": {"name": n}} for n in ("test", "default", "kube-system", "other")]
    configmaps = [
        {
            "metadata": {"name": "istio-ca-root-cert", "namespace": "default"},
            "data": {"root-cert.pem": SIGNER.root_pem.decode()},
        },
        {
            "metadata": {"name": "istio-ca-root-cert", "namespace": "other"},
            "data": {"root-cert.pem": "an old root"},
        },
    ]
    assert root_cert_wanted(namespaces, configmaps, SIGNER.root_pem) == ["other", "test"]


async def test_the_control_plane_syncs_serves_and_writes_root_certs(
    fake, tmp_path: Path, api_schemas: Path
) -> None:
    server, url = fake
    recorded = api_schemas / "kubernetes-api"
    served = {
        "/api/v1/namespaces": "list-namespaces.json",
        "/api/v1/services": "list-services-test.json",
        "/apis/networking.istio.io/v1alpha3/sidecars": "list-sidecars-test.json",
        "/apis/security.istio.io/v1/peerauthentications": "list-peerauthentications-test.json",
    }
    for spec in KIND_SPECS:
        path = spec.collection_path()
        if path in served:
            body = (recorded / served[path]).read_bytes()
        else:
            body = json.dumps({"metadata": {"resourceVersion": "248"}, "items": []}).encode()
        server.add("GET", path, Answer(body=body))
        server.add("GET", path, Answer(hang=True), watch=True)
    for namespace in ("default", "test"):
        server.add("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/istio-ca-root-cert", _ok())
    api = await connect(str(write_kubeconfig(tmp_path / "kubeconfig", url)))
    plane = ControlPlane(api, kube_settings_from_flags([]), SIGNER)
    task = asyncio.create_task(plane.run("127.0.0.1", Ports(0, 0, 0, 0)))
    try:
        async with asyncio.timeout(10):
            await plane.ready.wait()
            while len([r for r in server.requests if r.method == "PATCH"]) < 2:
                await asyncio.sleep(0.02)
        assert plane.ports is not None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{plane.ports.ready}/ready") as response:
                assert response.status == 200
            context = ssl.create_default_context(cadata=SIGNER.root_pem.decode())
            async with session.post(
                f"https://127.0.0.1:{plane.ports.webhook}/inject",
                data=(recorded / "admission-review-request-pod-httpbin.json").read_bytes(),
                ssl=context,
                server_hostname="istiod.istio-system.svc",
            ) as response:
                answer = await response.json()
        assert answer["response"]["patchType"] == "JSONPatch"  # test is istio-injection=enabled
        async with asyncio.timeout(5):
            while plane.ads.snapshot is None:  # pushes are debounced
                await asyncio.sleep(0.02)
        snapshot = plane.ads.snapshot
        assert snapshot is not None and [s.name for s in snapshot.sidecars] == ["ingress-sidecar"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await api.close()
    patched = sorted(r.path for r in server.requests if r.method == "PATCH")
    assert patched == [
        "/api/v1/namespaces/default/configmaps/istio-ca-root-cert",
        "/api/v1/namespaces/test/configmaps/istio-ca-root-cert",
    ]
    body = yaml.safe_load(next(r.body for r in server.requests if r.method == "PATCH"))
    assert body["data"]["root-cert.pem"] == SIGNER.root_pem.decode()
