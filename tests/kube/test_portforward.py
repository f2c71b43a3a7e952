"""The pod port-forward: its framing (no sockets), then the real client library
against an in-process API server that speaks the WebSocket port-forward protocol and
relays to a real TCP port on loopback, standing in for the sidecar's admin and
istiod's xDS port. ``proxy-config`` and ``proxy-status`` run end to end through it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc

from meshlet.cli.main import main
from meshlet.cli.proxy_config import render
from meshlet.istioctl import proxy_config as pc
from meshlet.kube.client import ApiStatusError, KubeApi, connect
from meshlet.kube.portforward import PortForwardError, admin_get, resolve_pod
from meshlet.kube.portforward_frames import (
    DataReceived,
    ErrorReceived,
    PortForwardDecoder,
    ProtocolViolation,
    encode_data,
    encode_port_prefix,
)
from meshlet.xds.status import DISPLAY_TYPES, ProxyStatus, SyncState, TypeStatus, syncz_response
from tests.kube.fake_apiserver import Answer, write_kubeconfig
from tests.kube.fake_portforward import PortForwardApiServer

GOLDEN = Path(__file__).resolve().parents[1] / "pilot" / "golden"
POD = "httpbin-5bbdbd6588-z9vbs"
NODE = f"sidecar~10.244.0.7~{POD}.test~test.svc.cluster.local"

# --- framing ---------------------------------------------------------------------------


def test_each_channel_opens_with_its_port_then_carries_data() -> None:
    decoder = PortForwardDecoder((15000,))
    assert decoder.receive(encode_port_prefix(0, 15000)) == []
    assert decoder.receive(encode_port_prefix(1, 15000)) == []
    assert decoder.opened(0)
    assert decoder.receive(b"\x00HTTP/1.1") == [DataReceived(0, b"HTTP/1.1")]
    assert decoder.receive(b"\x01refused") == [ErrorReceived(0, "refused")]


def test_a_prefix_split_over_messages_and_empty_messages_are_not_data() -> None:
    decoder = PortForwardDecoder((15010,))
    low, high = (15010).to_bytes(2, "little")
    assert decoder.receive(bytes([0, low])) == []
    assert decoder.receive(b"\x00") == []
    assert decoder.receive(b"") == []
    assert not decoder.opened(0)
    assert decoder.receive(bytes([0, high]) + b"abc") == [DataReceived(0, b"abc")]


def test_a_channel_for_another_port_is_a_violation() -> None:
    decoder = PortForwardDecoder((15000,))
    with pytest.raises(ProtocolViolation, match="opened for port 15001, not 15000"):
        decoder.receive(encode_port_prefix(0, 15001))
    with pytest.raises(ProtocolViolation, match="only 1 port"):
        decoder.receive(b"\x02xx")


def test_data_is_framed_on_the_data_channel_in_bounded_messages() -> None:
    assert encode_data(0, b"GET /") == [b"\x00GET /"]
    assert encode_data(1, b"x") == [b"\x02x"]
    big = encode_data(0, b"a" * 70000)
    assert [len(m) for m in big] == [32769, 32769, 70000 - 65536 + 1]
    assert all(m[0] == 0 for m in big)


# --- a sidecar admin port and a control plane, on loopback -------------------------------


def _config_dump() -> bytes:
    listeners = json.loads((GOLDEN / "httpbin.listeners.json").read_text())
    clusters = json.loads((GOLDEN / "httpbin.clusters.json").read_text())
    return json.dumps(
        {
            "configs": [
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                    "dynamic_active_clusters": [{"cluster": c} for c in clusters],
                },
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                    "dynamic_listeners": [{"active_state": {"listener": x}} for x in listeners],
                },
            ]
        },
        indent=2,
    ).encode()


CONFIG_DUMP = _config_dump()


def _clusters_json() -> bytes:
    """The admin's ``/clusters?format=json`` for the golden endpoints."""
    statuses = []
    for assignment in json.loads((GOLDEN / "httpbin.endpoints.json").read_text()):
        hosts = [
            {
                "address": lb["endpoint"]["address"],
                "health_status": {"eds_health_status": "HEALTHY"},
            }
            for group in assignment.get("endpoints", [])
            for lb in group.get("lb_endpoints", [])
        ]
        statuses.append({"name": assignment["cluster_name"], "host_statuses": hosts})
    return json.dumps({"cluster_statuses": statuses}).encode()


CLUSTERS_JSON = _clusters_json()


