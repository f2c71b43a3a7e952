"""The node's names and address ranges, derived from one prefix and two CIDRs.

Everything the node runtime creates on the machine carries the prefix: the node's
network namespace is ``<prefix>-node`` and each pod's is ``<prefix>-pod-<pod id>``, so a
listing by prefix finds all of it (teardown, re-adoption after a restart) and two
clusters (or two test runs) with different prefixes never touch each other's things.

Addresses follow Kubernetes' conventions: the Service range's first address is the
``kubernetes`` Service and its tenth the cluster DNS (``10.96.0.1`` and ``10.96.0.10``
in the default ``10.96.0.0/12``); the pod range's first address is the node itself,
where the node namespace's own listeners live. Pods reach the node through a
link-local gateway (``169.254.1.1``), as with Calico's routed veths.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

__all__ = [
    "DEFAULT_POD_CIDR",
    "DEFAULT_SERVICE_CIDR",
    "NodeConfig",
    "check_pod_id",
]

DEFAULT_POD_CIDR = IPv4Network("10.244.0.0/16")
DEFAULT_SERVICE_CIDR = IPv4Network("10.96.0.0/12")

# A prefix and pod id become file names under /run/netns and parts of interface names.
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
_POD_ID = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,198}[a-z0-9])?$")


def check_pod_id(pod_id: str) -> str:
    """Return ``pod_id`` when it can name a network namespace, else raise ``ValueError``."""
    if not _POD_ID.match(pod_id):
        raise ValueError(
            f"pod id {pod_id!r} must be 1-200 characters of a-z, 0-9, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return pod_id


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Where the node lives: a name prefix, the pod range and the Service range."""

    prefix: str = "meshlet"
    pod_cidr: IPv4Network = field(default=DEFAULT_POD_CIDR)
    service_cidr: IPv4Network = field(default=DEFAULT_SERVICE_CIDR)
    gateway: IPv4Address = field(default=IPv4Address("169.254.1.1"))
    cluster_domain: str = "cluster.local"

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(
                f"prefix {self.prefix!r} must be 1-24 characters of a-z, 0-9 and '-', "
                "starting with a letter"
            )
        if self.pod_cidr.prefixlen > 30 or self.service_cidr.prefixlen > 28:
            raise ValueError("the pod range needs at least /30 and the Service range /28")
        if self.pod_cidr.overlaps(self.service_cidr):
            raise ValueError(
                f"pod range {self.pod_cidr} overlaps Service range {self.service_cidr}"
            )
        if not self.gateway.is_link_local:
            raise ValueError(f"gateway {self.gateway} must be a link-local address")

    @property
    def node_netns(self) -> str:
        """The node's network namespace (a name under ``/run/netns``)."""
        return f"{self.prefix}-node"

    @property
    def pod_netns_prefix(self) -> str:
        return f"{self.prefix}-pod-"

    def pod_netns(self, pod_id: str) -> str:
        """The network namespace of pod ``pod_id``."""
        return self.pod_netns_prefix + check_pod_id(pod_id)

    def pod_id_of_netns(self, netns: str) -> str | None:
        """The pod id a namespace name belongs to, or ``None`` when it is not a pod's."""
        if not netns.startswith(self.pod_netns_prefix):
            return None
        pod_id = netns[len(self.pod_netns_prefix) :]
        return pod_id if _POD_ID.match(pod_id) else None

    @staticmethod
    def host_veth(pod_id: str) -> str:
        """The node-side end of a pod's veth: ``mlv`` and 12 hex digits of a hash of the
        pod id (interface names have at most 15 characters)."""
        digest = hashlib.sha256(check_pod_id(pod_id).encode()).hexdigest()
        return f"mlv{digest[:12]}"

    @property
    def node_ip(self) -> IPv4Address:
        """The node's own address (the pod range's first), on the node's loopback."""
        return self.pod_cidr.network_address + 1

    @property
    def kubernetes_ip(self) -> IPv4Address:
        """The ``kubernetes`` Service's ClusterIP (the Service range's first address)."""
        return self.service_cidr.network_address + 1

    @property
    def dns_ip(self) -> IPv4Address:
        """The cluster DNS Service's ClusterIP (the Service range's tenth address)."""
        return self.service_cidr.network_address + 10
