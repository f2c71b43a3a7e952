"""The Istio models, schemas, validation and analysis are pure: no I/O, no clock."""

from __future__ import annotations

import ast
from pathlib import Path

from meshlet import resources

ROOT = Path(resources.__file__).parent
PURE = [
    ROOT / "istio.py",
    ROOT / "analysis.py",
    ROOT / "kinds" / "istio.py",
    *sorted(p for p in (ROOT / "validation").glob("*.py") if p.name != "kubernetes.py"),
]
FORBIDDEN = {"asyncio", "socket", "os", "time", "datetime", "subprocess", "pathlib", "io"}


def test_pure_modules_import_no_io() -> None:
    for path in PURE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                raise AssertionError(f"{path.name} opens a file")
