"""Per-proxy config as versioned bytes, and incremental updates that equal full builds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshlet.pilot.snapshot import Snapshot
from meshlet.xds.cache import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Interner,
    build_proxy_config,
    parse_node_id,
    proxy_for_node,
    snapshot_impact,
    update_proxy_config,
)
from tests.pilot.scenario import HTTPBIN_POD, httpbin_proxy, scenario_snapshot, sleep_proxy
from tests.xds.helpers import with_default_endpoint

TYPES = (CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE)


def test_same_snapshot_same_versions_and_a_change_a_new_one() -> None:
    snapshot = scenario_snapshot()
    first = build_proxy_config(httpbin_proxy(snapshot), snapshot)
    again = build_proxy_config(httpbin_proxy(scenario_snapshot()), scenario_snapshot())
    for type_url in TYPES:
        assert first.of(type_url).version == again.of(type_url).version  # type: ignore[union-attr]
        assert len(first.of(type_url).version) == 16  # type: ignore[union-attr]
    changed_snapshot = with_default_endpoint(snapshot, "ingress-sidecar", "127.0.0.1:8081")
    changed = build_proxy_config(httpbin_proxy(changed_snapshot), changed_snapshot)
    assert changed.clusters.version != first.clusters.version
    assert changed.endpoints.version == first.endpoints.version


def test_version_of_named_resources_depends_only_on_them() -> None:
    snapshot = scenario_snapshot()
    config = build_proxy_config(sleep_proxy(snapshot), snapshot)
    names = list(config.endpoints.data)
    assert config.endpoints.version_of(names) == config.endpoints.version
    one = config.endpoints.version_of(names[:1])
    assert one != config.endpoints.version
    assert config.endpoints.version_of([*names[:1], "no-such-cluster"]) == one


def test_equal_bytes_are_shared_between_proxies() -> None:
    snapshot = scenario_snapshot()
    interner = Interner()
    a = build_proxy_config(httpbin_proxy(snapshot), snapshot, interner)
    b = build_proxy_config(sleep_proxy(snapshot), snapshot, interner)
    name = "outbound|8080||httpbin.test.svc.cluster.local"
    assert a.clusters.data[name] is b.clusters.data[name]


def test_node_ids_are_read_as_istio_writes_them() -> None:
    ref = parse_node_id(f"sidecar~10.244.0.7~{HTTPBIN_POD}.test~test.svc.cluster.local")
    assert ref is not None
    assert (ref.kind, ref.ip, ref.pod, ref.namespace) == (
        "sidecar",
        "10.244.0.7",
        HTTPBIN_POD,
        "test",
    )
    assert ref.name == f"{HTTPBIN_POD}.test"
    assert parse_node_id("httpbin") is None
    assert parse_node_id("sidecar~1.2.3.4~nodots~x") is None
    snapshot = scenario_snapshot()
    assert proxy_for_node(httpbin_proxy(snapshot).id, snapshot) == httpbin_proxy(snapshot)
    assert proxy_for_node("sidecar~1.1.1.1~ghost.test~test.svc.cluster.local", snapshot) is None


def _move_httpbin(snapshot: Snapshot, ip: str) -> Snapshot:
    workloads = tuple(replace(w, ip=ip) if w.name == HTTPBIN_POD else w for w in snapshot.workloads)
    services = tuple(
        replace(
            s,
            endpoints=tuple(replace(w, ip=ip) if w.name == HTTPBIN_POD else w for w in s.endpoints),
        )
        for s in snapshot.services
    )
    return replace(snapshot, workloads=workloads, services=services)


def _add_port(snapshot: Snapshot) -> Snapshot:
    services = []
    for service in snapshot.services:
        if service.name == "httpbin":
            extra = replace(service.ports[0], name="http-extra", port=7070, target_port=9081)
            services.append(replace(service, ports=(*service.ports, extra)))
        else:
            services.append(service)
    return replace(snapshot, services=tuple(services))


def _drop_service(snapshot: Snapshot) -> Snapshot:
    return replace(
        snapshot,
        services=tuple(
            s for s in snapshot.services if (s.name, s.namespace) != ("sleep", "default")
        ),
    )


CHANGES = {
    "endpoint moved": lambda s: _move_httpbin(s, "10.244.0.70"),
    "port added": _add_port,
    "service removed": _drop_service,
    "sidecar changed": lambda s: with_default_endpoint(s, "ingress-sidecar", "127.0.0.1:8081"),
    "nothing": lambda s: s,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("who", ["httpbin", "sleep"])
def test_an_incremental_update_gives_the_bytes_of_a_full_build(change: str, who: str) -> None:
    old = scenario_snapshot()
    new = CHANGES[change](old)
    pick = httpbin_proxy if who == "httpbin" else sleep_proxy
    previous = build_proxy_config(pick(old), old)
    impact = snapshot_impact(old, new)
    updated = update_proxy_config(previous, pick(new), new, impact)
    expected = build_proxy_config(pick(new), new)
    for type_url in TYPES:
        assert dict(updated.of(type_url).data) == dict(expected.of(type_url).data), type_url  # type: ignore[union-attr]
        assert updated.of(type_url).version == expected.of(type_url).version  # type: ignore[union-attr]


def test_impact_says_what_changed() -> None:
    old = scenario_snapshot()
    assert snapshot_impact(None, old).full
    assert snapshot_impact(old, old).empty
    moved = snapshot_impact(old, _move_httpbin(old, "10.244.0.70"))
    assert moved.services == {"httpbin.test.svc.cluster.local"}
    assert not moved.shape and not moved.full
    assert moved.workloads == {("test", HTTPBIN_POD)}
    assert snapshot_impact(old, _add_port(old)).shape
    assert snapshot_impact(old, with_default_endpoint(old, "ingress-sidecar", "127.0.0.1:1")).full
