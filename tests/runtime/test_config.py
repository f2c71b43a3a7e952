from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from meshlet.runtime.config import NodeConfig
from meshlet.runtime.containerspec import ContainerSpec, Mount
from meshlet.runtime.podfiles import render_hosts, render_resolv_conf


def test_default_addresses_are_kubernetes_ones():
    config = NodeConfig()
    assert config.dns_ip == IPv4Address("10.96.0.10")
    assert config.kubernetes_ip == IPv4Address("10.96.0.1")
    assert config.node_ip == IPv4Address("10.244.0.1")
    assert config.node_netns == "meshlet-node"
    assert config.pod_netns("httpbin-5d9f-abcde") == "meshlet-pod-httpbin-5d9f-abcde"


def test_names_and_ids():
    config = NodeConfig(prefix="t1")
    assert config.pod_id_of_netns("t1-pod-sleep-1") == "sleep-1"
    assert config.pod_id_of_netns("t1-node") is None
    assert config.pod_id_of_netns("other-pod-x") is None
    veth = config.host_veth("httpbin-5d9f-abcde")
    assert veth.startswith("mlv") and len(veth) == 15
    assert veth == NodeConfig.host_veth("httpbin-5d9f-abcde")
    assert veth != NodeConfig.host_veth("httpbin-5d9f-abcdf")
    with pytest.raises(ValueError, match="pod id"):
        config.pod_netns("Bad/Name")


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="prefix"):
        NodeConfig(prefix="Bad_Prefix")
    with pytest.raises(ValueError, match="overlaps"):
        NodeConfig(pod_cidr=IPv4Network("10.96.0.0/16"))
    with pytest.raises(ValueError, match="link-local"):
        NodeConfig(gateway=IPv4Address("10.0.0.1"))


def test_resolv_conf_is_kubelets():
    assert render_resolv_conf("test", IPv4Address("10.96.0.10")) == (
        "search test.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


def test_hosts_file_names_the_pod():
    text = render_hosts(IPv4Address("10.244.0.7"), "httpbin-abc")
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert lines[1] == "127.0.0.1\tlocalhost"
    assert lines[-1] == "10.244.0.7\thttpbin-abc"
    aliased = render_hosts(
        IPv4Address("10.244.0.7"),
        "web",
        subdomain_fqdn="web.sub.test.svc.cluster.local",
        host_aliases=[(IPv4Address("10.1.1.1"), ["foo", "bar"])],
    )
    assert "10.244.0.7\tweb.sub.test.svc.cluster.local\tweb" in aliased
    assert aliased.endswith("# Entries added by HostAliases.\n10.1.1.1\tfoo\tbar\n")


def test_container_spec_round_trips_and_orders_mounts():
    spec = ContainerSpec.build(
        ["sleep", "30"],
        netns="/run/netns/p",
        scratch_dir="/var/lib/meshlet/c/scratch",
        env={"B": "2", "A": "1"},
        gid=1337,
        mounts=[
            Mount("/v/certs", "/etc/istio/tls-certs/", read_only=True),
            Mount("/v/istio", "/etc/istio"),
            Mount("/v/tmp", "/tmp"),
        ],
    )
    assert spec.env == (("A", "1"), ("B", "2"))
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert [m.target for m in spec.mounts_in_order()] == [
        "/tmp",
        "/etc/istio",
        "/etc/istio/tls-certs",
    ]


def test_container_spec_refuses_bad_input():
    with pytest.raises(ValueError, match="command"):
        ContainerSpec.build([], netns="/n", scratch_dir="/s")
    with pytest.raises(ValueError, match="absolute"):
        Mount("/a", "relative/path")
    with pytest.raises(ValueError, match="same mountPath"):
        ContainerSpec.build(
            ["x"], netns="/n", scratch_dir="/s", mounts=[Mount("/a", "/m"), Mount("/b", "/m/")]
        )
    with pytest.raises(ValueError, match="missing"):
        ContainerSpec.from_json('{"argv": ["x"]}')
