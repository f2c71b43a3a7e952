"""How long building one sidecar's config takes: the reference scenario, and a big mesh.

Run from the repository root: ``.venv/bin/python bench/pilot_build.py``. Prints the time
per proxy (listeners + clusters + routes + endpoints) for httpbin and sleep of the
reference scenario, and for proxies of a mesh of 1,000 Services (2 ports each, one pod
each, 50 namespaces): with the pilot builders alone, and as the control plane builds
it (``xds.cache.build_proxy_config`` with one ``BuildCache`` shared by the proxies of a
snapshot): the first proxy, which builds every shared piece, then the others. Bounded:
a fixed number of rounds.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pilot.scenario import httpbin_proxy, scenario_snapshot, sleep_proxy

from meshlet.pilot.clusters import build_clusters
from meshlet.pilot.endpoints import build_endpoints
from meshlet.pilot.listeners import build_listeners
from meshlet.pilot.routes import build_routes
from meshlet.pilot.snapshot import Proxy, Snapshot, build_snapshot
from meshlet.resources import istio, k8s
from meshlet.resources.mesh import MeshSettings
from meshlet.xds.cache import BuildCache, build_proxy_config


def build_all(proxy: Proxy, snapshot: Snapshot) -> int:
    return (
        len(build_listeners(proxy, snapshot))
        + len(build_clusters(proxy, snapshot))
        + len(build_routes(proxy, snapshot))
        + len(build_endpoints(proxy, snapshot))
    )


def measure(proxy: Proxy, snapshot: Snapshot, rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        build_all(proxy, snapshot)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000


def big_mesh(services: int = 1000, namespaces: int = 50) -> Snapshot:
    spec = k8s.PodSpec(
        containers=(
            k8s.Container(
                name="app",
                image="app",
                command=(),
                args=(),
                env=(),
                ports=(
                    k8s.ContainerPort(container_port=8080, name="http", protocol="TCP"),
                    k8s.ContainerPort(container_port=9000, name="grpc", protocol="TCP"),
                ),
                volume_mounts=(),
                image_pull_policy=None,
            ),
        ),
        init_containers=(),
        volumes=(),
        service_account_name="app",
        termination_grace_period_seconds=None,
    )
    svc_list, pods, ips, vips, sidecars = [], [], {}, {}, []
    for i in range(services):
        ns = f"ns{i % namespaces}"
        name = f"svc{i}"
        svc_list.append(
            k8s.Service(
                name=name,
                namespace=ns,
                labels={},
                selector={"app": name},
                ports=(
                    k8s.ServicePort("http", 80, 8080, "TCP", None),
                    k8s.ServicePort("tcp-db", 5432, 9000, "TCP", None),
                ),
                cluster_ip=None,
                type="ClusterIP",
            )
        )
        pod = f"{name}-0"
        pods.append(k8s.Pod(pod, ns, {"app": name}, {}, spec))
        ips[(ns, pod)] = f"10.244.{i // 250}.{i % 250 + 2}"
        vips[(ns, name)] = f"10.96.{i // 250}.{i % 250 + 2}"
        sidecars.append((ns, pod))
    policies = [istio.PeerAuthentication("default", "istio-system", None, istio.MTLSMode.STRICT)]
    return build_snapshot(
        services=svc_list,
        pods=pods,
        peer_authentications=policies,
        mesh=replace(MeshSettings(), enable_tls_on_sidecar_ingress=True),
        pod_ips=ips,
        service_vips=vips,
        pods_with_sidecar=sidecars,
    )


def main() -> None:
    snapshot = scenario_snapshot()
    print("proxy                              p50 ms    p99 ms")
    for label, proxy in (
        ("scenario httpbin", httpbin_proxy(snapshot)),
        ("scenario sleep", sleep_proxy(snapshot)),
    ):
        p50, p99 = measure(proxy, snapshot, 300)
        print(f"{label:<32} {p50:8.2f}  {p99:8.2f}")
    start = time.perf_counter()
    mesh = big_mesh()
    print(f"(1,000-service snapshot built in {(time.perf_counter() - start) * 1000:.0f} ms)")
    proxy = mesh.proxy("ns0", "svc0-0")
    p50, p99 = measure(proxy, mesh, 10)
    print(f"{'1,000 services, builders alone':<32} {p50:8.2f}  {p99:8.2f}")
    first, same_ns, other_ns = [], [], []
    for _ in range(5):
        cache = BuildCache(mesh)
        start = time.perf_counter()
        build_proxy_config(proxy, mesh, cache=cache)
        first.append(time.perf_counter() - start)
        for i in range(1, 200):
            other = mesh.proxy(f"ns{i % 50}", f"svc{i}-0")
            start = time.perf_counter()
            build_proxy_config(other, mesh, cache=cache)
            (same_ns if i >= 50 else other_ns).append(time.perf_counter() - start)
    for label, samples in (
        ("shared: first proxy", first),
        ("shared: new namespace", other_ns),
        ("shared: namespace seen", same_ns),
    ):
        samples.sort()
        p50 = statistics.median(samples) * 1000
        p99 = samples[max(0, int(len(samples) * 0.99) - 1)] * 1000
        print(f"{label:<32} {p50:8.2f}  {p99:8.2f}")


if __name__ == "__main__":
    main()
