"""ADS on the CA's TLS port (15012) over real TLS on loopback, as a sidecar reaches istiod:
with its pod token, with its mesh certificate, with nothing, with another namespace's
certificate; the plaintext port still serves the node's tools beside it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from meshlet.agent.agent import Agent, AgentConfig
from meshlet.ca.server import ISTIOD_SERVER_NAMES, CAServer
from meshlet.ca.signing import KeyAlgorithm, Signer, SpiffeId, make_self_signed_root, sign_csr
from meshlet.ca.tokens import issue_token
from meshlet.cli import main as cli
from meshlet.proxy.config import CLUSTER_TYPE, LISTENER_TYPE
from meshlet.proxy.grpc_stream import Status
from meshlet.proxy.sidecar import Sidecar, SidecarOptions
from meshlet.proxy.xds_client import StreamAuth, XdsClient
from meshlet.xds.server import AdsServer
from meshlet.xds.status import SyncState
from tests.ca.conftest import key_pem, make_csr, make_key
from tests.pilot.scenario import EXTERNAL_SLEEP_POD, HTTPBIN_POD, scenario_snapshot
from tests.xds.helpers import Recorder, running_client

pytestmark = pytest.mark.integration

TOKEN_KEY = os.urandom(32)
HTTPBIN_NODE = f"sidecar~10.244.0.5~{HTTPBIN_POD}.test~test.svc.cluster.local"
HTTPBIN_META = {"NAMESPACE": "test", "SERVICE_ACCOUNT": "httpbin"}
# The test's clients reach the server as "localhost"; its certificate names that too.
SERVER_NAMES = ("localhost", *ISTIOD_SERVER_NAMES)


def utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def root() -> Signer:
    return make_self_signed_root("cluster.local", now=utcnow(), algorithm=KeyAlgorithm.ECDSA)


@dataclass
class ControlPlane:
    ads: AdsServer
    ca: CAServer
    tls_target: str  # the CA's port, ADS authenticated
    plain_target: str  # 15010's stand-in


@pytest.fixture
async def control_plane(root: Signer) -> AsyncIterator[ControlPlane]:
    ads = AdsServer(scenario_snapshot(), debounce=0.05)
    ca = CAServer(
        root, TOKEN_KEY, server_names=SERVER_NAMES, services=[ads.add_authenticated_service]
    )
    try:
        tls_port = await asyncio.wait_for(ca.start("127.0.0.1", 0), 10)
        plain_port = await asyncio.wait_for(ads.start("127.0.0.1", 0), 10)
        yield ControlPlane(ads, ca, f"localhost:{tls_port}", f"127.0.0.1:{plain_port}")
    finally:
        await asyncio.wait_for(ca.stop(grace=0), 10)
        await ads.stop(grace=0)


def token(namespace: str, service_account: str) -> str:
    return issue_token(
        TOKEN_KEY,
        namespace=namespace,
        service_account=service_account,
        pod=f"{service_account}-6d8f9-abcde",
        expires=utcnow() + timedelta(hours=1),
    )


def mesh_certificate(root: Signer, identity: SpiffeId) -> tuple[bytes, bytes]:
    """A workload certificate chain and key for ``identity``, as the CA issues them."""
    key = make_key()
    chain = sign_csr(make_csr(key), identity, root, now=utcnow(), ttl=timedelta(hours=1))
    return "".join(chain).encode(), key_pem(key)


def tls(
    root: Signer, *, bearer: str | None = None, certificate: tuple[bytes, bytes] | None = None
) -> StreamAuth:
    chain, key = certificate if certificate is not None else (None, None)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root.root_pem, private_key=key, certificate_chain=chain
    )
    metadata = (("authorization", f"Bearer {bearer}"),) if bearer else ()
    return StreamAuth(credentials, metadata)


async def first_answer(
    target: str, auth: StreamAuth, node_id: str, metadata: dict[str, str], type_url: str
) -> discovery_pb2.DiscoveryResponse:
    """One request on a fresh stream, as a sidecar's first; its first response."""
    node = base_pb2.Node(id=node_id)
    for key, value in metadata.items():
        node.metadata.fields[key].string_value = value
    assert auth.credentials is not None
    async with grpc.aio.secure_channel(
        target, auth.credentials, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources(metadata=auth.metadata or None)
        await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=type_url))
        async with asyncio.timeout(10):
            response = await call.read()
        call.cancel()
        assert response is not grpc.aio.EOF
        return response


