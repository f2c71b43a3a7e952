"""``meshlet proxy-status`` with no address: the local cluster's control plane, asked
through its daemon (the xDS port listens in the cluster's namespace, not the host's)."""

from __future__ import annotations

from meshlet.xds.status import DISPLAY_TYPES, ProxyStatus, SyncState, TypeStatus, syncz_response
from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster

NODE = "sidecar~10.244.0.7~httpbin-5bbdbd6588-z9vbs.test~test.svc.cluster.local"


def test_the_local_cluster_answers_when_no_address_is_given(
    cluster: FakeCluster, meshlet: Run
) -> None:
    synced = tuple(TypeStatus(t, SyncState.SYNCED, "v1", "v1") for t in DISPLAY_TYPES)
    status = ProxyStatus(NODE, "Kubernetes", "0.1.0", synced)
    cluster.syncz_answer = syncz_response(
        [status], control_plane_id="istiod-local", version="0.1.0", nonce="n"
    ).SerializeToString()
    result = meshlet("proxy-status")
    assert result.code == 0, result.err
    header, row = result.out.splitlines()
    assert header.split() == [
        "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"
    ]  # fmt: skip
    assert row.split()[:3] == ["httpbin-5bbdbd6588-z9vbs.test", "Kubernetes", "SYNCED"]
    assert "istiod-local" in row
    assert [op for op, _ in cluster.calls] == ["proxy_status"]


def test_no_local_cluster_says_so(cluster: FakeCluster, meshlet: Run) -> None:
    cluster.unavailable = True
    result = meshlet("proxy-status")
    assert result.code == 3
    assert "meshlet is not running" in result.err
