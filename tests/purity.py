"""Checking that a module is pure, by reading its source: it imports nothing that acts on
the machine (sockets, files, processes, threads, the event loop) and calls no clock and
no ``open``. Each package's purity test names its pure modules and asks
``impurities(module)`` for what breaks the rule; a package with stricter rules passes
more names to forbid, or checks ``imports_of(module)`` itself.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Collection
from pathlib import Path

FORBIDDEN = frozenset(
    {
        "asyncio",
        "ctypes",
        "grpc",
        "io",
        "os",
        "pathlib",
        "random",
        "secrets",
        "selectors",
        "shutil",
        "socket",
        "sqlite3",
        "ssl",
        "subprocess",
        "tempfile",
        "threading",
        "time",
    }
)
"""Top-level modules a pure module must not import."""

CLOCK_CALLS = frozenset({"now", "utcnow", "today"})


def source_path(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    return Path(spec.origin)


def package_modules(package: str) -> list[str]:
    """The modules directly in ``package`` (its own ``*.py`` files), sorted."""
    folder = source_path(package).parent
    return sorted(
        package if path.stem == "__init__" else f"{package}.{path.stem}"
        for path in folder.glob("*.py")
    )


def _tree(module: str) -> ast.Module:
    path = source_path(module)
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imports_of(module: str) -> list[str]:
    """Every module ``module`` imports, by its absolute name, in source order."""
    path = source_path(module)
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            relative = "." * node.level + (node.module or "")
            found.append(importlib.util.resolve_name(relative, package))
    return found


def impurities(module: str, forbidden: Collection[str] = FORBIDDEN) -> list[str]:
    """What makes ``module`` impure: each forbidden import and each clock or ``open`` call."""
    found = [
        f"{module} imports {name}" for name in imports_of(module) if name.split(".")[0] in forbidden
    ]
    for node in ast.walk(_tree(module)):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_CALLS:
            found.append(f"{module}:{node.lineno} calls {node.func.attr}()")
        if isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append(f"{module}:{node.lineno} calls open()")
    return found