async def refusal(
    target: str, auth: StreamAuth, node_id: str, metadata: dict[str, str]
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await first_answer(target, auth, node_id, metadata, CLUSTER_TYPE)
    return refused.value


async def synced(client: XdsClient) -> None:
    """Until the client has handed its proxy a whole config (every type, consistent)."""
    await client.wait_for(lambda c: c.updates > 0, timeout=10)


# --- who may connect ----------------------------------------------------------------


async def test_a_sidecar_with_its_pod_token_gets_its_config(
    control_plane: ControlPlane, root: Signer
) -> None:
    auth = tls(root, bearer=token("test", "httpbin"))
    recorder = Recorder()
    async with running_client(
        control_plane.tls_target, HTTPBIN_NODE, recorder, auth=lambda _code: auth
    ) as client:
        await synced(client)
        assert client.resources(CLUSTER_TYPE) and client.resources(LISTENER_TYPE)
        assert recorder.updates
        # The authenticated stream is one of the server's proxies, as 15010's are.
        assert [s.node_id for s in control_plane.ads.status()] == [HTTPBIN_NODE]


async def test_a_sidecar_with_its_mesh_certificate_gets_the_same_config(
    control_plane: ControlPlane, root: Signer
) -> None:
    certificate = mesh_certificate(root, SpiffeId("cluster.local", "test", "httpbin"))
    by_certificate = tls(root, certificate=certificate)
    by_token = tls(root, bearer=token("test", "httpbin"))
    answers = [
        await first_answer(target, auth, HTTPBIN_NODE, HTTPBIN_META, CLUSTER_TYPE)
        for target, auth in (
            (control_plane.tls_target, by_certificate),
            (control_plane.tls_target, by_token),
        )
    ]
    async with grpc.aio.insecure_channel(control_plane.plain_target) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources()
        node = base_pb2.Node(id=HTTPBIN_NODE)
        await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER_TYPE))
        async with asyncio.timeout(10):
            answers.append(await call.read())
        call.cancel()
    assert answers[0].resources  # the pod's clusters
    assert len({a.version_info for a in answers}) == 1
    assert [r.value for r in answers[0].resources] == [r.value for r in answers[2].resources]


async def test_a_stream_that_proves_nothing_is_unauthenticated(
    control_plane: ControlPlane, root: Signer
) -> None:
    refused = await refusal(control_plane.tls_target, tls(root), HTTPBIN_NODE, HTTPBIN_META)
    assert refused.code() is grpc.StatusCode.UNAUTHENTICATED
    assert refused.details() == "authentication failure"
    forged = issue_token(
        os.urandom(32),
        namespace="test",
        service_account="httpbin",
        pod="httpbin-1",
        expires=utcnow() + timedelta(hours=1),
    )
    refused = await refusal(
        control_plane.tls_target, tls(root, bearer=forged), HTTPBIN_NODE, HTTPBIN_META
    )
    assert refused.code() is grpc.StatusCode.UNAUTHENTICATED
    assert control_plane.ads.status() == []


async def test_a_certificate_of_another_namespace_than_the_node_is_permission_denied(
    control_plane: ControlPlane, root: Signer
) -> None:
    other = mesh_certificate(root, SpiffeId("cluster.local", "default", "sleep"))
    refused = await refusal(
        control_plane.tls_target,
        tls(root, certificate=other),
        HTTPBIN_NODE,
        {"NAMESPACE": "test", "SERVICE_ACCOUNT": "sleep"},
    )
    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == (
        "authorization failed: no identities ([spiffe://cluster.local/ns/default/sa/sleep]) "
        "matched test/sleep"
    )
    # Nor may a token of one namespace claim the node of another.
    refused = await refusal(
        control_plane.tls_target,
        tls(root, bearer=token("test", "httpbin")),
        f"sidecar~10.244.0.9~{EXTERNAL_SLEEP_POD}.default~default.svc.cluster.local",
        {},
    )
    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "matched default/" in (refused.details() or "")
    assert control_plane.ads.status() == []