async def _admin_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    path = head.split(b" ", 2)[1].decode()
    if path == "/config_dump":
        status, body = b"200 OK", CONFIG_DUMP
    elif path == "/clusters?format=json":
        status, body = b"200 OK", CLUSTERS_JSON
    else:
        status, body = b"404 Not Found", b"invalid path\n"
    # Chunked, in small pieces: the client must read to the end of the message.
    writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n")
    writer.write(b"transfer-encoding: chunked\r\n\r\n")
    for start in range(0, len(body), 7000):
        piece = body[start : start + 7000]
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    writer.close()


def _running_pod(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


class _Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def StreamAggregatedResources(self, requests: Any, context: Any) -> Any:
        request = next(requests)
        assert request.type_url == "istio.io/debug/syncz"
        status = ProxyStatus(
            node_id=NODE,
            cluster_id="Kubernetes",
            istio_version="0.1.0",
            types=tuple(TypeStatus(t, SyncState.NOT_SENT) for t in DISPLAY_TYPES),
        )
        yield syncz_response(
            [status], control_plane_id="istiod-7d4c9-abcde", version="1", nonce="n"
        )


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[PortForwardApiServer, KubeApi, Path]]:
    admin = await asyncio.start_server(_admin_handler, "127.0.0.1", 0)
    server = PortForwardApiServer()
    server.backend("test", POD, 15000, admin.sockets[0].getsockname()[1])
    server.add(
        "GET",
        f"/api/v1/namespaces/test/pods/{POD}",
        Answer(body=json.dumps(_running_pod(POD, "test")).encode()),
    )
    url = await server.start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    api = await connect(str(kubeconfig))
    try:
        yield server, api, kubeconfig
    finally:
        await api.close()
        await server.stop()
        admin.close()
        await admin.wait_closed()


async def test_admin_get_reads_the_config_dump_through_the_port_forward(cluster) -> None:  # type: ignore[no-untyped-def]
    server, api, _ = cluster
    body = await admin_get(api, "test", POD, "/config_dump")
    assert body == CONFIG_DUMP
    (seen,) = server.forwards
    assert seen.method == "GET"
    assert seen.path == f"/api/v1/namespaces/test/pods/{POD}/portforward"
    assert seen.query == {"ports": "15000"}
    assert seen.headers["Authorization"] == "Bearer test-token"
    assert server.protocols == ["v4.channel.k8s.io"]


async def test_a_prefix_in_pieces_is_read_as_the_kubelet_may_send_it(cluster) -> None:  # type: ignore[no-untyped-def]
    server, api, _ = cluster
    server.split_prefix = True
    assert await admin_get(api, "test", POD, "/clusters?format=json") == CLUSTERS_JSON


async def test_an_admin_error_status_is_reported(cluster) -> None:  # type: ignore[no-untyped-def]
    _, api, _ = cluster
    with pytest.raises(PortForwardError, match="answered 404: invalid path"):
        await admin_get(api, "test", POD, "/nothing")


async def test_the_kubelets_error_channel_becomes_the_message(cluster) -> None:  # type: ignore[no-untyped-def]
    _, api, _ = cluster
    with pytest.raises(
        PortForwardError, match="failed to connect to localhost:15000 inside namespace test"
    ):
        await admin_get(api, "test", "sleep-557747455f-brzf6", "/config_dump")


async def test_a_refused_upgrade_is_the_servers_status(cluster) -> None:  # type: ignore[no-untyped-def]
    server, api, _ = cluster
    server.refuse = 403
    with pytest.raises(ApiStatusError) as raised:
        await admin_get(api, "test", POD, "/config_dump")
    assert raised.value.code == 403


async def test_a_pod_that_is_not_running_cannot_be_forwarded(cluster) -> None:  # type: ignore[no-untyped-def]
    server, api, _ = cluster
    pending = _running_pod("pending", "test")
    pending["status"] = {"phase": "Pending"}
    server.add(
        "GET", "/api/v1/namespaces/test/pods/pending", Answer(body=json.dumps(pending).encode())
    )
    with pytest.raises(PortForwardError, match=r"pod is not running\. Current status=Pending"):
        await resolve_pod(api, "test", "pending")


