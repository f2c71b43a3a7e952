"""The protocol cores are pure: they import nothing that reaches sockets, files or clocks."""

from __future__ import annotations

import ast
import importlib.util

import pytest

IMPURE = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "os",
    "io",
    "pathlib",
    "subprocess",
    "time",
    "datetime",
    "random",
    "uuid",
    "secrets",
    "threading",
    "shutil",
    "tempfile",
}

PURE_MODULES = [
    "meshlet.proxy.client_hello",
    "meshlet.proxy.http_headers",
    "meshlet.proxy.http1_head",
    "meshlet.envoy.filter_chain",
]


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & IMPURE, f"{module} imports {sorted(imported & IMPURE)}"
