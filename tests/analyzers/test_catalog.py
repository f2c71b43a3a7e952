"""Every message type is documented, and the analyzers stay pure."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from meshlet.analyzers import ANALYZERS
from meshlet.analyzers.message import CATALOG

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {"asyncio", "socket", "subprocess", "os", "time", "random", "threading", "pathlib"}


def test_every_code_is_documented_with_its_level() -> None:
    docs = (REPO / "docs" / "analyzers.md").read_text(encoding="utf-8")
    for message_type in CATALOG:
        level = message_type.level.value
        table = f"| {message_type.code} | {message_type.name} | {level} |"
        heading = re.compile(rf"### {message_type.code} {message_type.name} — {level}")
        assert table in docs or heading.search(docs), message_type


def test_codes_are_unique_and_meshlets_own_are_a_series() -> None:
    codes = [t.code for t in CATALOG]
    assert len(codes) == len(set(codes))
    own = sorted(c for c in codes if c.startswith("MSH"))
    assert own == [f"MSH{n:04d}" for n in range(1, len(own) + 1)]


def _modules() -> list[str]:
    package = REPO / "src" / "meshlet" / "analyzers"
    return sorted(
        f"meshlet.analyzers.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"
    )


@pytest.mark.parametrize("module", _modules())
def test_analyzer_modules_do_no_io(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            assert not node.module.startswith("meshlet.cluster"), module
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", module
    assert not imported & FORBIDDEN, module


def test_every_analyzer_is_registered_once() -> None:
    names = [name for name, _ in ANALYZERS]
    assert len(names) == len(set(names))
