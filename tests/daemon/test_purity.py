"""The daemon's pure modules import nothing that acts on the machine or reads a clock."""

from __future__ import annotations

import pytest

from tests.purity import imports_of, impurities

PURE = [
    "meshlet.cluster.protocol",
    "meshlet.daemon.admission",
    "meshlet.daemon.backoff",
    "meshlet.daemon.images",
    "meshlet.daemon.injection",
    "meshlet.daemon.podplan",
    "meshlet.daemon.controllers.deployments",
    "meshlet.daemon.controllers.namespaces",
    "meshlet.daemon.controllers.podstatus",
    "meshlet.daemon.controllers.services",
]
IMPURE_MESHLET = ("meshlet.daemon.server", "meshlet.daemon.kubelet", "meshlet.daemon.supervisor",
                  "meshlet.daemon.api", "meshlet.daemon.controlplane", "meshlet.runtime.container",
                  "meshlet.runtime.network", "meshlet.runtime.iptables", "meshlet.runtime.dns")  # fmt: skip


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports(module: str) -> None:
    assert impurities(module) == []
    assert not set(imports_of(module)) & set(IMPURE_MESHLET)
