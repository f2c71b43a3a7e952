"""The node's network: a private node namespace and a routed veth per pod.

Theory of operation: the node namespace (``<prefix>-node``) stands for the node's root
namespace in a real cluster, except that it has no interface toward the host and so no
route out: cluster traffic cannot leave. It forwards between pods
(``net.ipv4.ip_forward=1``), holds the node's address and the cluster DNS address on
its loopback, and runs kube-proxy's NAT (``meshlet.runtime.services``). The whole
Service range is a ``local`` route there: a ClusterIP with a NAT rule is rewritten
before routing, and any other ClusterIP is delivered locally, where the filter table's
``REJECT`` (a Service without endpoints) or a closed port refuses the connection at once
instead of letting it wait for a timeout.

A pod is a network namespace (``<prefix>-pod-<pod id>``) with loopback and ``eth0``, the
pod end of a veth whose other end (``mlv…``, MAC ``ee:ee:ee:ee:ee:ee``) sits in the node
namespace. Routing is Calico's: the pod has its address as a /32, a link route to the
link-local gateway ``169.254.1.1`` with a permanent neighbour entry for the node end's
MAC, and a default route through it; the node has a /32 host route to the pod through
its veth end. There is no bridge, so Service NAT needs no ``br_netfilter``.

In the host's own namespace the only change is two blackhole routes, for the pod and
the Service ranges, so that a cluster address used by mistake on the host fails at once
instead of leaving the machine. ``teardown`` removes everything, and every step can run
twice (a restart re-adopts pods whose namespaces exist: ``pods()`` reads them back).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from meshlet.runtime._commands import run, which
from meshlet.runtime.config import NodeConfig, check_pod_id
from meshlet.runtime.errors import NodeRuntimeError
from meshlet.runtime.ipam import IpAllocator, pod_allocator
from meshlet.runtime.netns import NETNS_DIR, call_in_netns, netns_path

__all__ = [
    "HOST_VETH_MAC",
    "NodeNetwork",
    "PodNetwork",
    "check_prerequisites",
    "missing_prerequisites",
]

HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee"
POD_INTERFACE = "eth0"

# tool -> the Debian package that has it
_TOOLS = {
    "ip": "iproute2",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "nsenter": "util-linux",
}


def missing_prerequisites() -> list[str]:
    """What the machine lacks for the node runtime, in words (empty: nothing)."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append(f"root (running as uid {os.geteuid()})")
    packages: dict[str, list[str]] = {}
    for tool, package in _TOOLS.items():
        if which(tool) is None:
            packages.setdefault(package, []).append(tool)
    for package, tools in sorted(packages.items()):
        missing.append(f"{package} ({', '.join(tools)})")
    if not Path("/proc/self/ns/net").exists():
        missing.append("a kernel with network namespaces")
    return missing


def check_prerequisites() -> None:
    """Raise one ``NodeRuntimeError`` naming everything that is missing."""
    missing = missing_prerequisites()
    if missing:
        packages = sorted({_TOOLS[t] for t in _TOOLS if which(t) is None})
        hint = f"; install with: apt-get install {' '.join(packages)}" if packages else ""
        raise NodeRuntimeError(
            "the local cluster needs Linux network namespaces, iptables and root; missing: "
            + ", ".join(missing)
            + hint
        )


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """A pod's network: its namespace, address and the two ends of its veth."""

    pod_id: str
    netns: str
    ip: IPv4Address
    host_veth: str
    pod_veth: str = POD_INTERFACE

    @property
    def netns_path(self) -> Path:
        return netns_path(self.netns)


