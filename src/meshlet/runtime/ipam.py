"""Address allocation for pods and Services, as host-local IPAM and the API server's
ClusterIP allocator do it, deterministically.

Theory of operation: an ``IpAllocator`` owns one range and a table ``address -> owner``
(a pod id, ``namespace/name`` of a Service). ``allocate(owner)`` is idempotent: an owner
that already holds an address gets it again. A new address is the first free one after
the last address handed out, wrapping around the range (host-local's round robin), so a
just-released address is not reused at once while a stale connection or a stale
endpoint may still name it. Reserved addresses (the network and broadcast addresses,
the node's, ``kubernetes`` and DNS) are never handed out by ``allocate`` but may be
taken by name with ``allocate_specific`` (the ``kubernetes`` and ``kube-dns`` Services
ask for theirs). After a restart, ``rebuild`` makes the same allocator again from what
exists (the pods' namespaces, the stored Services); the cursor is then the highest
address in use, so the next choice is the same on every rebuild.

No clock, no randomness, no I/O: the same calls give the same addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network

from meshlet.runtime.config import DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, NodeConfig
from meshlet.runtime.errors import IpamError

__all__ = ["IpAllocator", "pod_allocator", "service_allocator"]


class IpAllocator:
    """Addresses of one range, each held by one owner."""

    __slots__ = ("_by_owner", "_cursor", "_network", "_owners", "_reserved")

    def __init__(self, network: IPv4Network, reserved: Iterable[IPv4Address] = ()) -> None:
        self._network = network
        self._reserved = frozenset(reserved) | {network.network_address, network.broadcast_address}
        for address in self._reserved:
            if address not in network:
                raise ValueError(f"reserved address {address} is outside {network}")
        if network.num_addresses - len(self._reserved) < 1:
            raise ValueError(f"{network} has no address left to allocate")
        self._owners: dict[IPv4Address, str] = {}
        self._by_owner: dict[str, IPv4Address] = {}
        self._cursor = network.network_address

    @classmethod
    def rebuild(
        cls,
        network: IPv4Network,
        in_use: Mapping[IPv4Address, str],
        reserved: Iterable[IPv4Address] = (),
    ) -> IpAllocator:
        """The allocator as it was, from the addresses that exist and their owners."""
        allocator = cls(network, reserved)
        for address in sorted(in_use):
            allocator.allocate_specific(address, in_use[address])
        if in_use:
            allocator._cursor = max(in_use)
        return allocator

    @property
    def network(self) -> IPv4Network:
        return self._network

    def allocate(self, owner: str) -> IPv4Address:
        """The address of ``owner``: the one it holds, or the next free one."""
        held = self._by_owner.get(owner)
        if held is not None:
            return held
        base = int(self._network.network_address)
        size = self._network.num_addresses
        start = int(self._cursor) - base
        for step in range(1, size + 1):
            candidate = IPv4Address(base + (start + step) % size)
            if candidate not in self._reserved and candidate not in self._owners:
                self._take(candidate, owner)
                self._cursor = candidate
                return candidate
        raise IpamError(
            f"no free address left in {self._network} ({len(self._owners)} in use); "
            "release some or configure a larger range"
        )

    def allocate_specific(self, address: IPv4Address, owner: str) -> IPv4Address:
        """Give ``address`` to ``owner`` (a ``spec.clusterIP`` asked for by name)."""
        if address not in self._network:
            raise IpamError(f"{address} is not in the range {self._network}")
        if address in (self._network.network_address, self._network.broadcast_address):
            raise IpamError(f"{address} is the network or broadcast address of {self._network}")
        holder = self._owners.get(address)
        if holder is not None and holder != owner:
            raise IpamError(f"{address} is already allocated (to {holder})")
        held = self._by_owner.get(owner)
        if held is not None and held != address:
            raise IpamError(f"{owner} already holds {held}")
        self._take(address, owner)
        return address

    def release(self, owner: str) -> IPv4Address | None:
        """Free the address ``owner`` holds; the address, or ``None`` if it held none."""
        address = self._by_owner.pop(owner, None)
        if address is not None:
            del self._owners[address]
        return address

    def owner_of(self, address: IPv4Address) -> str | None:
        return self._owners.get(address)

    def address_of(self, owner: str) -> IPv4Address | None:
        return self._by_owner.get(owner)

    def allocated(self) -> dict[IPv4Address, str]:
        """Every address in use and its owner, in address order."""
        return {address: self._owners[address] for address in sorted(self._owners)}

    def _take(self, address: IPv4Address, owner: str) -> None:
        self._owners[address] = owner
        self._by_owner[owner] = address


def pod_allocator(
    config: NodeConfig | None = None, in_use: Mapping[IPv4Address, str] | None = None
) -> IpAllocator:
    """Pod addresses of a node: its pod range without the node's own address."""
    network = config.pod_cidr if config else DEFAULT_POD_CIDR
    node_ip = network.network_address + 1
    return IpAllocator.rebuild(network, in_use or {}, reserved=[node_ip])


def service_allocator(
    config: NodeConfig | None = None, in_use: Mapping[IPv4Address, str] | None = None
) -> IpAllocator:
    """ClusterIPs: the Service range with ``kubernetes`` (first) and DNS (tenth) kept
    for the Services that ask for them by name."""
    network = config.service_cidr if config else DEFAULT_SERVICE_CIDR
    reserved = [network.network_address + 1, network.network_address + 10]
    return IpAllocator.rebuild(network, in_use or {}, reserved=reserved)
