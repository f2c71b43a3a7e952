from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from meshlet.runtime.config import NodeConfig
from meshlet.runtime.errors import IpamError
from meshlet.runtime.ipam import IpAllocator, pod_allocator, service_allocator


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def test_pod_addresses_start_after_the_node_address():
    pods = pod_allocator()
    assert pods.allocate("test/a") == ip("10.244.0.2")
    assert pods.allocate("test/b") == ip("10.244.0.3")


def test_allocate_is_idempotent_per_owner():
    pods = pod_allocator()
    first = pods.allocate("test/a")
    assert pods.allocate("test/a") == first
    assert pods.allocated() == {first: "test/a"}


def test_a_released_address_is_not_reused_at_once():
    pods = pod_allocator()
    a = pods.allocate("a")
    pods.allocate("b")
    assert pods.release("a") == a
    assert pods.allocate("c") == ip("10.244.0.4")
    assert pods.owner_of(a) is None
    assert pods.release("a") is None


def test_allocation_wraps_around_and_skips_reserved():
    small = IpAllocator(IPv4Network("10.0.0.0/29"), reserved=[ip("10.0.0.1")])
    got = [small.allocate(f"p{i}") for i in range(5)]
    assert got == [ip(f"10.0.0.{n}") for n in (2, 3, 4, 5, 6)]
    with pytest.raises(IpamError, match=r"no free address left in 10\.0\.0\.0/29"):
        small.allocate("p5")
    small.release("p1")
    assert small.allocate("again") == ip("10.0.0.3")


def test_service_range_keeps_kubernetes_and_dns_addresses():
    services = service_allocator()
    taken = [services.allocate(f"ns/s{i}") for i in range(10)]
    assert ip("10.96.0.1") not in taken
    assert ip("10.96.0.10") not in taken
    assert taken[0] == ip("10.96.0.2")
    assert services.allocate_specific(ip("10.96.0.10"), "kube-system/kube-dns") == ip("10.96.0.10")
    assert services.allocate_specific(ip("10.96.0.1"), "default/kubernetes") == ip("10.96.0.1")


def test_specific_addresses_are_checked():
    services = service_allocator()
    services.allocate_specific(ip("10.96.5.5"), "test/httpbin")
    with pytest.raises(IpamError, match=r"10.96.5.5 is already allocated \(to test/httpbin\)"):
        services.allocate_specific(ip("10.96.5.5"), "test/other")
    with pytest.raises(IpamError, match=r"not in the range 10\.96\.0\.0/12"):
        services.allocate_specific(ip("10.200.0.1"), "test/x")
    with pytest.raises(IpamError, match="network or broadcast"):
        services.allocate_specific(ip("10.96.0.0"), "test/x")
    with pytest.raises(IpamError, match=r"already holds 10\.96\.5\.5"):
        services.allocate_specific(ip("10.96.5.6"), "test/httpbin")


def test_rebuild_gives_the_same_next_choice():
    original = pod_allocator()
    for name in ("a", "b", "c", "d"):
        original.allocate(name)
    original.release("b")
    rebuilt = pod_allocator(in_use=original.allocated())
    assert rebuilt.allocated() == original.allocated()
    assert rebuilt.allocate("e") == original.allocate("e") == ip("10.244.0.6")
    assert rebuilt.address_of("c") == ip("10.244.0.4")


def test_allocators_follow_the_node_config():
    config = NodeConfig(
        pod_cidr=IPv4Network("10.1.2.0/24"), service_cidr=IPv4Network("10.3.0.0/24")
    )
    assert pod_allocator(config).allocate("a") == ip("10.1.2.2")
    assert service_allocator(config).allocate("s") == ip("10.3.0.2")
    assert config.node_ip == ip("10.1.2.1")
    assert config.dns_ip == ip("10.3.0.10")
    assert config.kubernetes_ip == ip("10.3.0.1")