class NodeNetwork:
    """The node namespace and the pods' namespaces of one local cluster."""

    def __init__(self, config: NodeConfig | None = None) -> None:
        self.config = config or NodeConfig()
        self.pod_ips: IpAllocator = pod_allocator(self.config)

    # -- the node ----------------------------------------------------------------------

    @property
    def node_netns_path(self) -> Path:
        return netns_path(self.config.node_netns)

    def node_exists(self) -> bool:
        return self.node_netns_path.exists()

    def setup_node(self) -> None:
        """Create (or re-adopt) the node namespace and the host's blackhole routes."""
        check_prerequisites()
        config = self.config
        for cidr in (config.pod_cidr, config.service_cidr):
            self._check_host_route(cidr)
        if not self.node_exists():
            run(["ip", "netns", "add", config.node_netns])
        node = config.node_netns
        batch = [
            "link set lo up",
            f"address replace {config.node_ip}/32 dev lo",
            f"address replace {config.dns_ip}/32 dev lo",
            f"route replace local {config.service_cidr} dev lo",
        ]
        run(["ip", "-n", node, "-batch", "-"], input="\n".join(batch) + "\n")
        call_in_netns(self.node_netns_path, _enable_forwarding)
        for cidr in (config.pod_cidr, config.service_cidr):
            run(["ip", "route", "replace", "blackhole", str(cidr)])
        self.pod_ips = pod_allocator(config, {p.ip: p.pod_id for p in self.pods()})

    def _check_host_route(self, cidr: IPv4Network) -> None:
        found = run(["ip", "-j", "route", "show", "exact", str(cidr)]).stdout.strip()
        for route in json.loads(found or "[]"):
            if route.get("type") != "blackhole":
                where = route.get("dev") or route.get("gateway") or "another route"
                raise NodeRuntimeError(
                    f"{cidr} is already routed on this machine (via {where}); "
                    "choose another pod or Service range"
                )

    def teardown(self) -> None:
        """Remove every pod namespace, the node namespace and the blackhole routes."""
        for name in self._netns_names():
            pod_id = self.config.pod_id_of_netns(name)
            if pod_id is not None:
                self.remove_pod(pod_id)
        if self.node_exists():
            run(["ip", "netns", "delete", self.config.node_netns])
        for cidr in (self.config.pod_cidr, self.config.service_cidr):
            run(["ip", "route", "delete", "blackhole", str(cidr)], check=False)
        self.pod_ips = pod_allocator(self.config)

    # -- pods ------------------------------------------------------------------------

    def add_pod(self, pod_id: str, ip: IPv4Address | None = None) -> PodNetwork:
        """The pod's network, made now or re-adopted when it is already complete."""
        check_pod_id(pod_id)
        if not self.node_exists():
            raise NodeRuntimeError("the node network is not set up (setup_node first)")
        existing = self.pod(pod_id)
        if existing is not None and (ip is None or existing.ip == ip):
            self.pod_ips.allocate_specific(existing.ip, pod_id)
            return existing
        self.remove_pod(pod_id)
        address = (
            self.pod_ips.allocate_specific(ip, pod_id) if ip else self.pod_ips.allocate(pod_id)
        )
        pod = PodNetwork(
            pod_id, self.config.pod_netns(pod_id), address, self.config.host_veth(pod_id)
        )
        try:
            self._create_pod(pod)
        except BaseException:
            self.remove_pod(pod_id)
            raise
        return pod

    def _create_pod(self, pod: PodNetwork) -> None:
        node = self.config.node_netns
        gateway = self.config.gateway
        run(["ip", "netns", "add", pod.netns])
        run(
            [
                "ip", "-n", node, "link", "add", pod.host_veth, "address", HOST_VETH_MAC,
                "type", "veth", "peer", "name", pod.pod_veth, "netns", pod.netns,
            ]
        )  # fmt: skip
        pod_side = [
            "link set lo up",
            f"address add {pod.ip}/32 dev {pod.pod_veth}",
            f"link set {pod.pod_veth} up",
            f"route add {gateway} dev {pod.pod_veth} scope link",
            f"route add default via {gateway} dev {pod.pod_veth}",
            f"neighbour replace {gateway} lladdr {HOST_VETH_MAC} dev {pod.pod_veth} nud permanent",
        ]
        run(["ip", "-n", pod.netns, "-batch", "-"], input="\n".join(pod_side) + "\n")
        node_side = [
            f"link set {pod.host_veth} up",
            f"route replace {pod.ip}/32 dev {pod.host_veth} scope link",
        ]
        run(["ip", "-n", node, "-batch", "-"], input="\n".join(node_side) + "\n")

    def remove_pod(self, pod_id: str) -> None:
        """Remove the pod's namespace and veth (nothing happens when they are gone)."""
        name = self.config.pod_netns(pod_id)
        if self.node_exists():
            run(["ip", "-n", self.config.node_netns, "link", "delete", self.config.host_veth(pod_id)],
                check=False)  # fmt: skip
        if netns_path(name).exists():
            run(["ip", "netns", "delete", name])
        self.pod_ips.release(pod_id)

    def pod(self, pod_id: str) -> PodNetwork | None:
        """The pod's network as it exists on the machine, or ``None`` (also when only
        part of it exists)."""
        name = self.config.pod_netns(pod_id)
        if not netns_path(name).exists():
            return None
        shown = run(["ip", "-n", name, "-j", "address", "show", "dev", POD_INTERFACE], check=False)
        if shown.returncode != 0:
            return None
        addresses = [
            info["local"]
            for link in json.loads(shown.stdout or "[]")
            for info in link.get("addr_info", [])
            if info.get("family") == "inet" and info.get("prefixlen") == 32
        ]
        if len(addresses) != 1:
            return None
        ip = IPv4Address(addresses[0])
        if ip not in self.config.pod_cidr:
            return None
        veth = self.config.host_veth(pod_id)
        routes = run(["ip", "-n", self.config.node_netns, "-j", "route", "show", "exact", f"{ip}/32"],
                     check=False)  # fmt: skip
        if routes.returncode != 0 or not any(
            r.get("dev") == veth for r in json.loads(routes.stdout or "[]")
        ):
            return None
        return PodNetwork(pod_id, name, ip, veth)

    def pods(self) -> list[PodNetwork]:
        """Every complete pod network of this node, sorted by pod id."""
        found = []
        for name in self._netns_names():
            pod_id = self.config.pod_id_of_netns(name)
            if pod_id is not None:
                pod = self.pod(pod_id)
                if pod is not None:
                    found.append(pod)
        return sorted(found, key=lambda p: p.pod_id)

    def _netns_names(self) -> list[str]:
        if not NETNS_DIR.is_dir():
            return []
        prefix = self.config.prefix + "-"
        return sorted(entry.name for entry in NETNS_DIR.iterdir() if entry.name.startswith(prefix))


def _enable_forwarding() -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
