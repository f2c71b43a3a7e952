"""The pure modules of the verbs import no I/O and read no clock."""

from __future__ import annotations

import ast
from pathlib import Path

import meshlet.cli.describers
import meshlet.istioctl

FORBIDDEN = {"asyncio", "socket", "os", "time", "subprocess", "pathlib", "io", "shutil", "random"}


def test_pure_modules_import_nothing_impure() -> None:
    modules = sorted(Path(meshlet.istioctl.__file__).parent.glob("*.py"))
    modules.append(Path(meshlet.cli.describers.__file__))
    assert len(modules) >= 4
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
