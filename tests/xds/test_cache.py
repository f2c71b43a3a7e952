"""Per-proxy config as versioned bytes, and incremental updates that equal full builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.endpoints import build_endpoints
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes, registry_only
from meshlet.pilot.snapshot import MeshService, Proxy, Snapshot, Workload, build_snapshot
from meshlet.resources import istio, k8s
from meshlet.resources.mesh import MeshSettings
from meshlet.xds.cache import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    BuildCache,
    Interner,
    ProxyConfig,
    TypeResources,
    build_proxy_config,
    encode_response,
    parse_node_id,
    proxy_for_node,
    snapshot_impact,
    update_proxy_config,
)
from meshlet.xds.stream import discovery_response
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


# --- shared building: a mesh with several views of proxies ------------------------------

_ROOT = "istio-system"


def _pod_spec(service_account: str) -> k8s.PodSpec:
    container = k8s.Container(
        name="app",
        image="app",
        command=(),
        args=(),
        env=(),
        ports=(
            k8s.ContainerPort(container_port=8080, name="http-web", protocol="TCP"),
            k8s.ContainerPort(container_port=9000, name="tcp-db", protocol="TCP"),
        ),
        volume_mounts=(),
        image_pull_policy=None,
    )
    return k8s.PodSpec(
        containers=(container,),
        init_containers=(),
        volumes=(),
        service_account_name=service_account,
        termination_grace_period_seconds=None,
    )


# (namespace, name, ports as (name, port, target), sidecar on its pod, headless)
_SERVICES = (
    ("a", "web", (("http", 80, 8080), ("tcp-db", 5432, 9000)), True, False),
    ("a", "db", (("tcp", 5432, "tcp-db"),), True, False),
    ("b", "api", (("http", 80, 8080), ("grpc", 9090, 9000)), True, False),
    ("b", "stateful", (("http", 80, 8080),), True, True),
    ("c", "legacy", (("http", 80, 8080), ("tcp", 3306, 9000)), False, False),
    ("c", "named", (("http-alt", 8000, "http-web"), ("mongo", 27017, 9000)), True, False),
)


def mixed_mesh() -> Snapshot:
    """Services in three namespaces, seen through different Sidecar scopes, mTLS modes
    and DestinationRules (some with workload selectors and exportTo)."""
    services, pods, ips, vips, with_sidecar = [], [], {}, {}, []
    for index, (namespace, name, ports, sidecar, headless) in enumerate(_SERVICES):
        services.append(
            k8s.Service(
                name=name,
                namespace=namespace,
                labels={},
                selector={"app": name},
                ports=tuple(k8s.ServicePort(n, p, t, "TCP", None) for n, p, t in ports),
                cluster_ip="None" if headless else None,
                type="ClusterIP",
            )
        )
        for replica in range(2):
            pod = f"{name}-{replica}"
            pods.append(k8s.Pod(pod, namespace, {"app": name}, {}, _pod_spec(f"sa-{name}")))
            ips[(namespace, pod)] = f"10.244.{index}.{replica + 10}"
            if sidecar:
                with_sidecar.append((namespace, pod))
        if not headless:
            vips[(namespace, name)] = f"10.96.{index}.1"
    sidecars = [
        istio.Sidecar(
            "scoped",
            "b",
            egress=(istio.IstioEgressListener(hosts=("./*", "a/web.a.svc.cluster.local")),),
            outbound_traffic_policy="REGISTRY_ONLY",
        ),
        istio.Sidecar(
            "named-only",
            "c",
            workload_selector={"app": "named"},
            egress=(istio.IstioEgressListener(hosts=("*/*.c.svc.cluster.local", "~/*")),),
        ),
    ]
    policies = [
        istio.PeerAuthentication("default", _ROOT, None, istio.MTLSMode.STRICT),
        istio.PeerAuthentication("off", "c", None, istio.MTLSMode.DISABLE),
    ]
    rules = [
        istio.DestinationRule(
            "web-plain-for-db",
            "a",
            host="web",
            tls=istio.ClientTLSSettings(mode=istio.ClientTLSMode.DISABLE),
            workload_selector={"app": "db"},
        ),
        istio.DestinationRule(
            "api-mtls",
            "b",
            host="api.b.svc.cluster.local",
            port_level_tls={9090: istio.ClientTLSSettings(mode=istio.ClientTLSMode.DISABLE)},
            tls=istio.ClientTLSSettings(mode=istio.ClientTLSMode.ISTIO_MUTUAL),
            export_to=(".",),
        ),
        istio.DestinationRule(
            "c-simple",
            _ROOT,
            host="*.c.svc.cluster.local",
            tls=istio.ClientTLSSettings(
                mode=istio.ClientTLSMode.SIMPLE, ca_certificates="/etc/ca.pem", sni="legacy"
            ),
        ),
    ]
    return build_snapshot(
        services=services,
        pods=pods,
        sidecars=sidecars,
        peer_authentications=policies,
        destination_rules=rules,
        mesh=MeshSettings(),
        pod_ips=ips,
        service_vips=vips,
        pods_with_sidecar=with_sidecar,
    )


def _from_builders(proxy: Proxy, snapshot: Snapshot) -> dict[str, dict[str, bytes]]:
    """What the pilot builders give for the whole proxy, as resource bytes by name."""
    built = {
        CLUSTER_TYPE: build_clusters(proxy, snapshot),
        LISTENER_TYPE: build_listeners(proxy, snapshot),
        ENDPOINT_TYPE: build_endpoints(proxy, snapshot),
        ROUTE_TYPE: build_routes(proxy, snapshot),
    }
    return {t: dict(TypeResources.from_messages(t, m).data) for t, m in built.items()}


def _assert_same(config: ProxyConfig, proxy: Proxy, snapshot: Snapshot, step: str) -> None:
    expected = _from_builders(proxy, snapshot)
    fresh = {t: TypeResources.from_messages(t, []) for t in TYPES}
    for type_url in TYPES:
        resources = config.of(type_url)
        assert resources is not None
        assert dict(resources.data) == expected[type_url], (step, proxy.id, type_url)
        again = fresh[type_url].replace_named((), resources)
        assert resources.version == again.version, (step, proxy.id, type_url)
        version = TypeResources.from_messages(
            type_url, _messages(type_url, expected[type_url])
        ).version
        assert resources.version == version, (step, proxy.id, type_url)


def _messages(type_url: str, data: dict[str, bytes]) -> list[Message]:
    kinds: dict[str, type[Message]] = {
        CLUSTER_TYPE: cluster_pb2.Cluster,
        LISTENER_TYPE: listener_pb2.Listener,
        ENDPOINT_TYPE: endpoint_pb2.ClusterLoadAssignment,
        ROUTE_TYPE: route_pb2.RouteConfiguration,
    }
    return [kinds[type_url].FromString(raw) for raw in data.values()]


def test_the_mixed_mesh_has_several_views() -> None:
    snapshot = mixed_mesh()
    proxies = snapshot.proxies()
    assert len(proxies) == 10
    seen = {tuple(c.name for c in build_listeners(p, snapshot)[1].filter_chains) for p in proxies}
    assert len(seen) >= 3  # whole mesh, the Sidecar of b, the Sidecar of named in c
    assert any(registry_only(p) for p in proxies)


def test_proxies_sharing_one_cache_get_the_bytes_of_the_builders() -> None:
    snapshot = mixed_mesh()
    cache = BuildCache(snapshot)
    for proxy in snapshot.proxies():
        _assert_same(build_proxy_config(proxy, snapshot, cache=cache), proxy, snapshot, "first")
    # A second pass reads only the memo tables: still the same bytes.
    for proxy in reversed(snapshot.proxies()):
        _assert_same(build_proxy_config(proxy, snapshot, cache=cache), proxy, snapshot, "again")


def test_proxies_of_one_view_share_the_outbound_config() -> None:
    snapshot = mixed_mesh()
    cache = BuildCache(snapshot)
    web0 = build_proxy_config(snapshot.proxy("a", "web-0"), snapshot, cache=cache)
    web1 = build_proxy_config(snapshot.proxy("a", "web-1"), snapshot, cache=cache)
    api0 = build_proxy_config(snapshot.proxy("b", "api-0"), snapshot, cache=cache)
    assert web0.listeners.data["virtualOutbound"] is web1.listeners.data["virtualOutbound"]
    assert web0.endpoints is web1.endpoints
    assert web0.routes is web1.routes
    assert web0.listeners.data["virtualInbound"] != api0.listeners.data["virtualInbound"]
    assert web0.listeners.data["virtualOutbound"] != api0.listeners.data["virtualOutbound"]
    # The DestinationRule with a selector gives db proxies their own view of web.
    db0 = build_proxy_config(snapshot.proxy("a", "db-0"), snapshot, cache=cache)
    name = "outbound|80||web.a.svc.cluster.local"
    assert db0.clusters.data[name] != web0.clusters.data[name]


def _service_change(
    snapshot: Snapshot, namespace: str, name: str, change: Callable[[MeshService], MeshService]
) -> Snapshot:
    return replace(
        snapshot,
        services=tuple(
            change(s) if (s.namespace, s.name) == (namespace, name) else s
            for s in snapshot.services
        ),
    )


def _moved_pod(snapshot: Snapshot) -> Snapshot:
    def move(w: Workload) -> Workload:
        return replace(w, ip="10.250.0.9") if w.name == "api-1" else w

    moved = replace(snapshot, workloads=tuple(move(w) for w in snapshot.workloads))
    return _service_change(
        moved, "b", "api", lambda s: replace(s, endpoints=tuple(move(w) for w in s.endpoints))
    )


def _extra_port(service: MeshService) -> MeshService:
    extra = replace(service.ports[0], name="http-alt", port=8081, target_port=8080)
    return replace(service, ports=(*service.ports, extra))


def _new_service(snapshot: Snapshot) -> Snapshot:
    template = next(s for s in snapshot.services if s.name == "legacy")
    added = replace(template, name="fresh", namespace="b", vip="10.96.9.9", endpoints=())
    services = sorted((*snapshot.services, added), key=lambda s: s.hostname)
    return replace(snapshot, services=tuple(services))


def _changed_rule(snapshot: Snapshot) -> Snapshot:
    rules = tuple(
        replace(r, tls=istio.ClientTLSSettings(mode=istio.ClientTLSMode.ISTIO_MUTUAL))
        if r.name == "c-simple"
        else r
        for r in snapshot.destination_rules
    )
    return replace(snapshot, destination_rules=rules)


def _rebuilt(snapshot: Snapshot) -> Snapshot:
    """The same mesh as new, equal objects (as a controller that rebuilds its snapshot)."""
    return replace(
        snapshot,
        services=tuple(replace(s) for s in snapshot.services),
        workloads=tuple(replace(w) for w in snapshot.workloads),
    )


STEPS: tuple[tuple[str, Callable[[Snapshot], Snapshot]], ...] = (
    ("endpoint moved", _moved_pod),
    ("port added", lambda s: _service_change(s, "a", "web", _extra_port)),
    (
        "port added out of a Sidecar's scope",
        lambda s: _service_change(s, "c", "legacy", _extra_port),
    ),
    ("VIP changed", lambda s: _service_change(s, "a", "db", lambda x: replace(x, vip="10.96.7.7"))),
    ("service added", _new_service),
    ("equal objects", _rebuilt),
    (
        "service removed",
        lambda s: replace(s, services=tuple(x for x in s.services if x.name != "web")),
    ),
    ("rule changed", _changed_rule),
    ("sidecar changed", lambda s: replace(s, sidecars=s.sidecars[:1])),
    ("nothing", lambda s: s),
)


def test_a_chain_of_changes_through_one_advancing_cache_gives_the_builders_bytes() -> None:
    snapshot = mixed_mesh()
    cache = BuildCache(snapshot)
    configs = {p.id: build_proxy_config(p, snapshot, cache=cache) for p in snapshot.proxies()}
    for step, change in STEPS:
        new = change(snapshot)
        impact = snapshot_impact(snapshot, new)
        cache = cache.advance(new)
        for proxy in new.proxies():
            configs[proxy.id] = update_proxy_config(
                configs.get(proxy.id), proxy, new, impact, cache=cache
            )
            _assert_same(configs[proxy.id], proxy, new, step)
        snapshot = new


def test_advancing_keeps_the_views_no_change_touches() -> None:
    snapshot = mixed_mesh()
    cache = BuildCache(snapshot)
    proxy = snapshot.proxy("a", "web-0")
    before = build_proxy_config(proxy, snapshot, cache=cache)
    moved = _moved_pod(snapshot)
    after = build_proxy_config(proxy, moved, cache=cache.advance(moved))
    assert after.listeners.data["virtualOutbound"] is before.listeners.data["virtualOutbound"]
    assert after.routes is before.routes
    assert after.endpoints is not before.endpoints
    name = "outbound|80||web.a.svc.cluster.local"
    assert after.clusters.data[name] is before.clusters.data[name]  # a piece kept
    grown = _service_change(snapshot, "a", "web", _extra_port)
    again = build_proxy_config(proxy, grown, cache=cache.advance(grown))
    assert again.listeners.data["virtualOutbound"] != before.listeners.data["virtualOutbound"]


def test_a_cache_of_another_snapshot_is_refused() -> None:
    snapshot = mixed_mesh()
    other = _moved_pod(snapshot)
    with pytest.raises(ValueError, match="another snapshot"):
        build_proxy_config(snapshot.proxy("a", "web-0"), other, cache=BuildCache(snapshot))


def test_a_response_from_records_is_the_response_built_from_messages() -> None:
    snapshot = mixed_mesh()
    config = build_proxy_config(snapshot.proxy("a", "web-0"), snapshot)
    interner = Interner()
    for type_url in TYPES:
        resources = config.of(type_url)
        assert resources is not None
        names = list(resources.names())
        expected = discovery_response(type_url, "v1", (resources.data[n] for n in names))
        for _ in range(2):  # made, then from the interner's records
            response = encode_response(type_url, "v1", resources, names, interner)
            response.nonce = expected.nonce
            assert response.SerializeToString(deterministic=True) == (
                expected.SerializeToString(deterministic=True)
            )


def test_version_of_all_names_is_the_version() -> None:
    snapshot = mixed_mesh()
    endpoints = build_proxy_config(snapshot.proxy("a", "web-0"), snapshot).endpoints
    assert endpoints.version_of(set(endpoints.data)) == endpoints.version
    assert endpoints.version_of([*endpoints.data, "ghost"]) == endpoints.version
    assert endpoints.version_of(frozenset()) == TypeResources(ENDPOINT_TYPE).version