async def test_deployment_names_its_first_ready_pod(cluster) -> None:  # type: ignore[no-untyped-def]
    server, api, _ = cluster
    deployment = {"spec": {"selector": {"matchLabels": {"app": "httpbin", "version": "v1"}}}}
    server.add(
        "GET",
        "/apis/apps/v1/namespaces/test/deployments/httpbin",
        Answer(body=json.dumps(deployment).encode()),
    )
    unready = _running_pod("httpbin-a", "test")
    unready["status"]["conditions"] = []
    pods = {"kind": "PodList", "items": [unready, _running_pod(POD, "test")]}
    server.add("GET", "/api/v1/namespaces/test/pods", Answer(body=json.dumps(pods).encode()))
    found = await resolve_pod(api, "test", "deployment/httpbin")
    assert found["metadata"]["name"] == POD
    (listed,) = server.seen("GET", "/api/v1/namespaces/test/pods")
    assert listed.query["labelSelector"] == "app=httpbin,version=v1"


# --- the verbs, end to end (the servers run on their own loop, as main() runs its own) ---


@pytest.fixture
def background(tmp_path: Path) -> Iterator[tuple[PortForwardApiServer, Path]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10)

    admin = call(asyncio.start_server(_admin_handler, "127.0.0.1", 0))
    ads = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Ads(), ads)
    ads_port = ads.add_insecure_port("127.0.0.1:0")
    ads.start()

    async def make() -> PortForwardApiServer:
        server = PortForwardApiServer()
        await server.start()
        return server

    server = call(make())
    server.backend("test", POD, 15000, admin.sockets[0].getsockname()[1])
    server.backend("istio-system", "istiod-7d4c9-abcde", 15010, ads_port)
    server.add(
        "GET",
        f"/api/v1/namespaces/test/pods/{POD}",
        Answer(body=json.dumps(_running_pod(POD, "test")).encode()),
    )
    istiod = {
        "kind": "PodList",
        "items": [_running_pod("istiod-7d4c9-abcde", "istio-system", app="istiod")],
    }
    server.add(
        "GET", "/api/v1/namespaces/istio-system/pods", Answer(body=json.dumps(istiod).encode())
    )
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{server.port}")
    try:
        yield server, kubeconfig
    finally:
        call(server.stop())
        admin.close()
        ads.stop(None)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


@pytest.mark.parametrize("kind", ["listener", "cluster", "endpoint", "all"])
def test_proxy_config_with_kubeconfig_prints_what_the_local_path_prints(
    background, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    server, kubeconfig = background
    code = main(["proxy-config", kind, f"{POD}.test", "--kubeconfig", str(kubeconfig)])
    out = capsys.readouterr().out
    assert code == 0
    bodies = {"/config_dump": CONFIG_DUMP, "/clusters?format=json": CLUSTERS_JSON}
    expected = render(kind, pc.OutputFormat.SHORT, bodies.__getitem__, None)
    assert out == expected
    assert len(out.splitlines()) > 2  # a real table, not an empty answer
    assert all(f.query == {"ports": "15000"} for f in server.forwards)


def test_proxy_config_with_kubeconfig_names_a_missing_pod(background, capsys) -> None:  # type: ignore[no-untyped-def]
    _, kubeconfig = background
    code = main(
        ["proxy-config", "secret", "nothere", "-n", "test", "--kubeconfig", str(kubeconfig)]
    )
    assert code == 4
    assert "Error from server (NotFound)" in capsys.readouterr().err


def test_proxy_status_with_kubeconfig_asks_istiod_through_a_port_forward(
    background, capsys
) -> None:  # type: ignore[no-untyped-def]
    server, kubeconfig = background
    code = main(["proxy-status", "--kubeconfig", str(kubeconfig), "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    header, row = out.splitlines()
    assert header.split() == [
        "NAME",
        "CLUSTER",
        "CDS",
        "LDS",
        "EDS",
        "RDS",
        "ECDS",
        "ISTIOD",
        "VERSION",
    ]
    assert row.split() == [
        f"{POD}.test",
        "Kubernetes",
        "NOT",
        "SENT",
        "NOT",
        "SENT",
        "NOT",
        "SENT",
        "NOT",
        "SENT",
        "IGNORED",
        "istiod-7d4c9-abcde",
        "0.1.0",
    ]
    assert {f.path for f in server.forwards} == {
        "/api/v1/namespaces/istio-system/pods/istiod-7d4c9-abcde/portforward"
    }
    (listed,) = server.seen("GET", "/api/v1/namespaces/istio-system/pods")
    assert listed.query == {"labelSelector": "app=istiod", "fieldSelector": "status.phase=Running"}
