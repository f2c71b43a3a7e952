"""Pods, Service VIPs and the sidecar's capture, on real namespaces (root only)."""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Address

import pytest

from meshlet.runtime.iptables import apply_capture_rules, apply_service_rules, save_tables
from meshlet.runtime.services import Endpoint, ServicePortRules

from .conftest import Processes, wait_ready

pytestmark = pytest.mark.integration

# A TCP server that answers every connection with its name and the peer's address.
SERVER = """
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
server = socket.create_server(("0.0.0.0", port))
print("ready", flush=True)
while True:
    conn, peer = server.accept()
    conn.sendall(f"{name} saw {peer[0]}".encode())
    conn.close()
"""

# A client that connects to HOST:PORT COUNT times and prints each reply (or the error).
CLIENT = """
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    try:
        with socket.create_connection((host, port), timeout=3) as conn:
            print(conn.recv(200).decode(), flush=True)
    except OSError as error:
        print(f"error {type(error).__name__}", flush=True)
"""

# A capture listener: accepts one connection and prints its SO_ORIGINAL_DST.
ORIGINAL_DST = """
import socket, struct, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
conn, peer = server.accept()
raw = conn.getsockopt(socket.SOL_IP, 80, 16)
port, address = struct.unpack_from("!H4s", raw, 2)
print(f"{socket.inet_ntoa(address)}:{port} from {peer[0]}", flush=True)
"""


def with_args(code: str, *args: object) -> str:
    return f"import sys; sys.argv = ['x', {', '.join(repr(str(a)) for a in args)}]\n{code}"


def run_client(processes: Processes, pod, host, port, count=1) -> list[str]:
    client = processes.in_netns(pod.netns_path, with_args(CLIENT, host, port, count))
    out, err = client.communicate(timeout=30)
    assert client.returncode == 0, err
    return out.splitlines()


def addresses_in(netns: str) -> list[str]:
    shown = subprocess.run(
        ["ip", "-n", netns, "-j", "address", "show", "dev", "eth0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [
        i["local"]
        for link in json.loads(shown.stdout)
        for i in link["addr_info"]
        if i["family"] == "inet"
    ]


def test_pods_have_their_own_addresses_and_reach_each_other(node, processes):
    a = node.add_pod("net-a")
    b = node.add_pod("net-b")
    assert a.ip != b.ip
    assert a.ip in node.config.pod_cidr and b.ip in node.config.pod_cidr
    assert addresses_in(a.netns) == [str(a.ip)]
    assert addresses_in(b.netns) == [str(b.ip)]
    # the node namespace has no way out: no default route, no link but loopback and veths
    routes = subprocess.run(
        ["ip", "-n", node.config.node_netns, "route", "show", "default"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert routes.stdout.strip() == ""
    server = processes.in_netns(a.netns_path, with_args(SERVER, "a", 8080))
    wait_ready(server)
    assert run_client(processes, b, a.ip, 8080) == [f"a saw {b.ip}"]
    # adding a pod again re-adopts it, with the same address
    assert node.add_pod("net-a") == a


def test_a_service_vip_reaches_the_pods_target_port(node, processes):
    web1 = node.add_pod("vip-web1")
    web2 = node.add_pod("vip-web2")
    client = node.add_pod("vip-client")
    vip = node.config.service_cidr.network_address + 20
    empty_vip = node.config.service_cidr.network_address + 21
    for pod, name in ((web1, "web1"), (web2, "web2")):
        wait_ready(processes.in_netns(pod.netns_path, with_args(SERVER, name, 8080)))
    rules = [
        ServicePortRules(
            "test", "web", vip, 80, "http",
            endpoints=(
                Endpoint(web1.ip, 8080),
                Endpoint(web2.ip, 8080),
                Endpoint(IPv4Address("10.255.255.254"), 8080, ready=False),
            ),
        ),
        ServicePortRules("test", "empty", empty_vip, 80, "http"),
    ]  # fmt: skip
    apply_service_rules(node.node_netns_path, rules)
    replies = run_client(processes, client, vip, 80, count=24)
    assert len(replies) == 24
    # every connection reached one of the two ready endpoints, and both were used
    assert {r.split(" saw ")[0] for r in replies} == {"web1", "web2"}
    assert {r.split(" saw ")[1] for r in replies} == {str(client.ip)}
    # no ready endpoint: refused at once, not a timeout
    assert run_client(processes, client, empty_vip, 80) == ["error ConnectionRefusedError"]
    saved = save_tables(node.node_netns_path, "nat")
    assert f"--to-destination {web1.ip}:8080" in saved
    assert "10.255.255.254" not in saved
    # the pods' own tables are untouched: the NAT lives in the node namespace only
    assert "KUBE-" not in save_tables(client.netns_path)


def test_a_pod_reaches_its_own_service(node, processes):
    """Hairpin: the endpoint is the client itself; the node masquerades the packet."""
    pod = node.add_pod("hairpin")
    vip = node.config.service_cidr.network_address + 22
    wait_ready(processes.in_netns(pod.netns_path, with_args(SERVER, "self", 8080)))
    apply_service_rules(
        node.node_netns_path,
        [ServicePortRules("test", "self", vip, 80, endpoints=(Endpoint(pod.ip, 8080),))],
    )
    [reply] = run_client(processes, pod, vip, 80)
    assert reply.startswith("self saw ")


def test_capture_rules_redirect_to_15001_and_15006(node, processes):
    app = node.add_pod("cap-app")
    peer = node.add_pod("cap-peer")
    apply_capture_rules(app.netns_path)
    saved = save_tables(app.netns_path, "nat")
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in saved
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in saved
    output = [line for line in saved.splitlines() if line.startswith("-A ISTIO_OUTPUT")]
    assert output[0] == "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN"

    # inbound: a connection to the app's port 9080 lands on 15006, original dst kept
    inbound = processes.in_netns(app.netns_path, with_args(ORIGINAL_DST, 15006))
    wait_ready(inbound)
    run_client(processes, peer, app.ip, 9080)
    out, _ = inbound.communicate(timeout=10)
    assert out.strip() == f"{app.ip}:9080 from {peer.ip}"

    # outbound from the app (gid 0) lands on 15001
    outbound = processes.in_netns(app.netns_path, with_args(ORIGINAL_DST, 15001))
    wait_ready(outbound)
    run_client(processes, app, peer.ip, 7000)
    out, _ = outbound.communicate(timeout=10)
    assert out.strip() == f"{peer.ip}:7000 from {app.ip}"

    # the proxy's own traffic (gid 1337) is not captured: it reaches the peer directly
    wait_ready(processes.in_netns(peer.netns_path, with_args(SERVER, "peer", 7001)))
    proxy = processes.in_netns(app.netns_path, with_args(CLIENT, peer.ip, 7001, 1), gid=1337)
    out, err = proxy.communicate(timeout=30)
    assert out.strip() == f"peer saw {app.ip}", err
    # and the sidecar's own ports are not redirected inbound
    wait_ready(processes.in_netns(app.netns_path, with_args(SERVER, "health", 15021)))
    assert run_client(processes, peer, app.ip, 15021) == [f"health saw {peer.ip}"]
