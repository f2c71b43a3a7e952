"""The pure modules of meshlet.kube import no I/O, clock or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meshlet.kube

PURE = (
    "settings",
    "admission",
    "jsonpatch",
    "manifests",
    "watchstate",
    "tokenreview",
    "portforward_frames",
)
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "os",
    "time",
    "random",
    "subprocess",
    "aiohttp",
    "kubernetes_asyncio",
    "pathlib",
    "datetime",
    "tempfile",
    "shutil",
}


@pytest.mark.parametrize("name", PURE)
def test_pure_module_imports(name: str) -> None:
    source = Path(meshlet.kube.__file__).parent / f"{name}.py"
    tree = ast.parse(source.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, imported & FORBIDDEN
    assert "open(" not in source.read_text()
