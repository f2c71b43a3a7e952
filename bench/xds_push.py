"""How fast a one-Service change reaches 200 proxies over real ADS streams.

Run from the repository root: ``.venv/bin/python bench/xds_push.py``. It builds a mesh
of 1,000 Services (2 ports each, one pod each, 50 namespaces, mesh mTLS STRICT), starts
the ADS server on loopback in this process and 200 real ``XdsClient``s (the proxy's
own client, validating every response) in client processes, waits until all are
synced, then changes one Service twice:

- *endpoint*: the Service's pod moves to another IP (an EDS change);
- *port*: the Service gets a third port (clusters, endpoints, listeners and routes).

For each it reports the time from ``update_snapshot`` until every affected proxy has
ACKed its new config (p50, p99, max; the 100 ms debounce included), until the server
had built and queued every push ("pushed"), the build time per proxy, the CPU time the
server and the client processes spent, and the server's memory. Bounded: each phase
has a timeout.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- client processes ---------------------------------------------------------------------


def run_clients(target: str, nodes: list[str], duration: float) -> None:
    """Run one ``XdsClient`` per node until ``duration`` passes (a client process)."""
    import asyncio

    import uvloop

    from meshlet.proxy.xds_client import Backoff, XdsClient

    async def main() -> None:
        cache: dict[bytes, tuple[str, ...]] = {}
        clients = [
            XdsClient(
                target,
                node,
                lambda *_: None,
                metadata={"ISTIO_VERSION": "bench", "CLUSTER_ID": "Kubernetes"},
                backoff=Backoff(initial=0.2, maximum=1.0),
                validation_cache=cache,
            )
            for node in nodes
        ]
        tasks = [asyncio.get_running_loop().create_task(c.run()) for c in clients]
        await asyncio.sleep(duration)
        for client in clients:
            await client.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        nacks = sum(c.nacks for c in clients)
        print(f"client process: {len(clients)} clients, {nacks} NACKs", flush=True)

    uvloop.run(main())


# --- the server side ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--proxies", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--profile", help="write the server's cProfile of the changes here")
    parser.add_argument("--client-of", help=argparse.SUPPRESS)
    parser.add_argument("--nodes", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_of:
        run_clients(args.client_of, args.nodes.split(","), args.duration)
        return

    from pilot_build import big_mesh

    mesh = big_mesh(args.services)
    proxies = [mesh.proxy(f"ns{i % 50}", f"svc{i}-0") for i in range(args.proxies)]
    nodes = [p.id for p in proxies]
    port = _free_port()
    target = f"127.0.0.1:{port}"
    # Client processes start before this one imports grpc (no fork after grpc threads).
    chunks = [nodes[i :: args.processes] for i in range(args.processes)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--client-of",
                target,
                "--nodes",
                ",".join(chunk),
                "--duration",
                str(args.timeout),
            ],
            cwd=ROOT,
        )
        for chunk in chunks
    ]
    try:
        import uvloop

        uvloop.run(_serve_and_measure(mesh, nodes, port, args, [c.pid for c in children]))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time so far of the given processes (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def _serve_and_measure(mesh, nodes, port, args, client_pids) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    from dataclasses import replace

    from meshlet.pilot.snapshot import Workload
    from meshlet.xds.cache import BuildCache, build_proxy_config
    from meshlet.xds.server import AdsServer
    from meshlet.xds.status import SyncState

    acks: dict[str, float] = {}

    def on_ack(node: str, _type_url: str, _version: str) -> None:
        acks[node] = time.monotonic()

    rss_before = _rss_mb()
    server = AdsServer(mesh, on_ack=on_ack)
    await server.start("127.0.0.1", port)
    wanted = set(nodes)

    async def all_synced(timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while True:
                statuses = {s.node_id: s for s in server.status()}
                if wanted <= statuses.keys() and all(
                    all(t.state is SyncState.SYNCED for t in statuses[n].types) for n in wanted
                ):
                    return
                await asyncio.sleep(0.2)  # the check walks every stream: not too often

    start = time.monotonic()
    cpu = (time.process_time(), _cpu_seconds(client_pids))
    await all_synced(args.timeout)
    print(
        f"initial sync of {len(nodes)} proxies: {time.monotonic() - start:.1f} s "
        f"(each proxy's config built, sent and validated; CPU s: server "
        f"{time.process_time() - cpu[0]:.1f}, clients {_cpu_seconds(client_pids) - cpu[1]:.1f})"
    )
    first, further = [], []
    for _ in range(3):
        cache = BuildCache(mesh)
        t0 = time.perf_counter()
        build_proxy_config(mesh.proxy("ns0", "svc0-0"), mesh, cache=cache)
        first.append(time.perf_counter() - t0)
        for i in range(1, 50):
            proxy = mesh.proxy(f"ns{i % 50}", f"svc{i}-0")
            t0 = time.perf_counter()
            build_proxy_config(proxy, mesh, cache=cache)
            further.append(time.perf_counter() - t0)
    print(
        f"full build, one proxy of this mesh: {statistics.median(first) * 1000:.0f} ms alone "
        f"(it builds every shared piece); then {statistics.median(further) * 1000:.2f} ms "
        f"for a proxy of another namespace, which shares them"
    )
    print(f"server RSS: {_rss_mb():.0f} MB ({rss_before:.0f} MB before the server started)")

    target = mesh.services[len(mesh.services) // 2]

    def moved_endpoint(snapshot):  # type: ignore[no-untyped-def]
        def move(w: Workload) -> Workload:
            return replace(w, ip="10.250.0.9")

        services = tuple(
            replace(s, endpoints=tuple(move(w) for w in s.endpoints)) if s is target else s
            for s in snapshot.services
        )
        workloads = tuple(
            move(w) if any(w is e for e in target.endpoints) else w for w in snapshot.workloads
        )
        return replace(snapshot, services=services, workloads=workloads)

    def added_port(snapshot):  # type: ignore[no-untyped-def]
        current = next(s for s in snapshot.services if s.hostname == target.hostname)
        extra = replace(current.ports[0], name="http-alt", port=8081, target_port=8080)
        services = tuple(
            replace(s, ports=(*s.ports, extra)) if s.hostname == target.hostname else s
            for s in snapshot.services
        )
        return replace(snapshot, services=services)

    print(f"\nchanged Service: {target.hostname}")
    print(
        "change      affected  p50 ms   p99 ms   max ms  pushed ms  "
        "build/proxy ms (p50/max)  CPU s server/clients  RSS MB"
    )
    snapshot = mesh
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    for label, change in (("endpoint", moved_endpoint), ("port", added_port)):
        snapshot = change(snapshot)
        acks.clear()
        cpu = (time.process_time(), _cpu_seconds(client_pids))
        t0 = time.monotonic()
        server.update_snapshot(snapshot)
        async with asyncio.timeout(args.timeout):
            await server.wait_pushed()
        pushed = (time.monotonic() - t0) * 1000
        await all_synced(args.timeout)
        latencies = [(at - t0) * 1000 for at in acks.values()]
        builds = [s * 1000 for s in server.last_build_seconds]
        cpu_server = time.process_time() - cpu[0]
        cpu_clients = _cpu_seconds(client_pids) - cpu[1]
        print(
            f"{label:<10}  {len(latencies):>8}  {_pct(latencies, 0.5):7.0f}  "
            f"{_pct(latencies, 0.99):7.0f}  {max(latencies):7.0f}  {pushed:8.0f}   "
            f"{statistics.median(builds):7.2f} / {max(builds):7.2f}     "
            f"{cpu_server:8.1f} / {cpu_clients:5.1f}    {_rss_mb():5.0f}"
        )
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    await server.stop(grace=0)


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
