"""Golden files: the reference scenario's config for httpbin and the in-mesh sleep.

Rewrite them with ``MESHLET_UPDATE_GOLDEN=1``. A mismatch shows a unified diff. Each
golden is also parsed back strictly as Envoy v3 protos (an unknown field is an error),
so the files stay real Envoy config and not merely unchanged output.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.endpoints import build_endpoints
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from meshlet.pilot.snapshot import Proxy, Snapshot
from tests.pilot.scenario import httpbin_proxy, scenario_snapshot, sleep_proxy

GOLDEN = Path(__file__).parent / "golden"

Builder = Callable[[Proxy, Snapshot], Sequence[Message]]
KINDS: dict[str, tuple[Builder, type[Message]]] = {
    "listeners": (build_listeners, listener_pb2.Listener),
    "clusters": (build_clusters, cluster_pb2.Cluster),
    "routes": (build_routes, route_pb2.RouteConfiguration),
    "endpoints": (build_endpoints, endpoint_pb2.ClusterLoadAssignment),
}
PROXIES = {"httpbin": httpbin_proxy, "sleep": sleep_proxy}


def render(messages: Sequence[Message]) -> str:
    items = [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in messages]
    return json.dumps(items, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("workload", sorted(PROXIES))
def test_golden(workload: str, kind: str) -> None:
    snapshot = scenario_snapshot()
    build, _ = KINDS[kind]
    actual = render(build(PROXIES[workload](snapshot), snapshot))
    path = GOLDEN / f"{workload}.{kind}.json"
    if os.environ.get("MESHLET_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    expected = path.read_text() if path.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"golden/{path.name}",
                tofile="built",
            )
        )
        pytest.fail(
            f"{path.name} differs (rewrite with MESHLET_UPDATE_GOLDEN=1):\n{diff}", pytrace=False
        )


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("workload", sorted(PROXIES))
def test_golden_parses_strictly_as_envoy_v3(workload: str, kind: str) -> None:
    _, message_type = KINDS[kind]
    items = json.loads((GOLDEN / f"{workload}.{kind}.json").read_text())
    assert items, "a golden file holds at least one resource"
    for item in items:
        message = json_format.ParseDict(item, message_type(), ignore_unknown_fields=False)
        assert message.ByteSize() > 0


def test_strict_parse_refuses_an_unknown_field() -> None:
    items = json.loads((GOLDEN / "httpbin.listeners.json").read_text())
    items[0]["filter_chains"][0]["not_an_envoy_field"] = True
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(items[0], listener_pb2.Listener(), ignore_unknown_fields=False)
