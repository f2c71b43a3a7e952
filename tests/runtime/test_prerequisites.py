from __future__ import annotations

import pytest

from meshlet.runtime import network
from meshlet.runtime.errors import NodeRuntimeError


def test_everything_missing_is_named_in_one_error(monkeypatch):
    monkeypatch.setattr(network.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(
        network, "which", lambda tool: None if tool.startswith("iptables") else f"/usr/sbin/{tool}"
    )
    with pytest.raises(NodeRuntimeError) as caught:
        network.check_prerequisites()
    message = str(caught.value)
    assert "\n" not in message
    assert "root (running as uid 1000)" in message
    assert "iptables (iptables, iptables-restore, iptables-save)" in message
    assert message.endswith("install with: apt-get install iptables")


def test_nothing_missing_is_quiet(monkeypatch):
    monkeypatch.setattr(network.os, "geteuid", lambda: 0)
    monkeypatch.setattr(network, "which", lambda tool: f"/usr/sbin/{tool}")
    assert network.missing_prerequisites() == []
    network.check_prerequisites()
