"""The pure modules of the runtime import nothing that acts on the machine."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PURE = [
    "meshlet.runtime.config",
    "meshlet.runtime.ipam",
    "meshlet.runtime.services",
    "meshlet.runtime.capture",
    "meshlet.runtime.dnsmsg",
    "meshlet.runtime.podfiles",
    "meshlet.runtime.containerspec",
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
}


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports(module):
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            if node.module.startswith("meshlet.runtime."):
                assert node.module in PURE or node.module == "meshlet.runtime.errors", node.module
    assert not imported & FORBIDDEN


def test_the_entry_program_loads_neither_grpc_nor_asyncio():
    probe = (
        "import sys, meshlet.runtime.enter; "
        "print(sorted(m for m in ('grpc', 'asyncio', 'yaml') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
