"""The kubectl package is pure: no sockets, files, event loop, clock or environment."""

from __future__ import annotations

import ast
from pathlib import Path

import meshlet.kubectl

FORBIDDEN = {"asyncio", "socket", "os", "time", "subprocess", "pathlib", "io", "shutil", "random"}


def test_kubectl_modules_import_nothing_impure() -> None:
    package = Path(meshlet.kubectl.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 9
    for module in modules:
        tree = ast.parse(module.read_text(), str(module))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{module.name} imports {name}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in {"now", "utcnow", "today"}, module.name
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", module.name
