"""A node's whole life, and nothing of it left afterwards (root only)."""

from __future__ import annotations

import subprocess
import time

import pytest

from meshlet.runtime.container import container_mounts, start_container
from meshlet.runtime.containerspec import ContainerSpec
from meshlet.runtime.errors import NodeRuntimeError
from meshlet.runtime.iptables import apply_capture_rules, apply_service_rules
from meshlet.runtime.network import NodeNetwork
from meshlet.runtime.services import Endpoint, ServicePortRules

from .conftest import EMPTY, fresh_config, host_iptables, host_state, integration_skip_reason

pytestmark = pytest.mark.integration


@pytest.fixture
def config():
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)
    config = fresh_config()
    yield config
    NodeNetwork(config).teardown()  # idempotent: cleans up whatever a failure left


def test_teardown_leaves_nothing_behind(config, tmp_path):
    rules_before = host_iptables()
    network = NodeNetwork(config)
    network.setup_node()
    blackholes = subprocess.run(
        ["ip", "route", "show", "type", "blackhole"], capture_output=True, text=True, check=True
    ).stdout
    assert str(config.pod_cidr) in blackholes and str(config.service_cidr) in blackholes
    one = network.add_pod("life-one")
    two = network.add_pod("life-two")
    apply_capture_rules(one.netns_path)
    apply_service_rules(
        network.node_netns_path,
        [
            ServicePortRules(
                "t", "s", config.service_cidr[20], 80, endpoints=(Endpoint(two.ip, 80),)
            )
        ],
    )
    resolv = tmp_path / "resolv.conf"
    hosts = tmp_path / "hosts"
    resolv.write_text("nameserver 127.0.0.1\n")
    hosts.write_text("127.0.0.1 localhost\n")
    scratch, mounts = container_mounts(tmp_path / "c", resolv_conf=resolv, hosts=hosts)
    spec = ContainerSpec.build(
        ["sleep", "60"], netns=str(one.netns_path), scratch_dir=str(scratch), mounts=mounts
    )
    process = start_container(spec, tmp_path / "spec.json")
    try:
        time.sleep(0.3)
        assert process.poll() is None
        assert host_state(config)["netns"] == sorted([config.node_netns, one.netns, two.netns])

        # a restart re-adopts what exists, and allocates after it
        again = NodeNetwork(config)
        again.setup_node()
        assert again.pods() == [one, two]
        three = again.add_pod("life-three")
        assert three.ip not in (one.ip, two.ip)
    finally:
        process.kill()
        process.wait(5)
    network.teardown()
    network.teardown()  # twice is fine
    assert host_state(config) == EMPTY
    assert host_iptables() == rules_before


def test_a_used_range_is_refused(config):
    subprocess.run(["ip", "route", "add", "unreachable", str(config.pod_cidr)], check=True)
    try:
        with pytest.raises(NodeRuntimeError, match="is already routed on this machine"):
            NodeNetwork(config).setup_node()
    finally:
        subprocess.run(["ip", "route", "delete", "unreachable", str(config.pod_cidr)], check=True)
    assert host_state(config) == EMPTY