def proxy_status(address: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["proxy-status", "--xds-address", address])
    assert code == 0
    return out.getvalue()


async def test_proxy_status_on_the_plaintext_port_lists_the_authenticated_proxies(
    control_plane: ControlPlane, root: Signer
) -> None:
    auth = tls(root, bearer=token("test", "httpbin"))
    async with running_client(
        control_plane.tls_target, HTTPBIN_NODE, Recorder(), auth=lambda _code: auth
    ) as client:
        await synced(client)
        async with asyncio.timeout(10):  # the last ACKs reach the server
            while not all(
                t.state is SyncState.SYNCED for s in control_plane.ads.status() for t in s.types
            ):
                await asyncio.sleep(0.01)
        text = await asyncio.to_thread(proxy_status, control_plane.plain_target)
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("NAME ")
    assert lines[1].startswith(f"{HTTPBIN_POD}.test ")
    assert lines[1].count("SYNCED") == 4


# --- the sidecar's own credentials -------------------------------------------------


@dataclass
class PodFiles:
    root_dir: Path
    root_cert: Path
    token: Path


@pytest.fixture
def pod_files(tmp_path: Path, root: Signer) -> PodFiles:
    root_cert = tmp_path / "root-cert.pem"
    root_cert.write_bytes(root.root_pem)
    token_path = tmp_path / "istio-token"
    token_path.write_text(token("test", "httpbin"))
    pod_root = tmp_path / "pod"
    pod_root.mkdir()
    return PodFiles(pod_root, root_cert, token_path)


def sidecar_for(files: PodFiles, ca_address: str | None) -> Sidecar:
    config = AgentConfig(
        pod_name=HTTPBIN_POD,
        namespace="test",
        service_account="httpbin",
        root_cert_path=str(files.root_cert),
        ca_address=ca_address,
        token_path=str(files.token),
        root_dir=str(files.root_dir),
    )
    # The address decides TLS; the tests connect the client to the test's port.
    options = SidecarOptions(
        node_id=HTTPBIN_NODE,
        agent=config,
        xds_address="istiod.istio-system.svc:15012",
        metadata=HTTPBIN_META,
    )
    return Sidecar(options)


async def test_the_sidecar_uses_its_token_before_it_has_a_certificate(
    control_plane: ControlPlane, pod_files: PodFiles
) -> None:
    sidecar = sidecar_for(pod_files, ca_address=None)  # no CA: never a certificate
    source = sidecar._xds_auth_source()
    assert source is not None
    auth = source(None)
    assert auth.metadata == (("authorization", f"Bearer {pod_files.token.read_text()}"),)
    async with running_client(
        control_plane.tls_target, HTTPBIN_NODE, Recorder(), auth=source
    ) as client:
        await synced(client)


async def test_the_sidecar_presents_its_workload_certificate_once_it_has_one(
    control_plane: ControlPlane, pod_files: PodFiles
) -> None:
    ca_port = control_plane.tls_target.rsplit(":", 1)[1]
    sidecar = sidecar_for(pod_files, ca_address=f"127.0.0.1:{ca_port}")
    assert sidecar.options.agent is not None
    sidecar.agent = Agent(sidecar.options.agent)
    await sidecar.agent.start()
    try:
        assert sidecar.agent.workload is not None
        async with asyncio.timeout(10):
            await sidecar.agent.workload.wait_ready()
        source = sidecar._xds_auth_source()
        assert source is not None
        assert source(None).metadata == ()  # the certificate, not the token
        pod_files.token.unlink()  # from now on only the certificate can prove who it is
        async with running_client(
            control_plane.tls_target, HTTPBIN_NODE, Recorder(), auth=source
        ) as client:
            await synced(client)
        # A stream refused with the certificate tries the token next.
        pod_files.token.write_text("rotated-token")
        retry = source(Status.UNAUTHENTICATED)
        assert retry.metadata == (("authorization", "Bearer rotated-token"),)
        assert source(None).metadata == ()  # and the certificate again after that
    finally:
        await sidecar.agent.stop()
        if sidecar.agent.workload is not None:
            await sidecar.agent.workload.aclose()
