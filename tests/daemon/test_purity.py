"""The daemon's pure modules import nothing that acts on the machine or reads a clock."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

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
FORBIDDEN = {
    "asyncio",
    "socket",
    "subprocess",
    "os",
    "shutil",
    "tempfile",
    "time",
    "random",
    "ctypes",
    "threading",
    "pathlib",
    "sqlite3",
    "grpc",
}
IMPURE_MESHLET = ("meshlet.daemon.server", "meshlet.daemon.kubelet", "meshlet.daemon.supervisor",
                  "meshlet.daemon.api", "meshlet.daemon.controlplane", "meshlet.runtime.container",
                  "meshlet.runtime.network", "meshlet.runtime.iptables", "meshlet.runtime.dns")  # fmt: skip


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            assert node.module not in IMPURE_MESHLET, node.module
    assert not imported & FORBIDDEN
